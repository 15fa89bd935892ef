"""Step 1 of the gate: read a dataset file with Hugging Face ``datasets`` into an Arrow table.

The file is read in streaming mode (batches; no Arrow cache of the data is written to disk) and only the
declared columns are kept: an undeclared column is never scrubbed, so it must never reach the vault.
The raw file's sha256 is computed in the same pass that checks its text is UTF-8.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import ConfigError, DataValidationError
from governance.gate.spec import DatasetSpec

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 8192
_READ_BLOCK = 1 << 20
_BUILDERS = {"csv": "csv", "jsonl": "json", "parquet": "parquet", "text": "text"}


@dataclass(frozen=True)
class LoadedData:
    """The declared columns of a file as one Arrow table, plus what the card records about the file."""

    table: pa.Table
    raw_sha256: str
    raw_bytes: int
    rows: int
    dropped_columns: tuple[str, ...]
    missing_columns: tuple[str, ...]


def hash_and_check_file(path: Path, *, text: bool) -> tuple[str, int]:
    """sha256 and size of ``path``; for text formats, also refuse bytes that are not UTF-8 (exit 3)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
                if text:
                    try:
                        decoder.decode(block)
                    except UnicodeDecodeError as exc:
                        raise DataValidationError(
                            f"{path}: not UTF-8 text (invalid byte at offset {size + exc.start})",
                            hint="re-encode the file as UTF-8",
                        ) from None
                size += len(block)
            if text:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise DataValidationError(f"{path}: not UTF-8 text (truncated character at the end)") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a data file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    return digest.hexdigest(), size


def load_table(path: Path, spec: DatasetSpec, *, progress: Callable[[int], None] | None = None) -> LoadedData:
    """Read ``path`` as ``spec.format`` and keep the declared columns; parse failures are exit 3."""
    raw_sha256, size = hash_and_check_file(path, text=spec.format != "parquet")
    if size == 0:
        raise DataValidationError(f"{path}: the file is empty")
    import datasets
    import pyarrow as pa

    datasets.disable_progress_bars()
    kwargs: dict[str, object] = {"sample_by": spec.text_sample_by} if spec.format == "text" else {}
    batches: list[pa.Table] = []
    columns_in_file: list[str] = []
    rows = 0
    try:
        stream = datasets.load_dataset(
            _BUILDERS[spec.format], data_files=str(path), split="train", streaming=True, **kwargs
        )
        for batch in stream.with_format("arrow").iter(batch_size=BATCH_ROWS):
            if not columns_in_file:
                columns_in_file = list(batch.column_names)
            keep = [c for c in spec.columns if c in batch.column_names]
            batches.append(batch.select(keep).replace_schema_metadata(None))
            rows += batch.num_rows
            if progress is not None:
                progress(rows)
        table = pa.concat_tables(batches, promote_options="permissive") if batches else None
    except DataValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser failure is a data problem; its text may hold data
        raise DataValidationError(
            f"{path}: cannot be read as {spec.format} ({type(exc).__name__})",
            hint="check the file's format and the spec's 'format' field",
        ) from None
    if table is None or rows == 0:
        raise DataValidationError(f"{path}: no rows")
    missing = tuple(c for c in spec.columns if c not in table.column_names)
    dropped = tuple(c for c in columns_in_file if c not in spec.columns)
    return LoadedData(table, raw_sha256, size, rows, dropped, missing)

