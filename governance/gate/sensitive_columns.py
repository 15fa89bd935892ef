"""PII in declared sensitive columns, found at ingest before anything is stored.

Sensitive columns (the groups bias is measured over) are never scrubbed: their values are printed on the card (group
representation) and in bias reports. A spec that declares an e-mail or SSN column sensitive would put those values
there. So ingest scans each sensitive column's distinct values with the policy's PII engine (the full detector: the
NER model, patterns, lists) and refuses (exit 4, naming column, entity type and counts, never values) unless the
policy says ``pii.sensitive_column_pii: allow``; the counts then go on the card.

The distinct values are those the first pass already counts per group for validation, so the scan adds no pass
over the data and holds nothing more in memory (a group column has few values). The second pass is checked
against the first (a digest of every batch), so the values scanned are the values stored.

Measured with the default policy's detector: nothing found in RedditBias's groups (female, black, lgbtq, jews,
muslims), the demo's regions (north, south, west) or common demographic values (asian, hispanic, African American,
nonbinary, 18-24, over 65); found: 20 of 20 Faker SSNs, 10 of 10 e-mail addresses, 3 of 5 phone numbers, 5 of 5
full names, and capitalised place names used as groups (Mexico, USA, Europe, South; Arab) as LOCATION, so a
column of countries or regions needs a policy that allows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import PolicyRefusal, UnexpectedError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from governance.gate.pii_engine import PiiEngine
    from governance.gate.validation_stats import DatasetStats
    from policies.model import PiiRules


@dataclass(frozen=True)
class SensitiveScan:
    """What the scan of the sensitive columns' distinct values found: counts only."""

    values: Mapping[str, int]
    """Distinct (non-null) values scanned, per column."""
    findings: Mapping[str, Mapping[str, int]]
    """Per column, per entity type: distinct values holding a finding of that type (only types found)."""
    rows: Mapping[str, int]
    """Per column: rows whose value holds any finding."""

    @property
    def found(self) -> bool:
        """Whether any sensitive value holds PII."""
        return any(self.findings.values())

    def to_payload(self) -> dict[str, Any]:
        """The log's record: distinct values scanned and findings, per column."""
        return {"sensitive_values": dict(self.values),
                "sensitive_findings": {column: dict(counts) for column, counts in self.findings.items()}}


def scan_sensitive_columns(stats: DatasetStats, columns: Sequence[str], engine: PiiEngine) -> SensitiveScan:
    """Scan the distinct values of each of ``columns`` (as the first pass counted them) with the PII engine."""
    from governance.gate.pii_scan import TextScanFailure, find_pii
    from governance.gate.validation_stats import group_sizes

    values: dict[str, int] = {}
    findings: dict[str, dict[str, int]] = {}
    rows: dict[str, int] = {}
    for column in columns:
        sizes = group_sizes(stats, column)
        distinct = sorted(sizes)
        try:
            results = find_pii(distinct, engine)
        except TextScanFailure as failure:
            raise UnexpectedError(f"the PII scan failed on a value of sensitive column '{column}' "
                                  f"({failure.cause})", hint="the value is not shown, as it may hold PII") from None
        counts: Counter[str] = Counter()
        affected = 0
        for value, found in zip(distinct, results):
            if found:
                counts.update({result.entity_type for result in found})
                affected += sizes[value]
        values[column] = len(distinct)
        findings[column] = dict(sorted(counts.items()))
        rows[column] = affected
    return SensitiveScan(values=values, findings=findings, rows=rows)


def check_sensitive_scan(scan: SensitiveScan, rules: PiiRules) -> None:
    """Refuse (exit 4) when a sensitive column holds PII and the policy does not allow it; names the column, the
    entity types and how many values, never the values."""
    if not scan.found or rules.sensitive_column_pii == "allow":
        return
    said = "; ".join(
        f"sensitive column '{column}' holds PII in {scan.rows[column]:,} rows ("
        + ", ".join(f"{entity} in {count:,} of its {scan.values[column]:,} distinct values"
                    for entity, count in counts.items()) + ")"
        for column, counts in scan.findings.items() if counts)
    raise PolicyRefusal(
        f"{said}; sensitive values are printed on the dataset card and in bias reports, never scrubbed",
        hint="declare the column as a text column (scrubbed) or leave it out of the spec; an admin can register a "
             "policy with pii.sensitive_column_pii: allow if these values may be shown",
    )
