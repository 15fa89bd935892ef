"""Governance policies: the shipped YAML files and their loader.

A policy is named (``default``, ``strict``) to use a shipped file, or given as a path to a user's own.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from policies.model import Policy
from policies.model_files import ModelFileError, load_model_file, parse_yaml_mapping, validate_model

__all__ = ["ModelFileError", "Policy", "load_policy", "policy_digest", "shipped_policy_names"]


def shipped_policy_names() -> list[str]:
    """Names of the policies that ship with govtrain."""
    folder = resources.files("policies")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_policy(ref: str | Path) -> Policy:
    """Load a shipped policy by name, or a policy file by path; every problem is a ``ModelFileError``."""
    text = str(ref)
    if isinstance(ref, str) and "/" not in text and not text.endswith((".yaml", ".yml")):
        if text not in shipped_policy_names():
            raise ModelFileError(
                f"unknown policy '{text}'",
                hint=f"shipped policies: {', '.join(shipped_policy_names())}; or give a path to a YAML file",
            )
        raw = resources.files("policies").joinpath(f"{text}.yaml").read_bytes()
        source = f"policy {text}"
        return validate_model(Policy, parse_yaml_mapping(raw, source=source), source=source)
    return load_model_file(Policy, Path(ref), "policy")


def policy_digest(policy: Policy) -> str:
    """sha256 (hex) of the policy's canonical JSON: what cards, runs and registrations record."""
    from audit.canonical import canonical_digest

    return canonical_digest(json.loads(policy.model_dump_json()))
