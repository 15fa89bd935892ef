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
@click.option("--witness", "witnesses", multiple=True, metavar="KEYID",
              help="Require this witness's cosignature of a state the log still extends (repeatable).")
@click.option("--witness-quorum", type=click.IntRange(min=1), metavar="N",
              help="How many of the --witness keys must have cosigned [default: all of them].")
@pass_app
def audit_verify(app: AppContext, checkpoint: Path | None, witnesses: tuple[str, ...],
                 witness_quorum: int | None) -> None:
    """Recompute every hash, link, signature and Merkle root; exit 5 naming the first bad entry.

    Roles are replayed from the genesis entry, which names the root key; the workspace's root must match
    your pin (govtrain trust). A validly signed entry whose signer lacked the role for it, or dated later
    than a trusted clock plus the allowed skew, is listed (exit 5) and ignored for every decision. Deleted
    checkpoints are exit 5. Given an earlier exported checkpoint, truncation or any rewrite of the history it
    covers (grants included) is detected too. Every kept witness cosignature must be of a state the log still
    extends; with --witness, a quorum of those witnesses must have cosigned one: then not even the root key can
    rewrite what they saw. Needs no identity: anyone can verify.
    """
    from governance.trust.auditing import require_no_findings, verify_workspace_log
    from governance.trust.replay import witnessed_states

    if witness_quorum is not None and witness_quorum > len(set(witnesses)):
        raise click.UsageError(f"--witness-quorum {witness_quorum} needs at least that many --witness keys")
    ledger = verify_workspace_log(app.find_workspace(), checkpoint, witnesses=witnesses, quorum=witness_quorum)
    report = ledger.report
    assert report is not None and ledger.root is not None
    require_no_findings(ledger)
    cosigned = witnessed_states(ledger)
    newest: dict[str, int] = {}
    for cosignature in cosigned:
        newest[cosignature.witness] = max(newest.get(cosignature.witness, 0), cosignature.size)
    summary = (
        f"audit log intact: {report.entries} entries, root {report.root_hex[:16]}..., "
        f"{report.checkpoints_verified} checkpoint(s) verified"
        + (f", last at size {report.last_checkpoint_size}" if report.last_checkpoint_size is not None else "")
        + (f", consistent with {checkpoint} (size {report.earlier_checkpoint_size})" if checkpoint else "")
        + "".join(f"\nwitness {w} cosigned up to size {size}; the log extends it" for w, size in sorted(newest.items()))
        + f"\nroot key {ledger.root.key_id} (genesis entry)"
    )
    app.emit(
        {"entries": report.entries, "root": report.root_hex, "checkpoints_verified": report.checkpoints_verified,
         "last_checkpoint_size": report.last_checkpoint_size, "earlier_checkpoint_size": report.earlier_checkpoint_size,
         "root_key_id": ledger.root.key_id, "witnessed": newest},
        summary,
    )


@audit.command("cosign")
@pass_app
def audit_cosign(app: AppContext) -> None:
    """Witness the log: verify it all, then cosign its latest checkpoint with your own key (any member).

    The cosignature (C2SP tlog-cosignature) states that you saw the log at that size and root; it is kept in
    audit/cosignatures/ and carried in exports. From then on every command refuses a log that no longer extends
    it, and 'audit verify --witness YOUR-KEY-ID' requires it. Witness keys should belong to people the
    workspace's admins do not control (an external auditor, on their own machine): the root key can re-sign a
    rewritten history, but not your statement about the old one.
    """
    from governance.trust.auditing import cosign_latest

    result = cosign_latest(app.find_workspace(), app.identity)
    app.emit({"witness": result.witness, "size": result.size, "root": result.root_hex, "timestamp": result.timestamp,
              "file": str(result.path)},
             f"cosigned the checkpoint at size {result.size} (root {result.root_hex[:16]}...) as witness "
             f"{result.witness}\nkept in {result.path}")


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
@click.argument("seq", type=int, required=False)
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False),
              help="Prove against (with --check: check against) this checkpoint note.")
@click.option("--check", "check_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Check a proof file offline instead of writing one: no workspace needed.")
@click.option("--root-key", metavar="KEYID", help="With --check: the root key id [default: your pin of the log].")
@pass_app
def audit_prove(app: AppContext, seq: int | None, checkpoint: Path | None, check_file: Path | None,
                root_key: str | None) -> None:
    """Print a proof (JSON) that entry SEQ is in the log, or check one with --check.

    The proof holds inclusion proofs, against one signed checkpoint, of the entry and of what makes its signer
    trusted (the genesis entry naming the root key, and the grants from the root down), so that
    'audit prove --check FILE' checks it with nothing but the root key id: from --root-key, or your pin of the
    workspace (govtrain trust). Exit 5 if it does not hold. Offline, revocations after a grant are not visible.
    """
    if check_file is not None:
        if seq is not None:
            raise click.UsageError("give SEQ to write a proof, or --check FILE to check one, not both")
        _check_proof(app, check_file, checkpoint, root_key)
        return
    if seq is None:
        raise click.UsageError("missing SEQ (or --check FILE)")
    if root_key is not None:
        raise click.UsageError("--root-key goes with --check")
    from governance.trust.auditing import prove_bundle

    bundle = prove_bundle(app.find_workspace(), seq, checkpoint)
    click.echo(json.dumps(bundle, indent=2, sort_keys=True))


def _check_proof(app: AppContext, check_file: Path, checkpoint: Path | None, root_key: str | None) -> None:
    from governance.trust.auditing import check_proof_file

    checked, seq, root = check_proof_file(check_file, checkpoint, root_key)
    proven = [e for e in checked.entries if seq is None or e.seq == seq]
    listed = ", ".join(f"entry {e.seq} ({e.event})" for e in proven)
    app.emit({"origin": checked.checkpoint.origin, "tree_size": checked.checkpoint.size, "root_key_id": root,
              "entries": [e.model_dump() for e in proven]},
             f"proof holds: {listed} in the log of {checked.checkpoint.origin} at tree size "
             f"{checked.checkpoint.size}, established from root key {root}")
