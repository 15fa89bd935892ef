"""The one error a failed decryption raises, and the closed set of reasons it can give.

Every way an encrypted file can fail to open (a foreign file, a wrong master key, a cut or extended file, an
altered chunk) is an integrity violation (exit 5). The ``reason`` lets callers and tests tell them apart
without parsing the message; the message names the file and says the same thing in words.
"""

from __future__ import annotations

from typing import Literal

from governance.errors import IntegrityError

DecryptionFailure = Literal[
    "not-encrypted",
    "unsupported-version",
    "truncated",
    "header-corrupt",
    "wrong-key",
    "header-altered",
    "chunk-altered",
    "trailing-data",
]
"""Why a file did not decrypt.

- ``not-encrypted``: the file does not start with the govtrain magic.
- ``unsupported-version``: a govtrain file in a format version this code does not read.
- ``truncated``: the file ends inside the header or before its final chunk.
- ``header-corrupt``: a header field is out of range (chunk size, key id length or encoding).
- ``wrong-key``: the file names a different master key than the one loaded.
- ``header-altered``: the data key does not unwrap: the key is wrong or the header was changed.
- ``chunk-altered``: a chunk failed authentication (for the last chunk read, a cut or an extension inside
  it looks the same).
- ``trailing-data``: bytes follow a valid final chunk.
"""


class DecryptionError(IntegrityError):
    """An encrypted file could not be decrypted; nothing it yielded before this may be trusted."""

    def __init__(
        self,
        name: str,
        reason: DecryptionFailure,
        detail: str,
        *,
        chunk_index: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{name}: {detail}", hint=hint)
        self.name = name
        self.reason: DecryptionFailure = reason
        self.chunk_index = chunk_index

    def to_json(self) -> dict[str, object]:
        """The base form plus the failure reason and, where known, the chunk index."""
        return {
            "ok": False,
            "error": {
                "kind": self.kind,
                "reason": self.reason,
                "chunk_index": self.chunk_index,
                "message": self.message,
                "hint": self.hint,
                "exit_code": self.exit_code,
            },
        }
