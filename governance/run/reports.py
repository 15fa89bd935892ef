"""The reports every ``govtrain run`` ends with: bias, evaluation, transparency (model card) and provenance.

Inputs are the run's predictions, labels and groups (never texts); the per-example predictions the bias report
used are stored encrypted with the run (``predictions.json.enc``) so an auditor holding the key can recompute
it. Every report file's sha256 goes into the audit log (``report.written``), which ``govtrain report verify``
checks later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from governance.gate.approvals import ApprovedDataset
from governance.run.config import RunConfig
from governance.run.data import PreparedData
from governance.run.folder import EncryptedRunStore, RunFolder
from governance.run.release import judge_release
from governance.run.sources import environment, model_folder_digest, resolve_model_path
from governance.trust.session import Session
from policies import Policy, policy_digest
from trainer.config import PretrainedSource
from trainer.interface import TrainResult

if TYPE_CHECKING:
    from reports.privacy import PrivacyReport

PREDICTIONS = "predictions.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_LOADED: weakref.WeakKeyDictionary[EncryptedRunStore, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def load_trained_model(store: EncryptedRunStore, config: RunConfig) -> tuple[Any, Any]:
    """The final model and tokenizer, decrypted into memory from the run's ``model/`` files and rebuilt strictly
    (a missing weight is an error, never silently left at its initial value). Built once per run store: the report
    steps that score with the model (mitigation, CrowS-Pairs, canaries, generated text) share it, and it is freed
    with the store."""
    if store in _LOADED:
        return _LOADED[store]
    _LOADED[store] = loaded = _rebuild(store, config)
    return loaded


def _rebuild(store: EncryptedRunStore, config: RunConfig) -> tuple[Any, Any]:
    from trainer.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
    from trainer.modeling import load_saved_model
    from trainer.tokenization import tokenizer_from_files

    names = ("config.json", ADAPTER_WEIGHTS, ADAPTER_CONFIG) if store.exists(f"model/{ADAPTER_WEIGHTS}") \
        else ("config.json", "model.safetensors")
    files = {name: store.read(f"model/{name}") for name in names}
    base = resolve_model_path(config.model.path) if isinstance(config.model, PretrainedSource) else None
    model = load_saved_model(files, config.task, base)
    tokenizer = tokenizer_from_files({name: store.read(f"model/{name}")
                                      for name in ("tokenizer.json", "tokenizer_config.json")})
    return model, tokenizer


def _crows_pairs(config: RunConfig, store: EncryptedRunStore, policy: Policy) -> Any:
    if not config.probes.crows_pairs:
        return None
    from reports.lm_bias import crows_pairs_probe, load_crows_pairs
    from trainer import sentence_log_likelihood

    pairs = load_crows_pairs(config.probes.crows_pairs)
    model, tokenizer = load_trained_model(store, config)
    more = sentence_log_likelihood(model, tokenizer, [p.sent_more for p in pairs])
    less = sentence_log_likelihood(model, tokenizer, [p.sent_less for p in pairs])
    return crows_pairs_probe(more, less, [p.bias_type for p in pairs], seed=config.training.seed,
                             samples=policy.bias.bootstrap_samples, confidence=policy.bias.confidence)


def write_run_reports(
    session: Session, folder: RunFolder, config: RunConfig, policy: Policy, approved: ApprovedDataset,
    data: PreparedData, result: TrainResult, store: EncryptedRunStore, started_on: str, *, canaries: Sequence[Any] = (),
) -> dict[str, Any]:
    """Compute and write the reports; log their digests; return what the run's status record gains."""
    from reports import bias as bias_reports
    from reports import evaluation as ev
    from reports.lineage import Approval, AuditCheckpointRef, DatasetSummary, Lineage, PolicyRef
    from reports.provenance import provenance_statement, sign_dsse
    from reports.render import write_reports
    from reports.transparency import build_model_card

    plan = data.plan
    run_id = folder.run_id
    test_groups = {c: [v[i] for i in plan.test.indices] for c, v in data.groups.items()}
    training = ev.training_summary(
        list(result.history), best_step=result.best_step, stopped_early=result.stopped_early, steps=result.steps,
        epochs_completed=result.epochs_completed, overfitting_alarm=result.overfitting_alarm,
        overfitting_alarm_step=result.overfitting_alarm_step, samples_per_s=result.samples_per_s,
        wall_time_s=result.wall_time_s, device={"device": result.device, "world_size": result.world_size,
                                                "effective_batch_size": result.effective_batch_size})
    bias = None
    extra: dict[str, Any] = {}
    trained_data = data  # the rows the model was trained on (balanced sampling resamples the training split)
    if config.task == "text-classification":
        names = data.label_names or ()
        y_true = [names.index(data.labels[i]) for i in plan.test.indices] if data.labels else []
        y_pred = [p.label for p in result.test_predictions]
        probabilities = [list(p.probabilities) for p in result.test_predictions]
        metrics = ev.classification_metrics(y_true, y_pred, probabilities=probabilities, label_names=list(names))
        evaluation = ev.evaluation_report(run_id=run_id, training=training, classification=metrics)
        stored: dict[str, Any] = {"test_indices": list(plan.test.indices), "predicted": y_pred,
                                  "probabilities": probabilities}
        if data.groups and data.labels is not None:
            from governance.run.mitigation import favourable_label

            positive = approved.card.representation[0].positive_label if approved.card.representation else None
            positive_label = favourable_label(config, positive, names)
            test_labels, predicted = [names[i] for i in y_true], [names[i] for i in y_pred]
            mitigation = None
            if config.bias.mitigation is not None:
                predicted, mitigation, trained_data, extra = _mitigate(
                    config, policy, data, result, store, predicted, test_labels, test_groups, positive_label,
                    workspace=session.workspace, run_id=run_id, card_digest=approved.card.digest())
                if mitigation.post_processing is not None:
                    stored["mitigated_predicted"] = [names.index(p) for p in predicted]
            bias = bias_reports.classification_bias_report(
                run_id=run_id, train_labels=[data.labels[i] for i in plan.train.indices],
                train_groups={c: [v[i] for i in plan.train.indices] for c, v in data.groups.items()},
                test_labels=test_labels, test_predictions=predicted,
                test_groups=test_groups, positive_label=positive_label, thresholds=policy.bias.thresholds,
                action=policy.bias.action, unjudged=policy.bias.unjudged, min_group_size=policy.bias.min_group_size,
                bootstrap_samples=policy.bias.bootstrap_samples, confidence=policy.bias.confidence,
                seed=config.training.seed, mitigation=mitigation)
        store.write(PREDICTIONS, json.dumps(stored).encode())
    else:
        losses = list(result.test_example_losses)
        finite = [x for x in losses if math.isfinite(x)]
        evaluation = ev.evaluation_report(run_id=run_id, training=training, language_model=ev.language_model_metrics(
            validation_loss=_last_val_loss(result.history), test_loss=sum(finite) / len(finite) if finite else None,
            test_examples=len(losses)))
        store.write(PREDICTIONS, json.dumps({"test_indices": list(plan.test.indices), "losses": losses}).encode())
        probe = _crows_pairs(config, store, policy)
        if data.groups or probe is not None:
            bias = bias_reports.language_model_bias_report(
                run_id=run_id, test_losses=losses, test_groups=test_groups, crows_pairs=probe,
                min_group_size=policy.bias.min_group_size, bootstrap_samples=policy.bias.bootstrap_samples,
                confidence=policy.bias.confidence, seed=config.training.seed)

    privacy = _privacy_report(run_id, config, policy, trained_data, result, test_groups, store, canaries) \
        if "privacy" in policy.reports.emit else None

    card = approved.card
    status = approved.status  # judged from the verified audit log by the gate check
    env = environment()
    tree = session.log.tree_head() if session.log is not None else None
    lineage = Lineage(
        datasets=[DatasetSummary(
            name=card.name, version=card.version, digest=card.digest(), license=card.provenance.license,
            source=card.provenance.source, description=card.provenance.description, rows=card.rows.stored,
            sensitive_columns=card.sensitive_columns, pii_findings=dict(card.pii.findings_by_entity),
            # status.counted holds only approvals logged after the ingest by keys entitled at that moment
            approvals=[Approval(approver=a.name, role=a.role, key_id=a.key_id, time=a.time, signature_valid=True,
                                self_approval=a.key_id == status.ingest.key_id)
                       for a in status.counted])],
        policy=PolicyRef(name=policy.name, digest=policy_digest(policy)),
        run_config=json.loads(config.model_dump_json()), code_version=env["govtrain"],
        library_versions={k: env[k] for k in ("torch", "transformers", "datasets", "python")},
        hardware={"device": env["device"], "world_size": env["world_size"]},
        audit_checkpoint=AuditCheckpointRef(tree_size=tree[0], root=tree[1].hex(), time=_now()) if tree else None,
    )
    kinds = set(policy.reports.emit)
    reports: list[Any] = ([evaluation] if "evaluation" in kinds else []) + \
        ([bias] if bias is not None and "bias" in kinds else []) + ([privacy] if privacy is not None else [])
    formats = sorted({"json", *policy.reports.formats})

    def written(kind: str) -> list[str]:
        return [f"reports/{kind}.{fmt}" for fmt in formats] if kind in kinds else []

    artifacts = {
        "dataset_cards": [f"cards/{card.name}/{card.version}/card.json", f"cards/{card.name}/{card.version}/card.md"],
        "approvals": [f"cards/{card.name}/{card.version}/decisions/"],
        "policy": [f"policy {policy.name} (sha256 {policy_digest(policy)})"],
        "run_config": [f"runs/{run_id}/config.yaml"],
        "audit_log": ["audit/log.jsonl"],
        "audit_checkpoint": ["audit/checkpoints/latest.note"],
        "bias_report": written("bias") if bias is not None else [],
        "evaluation_report": written("evaluation"),
        "model_card": written("transparency"),
        "provenance": ["reports/provenance.json"] if "provenance" in kinds else [],
        "privacy_report": written("privacy"),
        "tensorboard": [f"runs/{run_id}/tensorboard/"],
    }
    if "transparency" in kinds:
        reports.append(build_model_card(
            run_id=run_id, model_name=config.name or run_id, license=card.provenance.license.lower(),
            run_config=json.loads(config.model_dump_json()), lineage=lineage, evaluation=evaluation, bias=bias,
            privacy=privacy, artifacts=artifacts, tags=["govtrain", config.task]))
    if "provenance" in kinds:
        actor = session.actor
        assert actor is not None
        base = None
        if isinstance(config.model, PretrainedSource):
            base = {"name": config.model.path, "digest": model_folder_digest(resolve_model_path(config.model.path))}
        statement = provenance_statement(
            model_files={**result.artifact_digests, **extra.get("mitigation_artifacts", {})},
            run_config=json.loads(config.model_dump_json()), policy={"name": policy.name, "digest": policy_digest(policy)},
            datasets=[{"name": card.name, "version": card.version, "digest": card.digest(),
                       "ciphertext_digest": card.digests.ciphertext}], base_model=base,
            builder_id=f"govtrain{'-runner' if actor.role == 'runner' else ''}/{env['govtrain']}", invocation_id=run_id, started_on=started_on, finished_on=_now(),
            builder_version={"govtrain": env["govtrain"]},
            code={"name": f"govtrain@{env['govtrain']}", "digest": code_digest()})
        reports.append(sign_dsse(statement, actor.signer.private_key, keyid=actor.signer.key_id))
    digests = write_reports(folder.reports, reports, list(policy.reports.formats))
    # The same function the release decision uses later, so the logged claim and the recomputation agree.
    judged = bias.verdict if bias is not None and "bias" in kinds else None  # as verifiers will read it
    verdict, failed, _unjudged = judge_release(judged)
    releasable, flagged = verdict != "blocked", failed > 0
    session.record("report.written", {"run_id": run_id, "digests": digests, "releasable": releasable,
                                      "flagged": flagged})
    return {"releasable": releasable, "bias_flagged": flagged, "bias_verdict": verdict,
            "bias_summary": bias.verdict.summary() if bias is not None and bias.verdict is not None else None,
            "report_digests": digests, "reports": sorted(digests), **extra}


def _mitigate(config: RunConfig, policy: Policy, data: PreparedData, result: TrainResult, store: EncryptedRunStore,
              predicted: list[str], test_labels: list[str], test_groups: dict[str, list[str]], positive_label: str,
              *, workspace: Any, run_id: str, card_digest: str) -> tuple[list[str], Any, PreparedData, dict[str, Any]]:
    """The mitigated test predictions, the report's before/after, the data the model was trained on, and what the
    status record gains (the mitigation's settings; the thresholds file, a model artifact)."""
    import dataclasses

    from governance.run import mitigation as mit
    from reports.bias import PostProcessingResult, mitigation_result

    assert config.bias.mitigation is not None and data.labels is not None
    plan, labels = data.plan, data.labels
    applied = config.bias.mitigation.applied()
    extra: dict[str, Any] = {"mitigation": json.loads(config.bias.mitigation.model_dump_json())}
    sampling = None
    trained = data
    resampled = mit.resample_training(plan.train.indices, labels, data.groups, config)
    if resampled is not None:
        sampling = mit.sampling_evidence(resampled, labels, data.groups, positive_label)
        trained = dataclasses.replace(data, plan=dataclasses.replace(
            plan, train=dataclasses.replace(plan.train, indices=resampled.after, digest=resampled.digest())))
    before: list[str] | None = None
    after, post = predicted, None
    reference = None
    if resampled is not None:  # the model before balanced sampling is an earlier run's, when there is one
        reference = mit.find_reference_run(workspace, store.kek, config, card_digest=card_digest,
                                           test_indices=plan.test.indices, run_id=run_id, predictions=PREDICTIONS)
        if reference is not None:
            before = [(data.label_names or ())[i] for i in reference.predicted]
    column = config.post_processing_column
    if column is not None:
        from trainer.inference import predict_classification

        names = data.label_names or ()
        pos = names.index(positive_label)
        other = next(n for n in names if n != positive_label)
        model, tokenizer = load_trained_model(store, config)
        validation = plan.validation.indices
        scored = predict_classification(model, tokenizer, [data.texts[i] for i in validation],
                                        max_length=config.training.max_length,
                                        batch_size=config.training.batch_size)
        flags, thresholds, missing = mit.post_process(
            config, validation_scores=[p.probabilities[pos] for p in scored],
            validation_positive=[labels[i] == positive_label for i in validation],
            validation_groups=[data.groups[column][i] for i in validation],
            test_scores=[p.probabilities[pos] for p in result.test_predictions], test_groups=test_groups[column],
            unmitigated=[p == positive_label for p in predicted], positive_label=positive_label)
        after = [positive_label if f else other for f in flags]
        before = predicted if reference is None else before
        digest = store.write(mit.THRESHOLDS_FILE, thresholds.to_json())
        extra["mitigation_artifacts"] = {mit.THRESHOLDS_FILE: digest}
        post = PostProcessingResult(
            constraints=thresholds.constraints, objective=thresholds.objective,
            sensitive_column=column, validation_rows=len(validation), groups_fitted=len(thresholds.rules),
            groups_without_thresholds=missing, randomized=mit.randomized(thresholds), seed=config.training.seed,
            thresholds_file=mit.THRESHOLDS_FILE)
    result_model = mitigation_result(
        applied=applied, comparison=mit.comparison_text(applied, reference.run_id if reference else None),
        reference_run=reference.run_id if reference else None,
        train_labels=[labels[i] for i in plan.train.indices], test_labels=test_labels,
        before_predictions=before, after_predictions=after, test_groups=test_groups, positive_label=positive_label,
        thresholds=policy.bias.thresholds, action=policy.bias.action, unjudged=policy.bias.unjudged,
        min_group_size=policy.bias.min_group_size, confidence=policy.bias.confidence,
        bootstrap_samples=policy.bias.bootstrap_samples, seed=config.training.seed, balanced_sampling=sampling,
        post_processing=post)
    if result_model.before is not None:
        extra["mitigation_before"] = {"verdict": result_model.before.outcome, "reference_run": result_model.reference_run}
    return after, result_model, trained, extra


def code_digest() -> str:
    """sha256 over govtrain's own source files (paths and contents): the code version provenance records."""
    import hashlib
    from pathlib import Path

    import governance

    root = Path(governance.__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in ("governance", "datacards", "trainer", "audit", "reports", "policies"):
        for file in sorted((root / package).rglob("*")):
            if file.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in file.parts:
                digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def _privacy_report(run_id: str, config: RunConfig, policy: Policy, data: PreparedData, result: TrainResult,
                    test_groups: dict[str, list[str]], store: EncryptedRunStore, canaries: Sequence[Any]) -> PrivacyReport:
    """The membership-inference test: the final model's loss on a sample of training examples (members) against
    the held-out test split's (non-members), judged against the policy's bound."""
    from reports.privacy import (
        DifferentialPrivacy,
        PrivacyReport,
        extraction_rate,
        judge_privacy,
        membership_inference,
    )

    members = list(result.member_losses)
    if config.task == "text-classification":
        names = data.label_names or ()
        truth = [names.index(data.labels[i]) for i in data.plan.test.indices] if data.labels else []
        outsiders = [-math.log(max(p.probabilities[y], 1e-12)) for p, y in zip(result.test_predictions, truth,
                                                                                strict=True)]
    else:
        outsiders = list(result.test_example_losses)
    member_rows = data.member_rows(len(members), result.member_shares)
    keep: list[int] = list(range(len(outsiders)))
    if data.membership is not None:  # the draw's members (scored first) against its non-members, like with like
        wanted = set(data.membership.members)
        first = {row: i for i, row in reversed(list(enumerate(member_rows)))}  # a repeated row counts once
        picked = sorted(i for row, i in first.items() if row in wanted)
        members, member_rows = [members[i] for i in picked], [member_rows[i] for i in picked]
        chosen = set(data.membership.nonmembers)
        keep = [i for i, row in enumerate(data.plan.test.indices) if row in chosen]
    keep = [i for i in keep if math.isfinite(outsiders[i])]  # an empty text has no loss
    outsiders = [outsiders[i] for i in keep]
    rules = policy.privacy
    inference = None
    if members and outsiders and all(math.isfinite(x) for x in members):
        inference = membership_inference(
            members, outsiders, confidence=rules.confidence, min_group_size=policy.bias.min_group_size,
            member_groups={c: [v[i] for i in member_rows] for c, v in data.groups.items()} or None,
            nonmember_groups={c: [g[i] for i in keep] for c, g in test_groups.items()} or None)
    extraction = []
    if config.task == "causal-lm" and result.extraction:
        # One greedy continuation per text answers every m up to the configured one: the report lists m/4, m/2
        # and m; the policy judges the configured (k, m).
        k, m = config.privacy.extraction_prefix, config.privacy.extraction_suffix
        extraction = [extraction_rate([matched >= length for matched in result.extraction], k=k, m=length,
                                      confidence=rules.confidence)
                      for length in sorted({max(1, m // 4), max(1, m // 2), m})]
    if inference is not None:  # the losses stay encrypted with the run; the report states their digest
        from governance.run.judgments import PRIVACY_EVIDENCE
        from reports.model import canonical_bytes
        from reports.privacy import membership_evidence

        store.write(PRIVACY_EVIDENCE, canonical_bytes(membership_evidence(members, outsiders)))
    dp = (DifferentialPrivacy.model_validate(dataclasses.asdict(result.differential_privacy))
          if result.differential_privacy is not None else None)
    verdict = judge_privacy(inference, max_auc=rules.max_membership_auc, confidence=rules.confidence,
                            extraction=[e for e in extraction if e.m == config.privacy.extraction_suffix],
                            dp=dp, max_epsilon=rules.max_epsilon,
                            max_extraction_rate=rules.max_extraction_rate if config.task == "causal-lm" else None,
                            action=rules.action, unjudged=rules.unjudged)
    generated = _generated_pii(config, policy, store) if config.task == "causal-lm" else None
    exposures = None
    if canaries:
        from governance.run.canaries import CANDIDATES
        from governance.run.canaries import exposures as measure_exposures
        from reports.privacy import CanaryExposure
        from trainer.inference import sequence_losses

        model, tokenizer = load_trained_model(store, config)
        exposures = [CanaryExposure.model_validate({**e, "candidates": CANDIDATES}) for e in measure_exposures(
            canaries, lambda texts: sequence_losses(model, tokenizer, texts, max_length=config.training.block_size,
                                                    batch_size=config.training.batch_size))]
    return PrivacyReport(run_id=run_id, membership=inference, extraction=extraction or None, canaries=exposures,
                         generated_pii=generated, differential_privacy=dp, verdict=verdict)


def _generated_pii(config: RunConfig, policy: Policy, store: EncryptedRunStore) -> Any:
    """How many PII findings the policy's own detector makes in unconditioned samples from the trained model, by
    entity type; the samples live in memory only."""
    if config.privacy.generated_samples == 0:
        return None
    from collections import Counter

    from governance.gate.pii import load_pii_engine
    from governance.gate.pii_recall import detector_digest
    from governance.gate.pii_scan import find_pii
    from reports.privacy import GeneratedPii
    from trainer.inference import sample_texts

    model, tokenizer = load_trained_model(store, config)
    texts = sample_texts(model, tokenizer, config.privacy.generated_samples,
                         max_new_tokens=config.privacy.generated_tokens, seed=config.training.seed)
    engine = load_pii_engine(policy.pii)
    found = find_pii(texts, engine)
    counts = Counter(result.entity_type for results in found for result in results)
    return GeneratedPii(samples=len(texts), findings={e: counts.get(e, 0) for e in policy.pii.entities},
                        samples_with_findings=sum(1 for results in found if results),
                        max_new_tokens=config.privacy.generated_tokens,
                        detector=detector_digest(policy.pii, engine.info))


def _last_val_loss(history: Any) -> float | None:
    for entry in reversed(list(history)):
        for key in ("val_loss", "validation_loss"):
            if key in entry:
                return float(entry[key])
    return None
