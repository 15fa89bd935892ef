"""A governed LoRA fine-tune end to end: a local Llama base, adapters trained on approved Shakespeare, the
release signed by compliance, and an export of the adapters and of the merged model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.trainer.setups import shakespeare_splits, tiny_llama_base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, module_home: Path) -> Team:
    """One workspace (admin, carol and dave in compliance, erin an engineer) for the module's runs."""
    with home_env(module_home):
        return make_team(invoke_cli, tmp_path_factory.mktemp("lm"))


def test_lora_run_exports_adapters_and_the_merged_model(team: Team, tmp_path: Path, shared_data: Path) -> None:
    text = "\n\n".join((shared_data / "tinyshakespeare/input.txt").read_text().split("\n\n")[:300])
    (tmp_path / "plays.txt").write_text(text)
    ingest = team.as_("erin", "data", "ingest", str(tmp_path / "plays.txt"), "--name", "plays",
                      "--spec", str(REPO / "examples/shakespeare-spec.yaml"))
    assert ingest.exit_code == 0, ingest.stderr
    assert team.as_("carol", "data", "approve", "plays").exit_code == 0
    base = tiny_llama_base(tmp_path / "base", shakespeare_splits(shared_data, paragraphs=300).train)
    config = yaml.safe_load((REPO / "examples/shakespeare-lm.yaml").read_text())
    config.update(dataset="plays", model={"kind": "pretrained", "path": str(base),
                                          "adapter": {"kind": "lora", "r": 4, "alpha": 8}})
    config["training"].update(epochs=1, max_steps=4, batch_size=4, block_size=32, eval_every=2)
    config["privacy"] = {"extraction_prefix": 8, "extraction_suffix": 8}  # within the 32-token context
    (tmp_path / "lora.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(tmp_path / "lora.yaml"))
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    finished = next(json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()
                if "\"run.finished\"" in line and run_id in line)["payload"]
    assert "model/adapter_model.safetensors" in finished["model_digests"]
    assert "model/model.safetensors" not in finished["model_digests"]  # only the adapters were trained and kept
    card = json.loads((team.workspace / "runs" / run_id / "reports/transparency.json").read_text())
    assert '"adapter"' in json.dumps(card) and "lora" in json.dumps(card)
    privacy = json.loads((team.workspace / "runs" / run_id / "reports/privacy.json").read_text())
    # One greedy continuation per probed text answers m = 2, 4 and 8 at k = 8 (privacy.extraction_*).
    assert [(e["k"], e["m"]) for e in privacy["extraction"]] == [(8, 2), (8, 4), (8, 8)]
    rates = [e["extracted"] / e["sequences"] for e in privacy["extraction"]]
    assert rates == sorted(rates, reverse=True)  # reproducing fewer tokens is never rarer

    out = tmp_path / "release"
    refused = team.as_("erin", "runs", "export", run_id, "--out", str(out), "--merged")
    assert refused.exit_code == 4 and "runs approve" in refused.stderr  # a language model is never auto-judged
    assert team.as_("carol", "runs", "approve", run_id).exit_code == 0
    exported = team.as_("erin", "--json", "runs", "export", run_id, "--out", str(out), "--merged")
    assert exported.exit_code == 0, exported.stderr
    assert (out / "adapter_model.safetensors").is_file() and (out / "merged/model.safetensors").is_file()

    (base / "config.json").write_text((base / "config.json").read_text().replace('"hidden_act"', '"hidden_act" '))
    changed = team.as_("erin", "runs", "export", run_id, "--out", str(tmp_path / "again"), "--merged")
    assert changed.exit_code == 5 and "is not the one run" in changed.stderr
    assert not (tmp_path / "again").exists()



def test_instruction_data_trains_on_responses(team: Team, tmp_path: Path, shared_data: Path) -> None:
    """A prompt/response dataset through the gate and a causal-LM run with columns.prompt."""
    import csv

    speeches = [p for p in (shared_data / "tinyshakespeare/input.txt").read_text().split("\n\n")
                if ":" in p and p.partition(":")[2].strip()][:240]
    with open(tmp_path / "pairs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "response"])
        for speech in speeches:
            speaker, _, words = speech.partition(":")
            writer.writerow([f"What does the {speaker.strip().lower()} say?", words.strip()])
    spec = {"format": "csv", "text_columns": ["prompt", "response"], "pretty_name": "Speeches as answers",
            "source": "tinyshakespeare", "license": "LicenseRef-Public-Domain", "description": "prompt/response",
            "collection_process": "speeches split at the speaker", "intended_use": "instruction-tuning tests"}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    ingest = team.as_("erin", "data", "ingest", str(tmp_path / "pairs.csv"), "--name", "pairs",
                      "--spec", str(tmp_path / "spec.yaml"))
    assert ingest.exit_code == 0, ingest.stderr
    assert team.as_("carol", "data", "approve", "pairs").exit_code == 0
    config = yaml.safe_load((REPO / "examples/shakespeare-lm.yaml").read_text())
    config.update(dataset="pairs", columns={"text": ["response"], "prompt": "prompt"})
    config["model"].update(hidden_size=32, intermediate_size=64, vocab_size=600)
    config["training"].update(epochs=1, max_steps=4, batch_size=8, block_size=48, eval_every=2)
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(tmp_path / "sft.yaml"))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["steps"] == 4 and out["test_metrics"]["perplexity"] > 1.0
    bad = dict(config, task="text-classification")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = team.as_("erin", "run", str(tmp_path / "bad.yaml"), "--dry-run")
    assert refused.exit_code == 2 and "columns.prompt" in refused.stderr


def test_canaries_measure_exposure_and_make_an_audit_run(team: Team, tmp_path: Path, shared_data: Path) -> None:
    """privacy.canaries: secrets planted in memory, their exposure reported, no secret anywhere on disk, and the
    model of such an audit run cannot be released under the default policy."""
    text = "\n\n".join((shared_data / "tinyshakespeare/input.txt").read_text().split("\n\n")[300:560])
    (tmp_path / "more.txt").write_text(text)
    ingest = team.as_("erin", "data", "ingest", str(tmp_path / "more.txt"), "--name", "more",
                      "--spec", str(REPO / "examples/shakespeare-spec.yaml"))
    assert ingest.exit_code == 0, ingest.stderr
    assert team.as_("carol", "data", "approve", "more").exit_code == 0
    config = yaml.safe_load((REPO / "examples/shakespeare-lm.yaml").read_text())
    config.update(dataset="more", privacy={"canaries": True, "membership_sample": 50, "extraction_sample": 0})
    config["model"].update(hidden_size=32, intermediate_size=64, vocab_size=600)
    config["training"].update(epochs=1, max_steps=6, batch_size=8, block_size=48, eval_every=3)
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(tmp_path / "canary.yaml"))
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    privacy = json.loads((team.workspace / "runs" / run_id / "reports/privacy.json").read_text())
    assert sorted((c["format"], c["repetitions"]) for c in privacy["canaries"]) == sorted(
        (f, r) for f in ("ssn", "phone", "email") for r in (1, 4, 16))
    assert all(c["candidates"] == 1000 for c in privacy["canaries"])  # how the rank was estimated is stated
    assert all(0 <= c["exposure"] <= 11 for c in privacy["canaries"])  # at most log2(1001) from 1,000 candidates
    generated = privacy["generated_pii"]  # the policy's detector over 50 unconditioned samples: counts only
    assert generated["samples"] == 50 and generated["max_new_tokens"] == 64
    assert set(generated["findings"]) == set(yaml.safe_load((REPO / "policies/default.yaml").read_text())
                                             ["pii"]["entities"])
    assert 0 <= generated["samples_with_findings"] <= 50
    for path in team.workspace.rglob("*"):
        if path.is_file() and not path.name.endswith(".enc"):
            assert b"social security number is" not in path.read_bytes(), path
    started = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text()
                   .splitlines() if '"run.started"' in line and run_id in line)
    assert started["audit_run"] is True and started["canaries"] == 9
    refused = team.as_("erin", "runs", "export", run_id, "--out", str(tmp_path / "out"))
    assert refused.exit_code == 4 and "audit run" in refused.stderr
    assert team.as_("carol", "runs", "approve", run_id).exit_code == 4


def test_the_example_fine_tunes_a_llama_with_lora_on_instruction_data(team: Team, tmp_path: Path,
                                                                      shared_data: Path) -> None:
    """examples/llama-lora-instructions.yaml, governed like every run: real e-mails (subject lines as responses)
    through the gate, then LoRA on a local Llama base (a tiny one built here: none can be downloaded)."""
    lines = (shared_data / "aeslc-enron-dev/aeslc_enron_dev.jsonl").read_text().splitlines()[:160]
    (tmp_path / "enron.jsonl").write_text("\n".join(lines) + "\n")
    ingest = team.as_("erin", "data", "ingest", str(tmp_path / "enron.jsonl"), "--name", "enron-subjects",
                      "--spec", str(REPO / "examples/enron-subjects-spec.yaml"))
    assert ingest.exit_code == 0, ingest.stderr
    assert team.as_("carol", "data", "approve", "enron-subjects").exit_code == 0
    bodies = [json.loads(line)["body"] for line in lines]
    base = tiny_llama_base(tmp_path / "llama", bodies)
    config = yaml.safe_load((REPO / "examples/llama-lora-instructions.yaml").read_text())
    config["model"]["path"] = str(base)
    config["training"].update(max_steps=4, batch_size=4, block_size=96, eval_every=2, checkpoint_every=2)
    config["privacy"] = {"membership_sample": 40, "extraction_prefix": 8, "extraction_suffix": 8,
                         "generated_samples": 8}
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(tmp_path / "sft.yaml"))
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["steps"] == 4 and out["test_metrics"]["perplexity"] > 1.0
    finished = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text()
                    .splitlines() if '"run.finished"' in line and out["run_id"] in line)
    assert "model/adapter_model.safetensors" in finished["model_digests"]
    assert team.as_("carol", "report", "verify", out["run_id"]).exit_code == 0
