"""trainer/monitors.py: early stopping and the overfitting alarm decide the same after a state round trip."""

from __future__ import annotations

from trainer.config import EarlyStoppingConfig, OverfittingAlarmConfig
from trainer.monitors import EarlyStopping, OverfittingAlarm


def test_early_stopping_min_mode_with_min_delta() -> None:
    stopper = EarlyStopping(EarlyStoppingConfig(enabled=True, metric="loss", mode="min", patience=2,
                                                min_delta=0.01))
    assert stopper.update(1, {"loss": 1.0})
    assert stopper.update(2, {"loss": 0.9})
    assert not stopper.update(3, {"loss": 0.895})  # better, but by less than min_delta
    assert not stopper.should_stop
    assert not stopper.update(4, {"loss": 0.95})
    assert stopper.should_stop and stopper.best_step == 2 and stopper.best_value == 0.9


def test_early_stopping_max_mode_and_resume() -> None:
    config = EarlyStoppingConfig(enabled=True, metric="f1_macro", mode="max", patience=2)
    first = EarlyStopping(config)
    first.update(1, {"f1_macro": 0.5})
    first.update(2, {"f1_macro": 0.4})
    resumed = EarlyStopping(config)
    resumed.load_state_dict(first.state_dict())
    for stopper in (first, resumed):
        assert not stopper.should_stop
        stopper.update(3, {"f1_macro": 0.45})
        assert stopper.should_stop and stopper.best_step == 1


def test_disabled_early_stopping_never_stops() -> None:
    stopper = EarlyStopping(EarlyStoppingConfig(enabled=False, patience=1))
    for step, loss in enumerate([1.0, 2.0, 3.0]):
        stopper.update(step, {"loss": loss})
    assert not stopper.should_stop and stopper.best_step == 0


def test_alarm_needs_consecutive_gaps_and_fires_once() -> None:
    alarm = OverfittingAlarm(OverfittingAlarmConfig(max_gap=0.5, evaluations=2))
    assert not alarm.update(1, train_loss=0.1, val_loss=0.9)
    assert not alarm.update(2, train_loss=0.1, val_loss=0.3)  # the streak resets
    assert not alarm.update(3, train_loss=0.1, val_loss=0.9)
    resumed = OverfittingAlarm(alarm.config)
    resumed.load_state_dict(alarm.state_dict())
    assert resumed.update(4, train_loss=0.1, val_loss=1.0)
    assert resumed.fired_step == 4
    assert not resumed.update(5, train_loss=0.1, val_loss=1.0)
    assert OverfittingAlarm(OverfittingAlarmConfig(max_gap=None)).update(1, 0.0, 100.0) is False
