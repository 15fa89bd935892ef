"""Benchmark the audit log: appends/s, verification entries/s, raw SHA-256 throughput, inclusion proofs.

    python benchmarks/bench_audit.py                   # 100,000 entries (~3-4 minutes on 2 cores)
    python benchmarks/bench_audit.py --entries 1000000 # optional big run

Writes benchmarks/results/audit.json (machine, versions, parameters, medians). The large log for the
verify and proof measurements is built in-process *without* the lock and without per-entry fsync (same
entries, same signatures, same bytes as `AuditLog.append` writes, just faster to produce); appends are
measured separately through the real `AuditLog.append` (lock + tail read + sign + write + fsync).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The repo root must be importable when this runs as a script, hence the late imports.
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.checkpoint import format_checkpoint, sign_checkpoint
from audit.entry import GENESIS_PREV, build_entry
from audit.keys import Ed25519Signer, TrustedKey
from audit.log import AuditLog
from audit.merkle import CompactRange, leaf_hash
from audit.proofs import verify_inclusion_proof
from audit.timestamps import format_timestamp
from audit.verify import Witness, verify_log

ORIGIN = "bench-workspace"
START = datetime(2024, 1, 1, tzinfo=UTC)


def machine_info() -> dict[str, object]:
    """CPU, OS and library versions, so numbers from different machines are not compared blindly."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "versions": {name: version(name) for name in ("cryptography", "rfc8785", "pydantic")},
    }


def build_log(audit_dir: Path, n: int, signers: list[Ed25519Signer], checkpoint_every: int) -> float:
    """Write `n` signed entries (and checkpoints) directly, without lock or per-entry fsync; returns s."""
    audit_dir.mkdir(parents=True, mode=0o700)
    (audit_dir / "checkpoints").mkdir(mode=0o700)
    acc = CompactRange()
    prev = GENESIS_PREV
    started = time.perf_counter()
    with open(audit_dir / "log.jsonl", "wb", buffering=1 << 20) as handle:
        for seq in range(n):
            signer = signers[seq % len(signers)]
            payload = {
                "dataset": f"adult@{seq % 17}",
                "sha256": hashlib.sha256(seq.to_bytes(8, "big")).hexdigest(),
                "rows": 48842 + seq,
                "pii": {"PERSON": seq % 13, "EMAIL_ADDRESS": seq % 5},
            }
            when = format_timestamp(START + timedelta(milliseconds=seq))
            line = build_entry(signer, seq=seq, prev=prev, time=when, event="data.ingested", payload=payload).line()
            handle.write(line + b"\n")
            prev = hashlib.sha256(line).hexdigest()
            acc.append(leaf_hash(line))
            if acc.size % checkpoint_every == 0 or acc.size == n:
                note = format_checkpoint(sign_checkpoint(ORIGIN, acc.size, acc.root(), [signers[0]]))
                (audit_dir / "checkpoints" / f"{acc.size}.note").write_text(note)
                (audit_dir / "checkpoints" / "latest.note").write_text(note)
        handle.flush()
        os.fsync(handle.fileno())
    return time.perf_counter() - started


def _append_process(audit_dir: str, raw_key: bytes, count: int, barrier_path: str) -> None:
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(raw_key), "bench")
    log = AuditLog(audit_dir, ORIGIN)
    while not Path(barrier_path).exists():  # start together
        time.sleep(0.001)
    for i in range(count):
        log.append(signer, "data.ingested", {"i": i, "sha256": "ab" * 32})


def bench_appends(workdir: Path, count: int, processes: int) -> dict[str, float]:
    """Appends/s through AuditLog.append, single process and `processes` concurrent processes."""
    signer = Ed25519Signer.generate("bench")
    single_dir = workdir / "append-single"
    log = AuditLog(single_dir, ORIGIN)
    started = time.perf_counter()
    for i in range(count):
        log.append(signer, "data.ingested", {"i": i, "sha256": "ab" * 32})
    single = count / (time.perf_counter() - started)

    multi_dir = workdir / "append-multi"
    barrier = workdir / "go"
    raw = signer.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ctx = multiprocessing.get_context("spawn")
    per_process = count // processes
    procs = [
        ctx.Process(target=_append_process, args=(str(multi_dir), raw, per_process, str(barrier)))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let the spawned interpreters import before the clock starts
    started = time.perf_counter()
    barrier.touch()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - started
    lines = (multi_dir / "log.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(per_process * processes))
    return {"single_process_per_s": single, f"{processes}_processes_total_per_s": len(lines) / elapsed}


def _hash_of_line(path: Path, index: int) -> str:
    """sha256 of the log line at ``index`` (what a witness records for the last entry it verified)."""
    with path.open("rb") as handle:
        for i, line in enumerate(handle):
            if i == index:
                return hashlib.sha256(line.rstrip(b"\n")).hexdigest()
    raise IndexError(index)


def bench_sha256(path: Path, repeats: int) -> float:
    """Median MiB/s of reading the log and hashing it with SHA-256 (the I/O + hash floor)."""
    size = path.stat().st_size
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        rates.append(size / (1 << 20) / (time.perf_counter() - started))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the verify/proof log")
    parser.add_argument("--appends", type=int, default=2_000, help="entries for the append benchmark")
    parser.add_argument("--processes", type=int, default=4, help="concurrent appending processes")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--workers", type=int, default=0, help="verify pool size (0: one per usable CPU)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "audit.json")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.workdir))
    try:
        signers = [Ed25519Signer.generate(f"user{i}") for i in range(3)]
        trusted = {
            s.key_id: TrustedKey.from_public_key(s.public_key_raw, "engineer", "2023-01-01T00:00:00Z")
            for s in signers
        }
        audit_dir = workdir / "audit"
        print(f"building {args.entries} signed entries ...", flush=True)
        build_s = build_log(audit_dir, args.entries, signers, checkpoint_every=max(1, args.entries // 10))
        log_path = audit_dir / "log.jsonl"
        size_bytes = log_path.stat().st_size

        verify: dict[str, dict[str, float]] = {}
        pool_workers = args.workers or max(2, len(os.sched_getaffinity(0)))
        for label, workers in (("single_process", 1), ("pool", pool_workers)):
            rates, used = [], 1
            for _ in range(args.repeats):
                started = time.perf_counter()
                report = verify_log(audit_dir, ORIGIN, trusted, workers=workers)
                rates.append(report.entries / (time.perf_counter() - started))
                used = report.workers
            verify[label] = {"entries_per_s": statistics.median(rates), "workers": used}
            print(f"verify {label}: {verify[label]}", flush=True)
        # What every command pays once this user has verified the log before (govtrain.trust.replay): the
        # witnessed prefix's signatures are not checked again; one entry appended since.
        witness = Witness(entries=report.entries - 1, last_hash=_hash_of_line(log_path, report.entries - 2))
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            report = verify_log(audit_dir, ORIGIN, trusted, workers=1, witness=witness, skip_witnessed=True)
            rates.append(report.entries / (time.perf_counter() - started))
        verify["single_process_witnessed"] = {"entries_per_s": statistics.median(rates), "workers": 1}
        print(f"verify single_process_witnessed: {verify['single_process_witnessed']}", flush=True)

        sha_mib_s = bench_sha256(log_path, max(3, args.repeats))
        print(f"sha256: {sha_mib_s:.1f} MiB/s", flush=True)

        log = AuditLog(audit_dir, ORIGIN)
        checkpoint_text = (audit_dir / "checkpoints" / "latest.note").read_text()
        rng = random.Random(7)
        prove_s, check_s, sizes, path_lengths = [], [], [], []
        for seq in [rng.randrange(args.entries) for _ in range(max(3, args.repeats))]:
            started = time.perf_counter()
            proof = log.prove_inclusion(seq)
            prove_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            verify_inclusion_proof(proof, checkpoint_text, trusted)
            check_s.append(time.perf_counter() - started)
            sizes.append(len(json.dumps(proof).encode()))
            path_lengths.append(len(proof["audit_path"]))
        print(f"prove: {statistics.median(prove_s):.3f}s", flush=True)

        appends = bench_appends(workdir, args.appends, args.processes)
        print(f"appends: {appends}", flush=True)

        load = os.getloadavg()
        results = {
            "benchmark": "audit",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info() | {"load_average_1_5_15_min_at_end": load},
            "parameters": vars(args) | {"out": str(args.out), "workdir": str(args.workdir)},
            "log": {
                "entries": args.entries,
                "bytes": size_bytes,
                "mean_line_bytes": size_bytes / args.entries,
                "build_entries_per_s_unlocked": args.entries / build_s,
            },
            "verify": verify,
            "sha256_read_mib_per_s": sha_mib_s,
            "verify_pool_mib_per_s": verify["pool"]["entries_per_s"] * size_bytes / args.entries / (1 << 20),
            "inclusion_proof": {
                "prove_seconds_median": statistics.median(prove_s),
                "verify_seconds_median": statistics.median(check_s),
                "json_bytes_median": statistics.median(sizes),
                "audit_path_hashes_median": statistics.median(path_lengths),
            },
            "appends": appends,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
