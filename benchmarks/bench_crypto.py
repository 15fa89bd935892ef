"""Streaming envelope encryption (governance.crypto) against one-shot AES-256-GCM over the same bytes.

    python benchmarks/bench_crypto.py [--mib 256] [--repeats 5] [--chunk-mib 1]

Reports median MiB/s for streaming encrypt/decrypt (in memory and through a file on disk) and for a single
``AESGCM.encrypt``/``decrypt`` call, their ratios, and the streaming path's memory: tracemalloc peak and the
process's peak RSS while streaming a generator to disk and back (measured before any full-size buffer exists).
Writes ``benchmarks/results/crypto.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import cryptography
from cryptography.hazmat.backends.openssl.backend import backend as openssl_backend
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The repo root must be importable when this runs as a script, hence the late import.
from governance.crypto import (
    MasterKey,
    decrypt_stream,
    encrypt_stream,
    generate_master_key,
    iter_decrypted_chunks,
    read_encrypted_file,
    write_encrypted_file,
)

MIB = 1 << 20


class NullSink:
    """Counts and drops what is written, so only the cipher is timed."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes, /) -> int:
        """Drop ``data``."""
        self.size += len(data)
        return len(data)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)


def median_seconds(action: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` runs of ``action`` (after one untimed warm-up)."""
    action()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def pieces(total_mib: int) -> Iterator[bytes]:
    """``total_mib`` MiB of pseudo-random data, one freshly made MiB at a time."""
    seed = os.urandom(MIB)
    for i in range(total_mib):
        yield seed[i % 251 :] + seed[: i % 251]


def measure_memory(kek: MasterKey, total_mib: int, chunk_size: int, folder: Path) -> dict[str, float]:
    """Stream a generator to an encrypted file and read it back chunk by chunk, watching memory."""
    path = folder / "memory.enc"
    rss_before = peak_rss_mib()
    tracemalloc.start()
    write_encrypted_file(path, pieces(total_mib), kek, chunk_size=chunk_size)
    _, write_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for plaintext in iter_decrypted_chunks(handle, kek, name=str(path)):
            digest.update(plaintext)
    _, read_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    path.unlink()
    return {
        "streamed_mib": total_mib,
        "tracemalloc_peak_write_mib": write_peak / MIB,
        "tracemalloc_peak_read_mib": read_peak / MIB,
        "peak_rss_before_mib": rss_before,
        "peak_rss_after_streaming_mib": peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="size of the input in MiB (default 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (default 5)")
    parser.add_argument(
        "--chunk-mib", type=float, default=1.0, help="streaming chunk size in MiB (default 1)"
    )
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "crypto.json")
    args = parser.parse_args(argv)
    if not 1 <= args.mib < 2048:
        parser.error("--mib must be between 1 and 2047 (one-shot AES-GCM takes at most 2 GiB - 1)")
    chunk_size = int(args.chunk_mib * MIB)
    size = args.mib * MIB
    kek = MasterKey.from_bytes(generate_master_key(), source="benchmark")

    with tempfile.TemporaryDirectory(prefix="bench-crypto-") as tmp:
        folder = Path(tmp)
        memory = measure_memory(kek, args.mib, chunk_size, folder)

        data = b"".join(pieces(args.mib))
        aead = AESGCM(os.urandom(32))
        nonce = os.urandom(12)
        oneshot_ct = aead.encrypt(nonce, data, None)
        encrypted = io.BytesIO()
        encrypt_stream(io.BytesIO(data), encrypted, kek, chunk_size=chunk_size)
        stream_ct = encrypted.getvalue()
        del encrypted
        path = folder / "data.enc"

        def stream_encrypt() -> None:
            encrypt_stream(io.BytesIO(data), NullSink(), kek, chunk_size=chunk_size)

        def stream_decrypt() -> None:
            decrypt_stream(io.BytesIO(stream_ct), NullSink(), kek, name="bench")

        def file_write() -> None:
            write_encrypted_file(path, data, kek, chunk_size=chunk_size)

        def file_read() -> None:
            read_encrypted_file(path, kek)

        timings = {
            "oneshot_encrypt": median_seconds(lambda: aead.encrypt(nonce, data, None), args.repeats),
            "oneshot_decrypt": median_seconds(lambda: aead.decrypt(nonce, oneshot_ct, None), args.repeats),
            "stream_encrypt": median_seconds(stream_encrypt, args.repeats),
            "stream_decrypt": median_seconds(stream_decrypt, args.repeats),
            "file_write_encrypted": median_seconds(file_write, args.repeats),
            "file_read_encrypted": median_seconds(file_read, args.repeats),
        }

    mib_per_s = {name: args.mib / median for name, (median, _) in timings.items()}
    report = {
        "benchmark": "crypto",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            "cryptography": cryptography.__version__,
            "openssl": openssl_backend.openssl_version_text(),
        },
        "inputs": {"mib": args.mib, "bytes": size, "repeats": args.repeats, "chunk_size": chunk_size},
        "median_seconds": {name: median for name, (median, _) in timings.items()},
        "all_seconds": {name: runs for name, (_, runs) in timings.items()},
        "median_mib_per_s": mib_per_s,
        "ratios": {
            "stream_vs_oneshot_encrypt": mib_per_s["stream_encrypt"] / mib_per_s["oneshot_encrypt"],
            "stream_vs_oneshot_decrypt": mib_per_s["stream_decrypt"] / mib_per_s["oneshot_decrypt"],
        },
        "ciphertext_overhead_bytes": len(stream_ct) - size,
        "memory": memory,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, rate in mib_per_s.items():
        print(f"{name:22s} {rate:9.1f} MiB/s")
    for name, ratio in report["ratios"].items():
        print(f"{name:28s} {ratio:.2f}")
    print(
        f"streaming {args.mib} MiB: tracemalloc peak write {memory['tracemalloc_peak_write_mib']:.1f} MiB, "
        f"read {memory['tracemalloc_peak_read_mib']:.1f} MiB; peak RSS {memory['peak_rss_after_streaming_mib']:.0f} MiB"
    )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
