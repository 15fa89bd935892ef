"""Training progress as whole lines when stderr is not a terminal (logs, pipes, CI)."""

from __future__ import annotations

import pytest

from trainer.loop import LineProgress


def test_line_progress_prints_whole_lines_every_tenth(capsys: pytest.CaptureFixture[str]) -> None:
    bar = LineProgress(total=50, initial=0, every_s=3600)
    for step in range(50):
        bar.set_postfix(loss=f"{1.0 / (step + 1):.4f}")
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 10  # one per tenth, the last at 100%
    assert lines[0].startswith("training: step 5/50 (10%), loss 0.2000, ")
    assert lines[-1].startswith("training: step 50/50 (100%)")
