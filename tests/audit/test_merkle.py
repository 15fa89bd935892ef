"""RFC 6962 Merkle hashing and proofs against published test vectors and an independent reference.

The vectors are copied from transparency-dev/merkle (Apache-2.0), the successor of Google's
certificate-transparency-go merkle code:
  * leaves and roots per tree size: testonly/constants.go (LeafInputs, RootHashes, NodeHashes)
  * inclusion proofs: testonly/reference_test.go (TestRefInclusionProof) and proof/verify_test.go
  * consistency proofs: testonly/reference_test.go (TestRefConsistencyProof) and proof/verify_test.go
The mutated-proof probes mirror corruptInclusionProof / corruptConsistencyProof in proof/verify_test.go.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.errors import AuditIntegrityError
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)
from tests.audit.helpers import reference_root

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
# RootHashes(): index = tree size.
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
# NodeHashes()[0]: the leaf hashes.
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]
]


def h(hexes: str) -> list[bytes]:
    """Space-separated hex hashes -> list of bytes."""
    return [bytes.fromhex(x) for x in hexes.split()]


# (0-based leaf index, tree size, audit path)
INCLUSION_VECTORS = [
    (0, 1, []),
    (0, 2, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")),
    (1, 2, h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")),
    (2, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d "
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
        ),
    ),
    (
        0,
        8,
        h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7 "
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
        ),
    ),
    (
        5,
        8,
        h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b "
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0 "
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
        ),
    ),
    (2, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d "
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
        ),
    ),
]

# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7 "
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
        ),
    ),
    (
        6,
        8,
        h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a "
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0 "
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
        ),
    ),
    (
        2,
        5,
        h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e "
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
        ),
    ),
    (
        6,
        7,
        h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a "
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f "
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_leaf_hashes_match_vectors() -> None:
    assert [leaf_hash(x) for x in LEAF_INPUTS] == LEAF_HASHES


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == ROOTS[0] == root_from_leaves([])


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_per_tree_size_match_vectors(size: int) -> None:
    assert root_from_leaves(LEAF_HASHES[:size]) == ROOTS[size]


def test_compact_range_gives_every_intermediate_root() -> None:
    acc = CompactRange()
    assert acc.root() == ROOTS[0]
    for size, leaf in enumerate(LEAF_HASHES, start=1):
        acc.append(leaf)
        assert (acc.size, acc.root()) == (size, ROOTS[size])


def test_node_hash_is_domain_separated_from_leaf_hash() -> None:
    left, right = LEAF_HASHES[0], LEAF_HASHES[1]
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != leaf_hash(left + right)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_vectors(index: int, size: int, path: list[bytes]) -> None:
    assert inclusion_proof(LEAF_HASHES, index, size) == path
    verify_inclusion(LEAF_HASHES[index], index, size, path, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_vectors(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(LEAF_HASHES, old, new) == proof
    verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


def inclusion_mutations(index: int, size: int, path: list[bytes], root: bytes, leaf: bytes) -> list[tuple]:
    """corruptInclusionProof from transparency-dev/merkle proof/verify_test.go."""
    probes: list[tuple] = [
        (index - 1, size, path, root, leaf),
        (index + 1, size, path, root, leaf),
        (index ^ 2, size, path, root, leaf),
        (index, size * 2, path, root, leaf),
        (index, size // 2, path, root, leaf),
        (index, size, path, root, leaf_hash(b"WrongLeaf")),
        (index, size, path, EMPTY_ROOT, leaf),
        (index, size, path, SOME_HASH, leaf),
        (index, size, [*path, b""], root, leaf),
        (index, size, [*path, root], root, leaf),
        (index, size, [b"", *path], root, leaf),
        (index, size, [root, *path], root, leaf),
    ]
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((index, size, flipped, root, leaf))
    if path:
        probes.append((index, size, path[:-1], root, leaf))
    if len(path) > 1:
        probes.append((index, size, [path[0], SOME_HASH, *path[1:]], root, leaf))
    return probes


@pytest.mark.parametrize(("index", "size", "path"), [v for v in INCLUSION_VECTORS if v[1] > 1])
def test_mutated_inclusion_proofs_are_rejected(index: int, size: int, path: list[bytes]) -> None:
    for probe in inclusion_mutations(index, size, path, ROOTS[size], LEAF_HASHES[index]):
        p_index, p_size, p_path, p_root, p_leaf = probe
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(p_leaf, p_index, p_size, p_path, p_root)


def test_single_leaf_tree_has_empty_proof_and_checks_the_leaf() -> None:
    leaf = leaf_hash(b"data")
    verify_inclusion(leaf, 0, 1, [], leaf)
    for bad_leaf, bad_root in [(leaf, b""), (b"", leaf), (SOME_HASH, leaf)]:
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(bad_leaf, 0, 1, [], bad_root)
    for index, size in [(0, 0), (1, 0), (1, 1), (2, 1)]:
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)


def consistency_mutations(old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]) -> list[tuple]:
    """corruptConsistencyProof from transparency-dev/merkle proof/verify_test.go."""
    probes: list[tuple] = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, leaf_hash(b"WrongRoot"), r2, proof),
        (old, new, r1, leaf_hash(b"WrongRoot"), proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes.append((old, new, r1, r2, flipped))
    return probes


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_mutated_consistency_proofs_are_rejected(old: int, new: int, proof: list[bytes]) -> None:
    for probe in consistency_mutations(old, new, ROOTS[old], ROOTS[new], proof):
        p_old, p_new, p_r1, p_r2, p_proof = probe
        with pytest.raises(AuditIntegrityError):
            verify_consistency(p_old, p_new, p_r1, p_r2, p_proof)


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, ROOTS[5], [])
    verify_consistency(3, 3, ROOTS[3], ROOTS[3], [])
    for old, new, r1, r2, proof in [
        (3, 3, ROOTS[3], ROOTS[4], []),  # equal sizes, different roots
        (4, 3, ROOTS[4], ROOTS[3], []),  # the tree shrank
        (1, 2, ROOTS[1], ROOTS[2], []),  # non-trivial proof missing
        (0, 1, EMPTY_ROOT, ROOTS[1], [EMPTY_ROOT]),  # proof from empty must be empty
        (1, 1, ROOTS[1], ROOTS[1], [EMPTY_ROOT]),  # proof between equal sizes must be empty
    ]:
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old, new, r1, r2, proof)


# --- properties against an independent recursive implementation of RFC 9162 §2.1 ------------------------


def ref_path(leaves: list[bytes], m: int) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return ref_path(leaves[:k], m) + [reference_root(leaves[k:])]
    return ref_path(leaves[k:], m - k) + [reference_root(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [reference_root(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, leaves[:k], complete) + [reference_root(leaves[k:])]
    return ref_subproof(m - k, leaves[k:], False) + [reference_root(leaves[:k])]


def make_leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_inclusion_proofs_verify_for_random_sizes(size: int, data: st.DataObject) -> None:
    leaves = make_leaves(size)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    root = root_from_leaves(leaves)
    assert root == reference_root(leaves)
    path = inclusion_proof(leaves, index, size)
    assert path == ref_path(leaves, index)
    verify_inclusion(leaves[index], index, size, path, root)
    assert root_from_inclusion_proof(leaves[index], index, size, path) == root
    other = (index + 1) % size
    if other != index:
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(leaves[other], index, size, path, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_consistency_proofs_verify_for_random_sizes(new: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(min_value=0, max_value=new))
    leaves = make_leaves(new)
    proof = consistency_proof(leaves, old, new)
    if 0 < old < new:
        assert proof == ref_subproof(old, leaves, True)
    old_root, new_root = root_from_leaves(leaves[:old]), root_from_leaves(leaves)
    verify_consistency(old, new, old_root, new_root, proof)
    if 0 < old < new:
        forged = root_from_leaves([*leaves[: old - 1], leaf_hash(b"forged")])
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old, new, forged, new_root, proof)
