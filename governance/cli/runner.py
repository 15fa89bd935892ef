"""``govtrain runner ...``: a service identity executes engineers' run requests under its own key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from governance.cli.app import AppContext, cli, ledger_of, pass_app

if TYPE_CHECKING:
    from governance.runner.service import JobOutcome

NPROC = click.option("--nproc", type=click.IntRange(1, 1024), default=1, show_default=True,
                     help="Processes per job: more than 1 runs it under torchrun --nproc-per-node N.")


def _emit_job(app: AppContext, job: JobOutcome | None, *, raise_error: bool) -> None:
    if job is None:
        app.emit({"executed": None}, "no queued run requests")
        return
    if job.error is not None:
        if raise_error:
            raise job.error
        app.progress(f"request {job.request_id}: " + job.error.diagnostics().replace("\n", "; "))
        return
    assert job.outcome is not None
    app.emit({"request_id": job.request_id, "requested_by": job.requested_by, **job.outcome.result},
             f"request {job.request_id} (from {job.requested_by}) executed by the runner as run {job.run_id}\n"
             + job.outcome.text)


@cli.group(invoke_without_command=True)
@click.option("--once", is_flag=True, help="Execute the oldest queued run request, then stop.")
@NPROC
@click.pass_context
def runner(ctx: click.Context, once: bool, nproc: int) -> None:
    """Execute engineers' run requests under this runner's own key (runner role).

    An engineer submits with 'govtrain run --submit CONFIG'; the runner re-reads the stored config, refuses
    it (exit 5) unless its digest is the one the request signed, and trains it as 'govtrain run' does, signing
    the run's entries, reports and provenance itself. Acts as --as NAME / GOVTRAIN_IDENTITY, which must hold
    the runner role (exit 6 otherwise), on a workspace this runner pinned ('govtrain trust').
    """
    if ctx.invoked_subcommand is not None:
        return
    if not once:
        raise click.UsageError("say what to do: --once, or a command (serve, queue)")
    from governance.runner.service import execute_next

    app = ctx.find_object(AppContext)
    assert app is not None
    job = execute_next(app.find_workspace(), app.identity, nproc=nproc, quiet=app.json, progress=app.progress)
    _emit_job(app, job, raise_error=True)


@runner.command("serve")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds between looks at the queue when it is empty.")
@NPROC
@pass_app
def runner_serve(app: AppContext, poll: float, nproc: int) -> None:
    """Execute queued run requests as they come, until Ctrl-C or SIGTERM (which stop it between jobs)."""
    from governance.runner.service import StopSignal, serve

    stop = StopSignal(app.progress)
    with stop.installed():
        taken = serve(app.find_workspace(), app.identity, poll=poll, nproc=nproc, quiet=app.json,
                      progress=app.progress, should_stop=lambda: stop.requested,
                      report=lambda job: _emit_job(app, job, raise_error=False))
    app.emit({"executed": taken}, "")


@runner.command("queue")
@pass_app
def runner_queue(app: AppContext) -> None:
    """List the run requests waiting for a runner, oldest first (from the log)."""
    from governance.runner.queue import queue_state

    workspace = app.find_workspace()
    ledger = ledger_of(workspace)
    rows = []
    for request in queue_state(workspace, ledger).queued():
        member = ledger.member_by_key(request.key_id)
        rows.append({"request_id": request.request_id, "requested_by": member.name if member else request.key_id,
                     "time": request.time, "config_digest": request.config_digest})
    app.emit({"queued": rows}, "\n".join(f"{r['request_id']}  {r['requested_by']:<12} {r['time']}  "
                                         f"config sha256:{r['config_digest'][:12]}" for r in rows)
             or "no queued run requests")


@runner.command("execute", hidden=True)
@click.argument("request_id")
@pass_app
def runner_execute(app: AppContext, request_id: str) -> None:
    """One torchrun process of a request the runner took (started by 'runner --nproc N')."""
    from governance.runner.service import execute_rank

    outcome = execute_rank(app.find_workspace(), app.identity, request_id, quiet=app.json, progress=app.progress)
    app.emit(outcome.result, outcome.text)
