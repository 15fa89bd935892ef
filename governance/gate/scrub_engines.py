"""Where the PII scrub runs: in this process, or on Ray Data (a local Ray the command starts, or a cluster).

Both engines take the record batches of the input in order and give back, in the same order, each stretch of raw
rows with its scrubbed rows and PII counts. The output does not depend on the engine or on the number of workers:
every worker builds its engine with the driver's hash salt (the ``hash`` operator's output is the same everywhere),
and the driver reassembles the results in input order.

**What Ray workers are trusted with.** Workers see raw text (they scrub it) and hand back scrubbed text and
counts; they never see the master key, and nothing they return is written anywhere but through the driver, which
alone encrypts shards, writes the manifest and appends to the audit log. So a Ray cluster must be trusted with the
raw data in memory (as a worker process of the command is), and not with the vault: a compromised worker can
leak or mis-scrub the rows it was given, but cannot read other datasets, forge shards or sign anything. The raw
batches travel through Ray's object store (shared memory), which Ray may spill to its local temporary folder when
full; the driver hands over one window (:data:`RAY_WINDOW_ROWS` rows) at a time so that this stays small.
Workers need govtrain and the spaCy model installed (on a cluster: in every node's environment).

**Choosing.** ``engine="auto"`` (the default) scrubs in this process unless ``workers`` > 1 and the input has at
least :data:`RAY_MIN_ROWS` rows, then starts a local Ray with ``workers`` CPUs and stops it at the end. Starting
Ray and loading one engine per worker costs seconds that only pay off on enough rows (the crossover is measured in
``benchmarks/bench_scale.py``). ``ray_address`` (or ``RAY_ADDRESS``) uses an existing cluster instead.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from governance.errors import ConfigError, UnexpectedError
from governance.gate.pii import PiiEngine, ScrubResult, combine_stats, load_pii_engine, scrub_text_columns

if TYPE_CHECKING:
    import pyarrow as pa

    from policies.model import PiiRules

EngineChoice = Literal["auto", "local", "ray"]
RAY_MIN_ROWS = 10_000
"""Below this many rows ``auto`` scrubs in process even with several workers: a local Ray with two workers overtook the
in-process scrub at about 6,800 rows on two shared cores (fit over 2k, 8k and 20k real rows; ``benchmarks/results/
scale.json``), rounded up."""
RAY_WINDOW_ROWS = 50_000
"""Rows handed to the Ray actor pool at a time (one Ray Data dataset, one engine load per actor, per window)."""
_STATS_COLUMN = "__govtrain_scrub_stats__"
_MIN_BLOCK_ROWS = 64


@dataclass(frozen=True)
class ScrubbedStretch:
    """Consecutive input rows: as read, as scrubbed, and what the scrub counted."""

    raw: pa.Table
    scrubbed: ScrubResult


class ScrubEngine(Protocol):
    """Scrubs a stream of batches; yields results in input order."""

    name: str
    workers: int

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:
        """Scrub every batch, yielding stretches in input order."""
        ...

    def close(self) -> None:
        """Release what the engine holds (a local Ray is stopped)."""
        ...


class InProcessScrub:
    """The scrub in this process, batch by batch, with the engine the driver loaded."""

    name = "in-process"
    workers = 1

    def __init__(self, engine: PiiEngine, columns: Sequence[str], progress: Callable[[int], None] | None) -> None:
        self.engine, self.columns, self.progress = engine, list(columns), progress

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:
        for batch in batches:
            result = scrub_text_columns(batch, self.columns, self.engine.rules, engine=self.engine,
                                        progress=self.progress)
            yield ScrubbedStretch(batch, result)

    def close(self) -> None:
        return None


class _ScrubActor:
    """A Ray Data actor: builds the PII engine once (with the driver's salt) and scrubs the blocks it is given."""

    def __init__(self, rules: PiiRules, hash_salt: bytes, columns: list[str]) -> None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")
        self.engine = load_pii_engine(rules, hash_salt=hash_salt)
        self.columns = columns

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        result = scrub_text_columns(batch, self.columns, self.engine.rules, engine=self.engine)
        stats = [pickle.dumps(result.stats)] + [None] * (result.table.num_rows - 1)
        return result.table.append_column(_STATS_COLUMN, pa.array(stats, type=pa.binary()))


class RayScrub:
    """The scrub on Ray Data: an actor pool of ``workers`` actors, ``map_batches`` over windows of batches."""

    name = "ray"

    def __init__(self, engine: PiiEngine, columns: Sequence[str], workers: int, *, address: str | None,
                 progress: Callable[[int], None] | None, window_rows: int = RAY_WINDOW_ROWS) -> None:
        import ray

        self.engine, self.columns, self.workers, self.progress = engine, list(columns), workers, progress
        self.window_rows = window_rows
        self.address = address
        self._started = False
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
                self._started = True
        except Exception as exc:  # connection refused, a bad address: name the address, not a stack trace
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise ConfigError(f"cannot start or reach {where} ({type(exc).__name__})",
                              hint="check --ray-address / RAY_ADDRESS, or scrub in process with --engine local") \
                from None
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False

    def scrub(self, batches: Iterable[pa.Table]) -> Iterator[ScrubbedStretch]:

        window: list[pa.Table] = []
        rows = 0
        for batch in batches:
            window.append(batch)
            rows += batch.num_rows
            if rows >= self.window_rows:
                yield self._scrub_window(window)
                window, rows = [], 0
        if window:
            yield self._scrub_window(window)

    def _scrub_window(self, window: list[pa.Table]) -> ScrubbedStretch:
        import pyarrow as pa
        import ray

        raw = pa.concat_tables(window, promote_options="permissive")
        # About four blocks per worker, so every actor has work and a slow block does not hold up the window.
        size = max(_MIN_BLOCK_ROWS, -(-raw.num_rows // (self.workers * 4)))
        blocks = [raw.slice(first, size) for first in range(0, raw.num_rows, size)]
        try:
            dataset = ray.data.from_arrow(blocks).map_batches(
                _ScrubActor, batch_size=None, batch_format="pyarrow", zero_copy_batch=True,
                fn_constructor_kwargs={"rules": self.engine.rules, "hash_salt": self.engine.hash_salt,
                                       "columns": self.columns},
                compute=ray.data.ActorPoolStrategy(size=self.workers), num_cpus=1)
            out = pa.concat_tables([ray.get(ref) for ref in dataset.to_arrow_refs()], promote_options="permissive")
        except Exception as exc:  # a worker's error may quote text: its type only
            raise UnexpectedError(f"the PII scrub failed on Ray ({type(exc).__name__})",
                                  hint="retry with --engine local to see the failing row") from None
        if out.num_rows != raw.num_rows:
            raise UnexpectedError("the Ray scrub returned a different number of rows than it was given")
        parts: list[Any] = [pickle.loads(v) for v in out.column(_STATS_COLUMN).to_pylist() if v is not None]
        if len(parts) != len(blocks):
            raise UnexpectedError("the Ray scrub lost the statistics of a batch")
        stats = parts[0]
        for part in parts[1:]:
            stats = combine_stats(stats, part, self.engine.rules)
        scrubbed = out.drop_columns([_STATS_COLUMN])
        if self.progress is not None:
            self.progress(raw.num_rows * len(self.columns))
        return ScrubbedStretch(raw, ScrubResult(table=scrubbed, stats=stats))

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def choose_engine(choice: EngineChoice, workers: int, rows: int, address: str | None) -> Literal["local", "ray"]:
    """Which engine runs: as asked, or for ``auto`` by the measured crossover (see the module docstring)."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    if choice == "local":  # wins over an address (RAY_ADDRESS may be set for other work on a cluster node)
        if workers > 1:
            raise ConfigError(f"--engine local scrubs in this one process; {workers} workers need --engine ray "
                              "(or auto)")
        return "local"
    if address or choice == "ray":
        return "ray"
    return "ray" if workers > 1 and rows >= RAY_MIN_ROWS else "local"


def open_scrub_engine(kind: Literal["local", "ray"], engine: PiiEngine, columns: Sequence[str], workers: int,
                      address: str | None, progress: Callable[[int], None] | None) -> ScrubEngine:
    """Start the chosen engine (a local Ray is started here and stopped by ``close``)."""
    if kind == "local":
        return InProcessScrub(engine, columns, progress)
    return RayScrub(engine, columns, workers, address=address, progress=progress)
