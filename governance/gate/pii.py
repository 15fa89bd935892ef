"""PII scrubbing of a table's text columns (the gate's step 3), and the residual check that follows it.

``scrub_text_columns`` anonymizes the declared text columns with the policy's operators, re-scans what it
rewrote with the same detector, looks at every scrubbed text again with an independent detector (no NER model),
and returns the new table with counts per entity type (:class:`PiiStats`) for the dataset card.
``check_residual`` then refuses (exit 4) when the same-detector re-scan still finds more than the policy
tolerates, or the independent re-scan more than :mod:`governance.gate.pii_second_look` allows (a rate, measured
on clean scrubbed text: its name lists are built for recall, so a few findings on ordinary text are expected);
both counts go to the card.
Texts and values stay in memory: they are never logged, written to disk, put in stats or in error messages.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from governance.errors import ConfigError, DataValidationError, PolicyRefusal, UnexpectedError
from governance.gate.pii_engine import EngineInfo, PiiEngine, load_pii_engine
from governance.gate.pii_scan import ScanOutcome, TextScanFailure, scrub_and_rescan, scrub_texts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import pyarrow as pa

    from policies.model import PiiRules

__all__ = [
    "EngineInfo", "PiiEngine", "PiiStats", "ScrubResult", "check_residual", "combine_stats", "load_pii_engine",
    "scrub_text_columns", "scrub_texts",
]

CHUNK_ROWS = 256
"""Most rows one unit of work holds: the grain of progress reports and of work handed to a process."""
_CHUNKS_PER_WORKER = 4  # smaller chunks when there are few rows, so every worker gets some


@dataclass(frozen=True)
class PiiStats:
    """What the scrub found and did, per entity type: counts only, never values. Goes on the dataset card."""

    texts_scanned: int
    """Non-null values analysed, over all scrubbed columns."""
    findings: Mapping[str, int]
    """Spans anonymized per entity type (every policy entity listed, zeros included)."""
    findings_by_column: Mapping[str, Mapping[str, int]]
    rows_changed: Mapping[str, int]
    """Rows whose value the scrub rewrote, per column."""
    residual: Mapping[str, int]
    """Findings the re-scan of the scrubbed text with the same detector still reports, per entity type."""
    independent_residual: Mapping[str, int]
    """Findings the independent detector (no NER model) reports in the scrubbed text, per entity type."""
    score_threshold: float
    engine: EngineInfo
    """Recognizers, NER model and version, presidio version, operators."""

    @property
    def residual_total(self) -> int:
        """All residual findings together: what ``check_residual`` compares with the tolerance."""
        return sum(self.residual.values())

    @property
    def independent_residual_total(self) -> int:
        """All findings of the independent re-scan together."""
        return sum(self.independent_residual.values())

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form for the card."""
        return {
            "texts_scanned": self.texts_scanned,
            "findings": dict(self.findings),
            "findings_by_column": {column: dict(counts) for column, counts in self.findings_by_column.items()},
            "rows_changed": dict(self.rows_changed),
            "residual": dict(self.residual),
            "residual_total": self.residual_total,
            "independent_residual": dict(self.independent_residual),
            "independent_residual_total": self.independent_residual_total,
            "score_threshold": self.score_threshold,
            **self.engine.to_dict(),
        }


@dataclass(frozen=True)
class ScrubResult:
    """The scrubbed table and what the scrub did."""

    table: pa.Table
    stats: PiiStats


@dataclass(frozen=True)
class _Chunk:
    """Up to ``CHUNK_ROWS`` consecutive rows of one column: the non-null texts and the rows they sit on."""

    column: str
    row_count: int
    rows: tuple[int, ...]
    texts: list[str]


def scrub_text_columns(
    table: pa.Table,
    columns: Sequence[str],
    rules: PiiRules,
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    engine: PiiEngine | None = None,
) -> ScrubResult:
    """Scrub ``columns`` of ``table`` by the policy's PII rules; other columns and nulls are left as they are.

    ``workers`` > 1 spreads chunks of rows over that many processes (spawned, each building its engine once;
    they share this engine's hash salt, so the output does not depend on ``workers``). ``progress`` is called
    with the number of rows each finished chunk covered (the total is rows x columns). Pass ``engine`` to reuse
    one already loaded for the same rules. Refuses (exit 4) if the NER model cannot be loaded.
    """
    _check_columns(table, columns)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    if engine is None:
        engine = load_pii_engine(rules)
    elif engine.rules != rules:
        raise ConfigError("the PII engine given was built for other PII rules than the policy's")

    values = {column: table.column(column).to_pylist() for column in columns}
    pieces = workers * _CHUNKS_PER_WORKER if workers > 1 else 1
    chunk_rows = max(1, min(CHUNK_ROWS, -(-table.num_rows // pieces)))
    chunks = list(_chunks(values, chunk_rows))
    outcomes = _scan(chunks, engine, workers, progress)

    by_column: dict[str, Counter[str]] = {column: Counter() for column in columns}
    rows_changed: Counter[str] = Counter(dict.fromkeys(columns, 0))
    residual: Counter[str] = Counter()
    independent: Counter[str] = Counter()
    for chunk, outcome in zip(chunks, outcomes):
        column_values = values[chunk.column]  # the chunks hold their own lists, so this can change in place
        for row, before, after in zip(chunk.rows, chunk.texts, outcome.scrubbed):
            if after != before:
                column_values[row] = after
                rows_changed[chunk.column] += 1
        by_column[chunk.column].update(outcome.findings)
        residual.update(outcome.residual)
        independent.update(outcome.independent_residual)

    import pyarrow as pa

    scrubbed = table
    for column in columns:
        index = scrubbed.schema.get_field_index(column)
        field = scrubbed.schema.field(index)
        scrubbed = scrubbed.set_column(index, field, pa.array(values[column], type=field.type))

    entities = list(rules.entities)
    stats = PiiStats(
        texts_scanned=sum(len(chunk.texts) for chunk in chunks),
        findings=_per_entity(sum(by_column.values(), Counter()), entities),
        findings_by_column={column: _per_entity(counts, entities) for column, counts in by_column.items()},
        rows_changed=dict(rows_changed),
        residual=_per_entity(residual, entities),
        independent_residual=_per_entity(independent, entities),
        score_threshold=rules.score_threshold,
        engine=engine.info,
    )
    return ScrubResult(table=scrubbed, stats=stats)


def combine_stats(first: PiiStats, second: PiiStats, rules: PiiRules) -> PiiStats:
    """The stats of two scrubs of different rows under the same rules, as one (every count added)."""
    if first.engine != second.engine:
        raise ConfigError("cannot combine the PII statistics of two different detector configurations")
    entities = list(rules.entities)

    def add(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
        return _per_entity(Counter(a) + Counter(b) + Counter(dict.fromkeys([*a, *b], 0)), entities)

    columns = [*first.findings_by_column, *(c for c in second.findings_by_column if c not in first.findings_by_column)]
    return PiiStats(
        texts_scanned=first.texts_scanned + second.texts_scanned,
        findings=add(first.findings, second.findings),
        findings_by_column={c: add(first.findings_by_column.get(c, {}), second.findings_by_column.get(c, {}))
                            for c in columns},
        rows_changed={c: first.rows_changed.get(c, 0) + second.rows_changed.get(c, 0) for c in columns},
        residual=add(first.residual, second.residual),
        independent_residual=add(first.independent_residual, second.independent_residual),
        score_threshold=rules.score_threshold,
        engine=first.engine,
    )


def check_residual(stats: PiiStats, rules: PiiRules) -> None:
    """Refuse (exit 4) when the same-detector re-scan found more PII than ``rules.residual_tolerance`` allows, or
    the independent re-scan more than the second look's rate allows."""
    from governance.gate.pii_second_look import check_second_look

    if stats.residual_total <= rules.residual_tolerance:
        check_second_look(stats.independent_residual, stats.texts_scanned, rules)
        return
    counts = ", ".join(f"{entity} {count}" for entity, count in sorted(stats.residual.items()) if count)
    raise PolicyRefusal(
        f"{stats.residual_total} PII findings remain after scrubbing ({counts}); "
        f"the policy tolerates {rules.residual_tolerance}",
        hint="use stronger operators (replace, redact, hash) for those entity types, or review the data",
    )


def _check_columns(table: pa.Table, columns: Sequence[str]) -> None:
    import pyarrow as pa

    if not columns:
        raise ConfigError("no text columns to scrub for PII")
    if len(set(columns)) != len(columns):
        raise ConfigError("a text column is named twice for PII scrubbing")
    for column in columns:
        if column not in table.column_names:
            raise ConfigError(f"text column '{column}' is not in the data (columns: {', '.join(table.column_names)})")
        kind = table.schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
            raise DataValidationError(f"text column '{column}' holds {kind}, not text")


def _chunks(values: Mapping[str, list[str | None]], chunk_rows: int) -> Iterator[_Chunk]:
    """Cut each column's values into chunks of ``chunk_rows`` rows, columns in order."""
    for column, column_values in values.items():
        for first in range(0, len(column_values), chunk_rows):
            block = column_values[first : first + chunk_rows]
            rows = tuple(first + offset for offset, value in enumerate(block) if value is not None)
            texts = [value for value in block if value is not None]
            yield _Chunk(column=column, row_count=len(block), rows=rows, texts=texts)


def _scan(
    chunks: list[_Chunk], engine: PiiEngine, workers: int, progress: Callable[[int], None] | None
) -> list[ScanOutcome]:
    """Scrub and re-scan every chunk, in this process or in ``workers`` spawned ones; results in chunk order."""
    if workers == 1 or len(chunks) <= 1:
        outcomes = []
        for chunk in chunks:
            outcomes.append(_translated(chunk, partial(scrub_and_rescan, chunk.texts, engine)))
            if progress is not None:
                progress(chunk.row_count)
        return outcomes

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    results: dict[int, ScanOutcome] = {}
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(engine.rules, engine.hash_salt, engine.runs_transformers),
    )
    try:
        futures = {pool.submit(_scan_in_worker, chunk.texts): position for position, chunk in enumerate(chunks)}
        for future in as_completed(futures):
            chunk = chunks[futures[future]]
            results[futures[future]] = _translated(chunk, future.result)
            if progress is not None:
                progress(chunk.row_count)
    except BrokenProcessPool:
        raise UnexpectedError(
            "a PII scrubbing worker process died", hint="retry with workers: 1 to see the failing step"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [results[position] for position in range(len(chunks))]


def _translated(chunk: _Chunk, scan: Callable[[], ScanOutcome]) -> ScanOutcome:
    """Run ``scan``; a failure on one text becomes a govtrain error naming its column and row, not its text."""
    try:
        return scan()
    except TextScanFailure as failure:
        raise UnexpectedError(
            f"PII scrubbing failed on column '{chunk.column}', row {chunk.rows[failure.index]} ({failure.cause})",
            hint="the text is not shown, as it may hold PII; inspect that row of the input",
        ) from None


def _per_entity(counts: Counter[str], entities: list[str]) -> dict[str, int]:
    """Counts for every policy entity (zeros included), then any other type seen, in a stable order."""
    return {entity: counts.get(entity, 0) for entity in [*entities, *sorted(set(counts) - set(entities))]}


_worker_engine: PiiEngine | None = None


def _start_worker(rules: PiiRules, hash_salt: bytes, runs_transformers: bool) -> None:
    """Process-pool initializer: build this worker's engine once, with the parent's salt."""
    global _worker_engine
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        # one process per core is the parallelism; BLAS threads on top only oversubscribe the cores
        os.environ.setdefault(name, "1")
    if not runs_transformers:
        # presidio imports transformers at import time for an NLP engine this worker never uses; blocking it in
        # this private, freshly spawned process halves the worker's start-up (measured: 15 s -> 8 s).
        sys.modules.setdefault("transformers", None)  # type: ignore[arg-type]
    _worker_engine = load_pii_engine(rules, hash_salt=hash_salt)


def _scan_in_worker(texts: list[str]) -> ScanOutcome:
    if _worker_engine is None:  # pragma: no cover - the initializer always runs first
        raise UnexpectedError("PII worker used before its engine was built")
    return scrub_and_rescan(texts, _worker_engine)
