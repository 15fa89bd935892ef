"""``make bench``: run every benchmark with sizes that fit ~20 minutes on 2 CPUs, then regenerate README.md.

    python benchmarks/run_all.py [--only gate,cli] [--table-only]

Each subject runs in its own process (so one's imports and memory do not bias another's). Sizes here are the
quick ones; each script's own flags give the full sizes (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBJECTS: dict[str, list[str]] = {
    "pii": ["bench_pii.py", "--texts", "300", "--repeats", "3"],
    "gate": ["bench_gate.py", "--rows", "20000", "--large-rows", "1000000"],
    "crypto": ["bench_crypto.py", "--mib", "256", "--repeats", "3"],
    "audit": ["bench_audit.py"],
    "training": ["bench_training.py", "--model", "tiny", "--steps", "60", "--batch", "16"],
    "run-tiny": ["bench_run.py", "--model", "tiny"],
    "cli": ["bench_cli.py", "--repeats", "10"],
}


def load(name: str) -> dict[str, Any] | None:
    path = HERE / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def rows() -> list[tuple[str, str, str, str, str]]:
    """(subject, measure, govtrain, comparison, ratio) for every results file present."""
    out: list[tuple[str, str, str, str, str]] = []
    if (p := load("pii")) is not None:
        for corpus, r in p["corpora"].items():
            rps = r["rows_per_s"]
            out.append(("PII scrub", f"{corpus}, {r['texts']} texts, rows/s", (f"{rps['govtrain_w1']:.0f} (1 proc), "
                        f"{rps['govtrain_w2']:.0f} (2 procs)"), (f"naive presidio {rps['presidio_naive']:.0f}; "
                        f"spaCy floor {rps['spacy_floor']:.0f}"),
                        f"{r['ratios']['govtrain_w1_vs_naive']:.2f}x naive; {r['ratios']['govtrain_w1_vs_spacy_floor']:.2f}x floor"))
        det = p["detection"]["per_entity"]
        out.append(("PII recall/precision", "synth_dataset_v2", ", ".join(
            f"{e} {v['recall']:.2f}/{v['precision'] if v['precision'] is not None else float('nan'):.2f}"
            for e, v in det.items()), "-", "-"))
    if (g := load("gate")) is not None:
        s = g["gate"]["steps"]
        out.append(("Gate end to end", f"{g['inputs']['rows']:,} rows: " + ", ".join(
            f"{k} {v['seconds']:.1f}s" for k, v in s.items()), f"{g['gate']['rows_per_s']:.0f} rows/s",
            "-", f"scrub {g['gate']['scrub_share']:.0%} of time"))
        large = g["large_file"]
        out.append(("Gate memory", f"{g['inputs']['large_rows']:,} short rows ({large['file_mib']:.0f} MiB file)",
                    f"peak RSS {max(v['peak_rss_mib'] for v in large['steps'].values()):.0f} MiB",
                    f"Arrow table {large['arrow_table_mib']:.0f} MiB", "-"))
    if (c := load("crypto")) is not None:
        m = c["median_mib_per_s"]
        enc = next(v for k, v in m.items() if "stream" in k and "encrypt" in k)
        dec = next(v for k, v in m.items() if "stream" in k and "decrypt" in k)
        one_enc = next(v for k, v in m.items() if "oneshot" in k and "encrypt" in k)
        out.append(("Encryption", f"{c['inputs'].get('mib', 256)} MiB, MiB/s", f"stream enc {enc:.0f} / dec {dec:.0f}",
                    f"one-shot AESGCM enc {one_enc:.0f}", f"{c['ratios']['stream_vs_oneshot_encrypt']:.2f}x"))
    if (a := load("audit")) is not None:
        v = a["verify"]["single_process"]["entries_per_s"]
        out.append(("Audit verify", f"{a['parameters']['entries']:,} entries", f"{v:,.0f} entries/s",
                    f"sha256 of the same file {a['sha256_read_mib_per_s']:.0f} MiB/s", "-"))
        if "single_process_witnessed" in a["verify"]:
            w = a["verify"]["single_process_witnessed"]["entries_per_s"]
            out.append(("Audit verify, witnessed prefix", "what every command pays after a first verification",
                        f"{w:,.0f} entries/s", f"full check {v:,.0f} entries/s", f"{w / v:.1f}x"))
        out.append(("Audit append", "with fsync", f"{a['appends']['single_process_per_s']:.0f}/s (1 proc)",
                    f"{a['appends']['4_processes_total_per_s']:.0f}/s (4 procs total)", "-"))
        ip = a["inclusion_proof"]
        out.append(("Inclusion proof", f"{a['parameters']['entries']:,} entries",
                    f"{ip['json_bytes_median']} B, verify {ip['verify_seconds_median'] * 1000:.1f} ms",
                    f"produce {ip['prove_seconds_median']:.2f} s", "-"))
    for name in ("training", "training-minilm"):
        if (t := load(name)) is not None:
            sps = t["median_samples_per_s"]
            inputs = t["inputs"]
            out.append(("Training loop", (f"{inputs['model']}, {inputs['steps']} steps, batch {inputs['batch']}, "
                        f"{inputs['device']} {inputs['precision']}"), f"{sps['trainer']:.0f} samples/s",
                        f"HF Trainer {sps['hf_trainer']:.0f}", f"{t['ratio_trainer_over_hf']:.2f}x"))
    for model in ("tiny", "minilm"):
        if (r := load(f"run-{model}")) is not None:
            sec = r["seconds"]
            out.append(("govtrain run overhead", f"{model}, {r['inputs']['steps']} steps",
                        f"{sec['command_wall']:.1f} s whole command", f"{sec['training']:.1f} s training",
                        f"{r['ratios']['command_over_training']:.2f}x"))
    if (cl := load("cli")) is not None:
        m = cl["median_seconds"]
        out.append(("CLI start-up", "median of runs", (f"--help {m['govtrain_help'] * 1000:.0f} ms; audit log "
                    f"{m['govtrain_audit_log'] * 1000:.0f} ms"), f"bare python {m['python_c_pass'] * 1000:.0f} ms",
                    f"{cl['ratios']['help_over_bare_python']:.1f}x"))
    return out


def write_table() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    marker_start, marker_end = "<!-- results:start -->", "<!-- results:end -->"
    table = ["| subject | measure | govtrain | comparison | ratio |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows()]
    when = {n: (load(n) or {}).get("when", "-") for n in SUBJECTS}
    table.append("")
    table.append("Measured: " + ", ".join(f"{n} {w}" for n, w in when.items() if w != "-") + ".")
    head, _, rest = text.partition(marker_start)
    _, _, tail = rest.partition(marker_end)
    readme.write_text(head + marker_start + "\n" + "\n".join(table) + "\n" + marker_end + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated subjects: " + ", ".join(SUBJECTS))
    parser.add_argument("--table-only", action="store_true", help="regenerate the README table only")
    args = parser.parse_args()
    if not args.table_only:
        chosen = args.only.split(",") if args.only else list(SUBJECTS)
        for name in chosen:
            start = time.perf_counter()
            print(f"== {name}", flush=True)
            subprocess.run([sys.executable, str(HERE / SUBJECTS[name][0]), *SUBJECTS[name][1:]], check=True)
            print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
    write_table()
    print(f"table written to {HERE / 'README.md'}")


if __name__ == "__main__":
    main()
