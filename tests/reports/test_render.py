"""Rendering and writing reports: canonical JSON, Markdown, self-contained HTML with plots, atomic 0600
files, digests that verify, schemas that match the models, and no text from the data anywhere."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import stat
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports import bias, clarify, evaluation, fairness, lm_bias, provenance, transparency, verdict
from reports.bias import BiasReport, language_model_bias_report
from reports.evaluation import EvaluationReport
from reports.lineage import Lineage
from reports.lm_bias import CrowsPair, crows_pairs_probe
from reports.render import render_report, render_reports, write_reports
from reports.schemas import SCHEMA_DIR, schema_texts
from reports.transparency import build_model_card
from reports.verify import verify_report_digests

from .conftest import RUN_CONFIG
from .test_provenance import make_envelope
from .test_transparency import ARTIFACTS

SECRET = "Zebulon Quaxwright lives at 17 Hidden Lane"


@pytest.fixture(scope="module")
def all_reports(bias_report: BiasReport, eval_report: EvaluationReport, lineage: Lineage) -> list:  # type: ignore[type-arg]
    card = build_model_card(run_id="run-1", model_name="m", license="mit", run_config=RUN_CONFIG, lineage=lineage,
                            evaluation=eval_report, bias=bias_report, artifacts=ARTIFACTS)
    return [bias_report, eval_report, card, make_envelope(Ed25519PrivateKey.generate())]


def test_write_reports_atomic_private_and_digested(tmp_path: Path, all_reports: list) -> None:  # type: ignore[type-arg]
    out = tmp_path / "reports"
    digests = write_reports(out, all_reports)
    assert set(digests) == {f"{k}.{f}" for k in ("bias", "evaluation", "transparency", "provenance")
                            for f in ("json", "md", "html")}
    assert sorted(p.name for p in out.iterdir()) == sorted(digests)  # no temporary files left behind
    for name, digest in digests.items():
        path = out / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    raw = (out / "bias.json").read_bytes()
    assert rfc8785.dumps(json.loads(raw)) == raw  # canonical
    assert BiasReport.model_validate_json(raw) == all_reports[0]  # JSON is the source of truth
    assert verify_report_digests(out, digests) == []


def test_verify_names_changed_and_missing_files(tmp_path: Path, all_reports: list) -> None:  # type: ignore[type-arg]
    digests = write_reports(tmp_path, all_reports[:2], formats=["json", "md"])
    data = bytearray((tmp_path / "bias.json").read_bytes())
    data[10] ^= 1
    (tmp_path / "bias.json").write_bytes(bytes(data))
    (tmp_path / "evaluation.md").unlink()
    problems = verify_report_digests(tmp_path, digests)
    assert len(problems) == 2
    assert problems[0].startswith("bias.json: sha256") and problems[1] == "evaluation.md: missing"
    assert verify_report_digests(tmp_path, {}) != []


def test_html_is_self_contained_with_plots(all_reports: list) -> None:  # type: ignore[type-arg]
    files = render_reports(all_reports, formats=["html"])
    for name in ("bias.html", "evaluation.html", "transparency.html", "provenance.html"):
        page = files[name].decode()
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE), name
        assert "<link" not in page and "<script" not in page
    bias_page = files["bias.html"].decode()
    # g, h and g & h: one rate chart each.
    assert bias_page.count('src="data:image/png;base64,') == 3
    eval_page = files["evaluation.html"].decode()
    for title in ("Confusion matrix", "Reliability diagram", "Learning curves"):
        assert f'alt="{title}"' in eval_page
    assert files["bias.json"].startswith(b"{")


def test_markdown_content(all_reports: list) -> None:  # type: ignore[type-arg]
    md = render_report(all_reports[0], "md").decode()
    assert md.startswith("# Bias report")
    assert "| g | disparate_impact | 0.8 |" in md and "FAIL" in md
    assert "C (5 rows)" in md
    assert "## Training" in render_report(all_reports[1], "md").decode()


def test_committed_schemas_match_the_models() -> None:
    for name, text in schema_texts().items():
        path = SCHEMA_DIR / name
        assert path.is_file(), f"{name} missing: run python -m reports.schemas"
        assert path.read_text(encoding="utf-8") == text, f"{name} is stale: run python -m reports.schemas"


REPORT_FUNCTIONS = [
    clarify.pretraining_bias, clarify.data_bias, fairness.model_bias, fairness.column_model_bias, verdict.judge,
    bias.classification_bias_report, bias.language_model_bias_report, lm_bias.crows_pairs_probe,
    lm_bias.group_losses, evaluation.classification_metrics, evaluation.training_summary,
    evaluation.evaluation_report, evaluation.language_model_metrics, transparency.build_model_card,
    provenance.provenance_statement,
]


@pytest.mark.parametrize("fn", REPORT_FUNCTIONS, ids=lambda f: f.__name__)
def test_report_functions_take_no_text(fn) -> None:  # type: ignore[no-untyped-def]
    names = set(inspect.signature(fn).parameters)
    textual = {n for n in names if re.search(r"(^|_)(texts?|sentences?|sent|comments?|documents?|raw|rows?)(_|$)", n)}
    assert not textual
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    with pytest.raises(TypeError):
        fn(texts=[SECRET])


def test_no_report_contains_text_from_the_data(tmp_path: Path, all_reports: list) -> None:  # type: ignore[type-arg]
    # The probe's sentences hold the secret; only their (made-up) log-likelihoods reach the report.
    pairs = [CrowsPair(sent_more=f"{SECRET} {i}", sent_less=f"{SECRET}!", direction="stereo", bias_type="age")
             for i in range(40)]
    probe = crows_pairs_probe([-float(len(p.sent_more)) for p in pairs], [-float(len(p.sent_less)) for p in pairs],
                              [p.bias_type for p in pairs], samples=20)
    lm = language_model_bias_report(run_id="lm-1", test_losses=[1.0, 2.0, 3.0, 4.0],
                                    test_groups={"g": ["a", "a", "b", "b"]}, crows_pairs=probe, bootstrap_samples=20)
    files = render_reports([lm], formats=["json", "md", "html"])
    files |= {f"all-{k}": v for k, v in render_reports(all_reports).items()}
    assert files["bias.html"].count(b"data:image/png;base64,") == 2  # CrowS-Pairs and loss per group
    for name, data in files.items():
        for fragment in ("Zebulon", "Quaxwright", "Hidden Lane"):
            assert fragment.encode() not in data, name
