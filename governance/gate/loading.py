"""Step 1 of the gate: read a dataset file with Hugging Face ``datasets`` into an Arrow table.

Before anything is read, :func:`check_input_file` resolves the path and refuses whatever is not a regular file
(a FIFO or a device would block or never end) or is larger than the policy allows. The file is then read in
streaming mode (batches; no Arrow cache of the data is written to disk) and only the declared columns are kept:
an undeclared column is never scrubbed, so it must never reach the vault. The raw file's sha256 is computed in
the same pass that checks its text is UTF-8.

A JSON Lines file is first scanned as raw bytes (:func:`check_json_lines`): a record nested deeper than
`MAX_JSON_DEPTH` or longer than `MAX_JSON_LINE_BYTES` is refused (exit 3, naming the line) before any parser sees
it. The JSON reader under ``datasets`` recurses once per bracket and kills the whole process (SIGSEGV) somewhere
past 100,000 levels, which no ``except`` can catch: no ``command.failed`` entry, staging left behind.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
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
MAX_JSON_DEPTH = 256
"""Deepest bracket nesting a JSON Lines record may have. A table row needs a few levels (a record, a list of tags);
the JSON reader crashes the process somewhere past 100,000, and its recursion costs stack long before that."""
MAX_JSON_LINE_BYTES = 32 * (1 << 20)
"""Longest JSON Lines record (32 MiB): far beyond any row of text, and a bound on what one line holds in memory."""
_JSON_SPECIAL = re.compile(rb'[\[\]{}"\\]')
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


def check_json_lines(path: Path, *, max_depth: int = MAX_JSON_DEPTH,
                     max_line_bytes: int = MAX_JSON_LINE_BYTES) -> None:
    """Refuse (exit 3, naming the 1-based line) a JSON Lines file with a record nested deeper than ``max_depth``
    brackets, outside strings, or longer than ``max_line_bytes``; reads the raw bytes as a stream, parses nothing.

    Cheap for ordinary data: a block whose lines hold at most ``max_depth`` opening brackets in all cannot nest
    deeper, so only blocks with more are split into lines, and only lines with more are scanned character by
    character (skipping strings and their escapes).
    """
    line = 1
    pending = bytearray()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(_READ_BLOCK):
                end = block.rfind(b"\n")
                if end < 0:
                    pending += block
                    _check_line_length(path, line, len(pending), max_line_bytes)
                    continue
                complete = bytes(pending) + block[: end + 1] if pending else block[: end + 1]
                pending = bytearray(block[end + 1 :])
                if len(complete) > max_line_bytes:  # only then can one of its lines be too long
                    for offset, text in enumerate(complete.split(b"\n")):
                        _check_line_length(path, line + offset, len(text), max_line_bytes)
                _check_depths(path, line, complete, max_depth)
                line += complete.count(b"\n")
                _check_line_length(path, line, len(pending), max_line_bytes)
        if pending:
            _check_depths(path, line, bytes(pending), max_depth)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({type(exc).__name__})") from None


def _check_line_length(path: Path, line: int, length: int, limit: int) -> None:
    if length > limit:
        raise DataValidationError(f"{path}: line {line} is longer than {limit:,} bytes; refusing to parse it",
                                  hint="one JSON Lines record per line, each well under the limit")


def _check_depths(path: Path, first_line: int, lines: bytes, limit: int) -> None:
    """Check every line of ``lines`` (numbered from ``first_line``) against the nesting limit."""
    if lines.count(b"[") + lines.count(b"{") <= limit:
        return
    for offset, text in enumerate(lines.split(b"\n")):
        if text.count(b"[") + text.count(b"{") > limit and _nesting_exceeds(text, limit):
            raise DataValidationError(
                f"{path}: line {first_line + offset} nests brackets more than {limit} levels deep; refusing to parse it",
                hint="a table row needs a few levels at most; flatten the record")


def _nesting_exceeds(text: bytes, limit: int) -> bool:
    """Whether JSON text opens more than ``limit`` brackets at once, outside strings (escapes respected)."""
    depth, in_string, skip_to = 0, False, -1
    for match in _JSON_SPECIAL.finditer(text):
        at = match.start()
        if at < skip_to:
            continue  # the character after a backslash inside a string
        char = text[at]
        if in_string:
            if char == 0x5C:
                skip_to = at + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif char in (0x5D, 0x7D):
            depth -= 1
    return False


class BatchReader:
    """The declared columns of a file as Arrow tables of up to ``batch_rows`` rows, read as a stream.

    Iterate it (once per pass; each iteration reads the file again); afterwards ``rows`` is the number read and
    ``columns_in_file`` the columns the file has. Parse failures are exit 3, naming the file, never its content; a
    JSON Lines file is checked by :func:`check_json_lines` before each pass (the file may change between passes).
    """

    def __init__(self, path: Path, spec: DatasetSpec, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path, self.spec, self.batch_rows = path, spec, batch_rows
        self.columns_in_file: list[str] = []
        self.rows = 0

    def __iter__(self) -> Iterator[pa.Table]:
        spec = self.spec
        if spec.format == "jsonl":
            check_json_lines(self.path)
        import datasets

        datasets.disable_progress_bars()
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
