"""``govtrain data ingest`` of a million rows end to end on this machine: the real command, scrub included.

    python benchmarks/bench_ingest.py [--rows 1000000] [--workers 2] [--engine auto]

A temporary workspace (admin, a compliance officer, an engineer) is made through the CLI, then the engineer
ingests a CSV of ``--rows`` generated short rows (``bench_gate.short_rows``: "short note number N", a binary label,
one of five groups) with the default policy: streaming validation, the PII scrub (presidio with spaCy, on a local Ray
with ``--workers`` workers under ``auto``), encrypted shards, the card and the signed log entry. Measured: the
command's wall time and the peak RSS of its own process (the driver; Ray's workers are separate processes, each
loading its own NER pipeline, about 0.5 GiB). Generated text holds almost no PII, so the scrub runs faster per row
than on real text (``bench_scale.py`` measures real rows); the time is an end-to-end figure for short rows, not a
scrub rate to project real corpora from. Writes ``benchmarks/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gate import short_rows
from common import REPO, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", choices=["auto", "local", "ray"], default="auto")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.conftest import invoke_cli
    from tests.governance.helpers import make_team

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(HOME=tmp, XDG_CONFIG_HOME=f"{tmp}/config")
        os.environ.pop("GOVTRAIN_MASTER_KEY", None)
        team = make_team(invoke_cli, Path(tmp))
        data = short_rows(Path(tmp) / "rows.csv", args.rows)
        workers = 1 if args.engine == "local" else args.workers
        command = [sys.executable, "-m", "governance.cli", "--workspace", str(team.workspace), "--as", "erin",
                   "--json", "data", "ingest", str(data), "--name", "notes", "--spec",
                   str(REPO / "examples/redditbias-spec.yaml"), "--workers", str(workers), "--engine", args.engine]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr[-3000:]}{done.stdout[-3000:]}")
        card = json.loads(done.stdout)
        size = data.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    results = {"inputs": {"rows": args.rows, "file_mib": round(size / 2**20, 1), "workers": workers,
                          "engine": args.engine},
               "seconds": round(wall, 1), "rows_per_s": round(args.rows / wall, 1),
               "driver_peak_rss_mib": round(peak, 1), "card": {k: card.get(k) for k in ("rows", "shards", "version")
                                                                if k in card},
               "load_average_1min_at_end": round(os.getloadavg()[0], 2)}
    out = write_results("ingest", results)
    print(json.dumps(results, indent=2), f"-> {out}")


if __name__ == "__main__":
    main()
