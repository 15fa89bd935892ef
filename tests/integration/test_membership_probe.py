"""Privacy probes that measure memorisation, not file order (issue 23 item 5): on a file ordered by group, the
membership attack compares a random, group-stratified sample of training rows with as many held-out rows of the
same groups, and a tiny model that memorises nothing gets an AUC interval that contains 0.5. The old draw (the
first training rows against the whole test split) is mounted too, to show the artifact it produced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset
from tests.integration.test_run import tiny_config


@pytest.fixture(scope="module")
def ordered(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path) -> tuple[Team, Path]:
    """1,000 RedditBias rows in the file's own order (grouped by target group), approved."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("ordered")
        team = make_team(invoke_cli, root)
        data = reddit_subset(shared_data, root, rows=1000)
        groups = [line.split(",")[1] for line in data.read_text().splitlines()[1:] if line.count(",") >= 2]
        assert groups[:5] == [groups[0]] * 5 and groups[0] != groups[-1]  # ordered by group
        assert team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC)).exit_code == 0
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        config = yaml.safe_load(tiny_config(root).read_text())
        config.setdefault("privacy", {})["membership_sample"] = 80
        (root / "run.yaml").write_text(yaml.safe_dump(config))
    return team, root / "run.yaml"


def _membership(team: Team, config: Path) -> dict[str, Any]:
    result = team.as_("erin", "--json", "run", str(config))
    assert result.exit_code in (0, 4), result.stderr
    run_id = json.loads(result.stdout)["run_id"] if result.exit_code == 0 else \
        max(p.name for p in (team.workspace / "runs").iterdir())
    report = json.loads((team.workspace / "runs" / run_id / "reports/privacy.json").read_text())
    return dict(report["membership"])


def test_a_stratified_random_draw_measures_no_memorisation(ordered) -> None:  # type: ignore[no-untyped-def]
    team, config = ordered
    membership = _membership(team, config)
    interval = membership["auc"]["interval"]
    assert membership["members"] == membership["nonmembers"] <= 80
    assert interval["low"] <= 0.5 <= interval["high"], membership["auc"]
    logged = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()
              if '"run.membership"' in line]
    assert logged and logged[-1]["payload"]["members"] == membership["members"]


def test_the_first_rows_against_the_whole_test_split_measured_the_file_order(ordered,  # type: ignore[no-untyped-def]
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from governance.run import train_order
    from governance.run.membership import MembershipDraw

    def first_rows(train: Any, test: Any, groups: Any, size: int, seed: int) -> MembershipDraw:
        return MembershipDraw(seed, tuple(sorted(set(train))[:size]), tuple(test), ())

    team, config = ordered
    monkeypatch.setattr(train_order, "draw_membership", first_rows)
    membership = _membership(team, config)
    interval = membership["auc"]["interval"]
    assert not interval["low"] <= 0.5 <= interval["high"], membership["auc"]  # an artifact of the order
