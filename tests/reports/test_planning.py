"""Planning the test split for the bias verdict: which groups will be judged, and what would fix it."""

from __future__ import annotations

from reports.planning import half_width, plan_bias_split, plan_lines, rows_for_margin


def test_plan_names_groups_below_min_group_size() -> None:
    groups = ["big"] * 400 + ["mid"] * 200 + ["tiny"] * 20
    test = list(range(0, 400, 5)) + list(range(400, 600, 5)) + list(range(600, 620, 5))  # 80, 40, 4 rows
    (plan,) = plan_bias_split({"g": groups}, list(range(len(groups))), test, min_group_size=30, confidence=0.95,
                              test_fraction=0.2, stratified=False)
    assert [(g.group, g.test_rows, g.judged) for g in plan.groups] == [
        ("big", 80, True), ("mid", 40, True), ("tiny", 4, False)]
    assert plan.judgeable and plan.margin is not None and 0.2 < plan.margin < 1.0
    assert plan.suggestion is not None and "tiny" in plan.suggestion  # 20 rows in all: no split helps
    lines = plan_lines([plan], min_group_size=30, confidence=0.95)
    assert "tiny (4)" in lines[0] and "NOT JUDGED" in lines[0]


def test_intersection_is_planned_too() -> None:
    plans = plan_bias_split({"a": ["x", "y"] * 100, "b": ["u"] * 100 + ["v"] * 100}, list(range(200)),
                            list(range(0, 200, 2)), min_group_size=30, confidence=0.95, test_fraction=0.5,
                            stratified=True)
    assert [p.column for p in plans] == ["a", "b", "a & b"]
    # every test row is an "x": the "y" intersections get none and are named as not judged
    assert {g.group for g in plans[2].not_judged} == {"y & u", "y & v"}
    assert [g.test_rows for g in plans[2].groups if g.judged] == [50, 50]


def test_margin_shrinks_with_rows() -> None:
    assert half_width(100, 0.95) > half_width(1000, 0.95)
    small, large = rows_for_margin(0.2, 2, 0.95), rows_for_margin(0.1, 2, 0.95)
    assert small is not None and large is not None and large > 3 * small
    assert rows_for_margin(0.1, 50, 0.95) > large  # more groups, more rows per group for the same resolution
