"""Tests for governance/gate/scrub_engines.py: which engine runs (the engines themselves: tests/integration/test_scale.py)."""

from __future__ import annotations

import pytest

from governance.errors import ConfigError
from governance.gate.scrub_engines import RAY_MIN_ROWS, choose_engine


def test_auto_uses_ray_only_for_several_workers_on_enough_rows() -> None:
    assert choose_engine("auto", 1, 10 * RAY_MIN_ROWS, None) == "local"
    assert choose_engine("auto", 2, RAY_MIN_ROWS - 1, None) == "local"
    assert choose_engine("auto", 2, RAY_MIN_ROWS, None) == "ray"


def test_an_address_or_an_explicit_choice_wins() -> None:
    assert choose_engine("auto", 1, 10, "ray://head:10001") == "ray"
    assert choose_engine("ray", 1, 10, None) == "ray"
    assert choose_engine("local", 1, 10 * RAY_MIN_ROWS, None) == "local"
    assert choose_engine("local", 1, 10 * RAY_MIN_ROWS, "ray://head:10001") == "local"  # RAY_ADDRESS set elsewhere


@pytest.mark.parametrize(("choice", "workers"), [("local", 2), ("auto", 0)])
def test_contradictory_options_are_refused(choice: str, workers: int) -> None:
    with pytest.raises(ConfigError) as caught:
        choose_engine(choice, workers, 100, None)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2
