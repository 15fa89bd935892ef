"""A run's folder and record: ``runs/<run-id>/`` with its resolved config, status, encrypted artifacts.

```
runs/<run-id>/config.yaml          the resolved run config (plain: it holds no data)
runs/<run-id>/status.json          status, metrics, digests; rewritten atomically as the run progresses
runs/<run-id>/checkpoints/*.enc    encrypted checkpoints (trust-core format)
runs/<run-id>/model/*.enc          the encrypted final model: safetensors, config, tokenizer
runs/<run-id>/predictions.json.enc per-example test predictions (encrypted) the bias report used
runs/<run-id>/tensorboard/         TensorBoard scalars (numbers only)
runs/<run-id>/reports/             bias, evaluation, transparency, provenance (JSON, Markdown, HTML)
```
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.timestamps import now_timestamp
from governance.crypto import MasterKey, read_encrypted_file, write_encrypted_file
from governance.errors import ConfigError, IntegrityError
from governance.workspace import Workspace
from governance.workspace.fsutil import make_private_dir, write_private_file

RUN_ID = re.compile(r"^run-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")


def new_run_id() -> str:
    """A sortable, unique run id: ``run-YYYYMMDD-HHMMSS-xxxxxx``."""
    return dt.datetime.now(dt.UTC).strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass(frozen=True)
class RunFolder:
    """One run's folder in a workspace."""

    workspace: Workspace
    run_id: str

    @property
    def path(self) -> Path:
        return self.workspace.runs / self.run_id

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    def create(self, resolved_config_yaml: str) -> None:
        """Make the folder (0700) and store the resolved config."""
        make_private_dir(self.path)
        make_private_dir(self.tensorboard)
        make_private_dir(self.reports)
        write_private_file(self.path / "config.yaml", resolved_config_yaml.encode(), exclusive=True)

    def status(self) -> dict[str, Any]:
        """The run's status record."""
        try:
            data = json.loads((self.path / "status.json").read_bytes())
        except FileNotFoundError:
            return {"run_id": self.run_id, "status": "created"}
        except ValueError:
            raise IntegrityError(f"{self.path / 'status.json'} is not valid JSON (edited by hand?)") from None
        if not isinstance(data, dict):
            raise IntegrityError(f"{self.path / 'status.json'} is not a run status record")
        return data

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the status record and rewrite it atomically."""
        data = {**self.status(), **fields, "run_id": self.run_id,
                "updated": now_timestamp()}
        write_private_file(self.path / "status.json", json.dumps(data, indent=2, sort_keys=True, default=str).encode())
        return data


def find_run(workspace: Workspace, run_id: str) -> RunFolder:
    """The folder of an existing run; an unknown or malformed id is a ``ConfigError``."""
    if not RUN_ID.match(run_id):
        raise ConfigError(f"invalid run id {run_id!r}", hint="run ids look like run-20261126-120000-a1b2c3")
    folder = RunFolder(workspace, run_id)
    if not (folder.path / "config.yaml").is_file():
        raise ConfigError(f"no run {run_id} in this workspace", hint="see 'govtrain runs list'")
    return folder


def list_runs(workspace: Workspace) -> list[RunFolder]:
    """Every run, oldest first."""
    if not workspace.runs.is_dir():
        return []
    return [RunFolder(workspace, p.name) for p in sorted(workspace.runs.iterdir()) if RUN_ID.match(p.name)]


class EncryptedRunStore:
    """The trainer's artifact store: every artifact encrypted under the master key, written atomically.

    ``write`` returns the sha256 of the plaintext (what a released file will have); the ciphertext digests
    are kept too, for the status record and the audit log.
    """

    def __init__(self, folder: Path, kek: MasterKey) -> None:
        self.folder = folder
        self.kek = kek
        self.ciphertext_digests: dict[str, str] = {}

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in Path(name).parts:
            raise ConfigError(f"artifact name {name!r} escapes the run folder")
        return self.folder / f"{name}.enc"

    def write(self, name: str, data: bytes) -> str:
        path = self._path(name)
        make_private_dir(path.parent)
        self.ciphertext_digests[name] = write_encrypted_file(path, data, self.kek)
        return hashlib.sha256(data).hexdigest()

    def read(self, name: str) -> bytes:
        """Decrypt an artifact into memory; a missing one is an integrity error (the run recorded it)."""
        path = self._path(name)
        if not path.is_file():
            raise IntegrityError(f"run artifact {path} is missing", hint="it was deleted or moved; the log "
                                                                      "records every artifact a run wrote")
        return read_encrypted_file(path, self.kek)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()
