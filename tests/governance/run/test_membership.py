"""The membership probe's draw: like with like (the same groups on both sides), members first, same rows."""

from __future__ import annotations

from collections import Counter

from governance.run.membership import draw_membership, members_first


def _groups(rows: int) -> dict[str, list[str]]:
    # a file ordered by group: the first half is group "a", the second "b"
    return {"g": ["a" if i < rows // 2 else "b" for i in range(rows)]}


def test_members_and_nonmembers_hold_the_same_groups_equally() -> None:
    groups = _groups(1000)
    train = list(range(0, 1000, 2))[:200] + list(range(1, 1000, 2))  # few "a" rows at the top, many "b"
    test = [i for i in range(1000) if i % 7 == 0]
    draw = draw_membership(train, test, groups, size=100, seed=3)
    count = Counter(groups["g"][r] for r in draw.members)
    assert count == Counter(groups["g"][r] for r in draw.nonmembers)  # stratified the same way
    assert len(draw.members) == len(draw.nonmembers) == 100
    assert set(draw.members) <= set(train) and set(draw.nonmembers) <= set(test)
    assert len(set(draw.members)) == len(draw.members)
    assert draw == draw_membership(train, test, groups, size=100, seed=3)  # a resumed run draws the same
    assert draw != draw_membership(train, test, groups, size=100, seed=4)


def test_the_draw_is_not_the_top_of_the_file() -> None:
    groups = _groups(1000)
    train, test = list(range(0, 900)), list(range(900, 1000))
    draw = draw_membership(train, test, groups, size=50, seed=0)
    assert {groups["g"][r] for r in draw.members} == {"b"}  # the test split holds only "b": so do the members
    assert max(draw.members) > 50


def test_members_first_keeps_the_same_multiset_of_rows() -> None:
    groups = _groups(20)
    train = [0, 1, 1, 2, 5, 5, 5, 11, 12, 13]  # balanced sampling repeats rows
    draw = draw_membership(train, [3, 4, 14, 15], groups, size=4, seed=1)
    ordered = members_first(train, draw)
    assert Counter(ordered) == Counter(train)
    assert tuple(ordered[:len(draw.members)]) == draw.members


def test_logged_fields_hold_digests_not_rows() -> None:
    draw = draw_membership(list(range(100)), list(range(100, 150)), _groups(150), size=20, seed=2)
    logged = draw.logged()
    assert logged["members"] == logged["nonmembers"] == 20 and len(str(logged["members_digest"])) == 64
    assert not any(str(r) in str(logged["stratified_by"]) for r in draw.members)
