"""The transparency report: a model card (Hugging Face YAML metadata with ``model-index``, and the Model
Cards sections of Mitchell et al. 2019), the lineage, and the compliance map.

Every sentence is built from the inputs: the resolved run config, the dataset card summaries, the
evaluation and bias reports. When an input lacks something (say the config states no intended use), the
card says which input is empty instead of inventing content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Final, Literal

from pydantic import Field

from reports.bias import BiasReport
from reports.compliance import ComplianceItem, compliance_map
from reports.document import Block, Heading, Paragraph, Table, fmt, to_markdown
from reports.evaluation import EvaluationReport
from reports.lineage import Lineage, lineage_blocks
from reports.model import ReportModel
from reports.privacy import PrivacyReport

CARD_FORMAT: Final = "govtrain.model-card/v1"
Cell = str | int | float | bool | None


class CardMetadata(ReportModel):
    """The Hugging Face model card metadata (the README's YAML front matter)."""

    model_name: str
    license: str
    library_name: Literal["transformers"] = "transformers"
    pipeline_tag: str
    tags: list[str]
    datasets: list[str]
    metrics: list[str]
    base_model: str | None
    model_index: list[dict[str, Any]] = Field(alias="model-index")


class CardSection(ReportModel):
    """One Model Cards section: paragraphs and an optional table."""

    title: str
    paragraphs: list[str]
    headers: list[str] = Field(default_factory=list)
    rows: list[list[Cell]] = Field(default_factory=list)


class ModelCard(ReportModel):
    """The model card of one run; JSON is the source of truth, ``model_card_markdown`` the README."""

    format: Literal["govtrain.model-card/v1"] = CARD_FORMAT
    run_id: str
    metadata: CardMetadata
    sections: list[CardSection]
    lineage: Lineage
    compliance: list[ComplianceItem]
    releasable: bool = Field(description="False when the bias verdict blocks release; a release may still need a "
                                         "compliance officer's approval, which the audit log records.")


def _test_metrics(evaluation: EvaluationReport) -> list[tuple[str, str, float]]:
    """(HF metric id, display name, value) of the test results."""
    c, lm = evaluation.classification, evaluation.language_model
    found: list[tuple[str, str, float | None]] = []
    if c is not None:
        found = [("accuracy", "Accuracy", c.accuracy), ("f1", "F1 (macro)", c.f1_macro),
                 ("f1", "F1 (weighted)", c.f1_weighted), ("roc_auc", "ROC AUC", c.roc_auc)]
    if lm is not None:
        found = [("loss", "Test loss", lm.test_loss), ("perplexity", "Test perplexity", lm.test_perplexity)]
    return [(k, n, v) for k, n, v in found if v is not None]


def _metadata(model_name: str, license: str, config: Mapping[str, Any], lineage: Lineage,
              evaluation: EvaluationReport, tags: Sequence[str]) -> CardMetadata:
    model = config.get("model", {})
    base = PurePath(str(model["path"])).name if model.get("kind") == "pretrained" and model.get("path") else None
    task = evaluation.task
    metrics = _test_metrics(evaluation)
    results = [{
        "task": {"type": task, "name": "Text Classification" if task == "text-classification" else "Causal LM"},
        "dataset": {"name": d.name, "type": d.name, "revision": str(d.version), "split": "test"},
        "metrics": [{"type": k, "value": v, "name": n} for k, n, v in metrics],
    } for d in lineage.datasets]
    return CardMetadata.model_validate({
        "model_name": model_name, "license": license, "pipeline_tag": "text-classification"
        if task == "text-classification" else "text-generation",
        "tags": sorted({"govtrain", task, *tags}), "datasets": [d.name for d in lineage.datasets],
        "metrics": sorted({k for k, _, _ in metrics}), "base_model": base,
        "model-index": [{"name": model_name, "results": results}],
    })


def _or_missing(text: str, what: str) -> str:
    return text.strip() or f"Not stated: the run config's `{what}` is empty."


def _sections(config: Mapping[str, Any], lineage: Lineage, evaluation: EvaluationReport,
              bias: BiasReport | None, meta: CardMetadata) -> list[CardSection]:
    model, training = config.get("model", {}), config.get("training", {})
    ds = lineage.datasets
    sens = sorted({c for d in ds for c in d.sensitive_columns} | set(bias.sensitive_columns if bias else []))
    built = (f"fine-tuned from `{meta.base_model}`" if meta.base_model
             else f"a {model.get('architecture', 'model')} built from config and trained from scratch")
    t = evaluation.training
    sections = [
        CardSection(title="Model details", paragraphs=[
            (f"{meta.model_name}: a {evaluation.task} model, {built}, trained with govtrain "
            f"{lineage.code_version} under policy {lineage.policy.name} (run {evaluation.run_id})."),
            (f"Training: {t.steps} optimizer steps, {t.epochs_completed} epoch(s), learning rate "
            f"{training.get('learning_rate', '—')}, weight decay {training.get('weight_decay', '—')}, batch size "
            f"{training.get('batch_size', '—')}; best step {fmt(t.best_step)}; stopped early: {fmt(t.stopped_early)}."),
            f"License: {meta.license}."]),
        CardSection(title="Intended use", paragraphs=[_or_missing(str(config.get("intended_use", "")), "intended_use")]),
        CardSection(title="Out-of-scope use",
                    paragraphs=[_or_missing(str(config.get("out_of_scope_use", "")), "out_of_scope_use")]),
        CardSection(title="Factors", paragraphs=[
            "Groups considered (sensitive columns of the data): " + (", ".join(sens) if sens else
                                                                    "none were declared, so no group analysis ran")
            + ("; intersections of all columns are analysed too." if len(sens) > 1 else ".")]),
    ]
    metrics = _test_metrics(evaluation)
    judged = "; ".join(sorted({f"{c.metric} (min {fmt(c.min)}, max {fmt(c.max)})" for c in bias.verdict.checks})
                       ) if bias and bias.verdict else "none (no thresholds apply to this task)"
    sections.append(CardSection(title="Metrics", paragraphs=[
        "Performance on the held-out test split: " + ", ".join(n for _, n, _ in metrics) + ".",
        f"Fairness thresholds from the policy: {judged}."], headers=["metric", "value"],
        rows=[[n, v] for _, n, v in metrics]))
    splits = config.get("splits", {})
    n_test = (evaluation.classification.examples if evaluation.classification
              else evaluation.language_model.test_examples if evaluation.language_model else None)
    sections.append(CardSection(title="Evaluation data", paragraphs=[
        (f"The test split ({fmt(splits.get('test'))} of {', '.join(f'{d.name}@{d.version}' for d in ds)}; "
        f"{fmt(n_test)} examples), held out from training and validation.")]))
    sections.append(CardSection(title="Training data", paragraphs=[
        f"{d.name}@{d.version} ({fmt(d.rows)} rows, license {d.license}, source {d.source}): {d.description} "
        f"PII removed before training: " + (", ".join(f"{k} {v}" for k, v in sorted(d.pii_findings.items()))
                                            or "none found") + "." for d in ds] + [
        "The model was trained on scrubbed text (personal data replaced as the policy says, e.g. by <PERSON>), "
        "so it expects its inputs scrubbed the same way: the export's scrub.json holds the settings, and "
        "'govtrain predict' (or governance.run.predict.ScrubbedClassifier) applies them before the model sees "
        "a text. Raw text with names in it is unlike anything it was trained on."]))
    if bias is not None and bias.mitigation is not None:
        sections.append(_mitigation(bias))
    sections.append(_quantitative(bias))
    sections.append(_ethics(lineage, bias))
    sections.append(_caveats(evaluation, bias))
    return sections


def _privacy_section(privacy: PrivacyReport) -> CardSection:
    """What the model may reveal about its training data (from the privacy report)."""
    paragraphs = [privacy.verdict.summary()]
    paragraphs.append(privacy.differential_privacy.reading() if privacy.differential_privacy is not None
                      else "Trained without differential privacy: no bound on what one training example changes.")
    m = privacy.membership
    if m is not None and m.auc.value is not None:
        interval = f" [{fmt(m.auc.interval.low)}, {fmt(m.auc.interval.high)}]" if m.auc.interval is not None else ""
        paragraphs.append(f"A loss-threshold membership attack tells training from held-out examples with AUC "
                          f"{fmt(m.auc.value)}{interval} (0.5: it cannot tell them apart).")
    return CardSection(title="Privacy", paragraphs=paragraphs)


def _mitigation(bias: BiasReport) -> CardSection:
    """Which mitigation was applied, its settings, and what it changed (from the bias report)."""
    m = bias.mitigation
    assert m is not None
    out = ["Applied: " + ", ".join(name.replace("_", " ") for name in m.applied) + ". " + m.comparison]
    if m.balanced_sampling is not None:
        s = m.balanced_sampling
        out.append(f"Balanced sampling by {' & '.join(s.columns)} x label (seed {s.seed}): the training split's "
                   f"{s.rows_before} rows were resampled to {s.rows_after} ({s.distinct_rows_after} distinct) so "
                   "every group has the same label rate; validation and test rows were not touched.")
    post = m.post_processing
    if post is not None:
        out.append(f"Post-processing: {post.method}, constraints {post.constraints}, objective {post.objective}, "
                   f"fitted on {post.validation_rows} validation rows for {post.groups_fitted} group(s) of "
                   f"{post.sensitive_column}.")
        out.append(f"This model needs the sensitive attribute {post.sensitive_column} at prediction time: its "
                   f"score is thresholded per group by the fitted thresholds shipped with it ({post.thresholds_file}"
                   "). Used without them, it is not the model judged here."
                   + (" Some thresholds are a random mix of two: predictions are randomized." if post.randomized
                      else ""))
    if m.before is not None and bias.verdict is not None:
        source = f" (run {m.reference_run})" if m.reference_run else ""
        out.append(f"Fairness verdict before mitigation{source}: {m.before.summary()} After (this model): "
                   f"{bias.verdict.summary()}")
    rows: list[list[Cell]] = [[c.metric.replace("_", " "), c.before.value, c.after.value, c.change.value]
                              for c in m.accuracy_cost]
    if rows:
        out.append("Accuracy cost on the same test rows (intervals in the bias report). The evaluation report and "
                   "the metrics above are the model's scores before thresholds.")
    return CardSection(title="Bias mitigation", paragraphs=out,
                       headers=["metric", "before", "after", "change"] if rows else [], rows=rows)


def _quantitative(bias: BiasReport | None) -> CardSection:
    if bias is None:
        return CardSection(title="Quantitative analyses", paragraphs=["No bias report was produced for this run."])
    rows: list[list[Cell]] = []
    for col in bias.model_bias:
        rows += [[col.column, g.group, g.count, g.metrics["accuracy"].value, g.metrics["selection_rate"].value,
                  g.metrics["true_positive_rate"].value, g.metrics["false_positive_rate"].value] for g in col.groups]
        rows += [[col.column, g.group, g.count, "too small: not judged", None, None, None] for g in col.insufficient]
    for column, losses in bias.group_losses.items():
        rows += [[column, g.group, g.count, "mean loss", g.mean_loss.value, None, None] for g in losses]
    paragraphs = ["Disaggregated by group on the test split (from the bias report; intervals there)."]
    if bias.crows_pairs is not None:
        o = bias.crows_pairs.overall
        paragraphs.append(f"CrowS-Pairs: the model prefers the more-stereotyping sentence in {fmt(o.share.value)} "
                          f"of {o.pairs} pairs (ideal {fmt(bias.crows_pairs.ideal)}).")
    return CardSection(title="Quantitative analyses", paragraphs=paragraphs,
                       headers=["grouping", "group", "count", "accuracy", "selection rate", "TPR", "FPR"], rows=rows)


def _ethics(lineage: Lineage, bias: BiasReport | None) -> CardSection:
    pii = sum(v for d in lineage.datasets for v in d.pii_findings.values())
    approvers = sorted({a.approver for d in lineage.datasets for a in d.approvals if a.signature_valid})
    out = [f"Personal data: {pii} PII finding(s) were removed from the training data before training. "
           + (f"Approved for training by: {', '.join(approvers)}." if approvers
              else "No valid approval signature was recorded in the inputs.")]
    own = sorted({a.approver for d in lineage.datasets for a in d.approvals if a.self_approval})
    if own:
        out.append(f"Self-approval: {', '.join(own)} approved data they ingested themselves, which the registered "
                   "policy allows (an admin registered it so).")
    if bias and bias.data_bias:
        worst = max(((abs(g.dpl), col.column, g.group) for col in bias.data_bias for g in col.groups
                     if g.dpl is not None), default=None)
        if worst is not None:
            out.append(f"Largest label imbalance in the training data: |DPL| {fmt(worst[0])} for {worst[2]} "
                       f"({worst[1]}).")
    if bias and bias.verdict:
        v = bias.verdict
        out.append(f"Fairness verdict: {v.summary()} A FAIL {'blocks' if v.action == 'block' else 'flags'} "
                   f"the run and a NOT JUDGED check {'blocks' if v.unjudged == 'block' else 'needs review'} "
                   f"under the policy; blocked: {fmt(not v.releasable)}. Whether the model may be released is "
                   "decided from the audit log (govtrain runs show).")
    return CardSection(title="Ethical considerations", paragraphs=out)


def _caveats(evaluation: EvaluationReport, bias: BiasReport | None) -> CardSection:
    t, out = evaluation.training, []
    if t.overfitting_alarm:
        out.append(f"The overfitting alarm fired (step {fmt(t.overfitting_alarm_step)}); train/validation gap "
                   f"{fmt(t.gap)}.")
    c = evaluation.classification
    if c is not None and c.ece is not None:
        out.append(f"Expected calibration error {fmt(c.ece)}: treat scores as probabilities only if this is small.")
    small = [f"{g.group} ({col.column}, {g.count})" for col in (bias.model_bias if bias else []) for g in col.insufficient]
    if small:
        out.append("Too few test rows to judge fairness for: " + ", ".join(small) + "; collect more data.")
    if bias and bias.verdict and bias.verdict.flagged:
        out.append("Fairness thresholds were breached with the stated confidence: review the bias report before "
                   "any use.")
    if bias and bias.verdict and bias.verdict.not_judged:
        out.append(f"{bias.verdict.not_judged} fairness check(s) could not be judged: this model's fairness is "
                   "not established for those groupings; a larger test split (see govtrain run --dry-run) "
                   "would let them be judged.")
    out.append("Results hold for data like the test split; re-evaluate before use on other populations.")
    return CardSection(title="Caveats and recommendations", paragraphs=out)


def build_model_card(
    *, run_id: str, model_name: str, license: str, run_config: Mapping[str, Any], lineage: Lineage,
    evaluation: EvaluationReport, bias: BiasReport | None, artifacts: Mapping[str, Sequence[str]],
    tags: Sequence[str] = (), privacy: PrivacyReport | None = None,
) -> ModelCard:
    """The model card from the run's inputs; ``artifacts`` maps artifact kinds (``compliance.Artifact``) to
    the file names that hold them, for the compliance map."""
    meta = _metadata(model_name, license, run_config, lineage, evaluation, tags)
    sections = _sections(run_config, lineage, evaluation, bias, meta)
    if privacy is not None:
        sections.append(_privacy_section(privacy))
    return ModelCard(run_id=run_id, metadata=meta, sections=sections,
                     lineage=lineage, compliance=compliance_map(artifacts),
                     releasable=bias.releasable if bias is not None else True)


def model_card_blocks(card: ModelCard) -> list[Block]:
    """The card's body: sections, lineage and compliance map."""
    blocks: list[Block] = []
    for s in card.sections:
        blocks += [Heading(s.title), *(Paragraph(p) for p in s.paragraphs)]
        if s.headers and s.rows:
            blocks.append(Table(tuple(s.headers), tuple(tuple(r) for r in s.rows)))
    blocks += lineage_blocks(card.lineage)
    blocks += [Heading("Compliance map"), Paragraph(
        "Where the evidence for each requirement is, and what this run does not cover. An aid for "
        "documentation, not a conformity assessment."),
        Table(("framework", "item", "requirement", "evidence", "not covered"), tuple(
            (c.framework, c.item, c.requirement, ", ".join(c.evidence) or "none", "; ".join(c.not_covered))
            for c in card.compliance))]
    return blocks


def model_card_markdown(card: ModelCard) -> str:
    """The Hugging Face README: YAML front matter, then the card."""
    import yaml

    front = card.metadata.model_dump(mode="json", by_alias=True, exclude={"model_name"})
    if front["base_model"] is None:
        del front["base_model"]
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n# {card.metadata.model_name}\n\n" + to_markdown(model_card_blocks(card))
