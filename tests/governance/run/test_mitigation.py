"""Bias mitigation (``bias.mitigation``): balanced sampling by group x label on real RedditBias rows, fairlearn's
ThresholdOptimizer on a tiny BERT's validation scores, the before/after bias report, the card, the refusals."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.errors import ConfigError
from governance.run import mitigation as mit
from governance.run.config import RunConfig, load_run_config
from governance.run.splits import plan_splits
from tests.conftest import invoke_cli
from tests.governance.helpers import make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset

REPO = Path(__file__).resolve().parents[3]
REDDIT = "redditbias/redditbias_annotated_combined.csv"


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HOME (keys, master key) for the module's workspace and its identities."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def isolated_home(module_home: Path) -> Iterator[Path]:
    """Overrides the top-level fixture: every test of this module acts as the same people."""
    with home_env(module_home):
        yield module_home


def base_config(**update: Any) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config.update(update)
    return config


def reddit_rows(shared: Path, per_group: int = 120) -> tuple[list[str], list[str], list[str]]:
    """Texts, labels and target groups of the first ``per_group`` rows of each group of RedditBias."""
    texts, labels, groups = [], [], []
    seen: Counter[str] = Counter()
    with open(shared / REDDIT, newline="") as handle:
        for row in csv.DictReader(handle):
            if seen[row["target_group"]] < per_group and row["bias_sent"] in ("0", "1", "0.0", "1.0"):
                seen[row["target_group"]] += 1
                texts.append(row["comment"])
                labels.append(row["bias_sent"][0])
                groups.append(row["target_group"])
    return texts, labels, groups


def test_balanced_sampling_equalises_label_rates_in_the_training_split_only(shared_data: Path) -> None:
    texts, labels, groups = reddit_rows(shared_data)
    config = RunConfig.model_validate(base_config(bias={"mitigation": {"balanced_sampling": {}}}))
    plan = plan_splits(texts, labels, None, (0.6, 0.2, 0.2), seed=config.training.seed)
    resampled = mit.resample_training(plan.train.indices, labels, {"target_group": groups}, config)
    assert resampled is not None and resampled.before == plan.train.indices
    assert set(resampled.after) <= set(plan.train.indices)  # validation and test rows never enter
    assert not set(resampled.after) & (set(plan.validation.indices) | set(plan.test.indices))
    assert len(resampled.after) == len(plan.train.indices)  # the split keeps its size

    def rates(rows: tuple[int, ...]) -> dict[str, float]:
        return {g: float(np.mean([labels[i] == "1" for i in rows if groups[i] == g])) for g in set(groups)}

    overall = float(np.mean([labels[i] == "1" for i in plan.train.indices]))
    before, after = rates(resampled.before), rates(resampled.after)
    assert max(before.values()) - min(before.values()) > 0.15  # RedditBias's label rates differ by group
    for g, rate in after.items():  # every group now has the split's overall rate (up to rounding one row)
        rows = sum(groups[i] == g for i in resampled.after)
        assert abs(rate - overall) <= 1.0 / rows + 1e-9, g
    counts = Counter((groups[i], labels[i]) for i in resampled.after)
    for cell in resampled.cells:
        assert counts[(cell.group, cell.label)] == cell.rows_after
        n_g = sum(c.rows_before for c in resampled.cells if c.group == cell.group)
        n_y = sum(c.rows_before for c in resampled.cells if c.label == cell.label)
        assert abs(cell.rows_after - n_g * n_y / len(plan.train.indices)) < 1.0  # n_g n_y / n, rounded
        assert cell.weight == pytest.approx(cell.rows_after / cell.rows_before, abs=1.0 / cell.rows_before)
    again = mit.resample_training(plan.train.indices, labels, {"target_group": groups}, config)
    assert again == resampled  # deterministic from the seed
    other = RunConfig.model_validate(base_config(bias={"mitigation": {"balanced_sampling": {}}},
                                                 training={**base_config()["training"], "seed": 7}))
    changed = mit.resample_training(plan.train.indices, labels, {"target_group": groups}, other)
    assert changed is not None and changed.after != resampled.after


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("xyz")), min_size=1, max_size=60),
       st.integers(0, 2**32 - 1))
def test_balanced_rows_hit_the_independence_counts(cells: list[tuple[str, str]], seed: int) -> None:
    """For any training split: each non-empty cell gets n_g n_y / n rows (rounded), drawn from its own rows only,
    every row of a cell used floor(target / rows) or one more times."""
    groups, labels = [g for g, _ in cells], [y for _, y in cells]
    indices = list(range(100, 100 + len(cells)))
    rows, targets = mit.balanced_rows(indices, groups, labels, seed=seed)
    n = len(cells)
    exact = {c: groups.count(c[0]) * labels.count(c[1]) / n for c in set(cells)}
    assert set(targets) == set(cells)
    assert all(abs(targets[c] - exact[c]) < 1 for c in targets)
    numerator = sum(groups.count(g) * labels.count(y) for g, y in set(cells))
    assert sum(targets.values()) == (2 * numerator + n) // (2 * n)  # the exact total n_g n_y / n, half rounded up
    counts = Counter(rows)
    for cell, target in targets.items():
        members = [i for i, c in zip(indices, cells, strict=True) if c == cell]
        assert sum(counts[i] for i in members) == target
        assert {counts[i] for i in members} <= {target // len(members), target // len(members) + 1}
    assert set(rows) <= set(indices) and list(rows) == sorted(rows)


def test_applied_thresholds_are_fairlearns_own(shared_data: Path) -> None:
    """The stored per-group rules give the probabilities fairlearn's fitted ThresholdOptimizer gives."""
    from fairlearn.postprocessing import ThresholdOptimizer

    _, labels, groups = reddit_rows(shared_data, per_group=80)
    rng = np.random.default_rng(0)
    y = np.array([v == "1" for v in labels])
    scores = np.clip(0.35 * y + 0.65 * rng.random(len(y)), 0, 1)  # an imperfect scorer of the real labels
    for constraints in ("demographic_parity", "equalized_odds"):
        fitted = mit.fit_thresholds(scores, y, groups, column="target_group", constraints=constraints,
                                    objective="accuracy_score", positive_label="1")
        reference = ThresholdOptimizer(estimator=mit.score_column(), constraints=constraints, prefit=True,
                                       predict_method="predict").fit(scores.reshape(-1, 1), y.astype(int),
                                                                     sensitive_features=groups)
        expected = reference._pmf_predict(scores.reshape(-1, 1), sensitive_features=groups)[:, 1]
        mine, fitted_rows = mit.GroupThresholds.from_json(fitted.to_json()).positive_probability(scores, groups)
        assert fitted_rows.all()
        np.testing.assert_allclose(mine, expected, atol=1e-12)
    flags, missing = mit.apply_thresholds(fitted, scores[:10], ["nobody"] * 10, [True] * 5 + [False] * 5, seed=1)
    assert flags == [True] * 5 + [False] * 5 and missing == ["nobody"]  # unknown group: unmitigated, named


@pytest.mark.parametrize(("update", "message"), [
    ({"task": "causal-lm", "columns": {"text": ["comment"], "sensitive": ["target_group"]},
      "model": {"kind": "from-config", "architecture": "gpt2"}, "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
      "bias": {"mitigation": {"balanced_sampling": {}}}}, "mitigation is for task text-classification"),
    ({"columns": {"text": ["comment"], "label": "bias_sent"}, "splits": {"train": 0.8, "validation": 0.1, "test": 0.1},
      "bias": {"mitigation": {"post_processing": {}}}}, "needs a sensitive column"),
    ({"bias": {"mitigation": {"post_processing": {"sensitive": "religion"}}}},
     "'religion' is not a declared sensitive column"),
    ({"bias": {"mitigation": {"balanced_sampling": {"by": ["religion"]}}}},
     "'religion' is not a declared sensitive column"),
    ({"bias": {"mitigation": {}}}, "name balanced_sampling and/or post_processing"),
    ({"bias": {"mitigation": {"post_processing": {"constraints": "true_positive_parity"}}}},
     "'demographic_parity' or 'equalized_odds'"),
])
def test_mitigation_that_cannot_work_is_refused_with_exit_2(tmp_path: Path, update: dict[str, Any],
                                                            message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(base_config(**update)))
    with pytest.raises(ConfigError, match="bias"):
        load_run_config(path)
    result = invoke_cli("run", str(path))
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) <= 1


def test_post_processing_needs_two_labels() -> None:
    config = RunConfig.model_validate(base_config(bias={"mitigation": {"post_processing": {}}}))
    mit.check_post_processing(config, ("0", "1"))
    with pytest.raises(ConfigError, match="needs two labels"):
        mit.check_post_processing(config, ("a", "b", "c"))


def train(team: Any, root: Path, name: str, mitigation: dict[str, Any] | None) -> dict[str, Any]:
    config = base_config(dataset="reddit", splits={"train": 0.5, "validation": 0.25, "test": 0.25,
                                                   "stratify_by": ["bias_sent", "target_group"]})
    if mitigation is not None:
        config["bias"] = {"mitigation": mitigation}
    config["model"].update(hidden_size=32, intermediate_size=64, vocab_size=1000)
    config["training"].update(epochs=1, max_steps=8, batch_size=16, eval_every=8, checkpoint_every=8, max_length=48)
    (root / f"{name}.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(root / f"{name}.yaml"))
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> Iterator[Any]:
    """erin trains a tiny BERT on 750 approved RedditBias rows (validation and test: 37 rows per group) three
    times: as is, with equalized-odds thresholds (maximising balanced accuracy, so that a barely trained model's
    thresholds are not a constant "no"), and with balanced sampling."""
    root = tmp_path_factory.mktemp("mitigation")
    with home_env(module_home):
        team = make_team(invoke_cli, root)
        data = reddit_subset(shared_data, root, rows=750)
        assert team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC)).exit_code == 0
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        yield team, {"plain": train(team, root, "plain", None),
                     "post": train(team, root, "post", {"post_processing": {
                         "constraints": "equalized_odds", "objective": "balanced_accuracy_score"}}),
                     "sampled": train(team, root, "sampled", {"balanced_sampling": {}})}


def bias_of(team: Any, out: dict[str, Any]) -> Any:
    from reports.bias import BiasReport

    return BiasReport.model_validate_json((team.workspace / "runs" / out["run_id"] / "reports/bias.json").read_text())


def test_post_processing_report_has_before_and_after_for_every_check(runs: Any) -> None:
    from governance.crypto import load_master_key, read_encrypted_file
    from governance.run.release import judge_release

    team, outs = runs
    bias, plain = bias_of(team, outs["post"]), bias_of(team, outs["plain"])
    m = bias.mitigation
    assert m is not None and m.applied == ["post_processing"] and m.reference_run is None
    assert m.before is not None and bias.verdict is not None and m.balanced_sampling is None
    assert [(c.column, c.metric) for c in m.before.checks] == [(c.column, c.metric) for c in bias.verdict.checks]
    assert len(bias.verdict.checks) == 3
    for check in (*m.before.checks, *bias.verdict.checks):
        assert check.status in ("PASS", "FAIL", "NOT JUDGED") and check.groups_judged == 5
    # 'before' is the thresholds' input: the model as trained, the very model the unmitigated run trained
    assert plain.verdict is not None and m.before.checks == plain.verdict.checks
    [before], [after] = m.before_model_bias, bias.model_bias
    assert [(g.group, g.count, g.metrics["base_rate"].value) for g in before.groups] == \
        [(g.group, g.count, g.metrics["base_rate"].value) for g in after.groups]  # the same test rows
    cost = {c.metric: c for c in m.accuracy_cost}
    assert set(cost) == {"accuracy", "f1_macro"}
    for change in cost.values():
        for e in (change.before, change.after, change.change):
            assert e.value is not None and e.interval is not None
            assert e.interval.low is not None and e.interval.high is not None
            assert e.interval.low <= e.value <= e.interval.high
    acc = cost["accuracy"]
    assert acc.change.value == pytest.approx(acc.after.value - acc.before.value)
    assert acc.after.value == pytest.approx(after.overall["accuracy"])
    assert acc.before.value == pytest.approx(outs["plain"]["test_metrics"]["accuracy"])
    post = m.post_processing
    assert post is not None and post.constraints == "equalized_odds" and post.groups_fitted == 5
    assert post.validation_rows == sum(g.count for g in after.groups)  # 25% validation = 25% test, stratified
    assert judge_release(bias.verdict)[0] == outs["post"]["bias_verdict"]  # release judges the exported, mitigated model
    stored = json.loads(read_encrypted_file(team.workspace / "runs" / outs["post"]["run_id"] / "predictions.json.enc",
                                            load_master_key()))
    assert stored["mitigated_predicted"] != stored["predicted"]  # the thresholds acted
    html = (team.workspace / "runs" / outs["post"]["run_id"] / "reports/bias.html").read_text()
    assert "Bias mitigation" in html and "Checks before and after" in html and "Accuracy cost" in html


def test_balanced_sampling_is_compared_with_the_unmitigated_run(runs: Any) -> None:
    team, outs = runs
    bias, plain = bias_of(team, outs["sampled"]), bias_of(team, outs["plain"])
    m = bias.mitigation
    assert m is not None and m.applied == ["balanced_sampling"] and m.post_processing is None
    assert m.reference_run == outs["plain"]["run_id"] and outs["plain"]["run_id"] in m.comparison
    assert m.before is not None and plain.verdict is not None and m.before.checks == plain.verdict.checks
    assert {c.metric: c.before.value for c in m.accuracy_cost}["accuracy"] == \
        pytest.approx(outs["plain"]["test_metrics"]["accuracy"])
    assert {c.metric: c.after.value for c in m.accuracy_cost}["accuracy"] == \
        pytest.approx(outs["sampled"]["test_metrics"]["accuracy"])
    sampling = m.balanced_sampling
    assert sampling is not None and sampling.rows_after == sampling.rows_before
    rates = [g.rate_after for g in sampling.base_rates if g.rate_after is not None]
    assert len(rates) == 5 and max(rates) - min(rates) < 0.03
    assert bias.data_bias == plain.data_bias  # the data-bias section describes the split as drawn


def test_card_and_runs_show_record_the_mitigation(runs: Any) -> None:
    team, outs = runs
    reports = team.workspace / "runs" / outs["post"]["run_id"] / "reports"
    card = json.loads((reports / "transparency.json").read_text())
    [section] = [s for s in card["sections"] if s["title"] == "Bias mitigation"]
    text = " ".join(section["paragraphs"])
    assert "ThresholdOptimizer" in text and "equalized_odds" in text and "balanced_accuracy_score" in text
    assert "needs the sensitive attribute target_group at prediction time" in text
    assert "Bias mitigation" in (reports / "transparency.md").read_text()
    sampled = json.loads((team.workspace / "runs" / outs["sampled"]["run_id"] / "reports/transparency.json"
                          ).read_text())
    assert any("Balanced sampling by target_group x label" in p for s in sampled["sections"]
               if s["title"] == "Bias mitigation" for p in s["paragraphs"])
    plain = json.loads((team.workspace / "runs" / outs["plain"]["run_id"] / "reports/transparency.json").read_text())
    assert not any(s["title"] == "Bias mitigation" for s in plain["sections"])
    shown = json.loads(team.as_("erin", "--json", "runs", "show", outs["post"]["run_id"]).stdout)["run"]
    assert shown["mitigation"]["post_processing"]["constraints"] == "equalized_odds"
    assert mit.THRESHOLDS_FILE in shown["artifacts"]


def test_thresholds_are_stored_encrypted_and_logged_without_group_values(runs: Any) -> None:
    from governance.crypto import load_master_key, read_encrypted_file

    team, outs = runs
    run_dir = team.workspace / "runs" / outs["post"]["run_id"]
    blob = (run_dir / f"{mit.THRESHOLDS_FILE}.enc").read_bytes()
    assert blob.startswith(b"GTENC") and b"female" not in blob
    stored = mit.GroupThresholds.from_json(read_encrypted_file(run_dir / f"{mit.THRESHOLDS_FILE}.enc",
                                                               load_master_key()))
    assert sorted(stored.rules) == ["black", "female", "jews", "lgbtq", "muslims"]
    log = (team.workspace / "audit/log.jsonl").read_text()
    events = [json.loads(line) for line in log.splitlines()]
    finished = [e for e in events if e["event"] == "run.finished" and e["payload"]["run_id"] == outs["post"]["run_id"]]
    assert mit.THRESHOLDS_FILE in finished[0]["payload"]["model_digests"]  # exported with the model
    [sampling] = [e["payload"]["balanced_sampling"] for e in events if e["event"] == "run.mitigation"]
    assert sampling["rows_before"] == sampling["rows_after"] > sampling["distinct_rows"] / 2
    for group in ("black", "female", "jews", "lgbtq", "muslims"):
        assert group not in log


def test_dry_run_states_the_mitigation_and_export_ships_the_thresholds(runs: Any, tmp_path: Path) -> None:
    team, outs = runs
    config = team.workspace.parent / "post.yaml"
    planned = team.as_("erin", "run", str(config), "--dry-run")
    assert planned.exit_code == 0, planned.stderr
    assert "bias mitigation: post processing; the model will need target_group at prediction time" in planned.stdout
    sampled = json.loads(team.as_("erin", "--json", "run", str(team.workspace.parent / "sampled.yaml"),
                                  "--dry-run").stdout)["plan"]["mitigation"]
    assert sampled["balanced_sampling"]["rows_after"] == sampled["balanced_sampling"]["rows_before"]
    run_id = outs["post"]["run_id"]
    if outs["post"]["bias_verdict"] != "pass":  # not fully judged: compliance signs the release first
        assert team.as_("carol", "runs", "approve", run_id).exit_code == 0
    exported = team.as_("erin", "runs", "export", run_id, "--out", str(tmp_path / "release"))
    assert exported.exit_code == 0, exported.stderr
    thresholds = mit.GroupThresholds.from_json((tmp_path / "release" / "group_thresholds.json").read_bytes())
    assert thresholds.column == "target_group" and len(thresholds.rules) == 5
    assert "needs the sensitive attribute target_group" in (tmp_path / "release" / "MODEL_CARD.md").read_text()


def test_swapped_thresholds_are_caught_before_anyone_relies_on_them(runs: Any, tmp_path: Path) -> None:
    """Insider: after the run, the engineer replaces the stored per-group thresholds (which decide what the released
    model predicts) with another file encrypted under the same key. The digest logged with the model files catches
    it: report verify and export both refuse (exit 5), and the export leaves nothing behind."""
    from governance.crypto import load_master_key, read_encrypted_file, write_encrypted_file

    team, outs = runs
    run_id = outs["post"]["run_id"]
    if json.loads(team.as_("carol", "--json", "runs", "show", run_id).stdout)["run"]["release"]["releasable"] is not True:
        assert team.as_("carol", "runs", "approve", run_id).exit_code == 0  # released as it was judged
    path = team.workspace / "runs" / run_id / f"{mit.THRESHOLDS_FILE}.enc"
    original = path.read_bytes()
    stored = json.loads(read_encrypted_file(path, load_master_key()))
    forged = json.dumps({**stored, "rules": {group: stored["rules"][group] for group in sorted(stored["rules"])[:1]}})
    try:
        write_encrypted_file(path, forged.encode(), load_master_key())
        verified = team.as_("carol", "report", "verify", run_id)
        assert verified.exit_code == 5 and mit.THRESHOLDS_FILE in verified.stderr
        exported = team.as_("erin", "runs", "export", run_id, "--out", str(tmp_path / "forged"))
        assert exported.exit_code == 5 and not (tmp_path / "forged").exists()
    finally:
        path.write_bytes(original)
    assert team.as_("carol", "report", "verify", run_id).exit_code == 0
