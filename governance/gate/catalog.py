"""Where datasets live in a workspace: cards and decisions under ``cards/``, ciphertext under ``vault/``.

```
cards/<name>/<version>/card.json          canonical JSON of the DatasetCard (source of truth)
cards/<name>/<version>/card.md            rendered from it
cards/<name>/<version>/decisions/*.json   signed approvals and rejections
vault/<name>/<version>/data.parquet.enc   the scrubbed table, encrypted
cards/<name>/.ingest-<token>/, vault/<name>/.ingest-<token>/   an ingest in progress (hidden, ignored)
```
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from datacards.approval import CardDecision
from datacards.card import DatasetCard
from datacards.render import render_markdown
from governance.errors import ConfigError, IntegrityError, UnexpectedError
from governance.workspace import Workspace
from governance.workspace.fsutil import fsync_dir, make_private_dir, write_private_file

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REF = re.compile(r"^(?P<name>[^@]+)(@(?P<version>[0-9]+))?$")
STAGING_PREFIX = ".ingest-"


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset name (no path tricks), else raise ``ConfigError``."""
    if not NAME.match(name) or ".." in name:
        raise ConfigError(
            f"invalid dataset name {name!r}",
            hint="use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class StagedVersion:
    """A version being ingested: hidden 0700 folders under ``vault/<name>/`` and ``cards/<name>/``."""

    name: str
    token: str
    vault: Path
    cards: Path


def _numbered(folder: Path) -> set[int]:
    """The version numbers taken in ``folder`` (complete or not)."""
    if not folder.is_dir():
        return set()
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()}


def _rename_if_free(source: Path, target: Path) -> bool:
    """Rename folder ``source`` to ``target`` unless ``target`` is a non-empty folder (atomic; False if taken)."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            return False
        raise
    return True


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

    def stage(self, name: str) -> StagedVersion:
        """Hidden, private folders for a new version of ``name``, invisible until :meth:`claim_next_version`."""
        token = secrets.token_hex(8)
        staged = StagedVersion(
            name=check_dataset_name(name), token=token,
            vault=self.workspace.vault / name / f"{STAGING_PREFIX}{token}",
            cards=self.workspace.cards / name / f"{STAGING_PREFIX}{token}",
        )
        for _ in range(3):
            # A failing ingest of the same name may remove the (then empty) parent while we create ours.
            with contextlib.suppress(FileNotFoundError):
                make_private_dir(staged.vault)
                make_private_dir(staged.cards)
                return staged
        self.release(staged)
        raise UnexpectedError(f"cannot create a staging folder for dataset '{name}' (removed concurrently)")

    def claim_next_version(self, staged: StagedVersion, card_for: Callable[[int], DatasetCard]) -> DatasetCard:
        """Publish ``staged`` as the next free version of its name; returns the card as stored.

        The number is claimed at the very end by renaming the complete staged vault folder onto
        ``vault/<name>/<N>``: renaming a folder onto an existing non-empty one fails, so of concurrent ingests
        exactly one gets each ``N`` and the others retry with ``N + 1``. The card names its version and vault
        path (and its digest is what approvers sign), so it is built by ``card_for(N)`` only once ``N`` is
        known, written into the staged card folder, and that folder is renamed onto ``cards/<name>/<N>`` last:
        a version is visible (``versions()`` needs ``<N>/card.json``) only when its ciphertext is in place.
        Nothing is reserved up front, so an ingest killed before this point burns no number and leaves only
        hidden ``.ingest-*`` folders, which ``names()``/``versions()`` ignore and the next claim skips. (Killed
        in the instant between the two renames, it leaves ``vault/<name>/<N>`` without a card: invisible, and
        ``N`` is skipped from then on.)
        """
        vault_parent, cards_parent = staged.vault.parent, staged.cards.parent
        version = max(_numbered(vault_parent) | _numbered(cards_parent), default=0) + 1
        while True:
            card = card_for(version)
            if (card.name, card.version) != (staged.name, version):
                raise ValueError(f"card_for({version}) built a card for {card.ref}")
            self.write_card(card, folder=staged.cards)
            vault_target, card_target = vault_parent / str(version), cards_parent / str(version)
            if not _rename_if_free(staged.vault, vault_target):
                version += 1
                continue
            published = False
            try:
                published = _rename_if_free(staged.cards, card_target)
            finally:
                if not published:
                    # The card folder is taken without its vault folder (by hand, or an old govtrain), or we
                    # were interrupted: hand the number back rather than leave ciphertext without a card.
                    os.rename(vault_target, staged.vault)
            if published:
                fsync_dir(vault_parent)
                fsync_dir(cards_parent)
                return card
            version += 1

    def release(self, staged: StagedVersion, *, published: int | None = None) -> None:
        """Remove a staged version whose ingest failed (and its name's folders if now empty).

        ``published`` is the version it was just published as, when finishing failed after that (the log could
        not record it): that version is taken back, card first so it disappears before its ciphertext.
        """
        if published is not None:
            for source, target in ((self.card_dir(staged.name, published), staged.cards),
                                   (self.vault_dir(staged.name, published), staged.vault)):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(source, target)
        for folder in (staged.vault, staged.cards):
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # not empty: other versions, or a concurrent ingest
                folder.parent.rmdir()

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

    def write_card(self, card: DatasetCard, *, folder: Path | None = None) -> None:
        """Write a new card's JSON and Markdown into ``folder``, a staged version folder (rewritten on retry).

        Without ``folder`` the card goes to its version folder, and an existing card there is never replaced.
        """
        staged = folder is not None
        target = folder if folder is not None else self.card_dir(card.name, card.version)
        make_private_dir(target)
        write_private_file(target / "card.json", card.canonical_json() + b"\n", exclusive=not staged)
        decisions = [] if staged else self.decisions(card.name, card.version)  # a staged card has none yet
        write_private_file(target / "card.md", render_markdown(card, decisions).encode())

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
        """Every stored decision file for a card version (a cache; the gate checks each against the log)."""
        return [decision for _, decision in self.decision_files(name, version)]

    def decision_files(self, name: str, version: int) -> list[tuple[Path, CardDecision]]:
        """Each decision file beside a card, with its path."""
        folder = self.card_dir(name, version) / "decisions"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            try:
                out.append((path, CardDecision.model_validate(json.loads(path.read_bytes()))))
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
