"""Enron causal LM end to end: real e-mails with planted canaries are scrubbed, a tiny GPT-2 is trained, the
CrowS-Pairs probe runs, and no canary appears anywhere under the workspace, decrypted artifacts included."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.crypto import load_master_key, read_encrypted_file
from tests.conftest import invoke_cli
from tests.governance.helpers import make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import CANARIES, ENRON_SPEC

NEEDLES = [*CANARIES.values(), "Quackenbush", "zebulon.canary"]


@pytest.fixture(scope="module")
def enron_run(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path):  # type: ignore[no-untyped-def]
    with home_env(module_home):
        root = tmp_path_factory.mktemp("enron")
        team = make_team(invoke_cli, root)
        lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:200]
        rows = [json.loads(line) for line in lines]
        # Canaries in ten e-mails, so they would reach every split. (The small NER model misses a name in some
        # contexts, e.g. "Reach <name> at ...": a known recall limit, reported in pii.json, not hidden here.)
        for i in range(0, 200, 20):
            rows[i]["body"] += (f"\nMy colleague {CANARIES['name']} can be reached at {CANARIES['email']} or "
                                f"{CANARIES['phone']}. SSN {CANARIES['ssn']}, card number {CANARIES['card']}.")
        data = root / "enron.jsonl"
        data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        ingest = team.as_("erin", "data", "ingest", str(data), "--name", "enron", "--spec", str(ENRON_SPEC))
        assert ingest.exit_code == 0, ingest.stderr
        assert team.as_("carol", "data", "approve", "enron").exit_code == 0
        config = {
            "name": "enron-lm", "dataset": "enron", "task": "causal-lm", "columns": {"text": ["body"]},
            "model": {"kind": "from-config", "architecture": "gpt2", "hidden_size": 32, "num_layers": 2,
                      "num_heads": 2, "intermediate_size": 64, "vocab_size": 800},
            "training": {"epochs": 1, "max_steps": 12, "batch_size": 8, "block_size": 32, "eval_every": 6,
                         "checkpoint_every": 6, "learning_rate": 0.003},
            "probes": {"crows_pairs": str(shared_data / "crows-pairs")},
        }
        path = root / "lm.yaml"
        path.write_text(yaml.safe_dump(config))
        result = team.as_("erin", "--json", "run", str(path))
        assert result.exit_code == 0, result.stderr
    return team, json.loads(result.stdout), ingest


def strings_in(value: Any) -> list[str]:
    """Every string and bytes value in a nested structure (a loaded checkpoint), as text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_in(v)]
    return []


def test_pii_found_and_scrubbed(enron_run) -> None:  # type: ignore[no-untyped-def]
    team, _, ingest = enron_run
    card = json.loads(team.as_("carol", "data", "show", "enron", "--format", "json").stdout)
    found = card["pii"]["findings_by_entity"]
    assert found["PERSON"] > 50 and found["EMAIL_ADDRESS"] >= 10 and found["PHONE_NUMBER"] >= 10
    assert found["US_SSN"] >= 10 and found["CREDIT_CARD"] >= 10
    assert not any(n in ingest.stdout + ingest.stderr for n in NEEDLES)


def test_leak_sweep_everywhere(enron_run) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq
    import torch

    team, _out, _ = enron_run
    kek = load_master_key()
    haystacks: dict[str, str] = {}
    for path in team.workspace.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        haystacks[str(path)] = raw.decode("utf-8", "replace")  # cards, reports, TensorBoard, log, ciphertexts
        if path.name.endswith(".enc"):
            plain = read_encrypted_file(path, kek)
            if path.name == "data.parquet.enc":
                table = pq.read_table(io.BytesIO(plain))
                haystacks[f"{path} (decrypted)"] = "\n".join(map(str, table.column("body").to_pylist()))
            elif path.name == "last.pt.enc":
                payload = torch.load(io.BytesIO(plain), weights_only=True)
                haystacks[f"{path} (decrypted)"] = "\n".join(strings_in(payload))
            else:  # model files, tokenizer vocabulary, predictions
                haystacks[f"{path} (decrypted)"] = plain.decode("utf-8", "replace")
    assert any("tokenizer.json" in k and "(decrypted)" in k for k in haystacks)
    assert any("tfevents" in k for k in haystacks)
    for where, text in haystacks.items():
        for needle in NEEDLES:
            assert needle not in text, f"{needle!r} found in {where}"


def test_crows_pairs_table_per_bias_type(enron_run, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    team, out, _ = enron_run
    bias = json.loads((team.workspace / "runs" / out["run_id"] / "reports/bias.json").read_text())
    table = {row["bias_type"]: row for row in bias["crows_pairs"]["by_bias_type"]}
    expected = pd.read_csv(shared_data / "crows-pairs/crows_pairs_anonymized.csv")["bias_type"].value_counts()
    assert {k: v["pairs"] for k, v in table.items()} == expected.to_dict()
    for row in table.values():
        interval = row["share"]["interval"]
        assert interval["low"] <= row["share"]["value"] <= interval["high"]
    markdown = team.as_("carol", "report", "show", out["run_id"], "--kind", "bias").stdout
    assert "race-color" in markdown


def test_lm_metrics_and_verification(enron_run) -> None:  # type: ignore[no-untyped-def]
    team, out, _ = enron_run
    evaluation = json.loads((team.workspace / "runs" / out["run_id"] / "reports/evaluation.json").read_text())
    assert evaluation["language_model"]["test_perplexity"] > 1
    assert team.as_("carol", "report", "verify", out["run_id"]).exit_code == 0
    assert team.as_("carol", "audit", "verify").exit_code == 0
