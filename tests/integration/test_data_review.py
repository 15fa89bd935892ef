"""A person's review of the scrubbed data end to end, on real data: prompts through the CLI, the signed
``data.reviewed`` entry, the card showing it, and approval waiting for a review within the policy's bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from governance.cli import cli
from governance.gate.review import residual_upper_per_100
from governance.gate.review_sample import draw_review_rows, rows_digest
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset, stored_table
from tests.integration.test_insider import append_as, clone, log_entries, own_world, policy_file

# 30 rows with nothing found bound the rate at 9.5 per 100; one row with an identifier raises it to 14.7.
REVIEW = {"sample": 30, "max_residual_per_100": 10.0}


@pytest.fixture(scope="module")
def review_team(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path):  # type: ignore[no-untyped-def]
    """A workspace whose admin registered a policy with pii.review, and a RedditBias subset erin ingested under it."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("review")
        team = make_team(invoke_cli, root)
        policy = policy_file(root, "reviewed", pii__review=REVIEW)
        assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
        data = reddit_subset(shared_data, root, rows=200)
        ingested = team.as_("erin", "data", "ingest", str(data), "--name", "rev", "--spec", str(SPEC),
                            "--policy", "reviewed")
        assert ingested.exit_code == 0, ingested.stderr
    return team


@pytest.fixture
def team(review_team: Team) -> Team:
    """The module's workspace, as this machine last saw it (tests that attack a copy leave their own witness)."""
    return own_world(review_team)


def review_by_prompts(team: Team, name: str, typed: str, *args: str) -> Any:
    """``data review`` through click's runner, the reviewer's answers typed on stdin."""
    return CliRunner().invoke(cli, ["--workspace", str(team.workspace), "--as", name, "data", "review", "rev", *args],
                              input=typed, catch_exceptions=False)


def reviews_logged(team: Team) -> list[dict[str, Any]]:
    return [e for e in log_entries(team) if e["event"] == "data.reviewed"]


def stored_rows(team: Team) -> int:
    return int(json.loads(team.as_("carol", "data", "show", "rev", "--format", "json").stdout)["rows"]["stored"])


def test_approval_waits_for_a_review_and_the_card_says_none_was_made(team: Team) -> None:
    refused = team.as_("carol", "data", "approve", "rev")
    assert refused.exit_code == 4, refused.stderr
    assert "requires a review of at least 30 random stored rows" in refused.stderr and "none is logged" in refused.stderr
    assert "govtrain data review rev@1" in refused.stderr
    shown = team.as_("carol", "data", "show", "rev").stdout
    assert "**Not reviewed on this dataset.**" in shown and "measured on reference corpora" in shown
    assert not any(e["event"] == "data.approved" for e in log_entries(team))
    assert team.as_("erin", "data", "review", "rev").exit_code == 6  # engineers do not review


def test_a_scripted_answers_file_of_the_wrong_length_shows_no_row(team: Team, tmp_path: Path) -> None:
    answers = tmp_path / "answers.txt"
    answers.write_text("0\n" * 29)
    short = team.as_("carol", "data", "review", "rev", "--answers", str(answers))
    assert short.exit_code == 2 and "drew 30 rows but has 29 answers" in short.stderr
    assert "row 1 of" not in short.stdout
    assert reviews_logged(team) == []


def test_a_review_above_the_bound_refuses_approval_with_its_figure(review_team: Team, tmp_path: Path) -> None:
    team = clone(review_team, tmp_path)  # a failing review stays in the log: spoil a copy
    typed = "\n" * 4 + "2\n" + "\n" * 20 + "1\n" + "\n" * 4 + "y\n"  # rows 5 and 26 hold identifiers
    result = review_by_prompts(team, "dave", typed)
    assert result.exit_code == 0, result.output
    assert "--- row 30 of 30 ---" in result.output and "identifiers remaining [0]:" in result.output
    assert "an identifier in 2 of 30 random rows (3 in all)" in result.output
    assert "NOT within the policy's pii.review" in result.output
    upper = residual_upper_per_100(2, 30)
    refused = team.as_("carol", "data", "approve", "rev")
    assert refused.exit_code == 4
    assert f"found an identifier in 2 of 30 random rows: up to {upper:.2f} rows per 100" in refused.stderr
    assert "max_residual_per_100 of 10" in refused.stderr
    # A later, luckier review does not erase it.
    answers = tmp_path / "zeros.txt"
    answers.write_text("0\n" * 30)
    scripted = team.as_("carol", "--json", "data", "review", "rev", "--answers", str(answers))
    assert scripted.exit_code == 0, scripted.stderr
    assert "--- row 30 of 30 ---" in scripted.stderr  # under --json the rows go to stderr, stdout is one object
    assert json.loads(scripted.stdout)["within_policy"] is True
    assert team.as_("carol", "data", "approve", "rev").exit_code == 4
    shown = team.as_("carol", "data", "show", "rev").stdout
    assert "at most **9.50 rows per 100**" in shown  # the latest review
    assert "not met: the review by dave on" in shown and f"2 of 30 rows, at most {upper:.2f} per 100" in shown
    assert json.loads(team.as_("carol", "--json", "data", "list").stdout)["datasets"][0]["status"] == "pending"


def test_an_approval_appended_without_a_review_does_not_count(review_team: Team, tmp_path: Path) -> None:
    """Mounted by a compliance officer whose own govtrain skips the review check: the gate recomputes it."""
    fresh = clone(review_team, tmp_path)
    entries = log_entries(fresh)
    card_digest = next(e["payload"]["card_digest"] for e in entries if e["event"] == "data.ingested")
    append_as(fresh, "carol", "data.approved", {"dataset": "rev@1", "card_digest": card_digest,
                                                "decision_digest": "0" * 64})
    listed = json.loads(fresh.as_("carol", "--json", "data", "list").stdout)["datasets"][0]
    assert listed["status"] == "pending" and listed["approvers"] == []
    # Nor does a review signed by an engineer's own key: the replay ignores it, and audit verify reports it.
    append_as(fresh, "erin", "data.reviewed", {"dataset": "rev@1", "card_digest": card_digest, "sample": 30,
                                               "rows_stored": 100, "rows_with_identifier": 0, "identifiers": 0})
    assert fresh.as_("dave", "data", "approve", "rev").exit_code == 4
    assert fresh.as_("dave", "audit", "verify").exit_code == 5


def test_a_review_within_the_bound_lets_approval_through(team: Team) -> None:
    result = review_by_prompts(team, "carol", "\n" * 30 + "\n")  # Enter for 0 on every row, Enter to sign
    assert result.exit_code == 0, result.output
    assert "an identifier in 0 of 30 random rows" in result.output and "within the policy's pii.review" in result.output
    [entry] = reviews_logged(team)
    payload = entry["payload"]
    stored = stored_rows(team)
    rows = draw_review_rows(bytes.fromhex(payload["seed"]), stored, 30)
    assert payload["rows_digest"] == rows_digest(rows)  # an auditor draws the same rows again
    assert (payload["sample"], payload["rows_stored"], payload["rows_with_identifier"], payload["identifiers"]) \
        == (30, stored, 0, 0)
    assert payload["upper_per_100"] == pytest.approx(100 * (1 - 0.05 ** (1 / 30)), abs=1e-4)
    assert payload["card_digest"] == next(e for e in log_entries(team) if e["event"] == "data.ingested")[
        "payload"]["card_digest"]
    # The log holds no text of the rows the reviewer read.
    log_text = (team.workspace / "audit/log.jsonl").read_text()
    comments = stored_table(team, "rev").column("comment").to_pylist()
    read = [comments[r] for r in rows if comments[r] and len(comments[r]) > 12]
    assert read and not any(text in log_text for text in read)

    shown = team.as_("dave", "data", "show", "rev").stdout
    assert "**Reviewed on this dataset.**" in shown and "carol (compliance) read 30 random stored rows" in shown
    assert "at most **9.50 rows per 100**" in shown
    assert "the only figure on this card measured on this dataset itself" in shown and ": met." in shown

    approved = team.as_("carol", "data", "approve", "rev")
    assert approved.exit_code == 0, approved.stderr
    [approval] = [e for e in log_entries(team) if e["event"] == "data.approved"]
    assert approval["payload"]["data_review"]["seq"] == entry["seq"]
    assert team.as_("carol", "audit", "verify").exit_code == 0
