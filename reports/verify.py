"""Checking report files against the digests the audit log recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path


def verify_report_digests(folder: str | Path, expected: Mapping[str, str]) -> list[str]:
    """One line per problem (missing, unreadable, or changed file; an empty record); [] when all match.

    Files in ``folder`` that ``expected`` does not name are not problems: the record is what is vouched for.
    """
    root = Path(folder)
    if not expected:
        return [f"no report digests recorded for {root}"]
    problems = []
    for name, digest in sorted(expected.items()):
        path = root / name
        if Path(name).name != name:
            problems.append(f"{name}: recorded name is not a plain file name")
            continue
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            problems.append(f"{name}: missing")
            continue
        except OSError as exc:
            problems.append(f"{name}: unreadable ({exc.strerror or exc})")
            continue
        if actual != digest.lower():
            problems.append(f"{name}: sha256 {actual} does not match the recorded {digest}")
    return problems
