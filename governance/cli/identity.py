"""``govtrain identity ...``: keys of people and the roles the log gives them."""

from __future__ import annotations

from pathlib import Path

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app
from policies.model import ROLES

# --- identities and keys -------------------------------------------------------------------------------


@cli.group()
def identity() -> None:
    """Manage identities (Ed25519 keys) and their roles."""


@identity.command("new")
@click.argument("name")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), help="Write the private key here instead.")
@pass_app
def identity_new(app: AppContext, name: str, out: Path | None) -> None:
    """Create a private key for NAME and print its public key id.

    The key goes to ~/.config/govtrain/identities/NAME.key (0600), passphrase-protected when
    GOVTRAIN_PASSPHRASE is set.
    """
    from governance.trust.identity import create_identity
    from governance.trust.roles import format_public_key

    path, signer = create_identity(name, out=out)
    public = format_public_key(signer.private_key.public_key())
    app.emit(
        {"name": name, "key_file": str(path), "public_key": public, "key_id": signer.key_id},
        f"created identity '{name}' (private key: {path})\npublic key: {public}\n"
        f"ask an admin to run: govtrain identity grant {name} ROLE --pubkey {public}",
    )


@identity.command("grant")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--pubkey", metavar="KEYID", required=True, help="The public key printed by 'identity new'.")
@pass_app
def identity_grant(app: AppContext, name: str, role: str, pubkey: str) -> None:
    """Grant ROLE to NAME's public key (admin only; signed and logged)."""
    from governance.trust.grants import grant_role
    from governance.trust.identity import check_identity_name
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    check_identity_name(name)
    with open_session(workspace, app.identity, ["admin"], "identity grant") as session:
        member = grant_role(session, name, role, pubkey)  # type: ignore[arg-type]
    app.emit({"name": name, "role": role, "key_id": member.key_id}, f"granted {role} to '{name}' ({member.key_id})")


@identity.command("revoke")
@click.argument("name")
@click.option("--compromised", is_flag=True,
              help="The key may have been misused: its earlier approvals stop counting too.")
@pass_app
def identity_revoke(app: AppContext, name: str, compromised: bool) -> None:
    """Revoke NAME's keys (admin only; logged). Anything they sign later is ignored.

    Their earlier entries stay valid (and their approvals keep counting) unless --compromised.
    """
    from governance.trust.grants import revoke_role
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["admin"], "identity revoke") as session:
        revoked = revoke_role(session, name, compromised=compromised)
    when = revoked[-1].revoked_at
    app.emit({"name": name, "revoked_at": when, "compromised": compromised},
             f"revoked '{name}' at {when}" + (" (compromised: their approvals no longer count)" if compromised else ""))


@identity.command("list")
@pass_app
def identity_list(app: AppContext) -> None:
    """List identities, their key ids and roles, as replayed from the verified audit log."""
    members = ledger_of(app.find_workspace()).members()
    rows = [
        {"name": m.name, "role": m.role, "key_id": m.key_id, "granted_at": m.granted_at, "revoked_at": m.revoked_at}
        for m in members
    ]
    text = "\n".join(
        f"{m.name:<16} {m.role:<10} {m.key_id}  granted {m.granted_at}"
        + (f", revoked {m.revoked_at}" if m.revoked_at else "") + (" (compromised)" if m.compromised else "")
        for m in members
    )
    app.emit({"identities": rows}, text)
