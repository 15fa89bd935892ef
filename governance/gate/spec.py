"""The dataset spec: what a file holds and where it came from, given at ``govtrain data ingest``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from governance.workspace.loading import load_model_file

LabelValue = str | int | bool
SPDX_ID = re.compile(r"^(LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9][A-Za-z0-9.+-]*)( (AND|OR|WITH) [A-Za-z0-9.+-]+)*$")


class DatasetSpec(BaseModel):
    """Describes one dataset file: its format and columns, and the provenance its card records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["csv", "jsonl", "parquet", "text"] = Field(description="File format.")
    text_columns: list[str] = Field(
        min_length=1, description="Free-text columns: validated and PII-scrubbed. For format text: [text]."
    )
    label_column: str | None = Field(None, description="The label column, if the data is labelled.")
    allowed_labels: list[LabelValue] | None = Field(
        None, description="Every label value the data may hold; anything else fails validation."
    )
    sensitive_columns: list[str] = Field(
        default_factory=list,
        description="Categorical attributes kept for bias measurement; validated, never scrubbed or fed to models.",
    )
    text_sample_by: Literal["line", "paragraph", "document"] = Field(
        "paragraph", description="For format text: one row per line, per blank-line paragraph, or one document."
    )
    pretty_name: str | None = Field(None, max_length=120, description="A human title for the card.")
    source: str = Field(min_length=1, description="Where the data came from (URL or description).")
    license: str = Field(min_length=1, description="SPDX license identifier, e.g. MIT or CC-BY-NC-SA-4.0.")
    description: str = Field(min_length=1, description="What the data is.")
    collection_process: str = Field(min_length=1, description="How the data was collected and labelled.")
    intended_use: str = Field(min_length=1, description="What the data may be used for.")
    out_of_scope_use: str = Field("", description="Uses the data is not suited for.")
    maintenance: str = Field("", description="Who maintains the data and how to report problems.")

    @field_validator("license")
    @classmethod
    def _spdx(cls, value: str) -> str:
        if not SPDX_ID.match(value):
            raise ValueError("must be an SPDX license identifier (e.g. MIT, Apache-2.0, CC-BY-4.0)")
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> DatasetSpec:
        declared = [*self.text_columns, *self.sensitive_columns, *([self.label_column] if self.label_column else [])]
        duplicates = sorted({c for c in declared if declared.count(c) > 1})
        if duplicates:
            raise ValueError(f"a column has two roles: {', '.join(duplicates)}")
        if self.allowed_labels is not None and self.label_column is None:
            raise ValueError("allowed_labels needs label_column")
        if self.format == "text" and (self.text_columns != ["text"] or self.label_column or self.sensitive_columns):
            raise ValueError("format text has one column, text: set text_columns: [text] and no labels or sensitive columns")
        return self

    @property
    def columns(self) -> list[str]:
        """Every declared column, text first."""
        return [*self.text_columns, *([self.label_column] if self.label_column else []), *self.sensitive_columns]


def load_dataset_spec(path: Path) -> DatasetSpec:
    """Load and validate a dataset spec file (exit 2 naming the bad field)."""
    return load_model_file(DatasetSpec, path, "dataset spec")
