"""The CLI skeleton: help texts, the one error handler, exit codes, JSON output, global flags."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest

from audit.errors import AuditError, AuditIntegrityError
from governance import errors
from governance.cli import cli
from policies.model_files import ModelFileError
from reports.errors import ReportError, ReportInputError, ReportIntegrityError
from trainer.errors import CheckpointError, TrainerConfigError, TrainerDataError, TrainerError


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


ALL_COMMANDS = list(walk(cli))


def test_command_tree_is_complete() -> None:
    names = {" ".join(p) for p in ALL_COMMANDS}
    expected = {
        "init", "demo", "run", "runs list", "runs show", "identity new", "identity grant", "identity list",
        "keys init", "keys rotate", "keys status", "policy list", "policy show", "policy validate",
        "data ingest", "data list", "data show", "data approve", "data reject", "report show", "report verify",
        "audit verify", "audit log", "audit checkpoint", "audit prove",
    }
    assert expected <= names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "govtrain")
def test_every_command_has_help(govtrain, path: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    result = govtrain(*path, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage: govtrain" in result.stdout
    command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help and len(command.help.strip()) > 10, f"{path} lacks a real help text"


def all_error_classes() -> list[type[errors.GovtrainError]]:
    """Every class of the hierarchy in governance.errors (subsystems' own subclasses are tested with them)."""
    found: list[type[errors.GovtrainError]] = [errors.GovtrainError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == "governance.errors"]


@pytest.mark.parametrize("error_class", all_error_classes(), ids=lambda c: c.__name__)
def test_each_error_class_exit_code_and_one_line(govtrain, error_class, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    @cli.command("raise-for-test", hidden=True)
    def raiser() -> None:
        raise error_class("the thing failed", hint="do the other thing")

    try:
        result = govtrain("raise-for-test")
        assert result.exit_code == error_class.exit_code
        assert result.stderr == "error: the thing failed\nhint: do the other thing\n"
        assert result.stdout == ""

        as_json = govtrain("raise-for-test", "--json")
        payload = json.loads(as_json.stdout)
        assert payload["ok"] is False
        assert payload["error"]["exit_code"] == error_class.exit_code
        assert payload["error"]["message"] == "the thing failed"
    finally:
        del cli.commands["raise-for-test"]


# Each standalone package's error class, its exit code (DESIGN.md) and the line the user reads.
FOREIGN_ERRORS = [
    (AuditIntegrityError, 5, "error: audit integrity violation at entry seq 3: the thing failed"),
    (AuditError, 1, "error: the thing failed"),
    (ModelFileError, 2, "error: the thing failed"),
    (ReportInputError, 2, "error: report: the thing failed"),
    (ReportIntegrityError, 5, "error: report: the thing failed"),
    (ReportError, 1, "error: report: the thing failed"),
    (TrainerConfigError, 2, "error: training: the thing failed"),
    (TrainerDataError, 3, "error: training data: the thing failed"),
    (CheckpointError, 5, "error: checkpoint: the thing failed"),
    (TrainerError, 1, "error: training: the thing failed"),
]


def test_every_foreign_error_class_has_a_cli_test() -> None:
    assert {cls for cls, _, _ in FOREIGN_ERRORS} == set(errors.foreign_errors())


@pytest.mark.parametrize(("error_class", "code", "line"), FOREIGN_ERRORS, ids=lambda v: getattr(v, "__name__", ""))
def test_each_foreign_error_class_exit_code_and_one_line(govtrain, error_class, code: int, line: str) -> None:  # type: ignore[no-untyped-def]
    """A standalone package's error raised inside a command reaches the one handler as its class, not 'unexpected'."""
    error = error_class(3, "the thing failed") if error_class is AuditIntegrityError else error_class("the thing failed")

    @cli.command("raise-for-test", hidden=True)
    def raiser() -> None:
        raise error

    try:
        result = govtrain("raise-for-test")
        assert result.exit_code == code
        lines = result.stderr.splitlines()
        assert lines[0] == line
        assert all(extra.startswith("hint: ") for extra in lines[1:]) and len(lines) <= 2
        assert result.stdout == ""

        as_json = json.loads(govtrain("raise-for-test", "--json").stdout)
        assert as_json["ok"] is False
        assert as_json["error"]["exit_code"] == code
        assert as_json["error"]["message"] == line.removeprefix("error: ")

        verbose = govtrain("-v", "raise-for-test")
        assert verbose.exit_code == code
        assert "Traceback" in verbose.stderr and error_class.__name__ in verbose.stderr
        assert verbose.stderr.splitlines()[-len(lines):] == lines
    finally:
        del cli.commands["raise-for-test"]


def test_report_input_error_inside_a_command_is_exit_2(govtrain) -> None:  # type: ignore[no-untyped-def]
    """A real report function refusing its input inside a command: before the table this exited 1 'unexpected'."""
    from reports.verdict import judge

    with pytest.raises(ReportInputError):
        judge([], [], "warn")

    @cli.command("report-for-test", hidden=True)
    def reporter() -> None:
        judge([], [], "warn")  # nothing measured: the reports package refuses

    try:
        result = govtrain("report-for-test")
        assert result.exit_code == 2
        assert result.stderr == "error: report: no model bias measurements to judge\n"
    finally:
        del cli.commands["report-for-test"]


def test_exit_codes_match_design() -> None:
    assert errors.UnexpectedError.exit_code == 1
    assert errors.ConfigError.exit_code == 2
    assert errors.DataValidationError.exit_code == 3
    assert errors.PolicyRefusal.exit_code == 4
    assert errors.IntegrityError.exit_code == 5
    assert errors.NotAuthorizedError.exit_code == 6


def test_unexpected_exception_is_exit_1_without_its_message(govtrain) -> None:  # type: ignore[no-untyped-def]
    @cli.command("boom-for-test", hidden=True)
    def boom() -> None:
        raise ValueError("secret row content 555-12-3456")

    try:
        result = govtrain("boom-for-test")
        assert result.exit_code == 1
        assert result.stderr.startswith("error: unexpected ValueError in test_cli.py:")
        assert "555-12-3456" not in result.stderr
        verbose = govtrain("-v", "boom-for-test")
        assert "Traceback" in verbose.stderr
    finally:
        del cli.commands["boom-for-test"]


def test_usage_error_is_exit_2_with_hint(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("data", "ingest")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: Missing argument 'FILE'.", "hint: see 'govtrain data ingest --help'"]


def test_unknown_command_is_exit_2(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("trian")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such command 'trian'")


def test_global_flags_anywhere(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("policy", "list", "--json")
    assert result.exit_code == 0
    names = [p["name"] for p in json.loads(result.stdout)["policies"]]
    assert names == ["default", "strict"]


def test_version(govtrain) -> None:  # type: ignore[no-untyped-def]
    result = govtrain("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("govtrain, version ")
