"""``govtrain policy ...``: list, register, show and validate governance policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app

# --- policies -------------------------------------------------------------------------------------------


@cli.group()
def policy() -> None:
    """List, register, show and validate governance policies."""


@policy.command("list")
@pass_app
def policy_list(app: AppContext) -> None:
    """List the policies registered in this workspace's audit log (the only ones that can be used).

    Outside a workspace, lists the policies that ship with govtrain (registered by every 'govtrain init').
    """
    from governance.errors import ConfigError

    try:
        workspace = app.find_workspace()
    except ConfigError:
        from governance.workspace.loading import load_policy
        from policies import policy_digest, shipped_policy_names

        shipped = [{"name": n, "digest": policy_digest(load_policy(n)), "description": load_policy(n).description}
                   for n in shipped_policy_names()]
        app.emit({"policies": shipped, "workspace": None},
                 "\n".join(f"{r['name']:<16} sha256:{r['digest'][:12]}  {r['description']}" for r in shipped)
                 + "\n(shipped policies; no workspace here)")
        return
    ledger = ledger_of(workspace)
    names = {m.key_id: m.name for m in ledger.members()}
    rows: list[dict[str, Any]] = [
        {"name": p.name, "digest": p.digest, "registered_at": p.time, "registered_by": names.get(p.by, p.by),
         "self_approval": p.self_approval, "entry": p.seq} for p in ledger.policies]
    text = "\n".join(f"{r['name']:<16} sha256:{r['digest'][:12]}  registered {r['registered_at'][:19]}Z by "
                     f"{r['registered_by']}" + ("  (allows self-approval)" if r["self_approval"] else "")
                     for r in rows)
    app.emit({"policies": rows}, text or "no policies registered")


@policy.command("register")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--allow-self-approval", is_flag=True,
              help="Confirm that this policy lets the ingesting identity approve its own data.")
@pass_app
def policy_register(app: AppContext, file: Path, allow_self_approval: bool) -> None:
    """Register a policy file by its digest so ingests, approvals and runs may use it (admin; logged)."""
    from governance.trust.policy_registry import register_policy
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["admin"], "policy register") as session:
        registered = register_policy(session, file, allow_self_approval=allow_self_approval)
    reg = registered.registration
    app.emit({"name": reg.name, "digest": reg.digest, "self_approval": reg.self_approval},
             f"registered policy '{reg.name}' (sha256:{reg.digest[:12]})"
             + ("; it allows self-approval, which cards and reports will state" if reg.self_approval else ""))


@policy.command("show")
@click.argument("ref", metavar="NAME_OR_FILE")
@pass_app
def policy_show(app: AppContext, ref: str) -> None:
    """Show a policy with every field resolved (defaults filled in): a registered name or a file."""
    import yaml

    from governance.errors import ConfigError
    from governance.workspace import find_workspace
    from governance.workspace.loading import load_policy
    from policies import policy_digest

    try:
        workspace = find_workspace(app.workspace)
    except ConfigError:
        workspace = None  # outside a workspace: the shipped policies by name, or any file
    if "/" in ref or ref.endswith((".yaml", ".yml")) or workspace is None:
        loaded = load_policy(Path(ref) if "/" in ref or ref.endswith((".yaml", ".yml")) else ref)
    else:
        from governance.trust.policy_registry import resolve_policy

        loaded = resolve_policy(workspace, ref).policy
    data = loaded.model_dump(mode="json")
    app.emit(
        {"policy": data, "digest": policy_digest(loaded)},
        f"# digest: sha256:{policy_digest(loaded)}\n" + yaml.safe_dump(data, sort_keys=False).rstrip(),
    )


@policy.command("validate")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def policy_validate(app: AppContext, file: Path) -> None:
    """Check a policy file; exit 2 naming the first bad field."""
    from governance.workspace.loading import load_policy
    from policies import policy_digest

    loaded = load_policy(file)
    digest = policy_digest(loaded)
    app.emit(
        {"file": str(file), "name": loaded.name, "digest": digest},
        f"{file}: valid policy '{loaded.name}' (sha256:{digest[:12]})",
    )
