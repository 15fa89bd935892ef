"""Run config loading: strict fields, clear errors naming the field, never a crash on arbitrary input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.errors import ConfigError
from governance.run.config import RunConfig, load_run_config
from governance.workspace.loading import parse_yaml_mapping, validate_model

REPO = Path(__file__).resolve().parents[3]
VALID = {
    "dataset": "redditbias@2",
    "task": "text-classification",
    "columns": {"text": ["comment"], "label": "bias_sent", "sensitive": ["target_group"]},
    "model": {"kind": "from-config", "architecture": "bert"},
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


RUN_EXAMPLES = sorted(p for p in (REPO / "examples").glob("*.yaml") if not p.name.endswith("-spec.yaml"))


@pytest.mark.parametrize("example", RUN_EXAMPLES, ids=lambda p: p.name)
def test_shipped_run_examples_validate(example: Path) -> None:
    config = load_run_config(example)
    assert config.dataset_name


def test_dataset_ref_parts(tmp_path: Path) -> None:
    config = load_run_config(write(tmp_path, VALID))
    assert (config.dataset_name, config.dataset_version) == ("redditbias", 2)


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        ({"training": {"learning_rat": 0.1}}, "training.learning_rat", "unknown field (did you mean 'learning_rate'?)"),
        ({"trainin": {}}, "trainin", "unknown field (did you mean 'training'?)"),
        ({"training": {"batch_size": "lots"}}, "training.batch_size", "valid integer"),
        ({"training": {"dropout": 1.5}}, "training.dropout", "less than 1"),
        ({"training": {"epochs": 0}}, "training.epochs", "greater than or equal to 1"),
        ({"task": "regression"}, "task", "'text-classification' or 'causal-lm'"),
        ({"dataset": "../etc"}, "dataset", "must be NAME or NAME@VERSION"),
        ({"splits": {"train": 0.9, "validation": 0.1, "test": 0.1}}, "splits", "must sum to 1"),
        ({"columns": {"text": ["comment"], "label": "bias_sent", "sensitive": ["comment"]}}, "columns",
         "must not be model inputs"),
    ],
)
def test_bad_fields_name_the_field(govtrain, tmp_path: Path, patch: dict, field: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, {**VALID, **patch})
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert f": {field}: " in info.value.message
    assert reason in info.value.message
    result = govtrain("run", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: run config {path}: {field}: ")


def test_missing_required_field(tmp_path: Path) -> None:
    data = dict(VALID)
    del data["task"]
    with pytest.raises(ConfigError, match=r": task: required field is missing"):
        load_run_config(write(tmp_path, data))


def test_classification_needs_label(tmp_path: Path) -> None:
    data = {**VALID, "columns": {"text": ["comment"]}}
    with pytest.raises(ConfigError, match="text-classification needs columns.label"):
        load_run_config(write(tmp_path, data))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"- a\n- b\n", "expected a mapping"),
        (b"task: [unclosed\n", "invalid YAML at line"),
        (b"\xff\xfe bad", "not UTF-8"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=reason):
        load_run_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_run_config(tmp_path / "absent.yaml")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_yaml_text_only_raises_config_error(text: str) -> None:
    try:
        validate_model(RunConfig, parse_yaml_mapping(text, source="fuzz"), source="fuzz")
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*VALID, "training", "splits", "x"]), json_values, max_size=6))
def test_arbitrary_structures_only_raise_config_error(data: dict) -> None:  # type: ignore[type-arg]
    try:
        validate_model(RunConfig, yaml.safe_load(yaml.safe_dump(data)), source="fuzz")
    except ConfigError:
        pass


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    """Two mistakes in one config: both are reported in the one-line error, not 'and 1 more problem'."""
    config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config["training"]["learning_rat"] = 0.1
    config["splits"]["tset"] = 0.1
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        load_run_config(path)
    message = raised.value.message
    assert "(2 problems)" in message
    assert "training.learning_rat: unknown field (did you mean 'learning_rate'?)" in message
    assert "splits.tset: unknown field (did you mean 'test'?)" in message
    assert "\n" not in message


def test_cross_field_problem_names_its_field(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config["splits"]["stratify_by"] = ["nonexistent"]
    path = tmp_path / "strat.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r": splits\.stratify_by: 'nonexistent' is neither") as raised:
        load_run_config(path)
    assert "top level" not in raised.value.message
