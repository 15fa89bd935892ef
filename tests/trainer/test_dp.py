"""DP-SGD: a private run spends at most its target epsilon and says so; what the accountant cannot honour is
refused with one line; LoRA + DP trains the adapters only; a crashed DP run resumes exactly, accountant included."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from reports.privacy import DifferentialPrivacy
from tests.trainer.setups import CrashAfterCheckpoint, redditbias_splits, tiny_bert_base, tiny_classifier
from trainer import train
from trainer.checkpoint import deserialise
from trainer.config import DifferentialPrivacyConfig, LoraAdapter, PretrainedSource, TrainConfig
from trainer.data import PoissonBatches
from trainer.dp import PrivacyLedger, default_delta, plan_dp
from trainer.errors import TrainerConfigError
from trainer.interface import CHECKPOINT_NAME, TextSplits
from trainer.stores import PlaintextFolderStore, RecordingEventSink

DP = DifferentialPrivacyConfig(target_epsilon=4.0, max_grad_norm=1.0)


@pytest.fixture(scope="module")
def splits(shared_data: Path) -> TextSplits:
    return redditbias_splits(shared_data, rows=300)


def dp_classifier(**training: Any) -> TrainConfig:
    return tiny_classifier(**{"max_steps": 6, "batch_size": 16, "eval_every": 3, "max_length": 32,
                              "differential_privacy": DP, **training})


def test_dp_run_records_its_epsilon_and_resumes_exactly(splits: TextSplits, tmp_path: Path) -> None:
    config = dp_classifier(max_steps=6, checkpoint_every=3, dropout=0.1)
    whole = PlaintextFolderStore(tmp_path / "a")
    result = train(config, splits, store=whole, events=RecordingEventSink(), quiet=True)
    dp = result.differential_privacy
    assert dp is not None and dp.accountant == "rdp" and dp.steps == result.steps == dp.planned_steps == 6
    assert 0.0 < dp.epsilon <= dp.target_epsilon == 4.0
    assert dp.epsilon > 0.9 * dp.target_epsilon  # all planned steps taken: the budget is (nearly) spent
    assert dp.noise_multiplier > 0.0 and dp.sample_rate == pytest.approx(16 / len(splits.train))
    assert dp.delta == pytest.approx(default_delta(len(splits.train))) and dp.delta < 1 / len(splits.train)
    assert result.to_dict()["differential_privacy"]["epsilon"] == dp.epsilon
    # The privacy report takes the trainer's accounting as it is (what governance passes on).
    assert DifferentialPrivacy.model_validate(dataclasses.asdict(dp)).epsilon == dp.epsilon
    saved = deserialise(whole.read(CHECKPOINT_NAME)).payload["privacy_accountant"]
    assert saved["mechanism"] == "rdp" and sum(n for _s, _r, n in saved["history"]) == 6

    # Killed after its first checkpoint (step 3) and resumed: the same weights and the same epsilon.
    crashed = PlaintextFolderStore(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train(config, splits, store=crashed, events=CrashAfterCheckpoint(), quiet=True)
    resumed = train(config, splits, store=crashed, events=RecordingEventSink(), quiet=True, resume=True)
    assert resumed.resumed_from_step == 3 and resumed.differential_privacy == dp
    a, b = (load_safetensors(s.read("model/model.safetensors")) for s in (whole, crashed))
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_an_early_stopped_run_reports_the_smaller_epsilon_it_spent() -> None:
    plan = plan_dp(DP, num_examples=1000, batch_size=20, planned_steps=200)
    ledger = PrivacyLedger(plan)
    for _ in range(50):
        ledger.step()
    half = ledger.epsilon()
    for _ in range(150):
        ledger.step()
    assert 0.0 < half < ledger.epsilon() <= DP.target_epsilon
    assert ledger.epsilon() == pytest.approx(DP.target_epsilon, abs=0.02)
    assert ledger.accounting().steps == 200


def test_what_the_accountant_cannot_honour_is_refused(splits: TextSplits, tmp_path: Path) -> None:
    too_large = DifferentialPrivacyConfig(target_epsilon=1.0, delta=0.01)
    with pytest.raises(TrainerConfigError, match=r"delta: 0.01 must be below 1/n = 0.00476") as caught:
        train(dp_classifier(differential_privacy=too_large), splits, store=PlaintextFolderStore(tmp_path),
              events=RecordingEventSink(), quiet=True)
    assert "\n" not in str(caught.value) and not (tmp_path / "model").exists()
    # RDP cannot certify epsilon 0.01 at delta 1e-5 whatever the noise (its bound stays near 0.1).
    impossible = DifferentialPrivacyConfig(target_epsilon=0.01, delta=1e-5)
    with pytest.raises(TrainerConfigError, match="target_epsilon: 0.01 cannot be reached at delta 1e-05 over 100 "
                                                 "steps"):
        plan_dp(impossible, num_examples=1000, batch_size=10, planned_steps=100)
    assert plan_dp(DifferentialPrivacyConfig(target_epsilon=0.5, delta=1e-5), num_examples=1000, batch_size=10,
                   planned_steps=100).noise_multiplier > 1.0


def test_configs_dp_cannot_account_for_are_refused_at_load() -> None:
    data = dp_classifier().to_dict()
    for change, message in (({"gradient_accumulation": 2}, "gradient_accumulation must be 1"),
                            ({"gradient_checkpointing": True}, "gradient_checkpointing is not supported")):
        with pytest.raises(TrainerConfigError, match=message):
            TrainConfig.from_dict({**data, "training": {**data["training"], **change}})
    with pytest.raises(TrainerConfigError, match="batch_size 400 must be below"):
        plan_dp(DP, num_examples=300, batch_size=400, planned_steps=10)


def test_poisson_batches_are_reproducible_and_sampled_at_the_rate() -> None:
    sampler = PoissonBatches(2000, 0.05, seed=7)
    sampler.set_epoch(3)
    epoch = list(sampler)
    assert len(epoch) == sampler.batches_per_epoch == 20
    sizes = [len(b) for b in epoch]
    assert 70 < sum(sizes) / len(sizes) < 130 and len(set(sizes)) > 1  # Poisson: about 100, not fixed
    sampler.set_epoch(3, start=5)
    assert list(sampler) == epoch[5:]
    sampler.set_epoch(4)
    assert list(sampler) != epoch


def test_lora_with_dp_trains_only_the_adapters(shared_data: Path, splits: TextSplits, tmp_path: Path) -> None:
    base = tiny_bert_base(tmp_path / "base", list(splits.train))
    before = load_safetensors((base / "model.safetensors").read_bytes())
    config = TrainConfig(
        task="text-classification", num_labels=2,
        model=PretrainedSource(path=str(base), adapter=LoraAdapter(r=4, alpha=8, dropout=0.0)),
        training=dp_classifier(learning_rate=1e-2).training)
    store = PlaintextFolderStore(tmp_path / "run")
    result = train(config, splits, store=store, events=RecordingEventSink(), quiet=True)
    assert result.differential_privacy is not None and result.differential_privacy.epsilon <= 4.0
    saved = load_safetensors(store.read("model/adapter_model.safetensors"))
    assert saved and all("lora_" in k or "classifier" in k or "score" in k for k in saved)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())  # B starts at zero: it moved
    assert not (store.root / "model" / "model.safetensors").exists()
    after = load_safetensors((base / "model.safetensors").read_bytes())
    assert all(torch.equal(before[k], after[k]) for k in before)
