"""``govtrain report ...``: read and verify a run's reports."""

from __future__ import annotations

import click

from governance.cli.app import AppContext, cli, pass_app

# --- reports --------------------------------------------------------------------------------------------


@cli.group()
def report() -> None:
    """Read and verify a run's bias, evaluation, transparency and provenance reports."""


@report.command("show")
@click.argument("run_id")
@click.option("--kind", type=click.Choice(["bias", "evaluation", "transparency", "provenance", "privacy"]), default="bias",
              show_default=True)
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default="md", show_default=True,
              help="md and json print the report; html prints the page's path.")
@click.option("--open", "open_it", is_flag=True, help="Open the HTML page in a browser.")
@pass_app
def report_show(app: AppContext, run_id: str, kind: str, fmt: str, open_it: bool) -> None:
    """Show one of a run's reports: Markdown, JSON (the source of truth), or the HTML page."""
    from governance.errors import ConfigError
    from governance.run.folder import find_run

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

    Verifies the audit log first, then compares every report file's sha256 with the digests logged when the run
    wrote them, recomputes every verdict from its evidence under the registered policy (group counts for bias,
    stored losses for privacy; the DP claim against the logged config; the splits against the gated card), and
    checks the provenance signature is the run's executor's. Any claim that differs is exit 5, naming it.
    """
    from governance.run.verify import verify_run_reports

    checked, state = verify_run_reports(app.find_workspace(), run_id)
    app.emit({"run_id": run_id, "files": checked, "verdict": state.verdict, "releasable": state.releasable},
             f"reports of {run_id} verified: {len(checked)} file(s) match the audit log; provenance signature valid\n"
             f"recomputed: {state.summary()}\nrelease: {state.position} ({state.explain()})")
