"""RFC 6962 / RFC 9162 §2.1 Merkle tree hashing and proofs, as pure functions over leaf hashes.

Leaves are ``SHA-256(0x00 || data)`` and interior nodes ``SHA-256(0x01 || left || right)`` (domain
separation, so a leaf can never pass for a node); the empty tree's root is ``SHA-256("")``.

Roots are computed streaming with a compact range: the roots of the perfect subtrees that cover
``[0, size)``, at most one per set bit of ``size``, so memory is O(log n). Proofs are lists of subtree
roots over disjoint leaf ranges; `inclusion_ranges` / `consistency_ranges` say which ranges (following the
RFC's recursive definitions) and `subtree_hashes` hashes them in one streaming pass over the leaves.
Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and raises `AuditIntegrityError` on any mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from audit.errors import AuditIntegrityError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """Streaming Merkle accumulator over leaf hashes appended in order; O(log n) memory."""

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        # Roots of perfect subtrees, left to right, strictly decreasing in height.
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash, merging equal-height subtrees (one per trailing 1 bit of size)."""
        node = leaf
        stack = self._stack
        carry = self._size
        while carry & 1:
            node = node_hash(stack.pop(), node)
            carry >>= 1
        stack.append(node)
        self._size += 1

    def root(self) -> bytes:
        """The Merkle tree hash of all leaves so far: the subtree roots folded right to left."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def root_from_leaves(leaves: Iterable[bytes]) -> bytes:
    """The Merkle tree hash of a sequence of leaf hashes, computed streaming."""
    acc = CompactRange()
    for leaf in leaves:
        acc.append(leaf)
    return acc.root()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form the audit path of leaf `index` in a tree of `size`, leaf to
    root order (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append((lo + k, hi))
            hi = lo + k
        else:
            path.append((lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose subtree roots form the consistency proof from `old_size` to `new_size`
    (RFC 9162 §2.1.4.1); empty when old_size is 0 or equals new_size."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[tuple[int, int]] = []
    m, lo, hi, complete = old_size, 0, new_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append((lo + k, hi))
            hi = lo + k
        else:
            proof.append((lo, lo + k))
            m -= k
            lo += k
            complete = False
    if not complete:
        proof.append((lo, hi))
    proof.reverse()
    return proof


def subtree_hashes(leaves: Iterable[bytes], ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """Merkle tree hashes of disjoint leaf ranges, in the order given, from one pass over `leaves`.

    Reads only as many leaves as the last range needs; raises `ValueError` if there are too few.
    """
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    result: list[bytes] = [b""] * len(ranges)
    if not ranges:
        return result
    it = iter(leaves)
    position = 0
    for i in order:
        start, end = ranges[i]
        if start < position or end <= start:
            raise ValueError("ranges must be non-empty and disjoint")
        for _ in range(start - position):
            if next(it, None) is None:
                raise ValueError(f"need {end} leaves, found {position}")
            position += 1
        acc = CompactRange()
        for _ in range(end - start):
            leaf = next(it, None)
            if leaf is None:
                raise ValueError(f"need {end} leaves, found {position}")
            acc.append(leaf)
            position += 1
        result[i] = acc.root()
    return result


def inclusion_proof(leaves: Iterable[bytes], index: int, size: int) -> list[bytes]:
    """The audit path for leaf `index` in the tree formed by the first `size` leaf hashes."""
    return subtree_hashes(leaves, inclusion_ranges(index, size))


def consistency_proof(leaves: Iterable[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between the trees of the first `old_size` and `new_size` leaf hashes."""
    return subtree_hashes(leaves, consistency_ranges(old_size, new_size))


def _check_hash(name: str, value: bytes) -> None:
    if len(value) != HASH_SIZE:
        raise AuditIntegrityError(None, f"{name} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an audit path (RFC 9162 §2.1.3.2); raises if the path has the wrong shape."""
    if not 0 <= index < size:
        raise AuditIntegrityError(index, f"leaf index {index} is outside a tree of size {size}")
    _check_hash("leaf hash", leaf)
    fn, sn, node = index, size - 1, leaf
    for element in proof:
        _check_hash("proof element", element)
        if sn == 0:
            raise AuditIntegrityError(index, "inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = node_hash(element, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditIntegrityError(index, "inclusion proof is shorter than the tree is deep")
    return node


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that `leaf` is at `index` in the tree of `size` leaves with `root`; raise otherwise."""
    _check_hash("root", root)
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise AuditIntegrityError(index, f"inclusion proof for leaf {index} does not lead to the root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (`new_size`, `new_root`) extends (`old_size`, `old_root`); raise otherwise."""
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    for element in proof:
        _check_hash("proof element", element)
    if not 0 <= old_size <= new_size:
        raise AuditIntegrityError(None, f"tree shrank from size {old_size} to {new_size}")
    if old_size == new_size:
        if proof:
            raise AuditIntegrityError(None, "consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise AuditIntegrityError(None, f"two different roots for tree size {old_size}")
        return
    if old_size == 0:
        if proof:
            raise AuditIntegrityError(None, "consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise AuditIntegrityError(None, "consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old tree is a perfect subtree: its root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for element in path[1:]:
        if sn == 0:
            raise AuditIntegrityError(None, "consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(element, fr)
            sr = node_hash(element, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, element)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditIntegrityError(None, "consistency proof is too short")
    if fr != old_root:
        raise AuditIntegrityError(None, f"consistency proof does not reproduce the root at size {old_size}")
    if sr != new_root:
        raise AuditIntegrityError(None, f"consistency proof does not reproduce the root at size {new_size}")
