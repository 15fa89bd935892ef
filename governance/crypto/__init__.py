"""Encryption at rest: the master key, the streaming envelope format, encrypted files and key rotation.

Everything a caller needs is re-exported here; see :mod:`governance.crypto.header` for the byte layout.
"""

from __future__ import annotations

from governance.crypto.errors import DecryptionError, DecryptionFailure
from governance.crypto.files import (
    PlaintextWriter,
    encrypted_file_writer,
    open_decrypted,
    read_encrypted_file,
    sealed_sha256,
    sha256_file,
    write_encrypted_file,
)
from governance.crypto.header import StreamHeader, read_header
from governance.crypto.keys import (
    ENV_VAR,
    KeySourceStatus,
    MasterKey,
    describe_key_source,
    encode_master_key,
    generate_master_key,
    load_master_key,
    master_key_id,
    write_master_key,
)
from governance.crypto.rotation import file_kek_id, rewrap_file, rewrap_tree
from governance.crypto.stream import (
    DEFAULT_CHUNK_SIZE,
    EncryptingWriter,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    iter_decrypted_chunks,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ENV_VAR",
    "DecryptionError",
    "DecryptionFailure",
    "EncryptingWriter",
    "KeySourceStatus",
    "MasterKey",
    "PlaintextWriter",
    "StreamHeader",
    "decrypt_bytes",
    "decrypt_stream",
    "describe_key_source",
    "encode_master_key",
    "encrypt_bytes",
    "encrypt_stream",
    "encrypted_file_writer",
    "file_kek_id",
    "generate_master_key",
    "iter_decrypted_chunks",
    "load_master_key",
    "master_key_id",
    "open_decrypted",
    "read_encrypted_file",
    "read_header",
    "rewrap_file",
    "rewrap_tree",
    "sealed_sha256",
    "sha256_file",
    "write_encrypted_file",
    "write_master_key",
]
