"""What a model came from, as the model card and auditors see it: dataset cards by digest with their
approvals, the policy, the resolved run config, code and library versions, hardware and the audit checkpoint.

The orchestrator fills these from the dataset cards, the approval check, the policy and the audit log;
nothing here re-verifies them (``signature_valid`` is the orchestrator's verdict at report time).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from reports.document import Block, Heading, Paragraph, Table
from reports.model import ReportModel

JsonScalar = str | int | float | bool | None


class Approval(ReportModel):
    """One approval of a dataset card."""

    approver: str = Field(description="Identity name of the approver.")
    role: str | None = None
    key_id: str | None = None
    time: str = Field(description="RFC 3339 UTC time of the approval.")
    signature_valid: bool
    self_approval: bool = Field(False, description="The approver also ingested the data (the registered policy "
                                                   "allows it).")


class DatasetSummary(ReportModel):
    """A dataset card, summarised: identity, origin, size, PII counts and approvals (never rows)."""

    name: str
    version: int
    digest: str = Field(description="sha256 of the card's canonical JSON.")
    license: str
    source: str
    description: str
    rows: int | None = None
    sensitive_columns: list[str] = Field(default_factory=list)
    pii_findings: dict[str, int] = Field(default_factory=dict, description="Findings removed, per entity type.")
    approvals: list[Approval] = Field(default_factory=list)


class PolicyRef(ReportModel):
    """The policy a run was held to."""

    name: str
    digest: str


class AuditCheckpointRef(ReportModel):
    """The audit log's signed tree head at report time."""

    tree_size: int
    root: str
    time: str | None = None
    key_id: str | None = None


class Lineage(ReportModel):
    """Everything a model came from."""

    datasets: list[DatasetSummary] = Field(min_length=1)
    policy: PolicyRef
    run_config: dict[str, Any] = Field(description="The resolved run config.")
    code_version: str
    library_versions: dict[str, str]
    hardware: dict[str, JsonScalar]
    audit_checkpoint: AuditCheckpointRef | None


def lineage_blocks(lineage: Lineage) -> list[Block]:
    """The lineage section of the model card."""
    import json

    cp = lineage.audit_checkpoint
    return [
        Heading("Lineage"),
        Table(("dataset", "version", "card sha256", "license", "rows"),
              tuple((d.name, d.version, d.digest, d.license, d.rows) for d in lineage.datasets)),
        Table(("dataset", "approver", "role", "key id", "time", "signature valid"),
              tuple((d.name, a.approver, a.role, a.key_id, a.time, a.signature_valid)
                    for d in lineage.datasets for a in d.approvals)),
        Table(("item", "value"), (
            ("policy", f"{lineage.policy.name} (sha256 {lineage.policy.digest})"),
            ("code version", lineage.code_version),
            ("audit checkpoint", "none recorded" if cp is None else
             f"tree size {cp.tree_size}, root {cp.root}" + (f", {cp.time}" if cp.time else "")),
            *((f"hardware: {k}", v) for k, v in sorted(lineage.hardware.items())),
            *((f"library: {k}", v) for k, v in sorted(lineage.library_versions.items())),
        )),
        Paragraph("Resolved run config: " + json.dumps(lineage.run_config, sort_keys=True)),
    ]
