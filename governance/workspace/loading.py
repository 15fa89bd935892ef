"""YAML files as strict pydantic models, for the commands: :mod:`policies.model_files` with its errors as
``ConfigError`` (exit 2), so a bad config, spec, manifest or policy file reads the same everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

import policies
from governance.errors import ConfigError
from policies import model_files
from policies.model_files import ModelFileError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@contextmanager
def config_errors() -> Iterator[None]:
    """Raise a ``ModelFileError`` from the block as the ``ConfigError`` it stands for."""
    try:
        yield
    except ModelFileError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from None


def _translated(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with config_errors():
        return function(*args, **kwargs)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read ``path`` as a YAML mapping (see :func:`policies.model_files.read_yaml_mapping`)."""
    return _translated(model_files.read_yaml_mapping, path, what)


def parse_yaml_mapping(raw: bytes | str, *, source: str) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level."""
    return _translated(model_files.parse_yaml_mapping, raw, source=source)


def validate_model(model: type[M], data: Any, *, source: str) -> M:
    """Validate ``data`` against ``model``; every error is named, field by field, in one ``ConfigError``."""
    with config_errors():
        return model_files.validate_model(model, data, source=source)


def load_model_file(model: type[M], path: Path, what: str) -> M:
    """Read a YAML file and validate it as ``model``."""
    with config_errors():
        return model_files.load_model_file(model, path, what)


def load_policy(ref: str | Path) -> policies.Policy:
    """A shipped policy by name, or a policy file (not yet checked for registration: see
    :mod:`governance.trust.policy_registry`)."""
    return _translated(policies.load_policy, ref)
