"""``govtrain audit replay``: re-execute randomly drawn segments of a run and its test inference."""

from __future__ import annotations

import click

from governance.cli.app import AppContext, pass_app
from governance.cli.audit import audit


@audit.command("replay")
@click.argument("run_id")
@click.option("--segments", type=click.IntRange(min=1), default=None,
              help="Segments (between consecutive kept checkpoints) to draw at random and re-execute; more than the "
                   "run has re-executes all of them. Default: what the run's policy requires for release "
                   "(release.require_replay), at least 3.")
@click.option("--eval/--no-eval", "evaluate", default=True, show_default=True,
              help="Also re-run the test inference with the released model and recompute the evaluation, bias and "
                   "privacy figures.")
@pass_app
def audit_replay(app: AppContext, run_id: str, segments: int | None, evaluate: bool) -> None:
    """Re-execute drawn segments of a finished run and compare them with its logged checkpoints (exit 5 on any
    difference, naming it).

    Proof-of-Learning: the draw's seed comes from the operating system, so the run's engineer cannot know which
    segments will be checked. Each segment starts from a kept checkpoint whose digest is in the log, on data
    rebuilt from the gated card and the logged config; the last segment ends at the released model. Runs that
    cannot be reproduced bit for bit here (torchrun, CUDA, another CPU kernel set or library version) are refused
    (exit 4). Acts as an auditor or compliance officer, with the master key; the outcome, seed and draw are signed
    into the log (run.replayed).
    """
    from governance.run.replay import audit_replay as replay

    result = replay(app.find_workspace(), app.identity, run_id, segments=segments, evaluate=evaluate,
                    progress=app.progress)
    steps = sum(c.end_step - c.start_step for c in result.checks)
    lines = [f"run {run_id}: replay passed: {len(result.checks)} of {result.segments_total} segments "
             f"({steps} of {result.steps_total} steps) re-executed bit for bit (seed {result.seed})"]
    lines += [f"  segment {c.segment}: steps {c.start_step}-{c.end_step} matched ({c.seconds:.1f} s)"
              for c in result.checks]
    lines.append("  release: the final checkpoint saves the released model's files")
    if result.evaluation is not None:
        lines.append(f"  eval: {', '.join(result.evaluation.compared)} recomputed from replayed predictions, equal"
                     + (f" (not recomputed: {', '.join(result.evaluation.not_recomputed)})"
                        if result.evaluation.not_recomputed else ""))
    ratio = f", {result.seconds / result.train_time_s:.0%} of the run's training time" \
        if result.train_time_s else ""
    lines.append(f"  {result.seconds:.1f} s{ratio}")
    app.emit(result.payload(), "\n".join(lines))
