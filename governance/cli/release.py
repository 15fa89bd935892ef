"""``govtrain verify-release DIR``: check an exported model offline, with nothing but the pinned root key."""

from __future__ import annotations

from pathlib import Path

import click

from governance.cli.app import AppContext, cli, pass_app


@cli.command("verify-release")
@click.argument("export_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--root-key", metavar="KEYID", default=None,
              help="The workspace's root key id (ed25519:...); default: this machine's pin of the workspace the "
                   "export names ('govtrain trust').")
@click.option("--witness", "witnesses", metavar="KEYID", multiple=True,
              help="Require this witness's cosignature of a state the export's checkpoint extends (repeatable).")
@click.option("--witness-quorum", type=click.IntRange(1, None), default=None, metavar="N",
              help="How many of the --witness keys must have cosigned [default: all].")
@pass_app
def verify_release(app: AppContext, export_dir: Path, root_key: str | None, witnesses: tuple[str, ...],
                   witness_quorum: int | None) -> None:
    """Check an export ('govtrain runs export') without its workspace: the checkpoint is signed by a key the root
    granted, the release record, the run's entries and every grant relied on are in the log it commits to, and
    each model file and report copy is the one the log recorded. Exit 5 names what does not hold."""
    import json

    from audit.entry import parse_entry_line
    from governance.errors import ConfigError
    from governance.run.release_record import PROOFS, check_release
    from governance.trust.pins import read_pins

    if root_key is None:
        try:
            genesis = next(parse_entry_line(str(p["entry"]).encode()) for p in
                           json.loads((export_dir / "verification" / PROOFS).read_bytes()) if int(p["seq"]) == 0)
        except (OSError, ValueError, KeyError, StopIteration):
            raise ConfigError(f"{export_dir}: no readable verification material",
                              hint="is this a folder 'govtrain runs export' wrote?") from None
        workspace = str(genesis.payload.get("workspace"))
        pin = next((p for p in read_pins().workspaces if p.workspace == workspace), None)
        if pin is None:
            raise ConfigError(f"no pin for workspace {workspace} on this machine",
                              hint="pass --root-key KEYID (from someone you trust), or pin it with 'govtrain trust'")
        root_key = pin.root_key_id
    if witness_quorum is not None and witness_quorum > len(witnesses):
        raise ConfigError(f"--witness-quorum {witness_quorum} is more than the {len(witnesses)} --witness key(s) given")
    release = check_release(export_dir, root_key, witnesses=witnesses, quorum=witness_quorum)
    approvals = ", ".join(a["name"] for a in release.get("release_approvals", [])) or "none needed"
    app.emit({"verified": True, **release},
             f"verified: {export_dir} is run {release['run_id']} as the log recorded it (tree size "
             f"{release['tree_size']}); verdict {release.get('verdict')}, privacy {release.get('privacy')}, executed "
             f"by {release.get('executed_by')}; release approvals: {approvals}; witness cosignatures checked: "
             f"{release['witnesses']}")
