"""One error tree: every error a user can meet reaches the CLI as a ``GovtrainError`` with DESIGN.md's exit code,
the standalone packages' own errors through the one table in :mod:`governance.errors`; and what a run config can
get wrong is refused when it is loaded (exit 2), not after training."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import pytest
import yaml

import audit.errors
import policies.model_files
import reports.errors
import trainer.errors
from audit.errors import AuditError, AuditIntegrityError
from governance import errors
from governance.errors import ConfigError, GovtrainError, as_govtrain_error, foreign_errors
from policies.model_files import ModelFileError
from reports.errors import ReportError, ReportInputError, ReportIntegrityError
from trainer.errors import CheckpointError, TrainerConfigError, TrainerDataError, TrainerError

# DESIGN.md's codes for each class of the standalone packages (1 unexpected, 2 usage/config, 3 data validation,
# 5 integrity), written out here so that a change to the table is a deliberate change to this list too.
DESIGN_EXIT_CODES: dict[type[Exception], int] = {
    AuditIntegrityError: 5,
    AuditError: 1,
    ModelFileError: 2,
    ReportInputError: 2,
    ReportIntegrityError: 5,
    ReportError: 1,
    TrainerConfigError: 2,
    TrainerDataError: 3,
    CheckpointError: 5,
    TrainerError: 1,
}
ERROR_MODULES = (audit.errors, reports.errors, trainer.errors, policies.model_files)


def instance(cls: type[Exception], message: str = "the thing failed") -> Exception:
    """An instance of ``cls`` with ``message`` (the audit integrity error takes an entry number too)."""
    if issubclass(cls, AuditIntegrityError):
        return cls(7, message)
    return cls(message)


def defined_errors(module: ModuleType) -> list[type[Exception]]:
    """The exception classes ``module`` itself defines."""
    return [value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__]


@pytest.mark.parametrize("module", ERROR_MODULES, ids=lambda m: m.__name__)
def test_every_error_class_of_the_standalone_packages_has_a_decided_exit_code(module: ModuleType) -> None:
    found = defined_errors(module)
    assert found, f"{module.__name__} defines no error class"
    undecided = [cls.__name__ for cls in found if cls not in DESIGN_EXIT_CODES]
    assert not undecided, f"add these to governance.errors.foreign_errors and to DESIGN_EXIT_CODES: {undecided}"
    assert set(foreign_errors()) == set(DESIGN_EXIT_CODES)


@pytest.mark.parametrize(("cls", "code"), DESIGN_EXIT_CODES.items(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_each_foreign_error_becomes_its_design_exit_code(cls: type[Exception], code: int) -> None:
    error = instance(cls)
    translated = as_govtrain_error(error)
    assert isinstance(translated, GovtrainError)
    assert translated.exit_code == code
    assert str(error) in translated.message
    assert "\n" not in translated.message


def test_a_subclass_takes_its_nearest_listed_base() -> None:
    class LabelsOutOfRange(TrainerDataError):
        pass

    class WorkerCrashed(TrainerError):
        pass

    translated = as_govtrain_error(LabelsOutOfRange("the train split has 3 labels outside 0..2"))
    assert isinstance(translated, errors.DataValidationError)
    assert translated.message == "training data: the train split has 3 labels outside 0..2"
    assert isinstance(as_govtrain_error(WorkerCrashed("rank 1 died")), errors.UnexpectedError)


def test_govtrain_errors_pass_through_and_unforeseen_ones_are_not_mapped() -> None:
    own = errors.PolicyRefusal("no")
    assert as_govtrain_error(own) is own
    assert as_govtrain_error(ValueError("secret row content")) is None
    assert as_govtrain_error(KeyError("x")) is None


def test_hints_and_one_line_messages() -> None:
    carried = as_govtrain_error(ModelFileError("policy p.yaml: bias.action: bad", hint="use block or warn"))
    assert isinstance(carried, ConfigError)
    assert (carried.message, carried.hint) == ("policy p.yaml: bias.action: bad", "use block or warn")
    checkpoint = as_govtrain_error(CheckpointError("the checkpoint was written under a different config"))
    assert checkpoint is not None and checkpoint.hint == "the run's checkpoint does not match; start a new run"
    multi = as_govtrain_error(TrainerConfigError("cannot load the model in m/:\n  Error no file named\n\nconfig.json"))
    assert multi is not None
    assert multi.message == "training: cannot load the model in m/: Error no file named config.json"


# --- refused at load, not after training -----------------------------------------------------------------------

RUN = {
    "dataset": "redditbias@2",
    "task": "text-classification",
    "columns": {"text": ["comment"], "label": "bias_sent", "sensitive": ["target_group"]},
    "model": {"kind": "from-config", "architecture": "bert"},
}


def test_crows_pairs_probes_on_a_classifier_are_refused_at_load(govtrain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A classifier's run never scores CrowS-Pairs: the probe would be silently skipped after training.
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**RUN, "probes": {"crows_pairs": "crows-pairs/"}}))
    result = govtrain("run", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (f"error: run config {path}: probes.crows_pairs: CrowS-Pairs probes score "
                                             "a language model (task causal-lm)")
    lm = {**RUN, "task": "causal-lm", "columns": {"text": ["comment"]}, "probes": {"crows_pairs": "crows-pairs/"},
          "model": {"kind": "from-config", "architecture": "gpt2"}}
    path.write_text(yaml.safe_dump(lm))
    from governance.run.config import load_run_config

    assert load_run_config(path).probes.crows_pairs == "crows-pairs/"
