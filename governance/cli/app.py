"""The ``govtrain`` command group, its global options and the context every command receives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from governance.errors import EXIT_CODES

if TYPE_CHECKING:
    from governance.trust.ledger import Ledger
    from governance.workspace import Workspace

GLOBAL_FLAGS = ("--json", "-v", "--verbose")


@dataclass
class AppContext:
    """Global options, shared by every command."""

    workspace: Path | None
    identity: str | None
    json: bool
    verbose: bool

    def emit(self, result: dict[str, Any], text: str) -> None:
        """Print ``result`` as JSON under ``--json``, else the human ``text``."""
        if self.json:
            click.echo(json.dumps({"ok": True, **result}, indent=2, sort_keys=True, default=str))
        elif text:
            click.echo(text)


    def progress(self, message: str) -> None:
        """Progress of long work on stderr; quiet under --json."""
        if not self.json:
            click.echo(message, err=True)

    def find_workspace(self) -> Workspace:
        """The workspace named by --workspace, or the nearest one upwards; decrypted leftovers of an export that
        was SIGKILLed are removed first (they must not outlive their process)."""
        from governance.workspace import find_workspace

        workspace = find_workspace(self.workspace)
        if (workspace.root / "exports").is_dir():
            from governance.run.export import remove_abandoned_exports

            remove_abandoned_exports(workspace)
        return workspace


pass_app = click.make_pass_decorator(AppContext)


def ledger_of(workspace: Workspace) -> Ledger:
    from governance.trust.replay import load_ledger

    return load_ledger(workspace)


EPILOG = "Exit codes: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.option(
    "--workspace",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="GOVTRAIN_WORKSPACE",
    help="Workspace folder [env GOVTRAIN_WORKSPACE; default: nearest .govtrain upwards].",
)
@click.option(
    "--as",
    "identity",
    metavar="NAME",
    envvar="GOVTRAIN_IDENTITY",
    help="Act as this identity (its key in ~/.config/govtrain/identities) [env GOVTRAIN_IDENTITY].",
)
@click.option("--json", "json_output", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="More detail; tracebacks on errors.")
@click.version_option(package_name="govtrain", prog_name="govtrain")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, identity: str | None, json_output: bool, verbose: bool) -> None:
    """govtrain: governed training of transformers models.

    No training run starts until its data has passed validation, PII scrubbing and encryption at rest,
    has a dataset provenance card and a signed approval. Every step is recorded in a tamper-evident
    audit log that auditors verify offline.
    """
    ctx.obj = AppContext(workspace=workspace, identity=identity, json=json_output, verbose=verbose)


def short_value(value: Any) -> str:
    """A payload value shortened for one log line."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."
