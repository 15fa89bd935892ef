"""Where datasets live in a workspace: cards and decisions under ``cards/``, ciphertext under ``vault/``.

```
cards/<name>/<version>/card.json          canonical JSON of the DatasetCard (source of truth)
cards/<name>/<version>/card.md            rendered from it
cards/<name>/<version>/decisions/*.json   signed approvals and rejections
vault/<name>/<version>/data.parquet.enc   the scrubbed table, encrypted
```
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pydantic import ValidationError

from datacards.approval import CardDecision
from datacards.card import DatasetCard
from datacards.render import render_markdown
from governance.errors import ConfigError, IntegrityError
from governance.fsutil import make_private_dir, write_private_file
from governance.workspace import Workspace

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REF = re.compile(r"^(?P<name>[^@]+)(@(?P<version>[0-9]+))?$")


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset name (no path tricks), else raise ``ConfigError``."""
    if not NAME.match(name) or ".." in name:
        raise ConfigError(
            f"invalid dataset name {name!r}",
            hint="use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


class DatasetCatalog:
    """The datasets of one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def card_dir(self, name: str, version: int) -> Path:
        return self.workspace.cards / check_dataset_name(name) / str(version)

    def vault_dir(self, name: str, version: int) -> Path:
        return self.workspace.vault / check_dataset_name(name) / str(version)

    def vault_object(self, name: str, version: int) -> Path:
        return self.vault_dir(name, version) / "data.parquet.enc"

    def names(self) -> list[str]:
        if not self.workspace.cards.is_dir():
            return []
        return sorted(p.name for p in self.workspace.cards.iterdir() if p.is_dir() and NAME.match(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.workspace.cards / check_dataset_name(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "card.json").is_file())

    def claim_next_version(self, name: str) -> int:
        """Reserve the next version number by creating its card folder (atomic: concurrent ingests differ)."""
        base = self.workspace.cards / check_dataset_name(name)
        make_private_dir(base)
        taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        version = max(taken, default=0) + 1
        while True:
            try:
                (base / str(version)).mkdir(mode=0o700)
                return version
            except FileExistsError:
                version += 1

    def release(self, name: str, version: int) -> None:
        """Remove everything of a version whose ingest failed, so nothing half-written remains."""
        shutil.rmtree(self.card_dir(name, version), ignore_errors=True)
        shutil.rmtree(self.vault_dir(name, version), ignore_errors=True)
        for folder in (self.workspace.cards / name, self.workspace.vault / name):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def resolve(self, ref: str) -> tuple[str, int]:
        """``name`` or ``name@version`` to a stored (name, version); latest when no version is given."""
        match = REF.match(ref)
        if not match:
            raise ConfigError(f"invalid dataset reference {ref!r}", hint="use NAME or NAME@VERSION")
        name = check_dataset_name(match.group("name"))
        versions = self.versions(name)
        if not versions:
            raise ConfigError(f"no dataset named '{name}' in this workspace", hint="see 'govtrain data list'")
        if match.group("version") is None:
            return name, versions[-1]
        version = int(match.group("version"))
        if version not in versions:
            raise ConfigError(f"dataset '{name}' has no version {version} (versions: {versions})")
        return name, version

    def write_card(self, card: DatasetCard) -> None:
        """Store a new card (JSON and Markdown); refuses to replace an existing one."""
        folder = self.card_dir(card.name, card.version)
        make_private_dir(folder)
        write_private_file(folder / "card.json", card.canonical_json() + b"\n", exclusive=True)
        self.render(card)

    def render(self, card: DatasetCard) -> None:
        """(Re)write ``card.md`` from the card and its decisions (the Markdown is derived, never trusted)."""
        markdown = render_markdown(card, self.decisions(card.name, card.version))
        write_private_file(self.card_dir(card.name, card.version) / "card.md", markdown.encode())

    def read_card(self, name: str, version: int) -> DatasetCard:
        """Load a stored card; an unparsable card is an integrity error."""
        path = self.card_dir(name, version) / "card.json"
        try:
            return DatasetCard.model_validate(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise ConfigError(f"no card for {name}@{version}") from None
        except (ValueError, ValidationError):
            raise IntegrityError(f"{path} is not a valid dataset card (edited by hand?)") from None

    def decisions(self, name: str, version: int) -> list[CardDecision]:
        """Every stored decision for a card version (unverified; see ``governance.gate.check``)."""
        folder = self.card_dir(name, version) / "decisions"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                out.append(CardDecision.model_validate(json.loads(path.read_bytes())))
            except (ValueError, ValidationError):
                raise IntegrityError(f"{path} is not a valid signed decision (edited by hand?)") from None
        return out

    def add_decision(self, decision: CardDecision) -> Path:
        """Store a signed decision beside the card."""
        folder = self.card_dir(decision.dataset, decision.version) / "decisions"
        make_private_dir(folder)
        stamp = decision.time.replace(":", "").replace("-", "").replace(".", "")
        path = folder / f"{stamp}-{decision.decision}-{decision.by_key_id.split(':')[-1][:12]}.json"
        write_private_file(path, json.dumps(decision.model_dump(), indent=2, sort_keys=True).encode(), exclusive=True)
        return path
