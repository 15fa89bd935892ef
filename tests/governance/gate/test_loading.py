"""Step 1 of the gate: JSON Lines input is bounded (nesting depth, line size) before any parser sees it.

A record nested ~150,000 objects deep after ordinary rows kills the process inside the JSON reader (SIGSEGV,
exit 139: checked by hand with the scan switched off) if it ever gets there; the CLI test therefore runs the real ingest in a subprocess, so a regression shows as its exit code
instead of taking the test run down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from governance.errors import DataValidationError
from governance.gate.loading import MAX_JSON_DEPTH, check_json_lines
from tests.governance.helpers import make_team

REPO = Path(__file__).resolve().parents[3]
DEEP = 150_000


def row(comment: object, label: int = 0, group: str = "jews") -> bytes:
    return json.dumps({"comment": comment, "bias_sent": label, "target_group": group}).encode() + b"\n"


def deep_row(depth: int, *, lists: bool = False) -> bytes:
    """A record whose comment is nested ``depth`` levels deep, in objects (``{"a": {"a": ...}}``, which crash the
    reader when they follow ordinary rows) or lists; written directly, since json.dumps would recurse."""
    opening, closing = (b"[", b"]") if lists else (b'{"a": ', b"}")
    return b'{"comment": ' + opening * depth + b"1" + closing * depth + b', "bias_sent": 0, "target_group": "jews"}\n'


def test_a_record_nested_150000_deep_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    for lists in (False, True):
        path.write_bytes(row("fine") + row("also fine") + deep_row(DEEP, lists=lists) + row("after"))
        with pytest.raises(DataValidationError) as caught:
            check_json_lines(path)
        assert caught.value.exit_code == 3
        assert caught.value.message == (f"{path}: line 3 nests brackets more than {MAX_JSON_DEPTH} levels deep; "
                                        "refusing to parse it")


def test_nesting_is_counted_outside_strings_only(tmp_path: Path) -> None:
    path = tmp_path / "strings.jsonl"
    brackets = "[" * (MAX_JSON_DEPTH * 4) + '\\"{' * MAX_JSON_DEPTH  # text that only looks nested
    path.write_bytes(row(brackets) + deep_row(MAX_JSON_DEPTH - 1) + row("x\\") + row([[1], [2]] * 1000))
    check_json_lines(path)  # the comment's own list adds one level: MAX_JSON_DEPTH in all
    path.write_bytes(row("x") + deep_row(MAX_JSON_DEPTH))
    with pytest.raises(DataValidationError, match="line 2 nests"):
        check_json_lines(path)
    # An escaped backslash ends the escape: the quote after it closes the string, the brackets count.
    path.write_bytes(b'{"comment": "a\\\\", "x": ' + b"[" * 5 + b"]" * 5 + b"}")
    with pytest.raises(DataValidationError, match="line 1 nests"):  # the last line has no newline: checked too
        check_json_lines(path, max_depth=4)


def test_lines_are_bounded_in_size_across_read_blocks(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    long = row("x" * (3 << 20))  # spans several 1 MiB read blocks
    path.write_bytes(row("a") + long + row("b"))
    check_json_lines(path)
    with pytest.raises(DataValidationError, match=f"line 2 is longer than {2 << 20:,} bytes"):
        check_json_lines(path, max_line_bytes=2 << 20)
    path.write_bytes(row("a") * 3 + row("y" * 5000) + row("b"))  # a long line inside one block
    with pytest.raises(DataValidationError, match="line 4 is longer than 4,000 bytes"):
        check_json_lines(path, max_line_bytes=4000)
    path.write_bytes(row("a") + b'{"comment": "' + b"z" * (3 << 20))  # a last line that never ends
    with pytest.raises(DataValidationError, match="line 2 is longer"):
        check_json_lines(path, max_line_bytes=2 << 20)


def test_ingest_of_a_deeply_nested_file_is_exit_3_with_nothing_staged_and_the_failure_logged(  # type: ignore[no-untyped-def]
        govtrain, tmp_path: Path, isolated_home: Path) -> None:
    team = make_team(govtrain, tmp_path, {"erin": "engineer"})
    spec = yaml.safe_load((REPO / "examples/redditbias-spec.yaml").read_text())
    spec["format"] = "jsonl"
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    data = tmp_path / "deep.jsonl"
    data.write_bytes(b"".join(row(f"comment {i}", i % 2) for i in range(20)) + deep_row(DEEP))
    env = {"HOME": str(isolated_home), "XDG_CONFIG_HOME": str(isolated_home / ".config"), "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-m", "governance.cli", "--workspace", str(team.workspace), "--as",
                             "erin", "data", "ingest", str(data), "--name", "deep", "--spec", str(spec_path)],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"error: {data}: line 21 nests brackets more than {MAX_JSON_DEPTH} levels deep" in result.stderr
    for area in ("vault", "cards"):
        folder = team.workspace / area / "deep"
        assert not folder.exists() or not any(folder.iterdir()), area
    last = json.loads((team.workspace / "audit/log.jsonl").read_text().splitlines()[-1])
    assert (last["event"], last["payload"]["exit_code"]) == ("command.failed", 3)
    assert team.as_("erin", "audit", "verify").exit_code == 0
