"""Issue 17: the streaming, sharded gate at scale. Results: ``benchmarks/results/scale.json``.

Three measurements, each in fresh subprocesses so peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is the
measured step's own:

1. **Memory and time vs rows** (``rss``): 100k, 1M and 5M generated short rows (a CSV of a text, a binary label
   and one of five groups). Measured: the gate's streaming path without the NER scrub: pass 1 (record batches ->
   mergeable statistics -> great-expectations on the merged statistics), pass 2 (exact duplicate indices before and
   after, post-scrub statistics, encrypted Parquet shards of 100k rows plus manifest), and reading the shards back
   the way the run does. The scrub is left out so that 5M rows finish in minutes on two cores; its cost is
   measured separately (2.) and is linear in rows. For comparison, the in-memory path of before (one Arrow table,
   great-expectations on pandas) at 100k and 1M rows.
2. **Scrub throughput** (``scrub``): the real PII scrub (the default policy's detector) on real rows (``real_pool``:
   every distinct real text in ../shared/data, about 52,700, repeated past that) in process, and on a local Ray Data actor pool with 1 and 2 workers,
   start-up (Ray, one engine load per worker) included; the crossover is where Ray with 2 workers overtakes the
   in-process path.
3. **Projection** of a 1M-row end-to-end ingest on 2, 10 and 100 workers from 1. and 2., with its assumptions.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--rss-rows 100000 1000000 5000000] [--scrub-rows 20000 200000]``.
"""

from __future__ import annotations

import os

for _name, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                      "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false",
                      "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""}.items():
    os.environ.setdefault(_name, _value)

import argparse
import csv
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
sys.path.insert(0, str(REPO))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spec(fmt: str = "csv") -> object:
    from governance.gate.spec import DatasetSpec

    return DatasetSpec(format=fmt, text_columns=["text"], label_column="label", allowed_labels=[0, 1],  # type: ignore[arg-type]
                       sensitive_columns=["group"], source="generated", license="MIT", description="generated rows",
                       collection_process="generated", intended_use="benchmark")


def generate(rows: int, path: Path) -> None:
    """``rows`` distinct short rows (about 30 bytes each)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    step = 500_000
    with pacsv.CSVWriter(path, pa.schema([("text", pa.string()), ("label", pa.int64()), ("group", pa.string())])) as w:
        for first in range(0, rows, step):
            index = range(first, min(rows, first + step))
            w.write_table(pa.table({"text": [f"row {i} says topic {i % 97} is fine" for i in index],
                                    "label": [i % 2 for i in index],
                                    "group": [("a", "b", "c", "d", "e")[i % 5] for i in index]}))


def child_stream(path: Path) -> dict[str, object]:
    """The streaming gate without the NER scrub (see the module docstring); in its own process."""
    from governance.crypto import MasterKey, generate_master_key, master_key_id
    from governance.gate.loading import BatchReader, hash_and_check_file
    from governance.gate.shards import ShardWriter, VaultManifest, iter_vault_tables
    from governance.gate.validation_stats import DatasetStats, HashIndex, collect_stats, validate_stats
    from policies import load_policy

    policy = load_policy(REPO / "policies/default.yaml")
    rules = policy.validation.model_copy(update={"max_input_mib": 10_000})
    spec = _spec()
    raw = generate_master_key()
    kek = MasterKey(key=raw, key_id=master_key_id(raw), source="benchmark")
    times: dict[str, float] = {}
    start = time.perf_counter()
    hash_and_check_file(path, text=True)
    reader = BatchReader(path, spec)  # type: ignore[arg-type]
    stats = DatasetStats()
    with tempfile.TemporaryDirectory() as spill, HashIndex(Path(spill)) as index:
        for batch in reader:  # as governance.gate.ingest._first_pass: statistics, repeats in a bounded index
            repeated = index.repeated_rows(batch, ["text"])
            stats.merge(collect_stats(batch, spec, rules, None, repeated=repeated))  # type: ignore[arg-type]
    report = validate_stats(stats, spec, rules)  # type: ignore[arg-type]
    times["pass1_validate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, HashIndex(Path(tmp)) as before_index, \
            HashIndex(Path(tmp)) as after:
        stored = DatasetStats()
        writer = ShardWriter(Path(tmp), kek)
        for batch in reader:  # as _second_pass (two bounded indexes), with the scrub left out (text unchanged)
            before = before_index.repeated_rows(batch, ["text"])
            again = after.repeated_rows(batch, ["text"])
            assert not (again & ~before).any()
            stored.merge(collect_stats(batch, spec, rules, None, repeated=again))  # type: ignore[arg-type]
            writer.write(batch)
        manifest: VaultManifest = writer.close()
        validate_stats(stored, spec, rules)  # type: ignore[arg-type]
        times["pass2_shards_s"] = time.perf_counter() - start
        start = time.perf_counter()
        from datacards.card import Digests

        card = _FakeCard(Digests(raw_file="-", scrubbed_parquet=manifest.plaintext_digest,
                                 ciphertext=manifest.digest(), shards=len(manifest.shards)), manifest.rows)
        read = sum(t.num_rows for t in iter_vault_tables(Path(tmp) / "manifest.json", card, kek))  # type: ignore[arg-type]
        times["read_shards_s"] = time.perf_counter() - start
        shard_bytes = sum((Path(tmp) / e.file).stat().st_size for e in manifest.shards)
    assert read == reader.rows == report.rows
    return {"rows": reader.rows, "peak_rss_mib": round(_peak_mib(), 1), "shards": len(manifest.shards),
            "vault_mib": round(shard_bytes / 2**20, 2), "validation_success": report.success,
            **{k: round(v, 2) for k, v in times.items()}, "total_s": round(sum(times.values()), 2)}


class _FakeCard:
    """The two card fields ``iter_vault_tables`` reads (the benchmark writes no card)."""

    def __init__(self, digests: object, rows: int) -> None:
        self.digests = digests
        self.rows = type("Rows", (), {"stored": rows})()
        self.ref = "bench@1"
        self.vault_object = "manifest.json"


def child_in_memory(path: Path) -> dict[str, object]:
    """The path of before: one Arrow table, great-expectations on pandas (no scrub either)."""
    from governance.gate.loading import load_table
    from governance.gate.validation import validate_table
    from policies import load_policy

    policy = load_policy(REPO / "policies/default.yaml")
    start = time.perf_counter()
    loaded = load_table(path, _spec())  # type: ignore[arg-type]
    validate_table(loaded.table, _spec(), policy.validation)  # type: ignore[arg-type]
    return {"rows": loaded.rows, "peak_rss_mib": round(_peak_mib(), 1), "total_s": round(time.perf_counter() - start, 2)}


def real_pool() -> list[str]:
    """Every distinct real text in ../shared/data, shuffled with a fixed seed: RedditBias comments, Tiny Shakespeare
    lines, BTC tweets (all sections), Enron e-mail bodies, both CrowS-Pairs sentences and presidio-synth texts
    (about 60,000)."""
    import random

    texts: list[str] = []
    with open(SHARED / "redditbias/redditbias_annotated_combined.csv", newline="") as handle:
        texts += [r["comment"] for r in csv.DictReader(handle)]
    texts += (SHARED / "tinyshakespeare/input.txt").read_text().splitlines()
    for section in sorted((SHARED / "btc").glob("*.conll")):
        tweet: list[str] = []
        for line in section.read_text(encoding="utf-8").splitlines() + [""]:
            if line.strip():
                tweet.append(line.rsplit(" ", 1)[0])
            elif tweet:
                texts.append(" ".join(tweet))
                tweet = []
    with open(SHARED / "aeslc-enron-dev/aeslc_enron_dev.jsonl") as handle:
        texts += [json.loads(line)["body"] for line in handle if line.strip()]
    with open(SHARED / "crows-pairs/crows_pairs_anonymized.csv", newline="") as handle:
        for r in csv.DictReader(handle):
            texts += [r["sent_more"], r["sent_less"]]
    texts += [t["full_text"] for t in json.loads((SHARED / "presidio-synth-pii/synth_dataset_v2.json").read_text())]
    pool = sorted({t for t in texts if t.strip()})
    random.Random(17).shuffle(pool)
    return pool


def real_texts(rows: int) -> list[str]:
    """``rows`` real texts: the pool in its shuffled order, repeated when ``rows`` exceeds it (there are not 200,000
    distinct real texts here; the scrub keeps no cache across rows, so a repeated text costs what it cost the first
    time)."""
    pool = real_pool()
    return [pool[i % len(pool)] for i in range(rows)]


def child_scrub(rows: int, engine: str, workers: int) -> dict[str, object]:
    """Scrub ``rows`` real texts with one engine; start-up (Ray, engine loads) included."""
    import pyarrow as pa

    from governance.gate.loading import BATCH_ROWS
    from governance.gate.pii import load_pii_engine
    from governance.gate.scrub_engines import open_scrub_engine
    from policies import load_policy

    policy = load_policy(REPO / "policies/default.yaml")
    table = pa.table({"text": real_texts(rows)})
    batches = [table.slice(i, BATCH_ROWS) for i in range(0, rows, BATCH_ROWS)]
    start = time.perf_counter()
    pii = load_pii_engine(policy.pii)
    loaded = time.perf_counter() - start
    scrubber = open_scrub_engine("ray" if engine == "ray" else "local", pii, ["text"], workers, None, None)
    try:
        out = list(scrubber.scrub(batches))
    finally:
        scrubber.close()
    total = time.perf_counter() - start
    findings = sum(sum(s.scrubbed.stats.findings.values()) for s in out)
    return {"rows": rows, "distinct_texts": min(rows, len(real_pool())), "engine": engine, "workers": workers,
            "load_average_1min_at_end": round(os.getloadavg()[0], 2), "seconds": round(total, 1),
            "driver_engine_load_s": round(loaded, 1), "rows_per_s": round(rows / total, 1), "findings": findings}


def run_child(*args: str, timeout: int = 3600) -> dict[str, object]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--rss-rows", type=int, nargs="*", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--in-memory-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--scrub-rows", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--engines", default="local-1,ray-1,ray-2",
                        help="which scrub configurations to measure (engine-workers), comma-separated")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (child_stream(Path(rest[0])) if kind == "stream" else child_in_memory(Path(rest[0]))
                  if kind == "memory" else child_scrub(int(rest[0]), rest[1], int(rest[2])))
        print(json.dumps(result))
        return
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results |= {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "method": __doc__,
    }
    stream, memory = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rss_rows:
            path = Path(tmp) / f"rows-{rows}.csv"
            generate(rows, path)
            stream.append({**run_child("stream", str(path)), "file_mib": round(path.stat().st_size / 2**20, 1)})
            print("stream", stream[-1], flush=True)
            if rows in args.in_memory_rows:
                memory.append(run_child("memory", str(path)))
                print("in-memory", memory[-1], flush=True)
            path.unlink()
    if stream:  # merged with earlier rows counts, a new measurement replacing the old one of the same size
        earlier = results.get("memory_vs_rows", {})
        for key, new in (("streaming_gate_without_scrub", stream), ("in_memory_before", memory)):
            kept = {r["rows"]: r for r in earlier.get(key, [])} | {r["rows"]: r for r in new}
            earlier[key] = [kept[rows] for rows in sorted(kept)]
        results["memory_vs_rows"] = earlier
    stream = results["memory_vs_rows"]["streaming_gate_without_scrub"]  # type: ignore[index]
    scrub = []
    chosen = [(name.split("-")[0], int(name.split("-")[1])) for name in args.engines.split(",")]
    for rows in args.scrub_rows:
        for engine, workers in chosen:
            scrub.append(run_child("scrub", str(rows), engine, str(workers)))
            print("scrub", scrub[-1], flush=True)
    if scrub:  # merged with earlier measurements, a new one replacing the old of the same rows and engine
        def key(r: dict[str, object]) -> tuple[int, str, int]:
            return int(r["rows"]), str(r["engine"]), int(r["workers"])  # type: ignore[call-overload]
        kept = {key(r): r for r in results.get("scrub_throughput", [])} | {key(r): r for r in scrub}
        results["scrub_throughput"] = [kept[k] for k in sorted(kept)]
    scrub = results["scrub_throughput"]  # type: ignore[assignment]
    results["crossover"] = crossover(scrub)
    results["projection_1M"] = project(stream, results["crossover"])  # type: ignore[arg-type]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["projection_1M"], indent=2))


def crossover(scrub: list[dict[str, object]]) -> dict[str, object]:
    """Fit seconds = start-up + rows / rate per engine through the two sizes measured; the rows above which each
    Ray configuration beats the in-process path (None: never at the rates measured)."""
    fits: dict[str, tuple[float, float]] = {}
    for key in ("local-1", "ray-1", "ray-2"):
        points = sorted((int(r["rows"]), float(r["seconds"])) for r in scrub  # type: ignore[call-overload, arg-type]
                        if f"{r['engine']}-{r['workers']}" == key)
        if len(points) >= 2:
            (n1, t1), (n2, t2) = points[0], points[-1]
            per_row = (t2 - t1) / (n2 - n1)
            fits[key] = (t1 - per_row * n1, per_row)
    out: dict[str, object] = {"method": crossover.__doc__,
                              "fits": {k: {"startup_s": round(a, 1), "rows_per_s": round(1 / b, 1) if b > 0 else None}
                                       for k, (a, b) in fits.items()}}
    if "local-1" in fits:
        a0, b0 = fits["local-1"]
        for key in ("ray-1", "ray-2"):
            if key in fits:
                a, b = fits[key]
                out[f"{key}_beats_in_process_above_rows"] = round((a - a0) / (b0 - b)) if b0 > b else None
    return out


def project(stream: list[dict[str, object]], fits: dict[str, object]) -> dict[str, object]:
    """1M rows end to end on w workers = the streaming gate's own time for 1M rows (measured, no scrub) + the
    engine start-up (measured: Ray and one engine load per worker, in parallel) + 1M rows at the measured
    per-worker scrub rate times w times the parallel efficiency measured with 2 workers (capped at 1). Assumes the
    batches are independent (they are), workers on separate cores that all have the spaCy model, and a driver that
    keeps up (it validates, hashes, encrypts and writes shards: the measured non-scrub time, about 14 s per million
    short rows, is a floor that more workers do not shrink)."""
    rates = fits.get("fits", {})
    assert isinstance(rates, dict)
    local, ray2 = rates.get("local-1"), rates.get("ray-2")
    if not local or not ray2 or not local["rows_per_s"] or not ray2["rows_per_s"]:
        return {"assumptions": project.__doc__, "note": "not enough scrub measurements"}
    per_worker = float(local["rows_per_s"])
    efficiency = min(1.0, float(ray2["rows_per_s"]) / (2 * per_worker))
    one_million = [r for r in stream if r["rows"] == 1_000_000]
    gate = float(one_million[0]["total_s"]) if one_million else float("nan")  # type: ignore[arg-type]
    out: dict[str, object] = {
        "assumptions": project.__doc__, "non_scrub_seconds_1M": gate, "scrub_rows_per_s_one_worker": per_worker,
        "parallel_efficiency_2_workers": round(efficiency, 2), "ray_startup_s": ray2["startup_s"]}
    out["in_process_1_worker_hours"] = round((gate + float(local["startup_s"]) + 1e6 / per_worker) / 3600, 2)
    for workers in (2, 10, 100):
        seconds = gate + float(ray2["startup_s"]) + 1e6 / (per_worker * workers * efficiency)
        out[f"ray_{workers}_workers_hours"] = round(seconds / 3600, 2)
    return out


if __name__ == "__main__":
    main()
