"""The ``govtrain`` command line: parse arguments, call one function, print the result.

Errors are caught in one place (:func:`main`): a ``GovtrainError`` prints ``error: ...`` and ``hint: ...`` and
exits with its code; ``-v`` adds the traceback; ``--json`` prints a JSON object on stdout instead.
Heavy libraries are imported inside the commands that need them, so ``govtrain --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from governance.errors import EXIT_CODES, GovtrainError

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
        """The workspace named by --workspace, or the nearest one upwards."""
        from governance.workspace import find_workspace

        return find_workspace(self.workspace)


pass_app = click.make_pass_decorator(AppContext)


def _ledger(workspace: Workspace) -> Ledger:
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
@pass_app
def trust(app: AppContext, path: Path | None, root_key: str | None, checkpoint: Path | None) -> None:
    """Pin a workspace's root key in ~/.config/govtrain/trusted.yaml (anyone; run once per workspace).

    Verifies the log from its genesis entry, shows the workspace id and root key id, and records them. Check
    the root key id with the workspace's admin out of band (or pass --root-key / --checkpoint to have it
    checked). From then on every command refuses (exit 5) a workspace at PATH or with this id whose root
    differs: a rewrite of the whole history by an insider.
    """
    from governance.auditing import verify_workspace_log
    from governance.errors import IntegrityError
    from governance.trust.pins import pin_workspace
    from governance.workspace import find_workspace

    workspace = find_workspace(path or app.workspace)
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
    from governance.demo import run_demo

    run_demo(cli, directory, model, app.progress)


@cli.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--resume", metavar="RUN_ID", help="Continue this run from its last checkpoint.")
@click.option("--dry-run", is_flag=True, help="Check config, policy and approvals; print what would run; stop.")
@pass_app
def run(app: AppContext, config: Path, resume: str | None, dry_run: bool) -> None:
    """Train a model as CONFIG describes, once every gate passes (engineer).

    Before anything is built: the config and policy are validated (exit 2), the config is held to the
    policy's training limits and the dataset's approvals, vault digest and policy are re-checked (exit 4
    or 5). --dry-run stops there and prints the plan. Then the data is decrypted into memory, split,
    and trained on; checkpoints and the model are stored encrypted; reports are written. Works under
    torchrun (rank 0 alone logs and writes).
    """
    from governance.orchestrator import run_command

    outcome = run_command(app.find_workspace, config, app.identity, resume=resume, dry_run=dry_run,
                          quiet=app.json, progress=app.progress)
    app.emit(outcome.result, outcome.text)


@cli.group()
def runs() -> None:
    """List and inspect training runs."""


@runs.command("list")
@pass_app
def runs_list(app: AppContext) -> None:
    """List the workspace's runs: status, dataset, steps, headline test metric and release verdict (from the log)."""
    from governance.errors import GovtrainError
    from governance.release import release_state
    from governance.runs import list_runs

    workspace = app.find_workspace()
    rows = []
    for folder in list_runs(workspace):
        row = folder.status()
        metrics = row.get("test_metrics") or {}
        name = next((m for m in ("accuracy", "perplexity", "loss") if isinstance(metrics.get(m), int | float)), None)
        row["headline"] = {name: metrics[name]} if name else {}
        try:
            state = release_state(workspace, folder.run_id)
            row["verdict"], row["releasable"] = state.verdict, state.releasable
        except GovtrainError as exc:
            if exc.exit_code == 5:
                raise
            row["verdict"], row["releasable"] = "-", False
        rows.append(row)
    text = "\n".join(
        f"{r['run_id']}  {r.get('status', '?'):<9} {r.get('dataset', '-'):<20} steps {r.get('steps', '-')!s:<6} "
        + (" ".join(f"{k} {v:.4f}" for k, v in r["headline"].items()) or "-").ljust(18)
        + f" bias {r['verdict']}" + ("" if r["releasable"] else "  (not releasable)" if r["verdict"] != "-" else "")
        for r in rows
    ) or "no runs yet (govtrain run CONFIG)"
    app.emit({"runs": rows}, text)


@runs.command("show")
@click.argument("run_id")
@pass_app
def runs_show(app: AppContext, run_id: str) -> None:
    """Show a run: status, metrics, best step, artifacts with digests, and its release position from the log."""
    from governance.errors import GovtrainError
    from governance.release import release_state
    from governance.runs import find_run

    workspace = app.find_workspace()
    status = find_run(workspace, run_id).status()
    try:
        state = release_state(workspace, run_id)
        status["release"] = {"verdict": state.verdict, "releasable": state.releasable, "why": state.explain(),
                             "approvals": [d.name for d in state.approvals], "quorum": state.quorum}
    except GovtrainError as exc:
        if exc.exit_code == 5:
            raise
        status["release"] = {"releasable": False, "why": exc.message}
    app.emit({"run": status}, json.dumps(status, indent=2, sort_keys=True))


@runs.command("approve")
@click.argument("run_id")
@pass_app
def runs_approve(app: AppContext, run_id: str) -> None:
    """Sign the release of a run's model (compliance; logged).

    Needed before export for every run whose bias verdict was flagged or not fully judged (and for every run
    under a policy with release.require_approval: always). A run blocked by its policy cannot be approved.
    """
    from governance.release import approve_release
    from governance.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["compliance", "admin"], "runs approve") as session:
        state = approve_release(session, run_id)
    app.emit({"run_id": run_id, "verdict": state.verdict, "releasable": state.releasable,
              "approvals": [d.name for d in state.approvals], "quorum": state.quorum},
             f"release of {run_id} approved; {state.explain()}; "
             f"{'releasable' if state.releasable else 'not yet releasable'}")


@runs.command("export")
@click.argument("run_id")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="Target folder.")
@pass_app
def runs_export(app: AppContext, run_id: str, out: Path) -> None:
    """Write a decrypted copy of a releasable run's model (engineer, logged).

    Refuses (exit 4) a run that did not finish, whose bias verdict blocked release, or that still needs a
    compliance release approval ('govtrain runs approve'). Files appear in OUT only once all were verified.
    """
    from governance.export import export_model
    from governance.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["engineer"], "runs export") as session:
        files = export_model(session, run_id, out)
    app.emit({"run_id": run_id, "out": str(out), "files": files},
             f"exported {len(files)} file(s) of {run_id} to {out}")


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
    from governance.identity import create_identity
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
@click.argument("role", type=click.Choice(["admin", "compliance", "engineer", "auditor"]))
@click.option("--pubkey", metavar="KEYID", required=True, help="The public key printed by 'identity new'.")
@pass_app
def identity_grant(app: AppContext, name: str, role: str, pubkey: str) -> None:
    """Grant ROLE to NAME's public key (admin only; signed and logged)."""
    from governance.identity import check_identity_name
    from governance.session import open_session
    from governance.trust.roles import grant_role

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
    from governance.session import open_session
    from governance.trust.roles import revoke_role

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
    members = _ledger(app.find_workspace()).members()
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


@cli.group()
def keys() -> None:
    """Manage the master key that encrypts data, checkpoints and models at rest."""


@keys.command("init")
@pass_app
def keys_init(app: AppContext) -> None:
    """Create a 256-bit master key in ~/.config/govtrain/master.key (0600).

    Refuses to overwrite an existing key. ('govtrain init' creates one too when you have none.)
    """
    from governance.crypto import generate_master_key, write_master_key
    from governance.userconfig import default_master_key_path

    key = write_master_key(default_master_key_path(), generate_master_key())
    app.emit(
        {"key_id": key.key_id, "key_file": str(default_master_key_path())},
        f"created master key {key.key_id} in {default_master_key_path()} (0600); back it up safely",
    )


@keys.command("rotate")
@pass_app
def keys_rotate(app: AppContext) -> None:
    """Make a new master key and rewrap every encrypted object's data key (admin; logged).

    Data is not re-encrypted. Each file is replaced atomically; an interrupted rotation resumes when run
    again. The old key file is kept as master.key.retired-<id>.
    """
    from governance.keyring import rotate_master_key
    from governance.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["admin"], "keys rotate") as session:
        rotation = rotate_master_key(workspace)
        session.record("keys.rotated", {"old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id,
                                        "files_rewrapped": rotation.files_rewrapped})
    app.emit(
        {"old_key_id": rotation.old_key_id, "new_key_id": rotation.new_key_id,
         "files_rewrapped": rotation.files_rewrapped, "retired_key_file": str(rotation.retired_file)},
        f"rotated master key {rotation.old_key_id} -> {rotation.new_key_id}; "
        f"rewrapped {rotation.files_rewrapped} file(s); old key kept at {rotation.retired_file}",
    )


@keys.command("status")
@pass_app
def keys_status(app: AppContext) -> None:
    """Say where the master key comes from and its id (never the key)."""
    from governance.crypto import describe_key_source
    from governance.errors import ConfigError

    status = describe_key_source()
    if status.problem:
        raise ConfigError(f"master key ({status.source}): {status.problem}", hint=status.hint)
    result: dict[str, Any] = dict(status.to_json())
    lines = [f"source: {status.source}" + (f" ({status.file_path})" if status.source == "file" else "")]
    lines.append(f"key id: {status.key_id}")
    try:
        manifest = app.find_workspace().manifest()
    except ConfigError:
        manifest = None  # keys status works outside a workspace too
    if manifest is not None:
        result["workspace_key_id"] = manifest.master_key_id
        match = "matches" if manifest.master_key_id == status.key_id else "DOES NOT MATCH"
        lines.append(f"workspace uses: {manifest.master_key_id} ({match})")
    app.emit(result, "\n".join(lines))


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
        from governance.loading import load_policy
        from policies import policy_digest, shipped_policy_names

        shipped = [{"name": n, "digest": policy_digest(load_policy(n)), "description": load_policy(n).description}
                   for n in shipped_policy_names()]
        app.emit({"policies": shipped, "workspace": None},
                 "\n".join(f"{r['name']:<16} sha256:{r['digest'][:12]}  {r['description']}" for r in shipped)
                 + "\n(shipped policies; no workspace here)")
        return
    ledger = _ledger(workspace)
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
    from governance.session import open_session
    from governance.trust.policy_registry import register_policy

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
    from governance.loading import load_policy
    from governance.workspace import find_workspace
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
    from governance.loading import load_policy
    from policies import policy_digest

    loaded = load_policy(file)
    digest = policy_digest(loaded)
    app.emit(
        {"file": str(file), "name": loaded.name, "digest": digest},
        f"{file}: valid policy '{loaded.name}' (sha256:{digest[:12]})",
    )


# --- data -----------------------------------------------------------------------------------------------


@cli.group()
def data() -> None:
    """Ingest, inspect and approve datasets (the data gate)."""


@data.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", required=True, help="Dataset name (lowercase letters, digits, '.', '_', '-').")
@click.option("--spec", type=click.Path(path_type=Path, dir_okay=False), required=True, help="Dataset spec YAML.")
@click.option("--policy", "policy_ref", default="default", show_default=True,
              help="A registered policy's name, or a file whose exact content an admin registered.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes for the PII scrub.")
@pass_app
def data_ingest(app: AppContext, file: Path, name: str, spec: Path, policy_ref: str, workers: int) -> None:
    """Validate, scrub PII, encrypt and card FILE (engineer or compliance).

    Steps: load (streamed with datasets), validate (great-expectations suite from the policy and the
    spec; exit 3 on failure), scrub PII in the text columns (presidio with a spaCy NER model; exit 4 if
    residual PII exceeds the policy's tolerance), encrypt into the vault, write the dataset card.
    Each step is logged. On any failure nothing is stored.
    """
    from governance.gate.catalog import check_dataset_name
    from governance.gate.ingest import ingest_dataset
    from governance.gate.spec import load_dataset_spec
    from governance.keyring import workspace_master_key
    from governance.session import open_session
    from governance.trust.policy_registry import resolve_policy

    check_dataset_name(name)
    dataset_spec = load_dataset_spec(spec)
    from governance.gate.loading import check_input_file

    workspace = app.find_workspace()
    loaded_policy = resolve_policy(workspace, policy_ref).policy  # only registered policies (exit 4)
    check_input_file(file, max_mib=loaded_policy.validation.max_input_mib)  # a regular file within the cap
    kek = workspace_master_key(workspace)
    with open_session(workspace, app.identity, ["engineer", "compliance"], "data ingest") as session:
        result = ingest_dataset(session, file, name, dataset_spec, loaded_policy, kek, workers=workers,
                                progress=app.progress)
    card = result.card
    pii = sum(card.pii.findings_by_entity.values())  # counts only
    app.emit(
        {"dataset": card.ref, "card_digest": card.digest(), "rows": card.rows.stored, "pii_findings_removed": pii,
         "card": str(result.card_path), "status": "pending"},
        f"ingested {card.ref}: {card.rows.stored:,} rows, {pii:,} PII findings removed, "
        f"card sha256:{card.digest()[:12]}\nstatus: pending approval "
        f"(read it: govtrain data show {card.ref}; approve: govtrain data approve {card.ref})",
    )


@data.command("list")
@pass_app
def data_list(app: AppContext) -> None:
    """List datasets: name, version, rows, status (pending/approved/rejected), approvers.

    Each card is judged under the registered policy its logged ingest names, from the verified audit log.
    """
    from governance.gate.approvals import card_status
    from governance.gate.catalog import DatasetCatalog

    workspace = app.find_workspace()
    ledger = _ledger(workspace)
    catalog = DatasetCatalog(workspace)
    rows: list[dict[str, Any]] = []
    for name in catalog.names():
        for version in catalog.versions(name):
            card = catalog.read_card(name, version)
            status = card_status(workspace, card, ledger)
            rows.append({"dataset": card.ref, "rows": card.rows.stored, "status": status.status,
                         "approvers": [d.name for d in status.counted], "policy": card.policy.name,
                         "self_approved": status.self_approved,
                         "ingested_by": card.ingestion.identity, "ingested_at": card.ingestion.time})
    text = "\n".join(
        f"{r['dataset']:<24} {r['rows']:>9,} rows  {r['status']:<9} {','.join(r['approvers']) or '-':<20} "
        f"policy {r['policy']}" + ("  (self-approved: the registered policy allows it)" if r["self_approved"] else "")
        for r in rows
    ) or "no datasets yet (govtrain data ingest FILE --name NAME --spec SPEC)"
    app.emit({"datasets": rows}, text)


@data.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@pass_app
def data_show(app: AppContext, ref: str, fmt: str) -> None:
    """Show a dataset card as Markdown (a Hugging Face dataset card) or JSON (the signed source of truth)."""
    from datacards.render import render_markdown
    from governance.gate.approvals import card_status
    from governance.gate.catalog import DatasetCatalog

    workspace = app.find_workspace()
    catalog = DatasetCatalog(workspace)
    name, version = catalog.resolve(ref)
    card = catalog.read_card(name, version)
    card_status(workspace, card)  # the card and its decision files must be what the log recorded (exit 5)
    if fmt == "json" or app.json:
        click.echo(json.dumps(json.loads(card.canonical_json()), indent=2, sort_keys=True))
    else:
        click.echo(render_markdown(card, catalog.decisions(name, version)))


@data.command("approve")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--note", default="", help="A note stored with the approval.")
@pass_app
def data_approve(app: AppContext, ref: str, note: str) -> None:
    """Approve a dataset card's digest (compliance; a signed entry in the audit log).

    Counts only under the registered policy the card was ingested under: its approver roles, quorum and
    self-approval rule. Changing one byte of the card or data voids the approval.
    """
    _decide(app, ref, "approved", note)


@data.command("reject")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--reason", required=True, help="Why the dataset is rejected.")
@pass_app
def data_reject(app: AppContext, ref: str, reason: str) -> None:
    """Reject a dataset card (compliance; logged); it voids earlier approvals."""
    _decide(app, ref, "rejected", reason)


def _decide(app: AppContext, ref: str, decision: str, note: str) -> None:
    from governance.gate.approvals import decide
    from governance.gate.catalog import DatasetCatalog
    from governance.session import open_session

    workspace = app.find_workspace()
    name, version = DatasetCatalog(workspace).resolve(ref)
    action = "data approve" if decision == "approved" else "data reject"
    with open_session(workspace, app.identity, ["compliance", "admin"], action) as session:
        signed, status = decide(session, f"{name}@{version}", decision, note)  # type: ignore[arg-type]
    app.emit(
        {"dataset": f"{name}@{version}", "decision": decision, "status": status.status,
         "approvals": len(status.counted), "quorum": status.quorum, "card_digest": signed.card_digest},
        f"{decision} {name}@{version} as {signed.by_name} (card sha256:{signed.card_digest[:12]}); "
        f"status: {status.status} ({len(status.counted)} of {status.quorum} approval(s))",
    )


# --- reports --------------------------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Read and verify a run's bias, evaluation, transparency and provenance reports."""


@report.command("show")
@click.argument("run_id")
@click.option("--kind", type=click.Choice(["bias", "evaluation", "transparency", "provenance"]), default="bias",
              show_default=True)
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="md and json print the report; html prints the page's path.")
@click.option("--open", "open_it", is_flag=True, help="Open the HTML page in a browser.")
@pass_app
def report_show(app: AppContext, run_id: str, kind: str, fmt: str, open_it: bool) -> None:
    """Show one of a run's reports: Markdown, JSON (the source of truth), or the HTML page."""
    from governance.errors import ConfigError
    from governance.runs import find_run

    folder = find_run(app.find_workspace(), run_id)
    fmt = "json" if app.json and fmt == "md" else fmt
    path = folder.reports / f"{kind}.{'html' if open_it else fmt}"
    if not path.is_file():
        raise ConfigError(f"run {run_id} has no {path.name}", hint=f"reports are in {folder.reports}")
    if open_it:
        import webbrowser

        webbrowser.open(path.as_uri())
    if fmt == "html" or open_it:
        click.echo(str(path))
    else:
        click.echo(path.read_text().rstrip("\n"))


@report.command("verify")
@click.argument("run_id")
@pass_app
def report_verify(app: AppContext, run_id: str) -> None:
    """Check that a run's reports are the ones the audit log recorded (exit 5 otherwise).

    Verifies the audit log first, then compares every report file's sha256 with the digests logged
    when the run wrote them, recomputes the release verdict from the bias report (a contradicting claim in the
    log is exit 5), and checks the provenance attestation's signature.
    """
    from governance.report_check import verify_run_reports

    checked, state = verify_run_reports(app.find_workspace(), run_id)
    app.emit({"run_id": run_id, "files": checked, "verdict": state.verdict, "releasable": state.releasable},
             f"reports of {run_id} verified: {len(checked)} file(s) match the audit log; provenance signature valid\n"
             f"release: {'releasable' if state.releasable else 'not releasable'} ({state.explain()})")


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
    from governance.auditing import require_no_findings, verify_workspace_log

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
    from governance.auditing import iter_log

    workspace = app.find_workspace()
    names = {m.key_id: m.name for m in _ledger(workspace).members()}
    entries = list(iter_log(workspace, since=since, event=event_type))
    if app.json:
        app.emit({"entries": [e.model_dump() for e in entries]}, "")
        return
    for entry in entries:
        payload = ", ".join(f"{k}={_short(v)}" for k, v in sorted(entry.payload.items()))
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
    from governance.auditing import latest_checkpoint_text
    from governance.fsutil import write_private_file

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
    from governance.auditing import prove_entry

    proof = prove_entry(app.find_workspace(), seq, checkpoint)
    click.echo(json.dumps(proof, indent=2, sort_keys=True))


# --- entry point ----------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Let ``--json`` and ``-v`` stand anywhere, as users type them, by moving them before the command."""
    head: list[str] = []
    rest: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        (head if arg in GLOBAL_FLAGS else rest).append(arg)
    return head + rest


def _report_error(error: GovtrainError, *, json_mode: bool, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    if json_mode:
        click.echo(json.dumps(error.to_json(), sort_keys=True))
    else:
        click.echo(error.diagnostics(), err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: run the CLI and turn every outcome into one exit code."""
    from governance.errors import ConfigError, UnexpectedError

    args = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    json_mode = "--json" in args
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cli.main(args=args, prog_name="govtrain", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GovtrainError as error:
        _report_error(error, json_mode=json_mode, verbose=verbose)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        _report_error(GovtrainError("aborted"), json_mode=json_mode, verbose=False)
        sys.exit(130)
    except click.ClickException as error:
        ctx = getattr(error, "ctx", None)
        command = ctx.command_path if ctx is not None else "govtrain"
        usage = ConfigError(error.format_message(), hint=f"see '{command} --help'")
        _report_error(usage, json_mode=json_mode, verbose=verbose)
        sys.exit(2)
    except KeyboardInterrupt:
        _report_error(GovtrainError("interrupted"), json_mode=json_mode, verbose=False)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the one place unexpected errors become exit 1
        # The message of a foreign exception may quote data; show only its type and where it came from.
        frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        where = f" in {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        unexpected = UnexpectedError(
            f"unexpected {type(error).__name__}{where}",
            hint="rerun with -v for the traceback, and please report it",
        )
        if verbose:
            traceback.print_exception(error, file=sys.stderr)
        _report_error(unexpected, json_mode=json_mode, verbose=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
