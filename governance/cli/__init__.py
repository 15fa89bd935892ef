"""The ``govtrain`` command line: parse arguments, call one function, print the result.

One module per command group (``governance/cli/<group>.py``) registers its commands on the group defined in
:mod:`governance.cli.app`. Errors are caught in one place (:func:`main`): a ``GovtrainError`` prints
``error: ...`` and ``hint: ...`` and exits with its code, and so does an error of a standalone package (audit,
policies, reports, trainer) as the class :func:`governance.errors.foreign_errors` maps it to; ``-v`` adds the
traceback; ``--json`` prints a JSON object on stdout instead. Heavy libraries are imported inside the commands
that need them, so ``govtrain --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from governance.cli import (  # noqa: F401 - registers
    audit,
    data,
    identity,
    keys,
    policy,
    predict,
    release,
    replay,
    report,
    runner,
    runs,
    workspace,
)
from governance.cli.app import GLOBAL_FLAGS, cli
from governance.errors import GovtrainError

__all__ = ["cli", "main"]


def _hoist_global_flags(argv: list[str]) -> list[str]:
    """Let ``--json`` and ``-v`` stand anywhere, as users type them, by moving them before the command."""
    head: list[str] = []
    rest: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        (head if arg in GLOBAL_FLAGS else rest).append(arg)
    return head + rest


def _report_error(error: GovtrainError, *, json_mode: bool, verbose: bool) -> None:
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    if json_mode:
        click.echo(json.dumps(error.to_json(), sort_keys=True))
    else:
        click.echo(error.diagnostics(), err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console entry point: run the CLI and turn every outcome into one exit code."""
    from governance.errors import ConfigError, UnexpectedError, as_govtrain_error

    args = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    json_mode = "--json" in args
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cli.main(args=args, prog_name="govtrain", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except GovtrainError as error:
        _report_error(error, json_mode=json_mode, verbose=verbose)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        _report_error(GovtrainError("aborted"), json_mode=json_mode, verbose=False)
        sys.exit(130)
    except click.ClickException as error:
        ctx = getattr(error, "ctx", None)
        command = ctx.command_path if ctx is not None else "govtrain"
        usage = ConfigError(error.format_message(), hint=f"see '{command} --help'")
        _report_error(usage, json_mode=json_mode, verbose=verbose)
        sys.exit(2)
    except KeyboardInterrupt:
        _report_error(GovtrainError("interrupted"), json_mode=json_mode, verbose=False)
        sys.exit(130)
    except Exception as error:
        known = as_govtrain_error(error)  # a standalone package's error, by the one table in governance.errors
        if verbose:
            traceback.print_exception(error, file=sys.stderr)
        if known is None:
            # The message of an exception nothing foresaw may quote data; show only its type and where it came from.
            frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
            where = f" in {Path(frame.filename).name}:{frame.lineno}" if frame else ""
            known = UnexpectedError(
                f"unexpected {type(error).__name__}{where}",
                hint="rerun with -v for the traceback, and please report it",
            )
        _report_error(known, json_mode=json_mode, verbose=False)
        sys.exit(known.exit_code)
