"""Load YAML files into strict pydantic models, turning every problem into one clear ``ModelFileError``.

A message always names the file, the field path and the reason, e.g.
``run config run.yaml: training.learning_rat: unknown field (did you mean 'learning_rate'?)``.

It lives here, in the lowest package that loads such files (policies), so that ``policies`` imports nothing from
``governance``; ``governance.workspace.loading`` re-exports it with the error as a ``ConfigError`` (exit 2), and
``governance.errors.foreign_errors`` maps one that escapes elsewhere the same way.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError


class ModelFileError(ValueError):
    """A YAML file that is not a valid model: ``message`` names the file, field and reason; ``hint`` may help.
    A usage/config error (exit 2)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


M = TypeVar("M", bound=BaseModel)

_NAMED_FIELD = re.compile(r"^[A-Za-z_][\w.]*: ")
MAX_CONFIG_BYTES = 1 << 20  # configs are small; a huge file is a mistake, not a config


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read ``path`` as a YAML mapping, or raise ``ModelFileError`` saying what is wrong with it."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{what} {path}: larger than {MAX_CONFIG_BYTES} bytes; this is not a {what}")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{what} {path}: is a directory, expected a YAML file") from None
    except OSError as exc:
        raise ModelFileError(f"{what} {path}: cannot read ({exc.strerror})") from None
    return parse_yaml_mapping(raw, source=f"{what} {path}")


def parse_yaml_mapping(raw: bytes | str, *, source: str) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"{source}: not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ModelFileError(f"{source}: invalid YAML{where}: {problem}") from None
    except (ValueError, RecursionError, TypeError) as exc:
        raise ModelFileError(f"{source}: invalid YAML: {type(exc).__name__}") from None
    if data is None:
        raise ModelFileError(f"{source}: the file is empty")
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: expected a mapping of fields at the top level, got {type(data).__name__}")
    return data


def validate_model(model: type[M], data: Any, *, source: str) -> M:
    """Validate ``data`` against ``model``; every error is named, field by field, in one ``ModelFileError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ModelFileError(describe_validation_error(exc, model, source), hint=_hint(exc)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # pydantic validators on exotic input
        raise ModelFileError(f"{source}: invalid value ({type(exc).__name__})") from None


def load_model_file(model: type[M], path: Path, what: str) -> M:
    """Read a YAML file and validate it as ``model``."""
    return validate_model(model, read_yaml_mapping(path, what), source=f"{what} {path}")


def describe_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line: the source, then every failing field path with its reason (never the offending value)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
            suggestion = _suggest(model, error["loc"])
            if suggestion:
                reason += f" (did you mean '{suggestion}'?)"
        elif error["type"] == "missing":
            reason = "required field is missing"
        else:
            reason = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"] and _NAMED_FIELD.match(reason):  # a cross-field check that names its own field
            problems.append(reason)
            continue
        problems.append(f"{loc}: {reason}")
    counted = f" ({len(problems)} problems)" if len(problems) > 1 else ""
    return f"{source}{counted}: " + "; ".join(problems)


def _hint(exc: ValidationError) -> str | None:
    if any(err["type"] == "extra_forbidden" for err in exc.errors(include_url=False, include_input=False)):
        return "every field is documented in the README and in the shipped examples/ and policies/ files"
    return None


def _suggest(model: type[BaseModel], loc: tuple[int | str, ...]) -> str | None:
    """Walk the model along ``loc`` and suggest the closest known field name for the last part."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        current = _model_of(field.annotation)
        if current is None:
            return None
    names = list(getattr(current, "model_fields", {}))
    matches = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.5)
    return matches[0] if matches else None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
