"""``govtrain audit ...``: verify and read the tamper-evident log."""

from __future__ import annotations

import json
from pathlib import Path

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app, short_value

# --- audit ----------------------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """Verify and read the tamper-evident audit log."""


@audit.command("verify")
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False),
              help="An earlier exported checkpoint: also detect truncation or rewrites since then.")
@pass_app
def audit_verify(app: AppContext, checkpoint: Path | None) -> None:
    """Recompute every hash, link, signature and Merkle root; exit 5 naming the first bad entry.

    Roles are replayed from the genesis entry, which names the root key; the workspace's root must match
    your pin (govtrain trust). A validly signed entry whose signer lacked the role for it is listed (exit 5)
    and ignored for every decision. Given an earlier exported checkpoint, truncation or any rewrite of the
    history it covers (grants included) is detected too. Needs no identity: anyone can verify.
    """
    from governance.trust.auditing import require_no_findings, verify_workspace_log

    ledger = verify_workspace_log(app.find_workspace(), checkpoint)
    report = ledger.report
    assert report is not None and ledger.root is not None
    require_no_findings(ledger)
    summary = (
        f"audit log intact: {report.entries} entries, root {report.root_hex[:16]}..., "
        f"{report.checkpoints_verified} checkpoint(s) verified"
        + (f", last at size {report.last_checkpoint_size}" if report.last_checkpoint_size is not None else "")
        + (f", consistent with {checkpoint} (size {report.earlier_checkpoint_size})" if checkpoint else "")
        + f"\nroot key {ledger.root.key_id} (genesis entry)"
    )
    app.emit(
        {"entries": report.entries, "root": report.root_hex, "checkpoints_verified": report.checkpoints_verified,
         "last_checkpoint_size": report.last_checkpoint_size, "earlier_checkpoint_size": report.earlier_checkpoint_size,
         "root_key_id": ledger.root.key_id},
        summary,
    )


@audit.command("log")
@click.option("--since", type=int, default=0, show_default=True, help="First sequence number to show.")
@click.option("--event", "event_type", help="Only entries of this event type.")
@pass_app
def audit_log(app: AppContext, since: int, event_type: str | None) -> None:
    """Print audit log entries (who did what, when; payloads hold digests and counts only).

    TYPE is an event name (data.approved) or a prefix ending in '.' (data.).
    """
    from governance.trust.auditing import iter_log

    workspace = app.find_workspace()
    names = {m.key_id: m.name for m in ledger_of(workspace).members()}
    entries = list(iter_log(workspace, since=since, event=event_type))
    if app.json:
        app.emit({"entries": [e.model_dump() for e in entries]}, "")
        return
    for entry in entries:
        payload = ", ".join(f"{k}={short_value(v)}" for k, v in sorted(entry.payload.items()))
        click.echo(f"{entry.seq:>6}  {entry.time[:19]}Z  {names.get(entry.actor, entry.actor):<12} "
                   f"{entry.event:<22} {payload}")
    if not entries:
        click.echo("no matching entries")


@audit.command("checkpoint")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write the checkpoint here.")
@pass_app
def audit_checkpoint(app: AppContext, out: Path | None) -> None:
    """Export the latest signed tree head for an auditor to keep.

    Keep it somewhere the workspace's owners cannot change; later, 'audit verify --checkpoint FILE'
    proves the log was only appended to since.
    """
    from governance.trust.auditing import latest_checkpoint_text
    from governance.workspace.fsutil import write_private_file

    text, checkpoint = latest_checkpoint_text(app.find_workspace())
    if out is not None:
        write_private_file(out, text.encode())
    result = {"size": checkpoint.size, "root": checkpoint.root_hex, "checkpoint": text,
              "file": str(out) if out else None}
    app.emit(result, f"wrote checkpoint (size {checkpoint.size}) to {out}" if out else text.rstrip("\n"))


@audit.command("prove")
@click.argument("seq", type=int)
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False), help="Prove against this checkpoint.")
@pass_app
def audit_prove(app: AppContext, seq: int, checkpoint: Path | None) -> None:
    """Print an inclusion proof (JSON) for entry SEQ that anyone can check.

    The proof holds the entry, its Merkle audit path and the checkpoint; audit.verify_inclusion_proof
    checks it from those alone.
    """
    from governance.trust.auditing import prove_entry

    proof = prove_entry(app.find_workspace(), seq, checkpoint)
    click.echo(json.dumps(proof, indent=2, sort_keys=True))
