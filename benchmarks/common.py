"""Shared by the benchmark scripts: machine facts, medians, results files. Benchmarks are not tests."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    versions = {}
    for name in ("govtrain", "torch", "transformers", "presidio-analyzer", "spacy", "cryptography", "pyarrow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(), "load_average": os.getloadavg(),
            "versions": versions}


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` calls, and every time."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak_mib`` is the highest seen while active."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_mib = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._process.memory_info().rss / 2**20)
            time.sleep(self._interval)

    def __enter__(self) -> Self:
        self.peak_mib = self._process.memory_info().rss / 2**20
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_results(subject: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<subject>.json`` with the machine facts and a timestamp."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{subject}.json"
    record = {"benchmark": subject, "when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
              **data}
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path
