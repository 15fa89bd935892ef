"""``govtrain run`` and ``govtrain runs ...``: training, and what became of it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app


@cli.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--resume", metavar="RUN_ID", help="Continue this run from its last checkpoint.")
@click.option("--dry-run", is_flag=True, help="Check config, policy and approvals; print what would run; stop.")
@click.option("--submit", is_flag=True,
              help="Do not train here: check as a run would, then ask a runner to execute it (signed request).")
@pass_app
def run(app: AppContext, config: Path, resume: str | None, dry_run: bool, submit: bool) -> None:
    """Train a model as CONFIG describes, once every gate passes (engineer).

    Before anything is built: the config and policy are validated (exit 2), the config is held to the
    policy's training limits and the dataset's approvals, vault digest and policy are re-checked (exit 4
    or 5). --dry-run stops there and prints the plan. Then the data is decrypted into memory, split,
    and trained on; checkpoints and the model are stored encrypted; reports are written. Works under
    torchrun (rank 0 alone logs and writes).

    --submit makes the same checks, stores the config in the workspace (the dataset pinned to the version
    that passed) and signs a run request with its digest; a runner ('govtrain runner') then executes it
    under its own key. A policy with release.require_runner releases only such runs.
    """
    if submit:
        if resume or dry_run:
            raise click.UsageError("--submit asks a runner for a new run: no --resume or --dry-run")
        _submit(app, config)
        return
    from governance.run.command import run_command

    outcome = run_command(app.find_workspace, config, app.identity, resume=resume, dry_run=dry_run,
                          quiet=app.json, progress=app.progress)
    app.emit(outcome.result, outcome.text)


def _submit(app: AppContext, config: Path) -> None:
    from governance.runner.requests import submit_request

    workspace = app.find_workspace()
    request = submit_request(workspace, config, app.identity)
    app.emit({"request_id": request.request_id, "config_digest": request.config_digest, "dataset": request.dataset,
              "policy": request.policy, "policy_digest": request.policy_digest, "stored": str(request.path)},
             f"run request {request.request_id} submitted: {request.dataset} (approved by "
             f"{', '.join(request.approvers)}), policy {request.policy}, config sha256:{request.config_digest[:12]} "
             f"stored in {request.path}\n"
             f"next: the runner operator runs 'govtrain --workspace {workspace.root} --as RUNNER runner --once' "
             "(or keeps 'govtrain runner serve' running); 'govtrain runs list' shows the run once it started")


@cli.group()
def runs() -> None:
    """List and inspect training runs."""


@runs.command("list")
@pass_app
def runs_list(app: AppContext) -> None:
    """List the workspace's runs: status, dataset, steps, headline test metric, each report's verdict recomputed from
    its evidence (PASS / FAIL / NOT JUDGED) and the release position."""
    from governance.errors import GovtrainError
    from governance.run.folder import list_runs
    from governance.run.release import release_state
    from governance.run.status import checked_status

    workspace = app.find_workspace()
    ledger = ledger_of(workspace)
    rows = []
    for folder in list_runs(workspace):
        row = checked_status(folder, ledger.run(folder.run_id))
        metrics = row.get("test_metrics") or {}
        name = next((m for m in ("accuracy", "perplexity", "loss") if isinstance(metrics.get(m), int | float)), None)
        row["headline"] = {name: metrics[name]} if name else {}
        try:
            state = release_state(workspace, folder.run_id, ledger)
            row["verdict"], row["releasable"] = state.verdict, state.releasable
            row["verdicts"], row["release"] = {o.report: o.outcome for o in state.outcomes}, state.position
        except GovtrainError as exc:
            if exc.exit_code == 5:
                raise
            row["verdict"], row["releasable"], row["verdicts"], row["release"] = "-", False, {}, "-"
        rows.append(row)
    text = "\n".join(
        f"{r['run_id']}  {r.get('status', '?'):<9} {r.get('dataset', '-'):<20} steps {r.get('steps', '-')!s:<6} "
        + (" ".join(f"{k} {v:.4f}" for k, v in r["headline"].items()) or "-").ljust(18)
        + " " + (", ".join(f"{k} {v}" for k, v in r["verdicts"].items()) or "no judged reports") + f"; {r['release']}"
        for r in rows
    ) or "no runs yet (govtrain run CONFIG)"
    app.emit({"runs": rows}, text)


@runs.command("show")
@click.argument("run_id")
@pass_app
def runs_show(app: AppContext, run_id: str) -> None:
    """Show a run: status, metrics, best step, artifacts with digests, and its release position from the log."""
    from governance.errors import GovtrainError
    from governance.run.folder import find_run
    from governance.run.release import release_state
    from governance.run.status import checked_status

    workspace = app.find_workspace()
    ledger = ledger_of(workspace)
    record = ledger.run(run_id)
    status = checked_status(find_run(workspace, run_id), record)
    if record is not None and record.replays:  # auditors' re-executions of the run, from the log
        status["replays"] = [{"by": member.name if (member := ledger.member_by_key(r.key_id)) else r.key_id,
                              "outcome": r.outcome, "segments": r.segments, "of": r.segments_total, "entry": r.seq}
                             for r in record.replays]
    try:
        state = release_state(workspace, run_id, ledger)
        status["release"] = {"verdict": state.verdict, "privacy": state.privacy, "releasable": state.releasable,
                             "position": state.position, "why": state.explain(),
                             "verdicts": {o.report: o.outcome for o in state.outcomes},
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
    from governance.run.release import approve_release
    from governance.trust.session import open_session

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
@click.option("--merged", is_flag=True,
              help="LoRA runs: also write the base model with the adapters merged in (OUT/merged/).")
@pass_app
def runs_export(app: AppContext, run_id: str, out: Path, merged: bool) -> None:
    """Write a decrypted copy of a releasable run's model (engineer, logged).

    Refuses (exit 4) a run that did not finish, whose bias verdict blocked release, or that still needs a
    compliance release approval ('govtrain runs approve'). Files appear in OUT only once all were verified.
    """
    from governance.run.export import export_model
    from governance.trust.session import open_session

    workspace = app.find_workspace()
    with open_session(workspace, app.identity, ["engineer"], "runs export") as session:
        files = export_model(session, run_id, out, merged=merged)
    app.emit({"run_id": run_id, "out": str(out), "files": files},
             f"exported {len(files)} file(s) of {run_id} to {out}")
