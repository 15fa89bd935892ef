"""Insider attacks on the data gate's evidence, mounted through the CLI as an engineer would: by patching their own
govtrain process in memory while it ingests (the card is then written by the attacker's code), and by declaring
identifying columns as sensitive. The approver's process and ``govtrain run`` are not patched: each attack must
be refused there with its exit code, naming what was found by type and count, never the values.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.gate.pii import ScrubResult
from governance.gate.pii import scrub_text_columns as real_scrub
from governance.gate.pii_recall import RecallFigure
from governance.gate.review_sample import draw_review_rows, rows_digest
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import (
    ENRON_SPEC,
    SPEC,
    leftovers,
    reddit_subset,
    run_config,
    stored_table,
)
from tests.integration.test_insider import log_entries, policy_file

ANNOTATORS = ["ann.lee@example.org", "bo.chan@example.net", "kim.ortiz@example.com", "raj.patel@example.org",
              "eve.moss@example.net"]
PHONE_IN_FIRST_EMAIL = "713-345-6687"  # in the body of the first Enron e-mail of the subset


@dataclass(frozen=True)
class Gate:
    team: Team
    reddit: Path
    enron: Path
    root: Path


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> Gate:
    """A workspace with carol (compliance) and erin (engineer), 400 RedditBias rows, 200 Enron e-mails, and a
    policy 'sensok' (the default, but allowing PII in sensitive columns) registered by the admin."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("insider-gate")
        team = make_team(invoke_cli, root, {"carol": "compliance", "erin": "engineer"})
        reddit = reddit_subset(shared_data, root, rows=400)
        enron = root / "enron.jsonl"
        lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:200]
        enron.write_text("\n".join(lines) + "\n")
        assert PHONE_IN_FIRST_EMAIL in lines[0]
        sensok = policy_file(root, "sensok", pii__sensitive_column_pii="allow")
        registered = team.as_("admin", "policy", "register", str(sensok))
        assert registered.exit_code == 0, registered.stderr
    return Gate(team, reddit, enron, root)


def card_of(team: Team, name: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((team.workspace / f"cards/{name}/1/card.json").read_text())
    return card


def entries(team: Team, event: str, dataset: str) -> list[dict[str, Any]]:
    return [e for e in log_entries(team) if e["event"] == event and e["payload"].get("dataset") == dataset]


def status_of(team: Team, ref: str) -> str:
    rows = json.loads(team.as_("erin", "--json", "data", "list").stdout)["datasets"]
    return str(next(r["status"] for r in rows if r["dataset"] == ref))


# --- an honest approval records its look ------------------------------------------------------------------------


def test_an_honest_approval_logs_the_sample_it_looked_at(gate: Gate) -> None:
    team = gate.team
    assert team.as_("erin", "data", "ingest", str(gate.reddit), "--name", "honest", "--spec", str(SPEC)).exit_code == 0
    card = card_of(team, "honest")
    approved = team.as_("carol", "data", "approve", "honest")
    assert approved.exit_code == 0, approved.stderr
    stored = card["rows"]["stored"]
    assert f"looked at 200 random stored row(s) of {stored:,}" in approved.stdout
    [entry] = entries(team, "data.approved", "honest@1")
    review = entry["payload"]["review"]
    assert review["rows"] == 200 and review["rows_stored"] == stored and review["columns"] == ["comment"]
    assert review["texts"] == 200  # one text column, no nulls
    # The seed is logged after the fact; an auditor redraws the same rows from it.
    assert review["rows_digest"] == rows_digest(draw_review_rows(bytes.fromhex(review["seed"]), stored, 200))
    assert review["detector_digest"] == card["pii"]["measured_recall"]["detector_digest"]
    assert set(card["pii"]["entities_requested"]) <= set(review["findings"])
    independent = card["pii"]["independent_residual_by_entity"]
    assert all(count <= independent.get(entity, 0) for entity, count in review["findings"].items())
    assert review["limit"] == 20  # 10% of the 200 texts read
    assert status_of(team, "honest@1") == "approved"
    assert team.as_("carol", "audit", "verify").exit_code == 0


# --- (a) raw text in the vault under a card with real scrub counts -----------------------------------------------


def test_an_unscrubbed_vault_is_refused_by_the_approvers_look(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    import governance.gate.scrub_engines as engines

    team = gate.team

    def counts_but_no_scrub(table: Any, *args: Any, **kwargs: Any) -> ScrubResult:
        """The attacker's patch: a real scrub's counts for the card, the raw rows for the vault."""
        return ScrubResult(table=table, stats=real_scrub(table, *args, **kwargs).stats)

    with monkeypatch.context() as patch:
        patch.setattr(engines, "scrub_text_columns", counts_but_no_scrub)
        ingest = team.as_("erin", "data", "ingest", str(gate.enron), "--name", "unscrubbed", "--spec",
                          str(ENRON_SPEC))
    assert ingest.exit_code == 0, ingest.stderr
    # What the attack achieved: the card reports a real scrub while the vault holds the raw e-mails.
    card = card_of(team, "unscrubbed")
    assert card["pii"]["findings_by_entity"]["PERSON"] > 50
    assert sum(card["pii"]["residual_by_entity"].values()) <= card["pii"]["residual_tolerance"]
    assert any(PHONE_IN_FIRST_EMAIL in body for body in stored_table(team, "unscrubbed").column("body").to_pylist())

    refused = team.as_("carol", "data", "approve", "unscrubbed")
    assert refused.exit_code == 4, refused.stderr
    message = refused.stderr
    assert "a re-scan of 200 random stored rows (200 texts) in the approver's process finds" in message
    for entity in ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER"):
        assert f"{entity} " in message
    assert PHONE_IN_FIRST_EMAIL not in message + refused.stdout
    assert status_of(team, "unscrubbed@1") == "pending" and not entries(team, "data.approved", "unscrubbed@1")
    [logged] = entries(team, "command.refused", "unscrubbed@1")
    review = logged["payload"]["review"]
    assert logged["payload"]["exit_code"] == 4 and review["rows"] == 200 and review["findings"]["PERSON"] > 20
    assert PHONE_IN_FIRST_EMAIL not in json.dumps(logged)
    # A rejection needs no look.
    assert team.as_("carol", "data", "reject", "unscrubbed", "--reason", "vault not scrubbed").exit_code == 0


# --- (b) a recall the detector never reached --------------------------------------------------------------------


def test_a_flattering_recall_is_refused_by_approval_and_by_run(gate: Gate, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    import governance.gate.pii_recall as recall

    team = gate.team
    real_lookup = recall.measured_recall

    def flattering(digest: str, path: Path = recall.RECALL_FILE) -> dict[str, dict[str, RecallFigure]] | None:
        """The attacker's patch: every shipped figure raised to 0.999 (made up where none is shipped)."""
        shipped = real_lookup(digest, path) or {"btc-f": {"PERSON": RecallFigure(1602, 0),
                                                          "LOCATION": RecallFigure(602, 0)}}
        return {reference: {entity: RecallFigure(f.gold, round(0.999 * f.gold)) for entity, f in figures.items()}
                for reference, figures in shipped.items()}

    with monkeypatch.context() as patch:
        patch.setattr(recall, "measured_recall", flattering)
        ingest = team.as_("erin", "data", "ingest", str(gate.reddit), "--name", "flattered", "--spec", str(SPEC))
    assert ingest.exit_code == 0, ingest.stderr
    stated = card_of(team, "flattered")["pii"]["measured_recall"]["references"]["btc-f"]["LOCATION"]
    assert stated["recall"] > 0.99  # the shipped figure is 0.76

    refused = team.as_("carol", "data", "approve", "flattered")
    assert refused.exit_code == 5, refused.stderr
    assert "PII recall: flattered@1's card" in refused.stderr
    shipped = recall.measured_recall(card_of(team, "flattered")["pii"]["measured_recall"]["detector_digest"])
    if shipped is not None:  # the message names the first figure that differs, with the shipped one beside it
        import re

        found = re.search(r"(\w+) recall on ([\w-]+) ([0-9.]+) \(shipped: ([0-9.]+)\)", refused.stderr)
        assert found is not None, refused.stderr
        entity, reference, _claimed, real = found.groups()
        assert float(real) == round(shipped[reference][entity].recall, 4)
    assert status_of(team, "flattered@1") == "pending"
    dry = team.as_("erin", "run", str(run_config(tmp_path, "flattered")), "--dry-run")
    assert dry.exit_code == 5, dry.stderr
    assert "PII recall" in dry.stderr


# --- (c) identifying values declared as a sensitive (group) column ----------------------------------------------


def with_columns(gate: Gate, name: str, **columns: list[str]) -> Path:
    """The RedditBias subset with extra columns (values cycled over the rows)."""
    with open(gate.reddit, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column, values in columns.items():
        for index, row in enumerate(rows):
            row[column] = values[index % len(values)]
    out = gate.root / f"{name}.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def spec_with_sensitive(gate: Gate, name: str, *columns: str) -> Path:
    spec = yaml.safe_load(SPEC.read_text())
    spec["sensitive_columns"] = ["target_group", *columns]
    path = gate.root / f"{name}-spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_pii_in_a_sensitive_column_is_refused_at_ingest_unless_the_policy_allows_it(gate: Gate) -> None:
    team = gate.team
    data = with_columns(gate, "annotated", annotator=ANNOTATORS)
    spec = spec_with_sensitive(gate, "annotated", "annotator")
    refused = team.as_("erin", "data", "ingest", str(data), "--name", "annotated", "--spec", str(spec))
    assert refused.exit_code == 4, refused.stderr
    assert ("sensitive column 'annotator' holds PII in 400 rows (EMAIL_ADDRESS in 5 of its 5 distinct values)"
            in refused.stderr)
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "target_group" not in error  # a column without PII is not named
    for address in ANNOTATORS:
        assert address not in refused.stderr + refused.stdout
    assert leftovers(team, "annotated") == [] and not entries(team, "data.ingested", "annotated@1")
    scanned = [e for e in log_entries(team) if e["event"] == "data.ingest.sensitive_scanned"
               and e["payload"]["dataset"] == "annotated"]
    assert scanned[-1]["payload"]["sensitive_findings"]["annotator"] == {"EMAIL_ADDRESS": 5}
    assert not any(address in json.dumps(log_entries(team)) for address in ANNOTATORS)

    allowed = team.as_("erin", "data", "ingest", str(data), "--name", "annotated", "--spec", str(spec),
                       "--policy", "sensok")
    assert allowed.exit_code == 0, allowed.stderr
    card = card_of(team, "annotated")
    assert card["pii"]["sensitive_column_findings"] == {"target_group": {}, "annotator": {"EMAIL_ADDRESS": 5}}
    assert "**PII in sensitive columns**" in (team.workspace / "cards/annotated/1/card.md").read_text()


def test_a_unique_ssn_column_is_refused_for_its_pii_not_for_its_group_sizes(gate: Gate) -> None:
    """One SSN per row would also fail the group-size expectation (exit 3); the PII is what is reported."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(22)
    ssns = [fake.ssn() for _ in range(400)]
    data = with_columns(gate, "ssn", ssn=ssns)
    refused = team_ingest(gate, data, "ssn", spec_with_sensitive(gate, "ssn", "ssn"))
    assert refused.exit_code == 4, refused.stderr
    assert "sensitive column 'ssn' holds PII in" in refused.stderr and "US_SSN in" in refused.stderr
    assert not any(ssn in refused.stderr for ssn in ssns)
    assert leftovers(gate.team, "ssn") == []


def team_ingest(gate: Gate, data: Path, name: str, spec: Path) -> Any:
    return gate.team.as_("erin", "data", "ingest", str(data), "--name", name, "--spec", str(spec))
