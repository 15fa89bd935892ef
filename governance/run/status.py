"""A run's ``status.json``, shown only after it is checked against the log.

``status.json`` is a cache the run writes as it goes (for a person watching, and for fields the log does not keep,
such as the environment). Nothing decides from it, and nothing shows it unchecked either: every field the signed
log also states (status, dataset, steps, metrics, timings, the model files' digests) must be the log's, or the
file was edited and showing it would lie (exit 5 naming the file).
"""

from __future__ import annotations

from typing import Any

from governance.errors import IntegrityError
from governance.run.folder import RunFolder
from governance.trust.ledger import RunRecord


def logged_status(record: RunRecord | None) -> str:
    """The run's status as the log tells it: finished, failed, running (started, not ended) or created."""
    if record is None or record.started is None:
        return "created"
    return "finished" if record.finished is not None else "failed" if record.failed is not None else "running"


def checked_status(folder: RunFolder, record: RunRecord | None) -> dict[str, Any]:
    """``status.json`` after checking every field the log also states; exit 5 naming the file otherwise."""
    cached = folder.status()
    where = folder.path / "status.json"
    expected: dict[str, Any] = {"status": logged_status(record)}
    if record is not None and record.started is not None:
        expected["dataset"] = record.started.get("dataset")
    if record is not None and record.finished is not None:
        expected.update({k: v for k, v in record.finished.items() if k in cached and k != "run_id"})
        logged = record.finished.get("model_digests") or {}
        artifacts = cached.get("artifacts") or {}
        if {name: (a or {}).get("sha256") for name, a in artifacts.items()} != logged:
            raise IntegrityError(f"{where} lists other model files than the audit log recorded",
                                 hint="the status file was edited; the log (govtrain audit log --event run.) decides")
    if cached.get("status") == "created" and expected["status"] == "created":
        return cached
    for key, value in expected.items():
        if cached.get(key) != value:
            raise IntegrityError(f"{where}: {key} is not what the audit log recorded",
                                 hint="the status file was edited; the log (govtrain audit log --event run.) decides")
    return cached
