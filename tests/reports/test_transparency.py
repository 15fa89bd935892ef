"""The model card: HF metadata, every Model Cards section, lineage, and an honest compliance map."""

from __future__ import annotations

import pytest
import yaml

from reports.bias import BiasReport
from reports.evaluation import EvaluationReport
from reports.lineage import Lineage
from reports.transparency import ModelCard, build_model_card, model_card_markdown

from .conftest import RUN_CONFIG

ARTIFACTS = {
    "dataset_cards": ["cards/redditbias-1.json"], "approvals": ["cards/redditbias-1.approvals.json"],
    "policy": ["policy.yaml"], "run_config": ["config.resolved.json"], "audit_log": ["audit/log.jsonl"],
    "audit_checkpoint": ["audit/checkpoints/42.note"], "bias_report": ["bias.json"],
    "evaluation_report": ["evaluation.json"], "model_card": ["transparency.md"],
    "provenance": ["provenance.json"],
}
SECTIONS = ["Model details", "Intended use", "Out-of-scope use", "Factors", "Metrics", "Evaluation data",
            "Training data", "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"]


@pytest.fixture(scope="module")
def card(bias_report: BiasReport, eval_report: EvaluationReport, lineage: Lineage) -> ModelCard:
    return build_model_card(run_id="run-1", model_name="redditbias-minilm", license="apache-2.0",
                            run_config=RUN_CONFIG, lineage=lineage, evaluation=eval_report, bias=bias_report,
                            artifacts=ARTIFACTS, tags=["bias-detection"])


def test_yaml_front_matter(card: ModelCard, eval_report: EvaluationReport) -> None:
    text = model_card_markdown(card)
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "apache-2.0" and front["library_name"] == "transformers"
    assert front["base_model"] == "all-MiniLM-L6-v2"
    assert front["datasets"] == ["redditbias"] and "bias-detection" in front["tags"]
    assert {"accuracy", "f1", "roc_auc"} <= set(front["metrics"])
    (entry,) = front["model-index"]
    assert entry["name"] == "redditbias-minilm"
    (result,) = entry["results"]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["split"] == "test"
    acc = next(m for m in result["metrics"] if m["type"] == "accuracy")
    assert acc["value"] == pytest.approx(eval_report.classification.accuracy)  # type: ignore[union-attr]


def test_every_section_is_filled_from_inputs(card: ModelCard) -> None:
    text = model_card_markdown(card)
    for title in [*SECTIONS, "Lineage", "Compliance map"]:
        assert f"## {title}\n" in text
    assert "more information needed" not in text.lower()
    assert RUN_CONFIG["intended_use"] in text and RUN_CONFIG["out_of_scope_use"] in text
    assert "PERSON 12" in text and "github.com/umanlp/RedditBias" in text
    assert "C (g, 5)" in text  # the insufficient group is named in the caveats
    assert "overfitting alarm fired" in text
    assert "ab" * 32 in text and "cd" * 32 in text and "carol" in text  # card digest, policy digest, approver
    assert "tree size 42" in text and "0.1.0+g652404e" in text and "fairlearn" in text
    assert not card.releasable  # the bias verdict blocks


def test_missing_intended_use_is_stated_not_invented(bias_report: BiasReport, eval_report: EvaluationReport,
                                                     lineage: Lineage) -> None:
    config = {**RUN_CONFIG, "intended_use": "", "model": {"kind": "from-config", "architecture": "bert"}}
    card = build_model_card(run_id="r", model_name="m", license="other", run_config=config, lineage=lineage,
                            evaluation=eval_report, bias=bias_report, artifacts={})
    text = model_card_markdown(card)
    assert "`intended_use` is empty" in text
    assert "base_model" not in text.split("---\n")[1]


def test_compliance_map_names_artifacts_and_gaps(card: ModelCard) -> None:
    items = {(c.framework, c.item): c for c in card.compliance}
    assert {i for _, i in items} >= {"Art. 10", "Art. 11 + Annex IV(1)", "Art. 11 + Annex IV(2)", "Art. 12",
                                      "Art. 13", "GOVERN", "MAP", "MEASURE", "MANAGE"}
    art10 = items[("EU AI Act", "Art. 10")]
    assert "cards/redditbias-1.json" in art10.evidence and "bias.json" in art10.evidence
    assert "audit/log.jsonl" in items[("EU AI Act", "Art. 12")].evidence
    gaps = " ".join(g for c in card.compliance for g in c.not_covered).lower()
    assert "human oversight" in gaps and "post-market monitoring" in gaps
    assert "Evidence not supplied for this run: tensorboard" in items[("NIST AI RMF 1.0", "MEASURE")].not_covered


def test_compliance_map_without_artifacts_claims_nothing(bias_report: BiasReport, eval_report: EvaluationReport,
                                                         lineage: Lineage) -> None:
    card = build_model_card(run_id="r", model_name="m", license="other", run_config=RUN_CONFIG, lineage=lineage,
                            evaluation=eval_report, bias=bias_report, artifacts={})
    assert all(c.evidence == [] and c.covers == "Nothing supplied." for c in card.compliance)
