"""The dataset provenance card: everything a compliance officer needs to judge a dataset, and nothing of its rows.

Canonical JSON (RFC 8785) of the card is the source of truth; its sha256 is what approvals sign.
The Markdown form (:mod:`datacards.render`) is rendered from it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field

CARD_FORMAT = "govtrain.dataset-card/v1"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provenance(_Frozen):
    """Where the data came from and what it is for (from the dataset spec)."""

    pretty_name: str
    source: str
    license: str
    description: str
    collection_process: str
    intended_use: str
    out_of_scope_use: str = ""
    maintenance: str = ""


class ColumnSchema(_Frozen):
    """One stored column: its name, Arrow type and role."""

    name: str
    type: str
    role: Literal["text", "label", "sensitive"]


def _absent(value: object) -> bool:
    return value is None


class Digests(_Frozen):
    """sha256 (hex) of the raw input file, of the scrubbed Parquet plaintext, and of the vault ciphertext.

    A sharded dataset (``shards`` set) is stored as encrypted Parquet shards listed in a vault manifest
    (:mod:`governance.gate.shards`): then ``ciphertext`` is the sha256 of the manifest, which lists each shard's
    rows, plaintext and ciphertext digests in order, so the card's digest (what approvals sign) covers every shard;
    and ``scrubbed_parquet`` is the sha256 of the shards' plaintext digests, one per line, in order.
    """

    raw_file: str
    scrubbed_parquet: str
    ciphertext: str
    raw_ciphertext: str | None = None
    # Left out of the JSON when absent, so a card written before shards existed keeps its digest (and approvals).
    shards: int | None = Field(None, ge=1, exclude_if=_absent,
                               description="How many encrypted shards the vault manifest lists (sharded datasets).")


class RowCounts(_Frozen):
    """Rows read from the input and rows stored in the vault."""

    input: int
    stored: int
    scrub_duplicates_dropped: int = Field(0, description="Rows dropped because the scrub made them duplicates.")


class PostScrubCheck(_Frozen):
    """Validation run again on the scrubbed table (duplicates, lengths, row and group minimums)."""

    duplicates_before_scrub: int
    duplicates_after_scrub: int
    scrub_created_duplicates: int = Field(description="Rows whose text repeats an earlier row's only after scrubbing.")
    action: Literal["drop", "fail"]
    rows_dropped: int
    expectations: int
    failed: int


class RecallFigure(_Frozen):
    """Measured recall of one entity type on one reference set, with its 95% interval."""

    gold: int
    removed: int
    recall: float
    low: float
    high: float


class MeasuredRecall(_Frozen):
    """Recall of the detector configuration that scrubbed this dataset, as measured on reference data."""

    detector_digest: str
    measured: bool = Field(description="False when this configuration has no shipped measurement.")
    method: str
    references: dict[str, dict[str, RecallFigure]] = Field(default_factory=dict)
    floors: dict[str, float] = Field(default_factory=dict, description="The policy's pii.recall_floor.")
    tuned_on: list[str] = Field(
        default_factory=list, exclude_if=_absent,
        description="Reference sets the detector's rules were tuned on: shown, never presented as the recall.")
    corpora: dict[str, str] = Field(default_factory=dict, exclude_if=_absent,
                                    description="What each reference set's text is (to judge which is like the data).")


class GroupStats(_Frozen):
    """Representation of one value of a sensitive column."""

    count: int
    share: float
    label_counts: dict[str, int] = Field(default_factory=dict)
    label_rate: float | None = Field(None, description="Share of the positive label, for binary labels.")


class Representation(_Frozen):
    """Group counts and label balance of one sensitive column."""

    column: str
    positive_label: str | None
    groups: dict[str, GroupStats]


class PiiSummary(_Frozen):
    """What the PII scrub found and removed (counts only), and with what."""

    entities_requested: list[str]
    score_threshold: float
    operators: dict[str, str]
    findings_by_entity: dict[str, int]
    findings_by_column: dict[str, dict[str, int]]
    rows_changed_by_column: dict[str, int]
    texts_scanned: int
    residual_by_entity: dict[str, int]
    residual_tolerance: int
    independent_residual_by_entity: dict[str, int] = Field(
        default_factory=dict, description="Findings of the independent re-scan (no NER model) in the scrubbed text.")
    independent_recognizers: list[str] = Field(default_factory=list)
    name_lists: str = "off"
    org_as_person: str = "off"
    measured_recall: MeasuredRecall | None = None
    # Left out of the JSON when absent (no sensitive columns), so cards written before the scan keep their digest.
    sensitive_column_findings: dict[str, dict[str, int]] | None = Field(
        None, exclude_if=_absent,
        description="Per sensitive column, per entity type: distinct values in which the PII scan at ingest found "
                    "that type (empty: none found). Non-empty only under a policy that allows PII there "
                    "(pii.sensitive_column_pii: allow); otherwise such an ingest is refused.")
    recognizers: list[str]
    ner_model: str
    ner_model_version: str
    presidio_version: str


class ValidationSummary(_Frozen):
    """The great-expectations run: how many expectations, which failed (none, for a stored card)."""

    engine: str
    expectations: int
    failed: int
    results: list[dict[str, Any]]


class PolicyRef(_Frozen):
    """The policy the card was built under."""

    name: str
    digest: str


class Ingestion(_Frozen):
    """Who ingested the data, when, with which govtrain."""

    identity: str
    key_id: str
    time: str
    govtrain_version: str


class DatasetCard(_Frozen):
    """A dataset's provenance card (one per ingested version)."""

    format: Literal["govtrain.dataset-card/v1"] = "govtrain.dataset-card/v1"
    name: str
    version: int = Field(ge=1)
    provenance: Provenance
    file_format: str
    schema_: list[ColumnSchema] = Field(alias="schema")
    text_columns: list[str]
    label_column: str | None
    allowed_labels: list[str] | None
    sensitive_columns: list[str]
    rows: RowCounts
    digests: Digests
    validation: ValidationSummary
    pii: PiiSummary
    post_scrub: PostScrubCheck | None = None
    representation: list[Representation]
    transformations: list[str]
    policy: PolicyRef
    ingestion: Ingestion
    vault_object: str = Field(description="Path of the ciphertext (of the manifest, for a sharded dataset), "
                                          "relative to the workspace.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def canonical_json(self) -> bytes:
        """RFC 8785 canonical JSON: the bytes whose digest approvals sign."""
        return rfc8785.dumps(json.loads(self.model_dump_json(by_alias=True)))

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"
