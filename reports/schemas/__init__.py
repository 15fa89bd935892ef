"""The published JSON Schemas of the reports, generated from the pydantic models.

``python -m reports.schemas`` rewrites the ``*.schema.json`` files in this folder; a test fails when they
drift from the models, so the committed files always describe what ``write_reports`` writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

SCHEMA_DIR = Path(__file__).resolve().parent


def report_models() -> dict[str, type[BaseModel]]:
    """Schema file stem -> the model of the JSON file it describes."""
    from reports.bias import BiasReport
    from reports.evaluation import EvaluationReport
    from reports.privacy import PrivacyReport
    from reports.provenance import DsseEnvelope, Statement
    from reports.transparency import ModelCard

    return {"bias": BiasReport, "evaluation": EvaluationReport, "transparency": ModelCard,
            "provenance": DsseEnvelope, "provenance-statement": Statement, "privacy": PrivacyReport}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of what a report's JSON file holds (serialisation mode, field aliases)."""
    schema = model.model_json_schema(mode="serialization", by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_texts() -> dict[str, str]:
    """File name -> schema text (sorted keys, two-space indent, trailing newline)."""
    return {f"{stem}.schema.json": json.dumps(schema_of(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for stem, model in report_models().items()}


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema into ``folder``; returns the paths written."""
    paths = []
    for name, text in schema_texts().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
