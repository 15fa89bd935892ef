"""CLI start-up: ``govtrain --help`` and ``govtrain audit log`` next to a bare ``python -c pass``.

    python benchmarks/bench_cli.py [--repeats 10]

Writes ``benchmarks/results/cli.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    govtrain = [sys.executable, "-m", "governance.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HOME": tmp, "XDG_CONFIG_HOME": f"{tmp}/config"}
        workspace = f"{tmp}/.govtrain"
        subprocess.run([*govtrain, "--workspace", workspace, "--as", "bench", "init"], env=env, check=True,
                       capture_output=True)

        def run(cmd: list[str]) -> None:
            subprocess.run(cmd, env=env, check=True, capture_output=True)

        baseline, _ = median_seconds(lambda: run([sys.executable, "-c", "pass"]), args.repeats)
        help_s, help_all = median_seconds(lambda: run([*govtrain, "--help"]), args.repeats)
        log_s, log_all = median_seconds(lambda: run([*govtrain, "--workspace", workspace, "audit", "log"]),
                                        args.repeats)
    results = {"inputs": {"repeats": args.repeats},
               "median_seconds": {"python_c_pass": baseline, "govtrain_help": help_s, "govtrain_audit_log": log_s},
               "all_seconds": {"govtrain_help": help_all, "govtrain_audit_log": log_all},
               "ratios": {"help_over_bare_python": help_s / baseline, "audit_log_over_bare_python": log_s / baseline}}
    path = write_results("cli", results)
    print(f"govtrain --help {help_s * 1000:.0f} ms, audit log {log_s * 1000:.0f} ms "
          f"(bare python {baseline * 1000:.0f} ms) -> {path}")


if __name__ == "__main__":
    main()
