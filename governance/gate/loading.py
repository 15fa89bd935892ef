"""Step 1 of the gate: read a dataset file with Hugging Face ``datasets`` into an Arrow table.

Before anything is read, :func:`check_input_file` resolves the path and refuses whatever is not a regular file
(a FIFO or a device would block or never end) or is larger than the policy allows. The file is then read in
streaming mode (batches; no Arrow cache of the data is written to disk) and only the declared columns are kept:
an undeclared column is never scrubbed, so it must never reach the vault. The raw file's sha256 is computed in
the same pass that checks its text is UTF-8.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import ConfigError, DataValidationError, PolicyRefusal
from governance.gate.spec import DatasetSpec

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 8192
_READ_BLOCK = 1 << 20
_BUILDERS = {"csv": "csv", "jsonl": "json", "parquet": "parquet", "text": "text"}
MIB = 1 << 20
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class LoadedData:
    """The declared columns of a file as one Arrow table, plus what the card records about the file."""

    table: pa.Table
    raw_sha256: str
    raw_bytes: int
    rows: int
    dropped_columns: tuple[str, ...]
    missing_columns: tuple[str, ...]


def check_input_file(path: Path, *, max_mib: int) -> Path:
    """The resolved ``path`` if it is a regular file of at most ``max_mib`` MiB; reads nothing.

    Symlinks are followed first, so a link to ``/dev/zero`` is judged as the device it is. Anything but a
    regular file is a :class:`ConfigError` (exit 2); a file over the cap is a :class:`PolicyRefusal` (exit 4).
    """
    try:
        resolved = path.resolve(strict=True)
        info = resolved.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise ConfigError(f"{path}: cannot be opened ({type(exc).__name__})") from None
    _check_regular(path, resolved, info.st_mode)
    _check_size(path, info.st_size, max_mib)
    return resolved


def _check_regular(path: Path, resolved: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    target = f" ({resolved})" if resolved != path.absolute() else ""
    raise ConfigError(f"{path}: is {kind}{target}, not a regular file",
                      hint="data ingest reads regular files only; save the data to a file first")


def _check_size(path: Path, size: int, max_mib: int) -> None:
    if size > max_mib * MIB:
        raise PolicyRefusal(f"{path}: {size:,} bytes exceeds the policy's validation.max_input_mib "
                            f"({max_mib:,} MiB = {max_mib * MIB:,} bytes)",
                            hint="split the file, or use a policy with a larger max_input_mib")


def hash_and_check_file(path: Path, *, text: bool, max_mib: int | None = None) -> tuple[str, int]:
    """sha256 and size of ``path``; for text formats, also refuse bytes that are not UTF-8 (exit 3).

    The open file is checked again (regular, within ``max_mib``) and reading stops past the cap, so a file
    swapped or grown after :func:`check_input_file` cannot make the read block or run forever.
    """
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    try:
        # O_NONBLOCK: opening a FIFO swapped in after the check must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            _check_regular(path, path, info.st_mode)
            if max_mib is not None:
                _check_size(path, info.st_size, max_mib)
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
                if max_mib is not None:
                    _check_size(path, size + len(block), max_mib)
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


class BatchReader:
    """The declared columns of a file as Arrow tables of up to ``batch_rows`` rows, read as a stream.

    Iterate it (once per pass; each iteration reads the file again); afterwards ``rows`` is the number read and
    ``columns_in_file`` the columns the file has. Parse failures are exit 3, naming the file, never its content.
    """

    def __init__(self, path: Path, spec: DatasetSpec, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path, self.spec, self.batch_rows = path, spec, batch_rows
        self.columns_in_file: list[str] = []
        self.rows = 0

    def __iter__(self) -> Iterator[pa.Table]:
        import datasets

        datasets.disable_progress_bars()
        spec = self.spec
        kwargs: dict[str, object] = {"sample_by": spec.text_sample_by} if spec.format == "text" else {}
        self.rows = 0
        try:
            stream = datasets.load_dataset(
                _BUILDERS[spec.format], data_files=str(self.path), split="train", streaming=True, **kwargs
            )
            batches = stream.with_format("arrow").iter(batch_size=self.batch_rows)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                if not self.columns_in_file:
                    self.columns_in_file = list(batch.column_names)
                keep = [c for c in spec.columns if c in batch.column_names]
                self.rows += batch.num_rows
                yield batch.select(keep).replace_schema_metadata(None)
        except (DataValidationError, GeneratorExit):
            raise
        except Exception as exc:
            raise DataValidationError(
                f"{self.path}: cannot be read as {spec.format} ({type(exc).__name__})",
                hint="check the file's format and the spec's 'format' field",
            ) from None

    @property
    def dropped_columns(self) -> tuple[str, ...]:
        """Columns of the file that the spec does not declare (never scrubbed, so never stored)."""
        return tuple(c for c in self.columns_in_file if c not in self.spec.columns)


def load_table(
    path: Path, spec: DatasetSpec, *, max_mib: int | None = None, progress: Callable[[int], None] | None = None
) -> LoadedData:
    """Read ``path`` as ``spec.format`` and keep the declared columns; parse failures are exit 3.

    ``max_mib`` caps the bytes read (exit 4 past it); pass the resolved path from :func:`check_input_file`.
    The whole table is held in memory: the gate itself streams (:class:`BatchReader`); this is for small data.
    """
    raw_sha256, size = hash_and_check_file(path, text=spec.format != "parquet", max_mib=max_mib)
    if size == 0:
        raise DataValidationError(f"{path}: the file is empty")
    import pyarrow as pa

    reader = BatchReader(path, spec)
    batches: list[pa.Table] = []
    for batch in reader:
        batches.append(batch)
        if progress is not None:
            progress(reader.rows)
    if not batches or reader.rows == 0:
        raise DataValidationError(f"{path}: no rows")
    try:
        table = pa.concat_tables(batches, promote_options="permissive")
    except Exception as exc:
        raise DataValidationError(f"{path}: cannot be read as {spec.format} ({type(exc).__name__})") from None
    missing = tuple(c for c in spec.columns if c not in table.column_names)
    return LoadedData(table, raw_sha256, size, reader.rows, reader.dropped_columns, missing)
