"""The CLI skeleton: help texts, the one error handler, exit codes, JSON output, global flags."""

from __future__ import annotations

import json
from collections.abc import Iterator

import click
import pytest

from governance import errors
from governance.cli import cli


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
