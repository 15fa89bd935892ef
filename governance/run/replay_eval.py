"""The eval replay: the released model's test inference re-run by the auditor, and the figures recomputed from it.

The run's reports were computed in the engineer's process from predictions that process made. Here the released
model (its files checked against ``run.finished``) predicts the rebuilt test split again, and the stored
predictions, the evaluation metrics, the bias measurements and the membership-inference figures are recomputed
with the report code the run used, under the run's registered policy. A figure that differs is named by its path
in the report (``evaluation: classification.accuracy``). On the CPU the inference is bit for bit, so figures are
compared exactly.

Covered: classification (predictions, evaluation, data and model bias with the verdict, membership inference) and
plain-text causal LM (test losses, test loss and perplexity, loss per group, membership inference). Refused
(exit 4): instruction data and bias mitigation. Not recomputed (stated in the result): CrowS-Pairs, extraction and
generated-text probes, canaries, and the DP accounting (``report verify`` recomputes that from the logged plan).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from governance.errors import IntegrityError, PolicyRefusal
from governance.run.config import RunConfig
from governance.run.folder import EncryptedRunStore, RunFolder
from governance.run.replay_data import ReplayData
from governance.trust.ledger import RunRecord
from policies import Policy
from trainer.interface import ClassPrediction, TrainResult
from trainer.stores import MemoryArtifactStore


@dataclass(frozen=True)
class EvalReplay:
    """What the eval replay compared, what differed (``figure: path (reported x, replayed y)``), what it skipped."""

    compared: tuple[str, ...]
    differences: tuple[str, ...]
    not_recomputed: tuple[str, ...]


def check_eval_replayable(config: RunConfig) -> None:
    """Refuse (exit 4) an eval replay this module cannot recompute faithfully."""
    if config.bias.mitigation is not None:
        raise PolicyRefusal("--eval: runs with bias.mitigation are not replayed yet (the mitigated predictions "
                            "depend on an earlier run's model); replay the training segments with --no-eval")
    if config.columns.prompt is not None:
        raise PolicyRefusal("--eval: instruction data (columns.prompt) is not replayed yet; replay the training "
                            "segments with --no-eval")


def replay_eval(folder: RunFolder, store: EncryptedRunStore, record: RunRecord, config: RunConfig, policy: Policy,
                rebuilt: ReplayData, history: Sequence[dict[str, float]]) -> EvalReplay:
    """Re-run the test inference with the released model and compare every recomputed figure with the reports;
    ``history`` is the final checkpoint's validation history (a language model's validation loss)."""
    check_eval_replayable(config)
    model, tokenizer = _released_model(store, record, config)
    if config.task == "text-classification":
        return _classification(folder, store, config, policy, rebuilt, model, tokenizer)
    return _language_model(folder, store, config, policy, rebuilt, model, tokenizer, history)


def _released_model(store: EncryptedRunStore, record: RunRecord, config: RunConfig) -> tuple[Any, Any]:
    """The model the run released, its files first checked against the digests ``run.finished`` logged."""
    from governance.run.reports import load_trained_model

    assert record.finished is not None
    for name, logged in (record.finished.get("model_digests") or {}).items():
        if name.startswith("model/") and hashlib.sha256(store.read(name)).hexdigest() != logged:
            raise IntegrityError(f"run {record.run_id}: {name} is not the model file run.finished logged",
                                 hint="the stored model was replaced after the run finished")
    return load_trained_model(store, config)


def _classification(folder: RunFolder, store: EncryptedRunStore, config: RunConfig, policy: Policy,
                    rebuilt: ReplayData, model: Any, tokenizer: Any) -> EvalReplay:
    from governance.run.mitigation import favourable_label
    from reports import bias as bias_reports
    from reports import evaluation as ev
    from trainer.inference import predict_classification

    data, splits, t = rebuilt.data, rebuilt.splits, config.training
    names = data.label_names or ()
    dtype = _autocast_dtype(config)

    def classify(texts: Sequence[str]) -> Any:
        return predict_classification(model, tokenizer, texts, max_length=t.max_length, batch_size=t.batch_size,
                                      autocast_dtype=dtype)

    predictions = classify(splits.test)
    y_pred = [p.label for p in predictions]
    probabilities = [list(p.probabilities) for p in predictions]
    y_true = list(splits.test_labels or [])
    differences = _diff("predictions", _stored(store, "predictions.json"),
                        {"test_indices": list(data.plan.test.indices), "predicted": y_pred,
                         "probabilities": probabilities})
    compared = ["predictions"]
    reports = _reports(folder)
    if "evaluation" in reports:
        metrics = ev.classification_metrics(y_true, y_pred, probabilities=probabilities, label_names=list(names))
        differences += _diff("evaluation", reports["evaluation"].get("classification"), _json(metrics),
                             "classification")
        compared.append("evaluation")
    plan = data.plan
    test_groups = {c: [v[i] for i in plan.test.indices] for c, v in data.groups.items()}
    if "bias" in reports and data.labels is not None:
        card = rebuilt.approved.card
        positive = card.representation[0].positive_label if card.representation else None
        bias = bias_reports.classification_bias_report(
            run_id=folder.run_id, train_labels=[data.labels[i] for i in plan.train.indices],
            train_groups={c: [v[i] for i in plan.train.indices] for c, v in data.groups.items()},
            test_labels=[names[i] for i in y_true], test_predictions=[names[i] for i in y_pred],
            test_groups=test_groups, positive_label=favourable_label(config, positive, names),
            thresholds=policy.bias.thresholds,
            action=policy.bias.action, unjudged=policy.bias.unjudged, min_group_size=policy.bias.min_group_size,
            bootstrap_samples=policy.bias.bootstrap_samples, confidence=policy.bias.confidence, seed=t.seed)
        for part in ("data_bias", "model_bias", "verdict"):
            differences += _diff("bias", reports["bias"].get(part), _json(getattr(bias, part)), part)
        compared.append("bias")
    if "privacy" in reports and reports["privacy"].get("membership") is not None:
        count = min(config.privacy.probes().membership_sample, len(splits.train))
        labels = list(splits.train_labels or [])[:count]
        members = [-math.log(max(p.probabilities[y], 1e-12)) for p, y in
                   zip(classify(list(splits.train[:count])), labels, strict=True)]
        replayed = _replayed(members, test_predictions=predictions)
        differences += _membership(folder, store, config, policy, rebuilt, replayed, test_groups, reports["privacy"])
        compared.append("privacy")
    return EvalReplay(tuple(compared), tuple(differences), ())


def _language_model(folder: RunFolder, store: EncryptedRunStore, config: RunConfig, policy: Policy,
                    rebuilt: ReplayData, model: Any, tokenizer: Any,
                    history: Sequence[dict[str, float]]) -> EvalReplay:
    from reports import bias as bias_reports
    from reports import evaluation as ev
    from trainer.inference import sequence_losses

    data, splits, t = rebuilt.data, rebuilt.splits, config.training

    def losses_of(texts: Sequence[str]) -> list[float]:
        return sequence_losses(model, tokenizer, texts, max_length=t.block_size, batch_size=t.batch_size,
                               autocast_dtype=_autocast_dtype(config))

    losses = losses_of(splits.test)
    differences = _diff("predictions", _stored(store, "predictions.json"),
                        {"test_indices": list(data.plan.test.indices), "losses": losses})
    compared, skipped = ["predictions"], []
    reports = _reports(folder)
    if "evaluation" in reports:
        finite = [x for x in losses if math.isfinite(x)]
        validation = next((float(e["val_loss"]) for e in reversed(list(history)) if "val_loss" in e), None)
        metrics = ev.language_model_metrics(validation_loss=validation,
                                            test_loss=sum(finite) / len(finite) if finite else None,
                                            test_examples=len(losses))
        differences += _diff("evaluation", reports["evaluation"].get("language_model"), _json(metrics),
                             "language_model")
        compared.append("evaluation")
    test_groups = {c: [v[i] for i in data.plan.test.indices] for c, v in data.groups.items()}
    if "bias" in reports and data.groups:
        bias = bias_reports.language_model_bias_report(
            run_id=folder.run_id, test_losses=losses, test_groups=test_groups,
            min_group_size=policy.bias.min_group_size, bootstrap_samples=policy.bias.bootstrap_samples,
            confidence=policy.bias.confidence, seed=t.seed)
        differences += _diff("bias", reports["bias"].get("group_losses"), _json(bias.group_losses), "group_losses")
        compared.append("bias")
    if config.probes.crows_pairs:
        skipped.append("bias: crows_pairs")
    if "privacy" in reports and reports["privacy"].get("membership") is not None:
        count = min(config.privacy.probes().membership_sample, len(splits.train))
        replayed = _replayed(losses_of(list(splits.train[:count])), test_example_losses=losses)
        differences += _membership(folder, store, config, policy, rebuilt, replayed, test_groups, reports["privacy"])
        compared.append("privacy")
    if "privacy" in reports and reports["privacy"].get("extraction"):
        skipped.append("privacy: extraction")
    return EvalReplay(tuple(compared), tuple(differences), tuple(skipped))


def _replayed(member_losses: Sequence[float], *, test_predictions: Sequence[ClassPrediction] = (),
              test_example_losses: Sequence[float] = ()) -> TrainResult:
    """The replayed inference as the privacy report reads a run's result: the member and test losses (or
    predictions); what it does not read from a result (training figures, probes not replayed) is left empty."""
    return TrainResult(best_step=None, stopped_early=False, steps=0, epochs_completed=0, history=(), test_metrics={},
                       test_predictions=tuple(test_predictions), test_example_losses=tuple(test_example_losses),
                       device="replay", world_size=1, effective_batch_size=0, wall_time_s=0.0, train_time_s=0.0,
                       samples_per_s=0.0, overfitting_alarm=False, overfitting_alarm_step=None, parameter_count=0,
                       artifact_digests={}, member_losses=tuple(member_losses))


class _ScratchStore:
    """Reads the run's store; keeps what the report code writes (its evidence file) in memory, so the replay never
    changes the run's files."""

    def __init__(self, store: EncryptedRunStore) -> None:
        self.store, self.written = store, MemoryArtifactStore()

    def write(self, name: str, data: bytes) -> str:
        return self.written.write(name, data)

    def read(self, name: str) -> bytes:
        return self.written.read(name) if self.written.exists(name) else self.store.read(name)

    def exists(self, name: str) -> bool:
        return self.written.exists(name) or self.store.exists(name)


def _membership(folder: RunFolder, store: EncryptedRunStore, config: RunConfig, policy: Policy, rebuilt: ReplayData,
                replayed: TrainResult, test_groups: dict[str, list[str]], report: dict[str, Any]) -> list[str]:
    """The membership-inference figures recomputed by the run's own report code from the replayed losses (the
    members and non-members it picks from the rebuilt draw); only the membership section is compared."""
    from governance.run.reports import _privacy_report

    quiet = config.model_copy(update={"privacy": config.privacy.model_copy(update={"generated_samples": 0})})
    scratch = cast(EncryptedRunStore, _ScratchStore(store))  # the report code reads, writes and checks names only
    recomputed = _privacy_report(folder.run_id, quiet, policy, rebuilt.data, replayed, test_groups, scratch, ())
    return _diff("privacy", report.get("membership"), _json(recomputed.membership), "membership")


def _autocast_dtype(config: RunConfig) -> Any:
    import torch

    return torch.bfloat16 if config.training.precision == "bf16" else None


def _reports(folder: RunFolder) -> dict[str, dict[str, Any]]:
    """The run's JSON reports by kind (their digests were checked against the log by ``report verify``; the
    replay compares figures, so a report edited on disk shows up as a difference too)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in ("evaluation", "bias", "privacy"):
        path = folder.reports / f"{kind}.json"
        if path.is_file():
            out[kind] = json.loads(path.read_bytes())
    return out


def _stored(store: EncryptedRunStore, name: str) -> Any:
    return json.loads(store.read(name)) if store.exists(name) else None


def _json(model: Any) -> Any:
    """A report model (or list or dict of them) as the JSON the report file holds."""
    from pydantic import BaseModel

    if isinstance(model, BaseModel):
        return json.loads(model.model_dump_json())
    if isinstance(model, list):
        return [_json(m) for m in model]
    if isinstance(model, dict):
        return {k: _json(v) for k, v in model.items()}
    return model


def _diff(figure: str, reported: Any, replayed: Any, path: str = "") -> list[str]:
    """``[]`` when equal, else the first differing path: ``figure: path (reported a, replayed b)``."""
    where = first_difference(reported, replayed, path)
    return [] if where is None else [f"{figure}: {where}"]


def first_difference(reported: Any, replayed: Any, path: str = "") -> str | None:
    """The first path at which two JSON values differ (floats exactly; NaN equals NaN), or ``None``."""
    if isinstance(reported, dict) and isinstance(replayed, dict):
        for key in sorted(set(reported) | set(replayed), key=str):
            found = first_difference(reported.get(key), replayed.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(reported, list) and isinstance(replayed, list):
        if len(reported) != len(replayed):
            return f"{path or 'value'} (reported {len(reported)} items, replayed {len(replayed)})"
        for i, (a, b) in enumerate(zip(reported, replayed, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    same = reported == replayed or (isinstance(reported, float) and isinstance(replayed, float)
                                    and math.isnan(reported) and math.isnan(replayed))
    return None if same else f"{path or 'value'} (reported {_short(reported)}, replayed {_short(replayed)})"


def _short(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
