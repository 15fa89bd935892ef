"""Where the header and each chunk sit inside a ciphertext, computed from the documented layout."""

from __future__ import annotations

from dataclasses import dataclass

TAG = 16
IMMUTABLE_END = 49
"""magic (5) + version (1) + salt (32) + nonce prefix (7) + chunk size (4)."""


@dataclass(frozen=True)
class Layout:
    """Byte offsets of one ciphertext's parts."""

    header_length: int
    kek_id_length: int
    chunks: list[tuple[int, int]]
    """(start, end) of each chunk, in order."""

    @property
    def kek_id_span(self) -> tuple[int, int]:
        """(start, end) of the key id bytes."""
        return IMMUTABLE_END + 2, IMMUTABLE_END + 2 + self.kek_id_length


def layout_of(ciphertext: bytes) -> Layout:
    """Split a well-formed ciphertext into header and chunks, reading only length fields."""
    chunk_size = int.from_bytes(ciphertext[45:49], "big")
    kek_id_length = int.from_bytes(ciphertext[49:51], "big")
    header_length = IMMUTABLE_END + 2 + kek_id_length + 12 + 48
    block = chunk_size + TAG
    chunks = []
    pos = header_length
    while pos < len(ciphertext):
        chunks.append((pos, min(pos + block, len(ciphertext))))
        pos += block
    return Layout(header_length, kek_id_length, chunks)
