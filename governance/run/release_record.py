"""An export's offline evidence, and its check with nothing but the pinned root key (``govtrain verify-release``).

An export's ``verification/`` holds a signed checkpoint of the log taken after the export logged its release record
(``run.export.started``: the run, its verdicts, its release approvals, its model and report digests) and inclusion
proofs, against that checkpoint, of: the genesis entry (which names the root key), the ``identity.granted`` entries
from the root down to every key whose signature is relied on, the run's ``run.finished`` (model digests),
``report.written`` (report digests) and the release record; and the witness cosignatures kept in the workspace,
each with a consistency proof to that checkpoint. :func:`check_release` rebuilds the trusted keys from the root
key alone (:func:`governance.trust.auditing.check_proofs`), checks the checkpoint, every proof and the cosigned
states, then that each exported file is the one the log recorded.

What it cannot see offline: a revocation logged after a grant (the full log and ``audit verify`` can), and the
log beyond the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from audit.entry import AuditEntry
from governance.errors import ConfigError, IntegrityError

PROOFS: Final = "proofs.json"
COSIGNATURES: Final = "cosignatures.json"
CHECKPOINT: Final = "checkpoint.note"
RELEASE: Final = "release.json"
REPORT_FILES: Final = {"transparency.md": "MODEL_CARD.md", "provenance.json": "provenance.json",
                       "bias.json": "bias.json", "evaluation.json": "evaluation.json"}
"""Reports an export carries: the run folder's name -> the export's name."""


def check_release(folder: Path, root_key: str, *, witnesses: Sequence[str] = (), quorum: int | None = None
                  ) -> dict[str, Any]:
    """Check an export folder offline against the pinned root key id; returns the verified release record. With
    ``witnesses``, at least ``quorum`` (default all) of them must have cosigned a state the checkpoint extends.
    Raises ``IntegrityError`` (exit 5) naming what does not hold, ``ConfigError`` (exit 2) for missing files."""
    from governance.trust.auditing import check_cosigned_states, check_proofs

    verification = folder / "verification"
    try:
        checkpoint_text = (verification / CHECKPOINT).read_text(encoding="utf-8")
        proofs: list[dict[str, Any]] = json.loads((verification / PROOFS).read_bytes())
        states_file = verification / COSIGNATURES
        states = json.loads(states_file.read_bytes()) if states_file.is_file() else []
    except FileNotFoundError as exc:
        raise ConfigError(f"{folder} is not a govtrain export: {Path(str(exc.filename)).name} is missing") from None
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{folder}: the verification material cannot be read ({type(exc).__name__})") from None
    checked = check_proofs(proofs, checkpoint_text, root_key)
    cosigned = check_cosigned_states(states, checked, required=witnesses, quorum=quorum)
    by_event: dict[str, AuditEntry] = {}
    for entry in checked.entries:
        by_event.setdefault(entry.event, entry)
    release, finished, written = (by_event.get(e) for e in ("run.export.started", "run.finished", "report.written"))
    if release is None or finished is None or written is None:
        raise IntegrityError(f"{folder}: the verification material lacks the release record or the run's entries")
    run_id = release.payload.get("run_id")
    if finished.payload.get("run_id") != run_id or written.payload.get("run_id") != run_id:
        raise IntegrityError(f"{folder}: the proven entries are about different runs")
    _check_files(folder, finished.payload.get("model_digests") or {}, written.payload.get("digests") or {})
    return {"run_id": run_id, "tree_size": checked.checkpoint.size, "witnesses": len(cosigned), **release.payload}


def _check_files(folder: Path, models: dict[str, str], reports: dict[str, str]) -> None:
    """Each exported model file and report copy is byte for byte the one the log recorded."""
    expected = {Path(name).name: digest for name, digest in models.items()}
    expected.update({exported: reports[name] for name, exported in REPORT_FILES.items() if name in reports})
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{folder}: {name} is missing from the export")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise IntegrityError(f"{folder}: {name} is not the file the audit log recorded",
                                 hint="the exported copy was replaced or altered after the export")
