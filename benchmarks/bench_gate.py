"""The data gate end to end: time and peak memory per step (load, validate, scrub, encrypt, card).

    python benchmarks/bench_gate.py [--rows 20000] [--large-rows 1000000]

Rows are RedditBias comments repeated (each copy tagged, so they stay distinct) to reach ``--rows``; the steps
are the same functions ``govtrain data ingest`` runs, timed one by one. The large file (``--large-rows`` short
rows) measures peak memory of loading and validating only: scrubbing a million texts takes longer than this
benchmark's budget, and its memory is per batch. Writes ``benchmarks/results/gate.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, PeakRss, write_results


def reddit_rows(path: Path, rows: int) -> Path:
    with open(SHARED / "redditbias/redditbias_annotated_combined.csv", newline="") as handle:
        source = list(csv.DictReader(handle))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["comment", "bias_sent", "target_group"])
        writer.writeheader()
        stride = max(1, len(source) // rows)  # spread a small sample over every target group
        for i in range(rows):
            row = source[(i * stride) % len(source)]
            copy = i // len(source)
            writer.writerow({"comment": row["comment"] + (f" (copy {copy})" if copy else ""),
                             "bias_sent": row["bias_sent"], "target_group": row["target_group"]})
    return path


def short_rows(path: Path, rows: int) -> Path:
    with open(path, "w", newline="") as handle:
        handle.write("comment,bias_sent,target_group\n")
        groups = ["female", "black", "lgbtq", "jews", "muslims"]
        handle.writelines(f"short note number {i},{i % 2},{groups[i % 5]}\n" for i in range(rows))
    return path


def timed(name: str, steps: dict[str, dict[str, float]], fn):  # type: ignore[no-untyped-def]
    with PeakRss() as rss:
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
    steps[name] = {"seconds": seconds, "peak_rss_mib": rss.peak_mib}
    print(f"  {name:<9} {seconds:8.2f} s   peak RSS {rss.peak_mib:7.0f} MiB", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from datacards.build import representation
    from governance.crypto import MasterKey, generate_master_key, write_encrypted_file
    from governance.gate.loading import load_table
    from governance.gate.pii import scrub_text_columns
    from governance.gate.spec import load_dataset_spec
    from governance.gate.validation import validate_table
    from policies import load_policy

    spec = load_dataset_spec(Path(__file__).resolve().parent.parent / "examples/redditbias-spec.yaml")
    policy = load_policy("default")
    kek = MasterKey.from_bytes(generate_master_key(), "benchmark")
    results: dict[str, object] = {"inputs": {"rows": args.rows, "large_rows": args.large_rows}}
    with tempfile.TemporaryDirectory() as tmp:
        data = reddit_rows(Path(tmp) / "gate.csv", args.rows)
        print(f"gate on {args.rows:,} RedditBias rows ({data.stat().st_size / 2**20:.1f} MiB)")
        steps: dict[str, dict[str, float]] = {}
        loaded = timed("load", steps, lambda: load_table(data, spec))
        timed("validate", steps, lambda: validate_table(loaded.table, spec, policy.validation))
        scrubbed = timed("scrub", steps, lambda: scrub_text_columns(loaded.table, spec.text_columns, policy.pii))

        def encrypt() -> str:
            sink = io.BytesIO()
            pq.write_table(scrubbed.table, sink, compression="zstd")
            return write_encrypted_file(Path(tmp) / "data.parquet.enc", sink.getvalue(), kek)

        timed("encrypt", steps, encrypt)
        timed("card", steps, lambda: representation(scrubbed.table, ["target_group"], "bias_sent", [0, 1]))
        total = sum(s["seconds"] for s in steps.values())
        results["gate"] = {"steps": steps, "total_seconds": total, "rows_per_s": args.rows / total,
                           "scrub_share": steps["scrub"]["seconds"] / total}
        large = short_rows(Path(tmp) / "large.csv", args.large_rows)
        size = large.stat().st_size / 2**20
        print(f"load + validate {args.large_rows:,} short rows ({size:.0f} MiB)")
        big: dict[str, dict[str, float]] = {}
        table = timed("load", big, lambda: load_table(large, spec))
        timed("validate", big, lambda: validate_table(table.table, spec, policy.validation))
        results["large_file"] = {"file_mib": size, "steps": big,
                                 "arrow_table_mib": table.table.nbytes / 2**20,
                                 "note": "the loader streams batches but the gate keeps the declared columns in one "
                                         "Arrow table (validation needs whole-column statistics); memory grows with "
                                         "the declared columns' size, not with undeclared ones"}
    path = write_results("gate", results)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
