"""PII in the distinct values of declared sensitive columns, scanned with the real presidio engine."""

from __future__ import annotations

from collections import Counter

import pytest

from governance.errors import PolicyRefusal
from governance.gate.pii import PiiEngine, load_pii_engine
from governance.gate.sensitive_columns import check_sensitive_scan, scan_sensitive_columns
from governance.gate.validation_stats import DatasetStats
from policies import load_policy

RULES = load_policy("default").pii
EMAILS = ["ann.lee@example.org", "bo.chan@example.net", "kim.ortiz@example.com"]
SSNS = ["138-73-1034", "262-16-8118"]


@pytest.fixture(scope="module")
def engine() -> PiiEngine:
    return load_pii_engine(RULES)


def stats(groups: dict[str, dict[str, int]]) -> DatasetStats:
    """First-pass statistics whose sensitive columns hold these values with these row counts (labels 0/1)."""
    result = DatasetStats()
    for column, sizes in groups.items():
        counts: Counter[tuple[str, str]] = Counter()
        for value, rows in sizes.items():
            counts[(value, "0")] += rows - rows // 2
            counts[(value, "1")] += rows // 2
        counts[("<missing>", "0")] += 3  # nulls are not values to scan
        result.groups[column] = counts
    return result


def test_group_values_hold_no_pii(engine: PiiEngine) -> None:
    groups = {"target_group": dict.fromkeys(["female", "black", "lgbtq", "jews", "muslims"], 80),
              "region": dict.fromkeys(["north", "south", "west"], 40)}
    scan = scan_sensitive_columns(stats(groups), ["target_group", "region"], engine)
    assert scan.values == {"target_group": 5, "region": 3}
    assert not scan.found and scan.findings == {"target_group": {}, "region": {}}
    check_sensitive_scan(scan, RULES)


def test_emails_and_ssns_are_refused_by_column_type_and_count_never_value(engine: PiiEngine) -> None:
    groups = {"target_group": {"female": 60, "black": 60},
              "annotator": {EMAILS[0]: 50, EMAILS[1]: 40, EMAILS[2]: 30, "team lead": 10},
              "ssn": {SSNS[0]: 31, SSNS[1]: 32}}
    scan = scan_sensitive_columns(stats(groups), ["target_group", "annotator", "ssn"], engine)
    assert scan.findings["target_group"] == {}
    assert scan.findings["annotator"] == {"EMAIL_ADDRESS": 3}
    assert scan.findings["ssn"]["US_SSN"] == 2
    assert scan.rows["annotator"] == 120 and scan.rows["ssn"] == 63
    with pytest.raises(PolicyRefusal) as caught:
        check_sensitive_scan(scan, RULES)
    message = caught.value.message
    assert caught.value.exit_code == 4
    assert "sensitive column 'annotator' holds PII in 120 rows (EMAIL_ADDRESS in 3 of its 4 distinct values)" in message
    assert "sensitive column 'ssn' holds PII in 63 rows (" in message and "US_SSN in 2 of its 2" in message
    assert "target_group" not in message
    for value in [*EMAILS, *SSNS]:
        assert value not in message and value not in str(caught.value.hint) and value not in str(scan.to_payload())
    # A policy that allows PII in sensitive columns keeps the counts and lets the ingest go on.
    check_sensitive_scan(scan, RULES.model_copy(update={"sensitive_column_pii": "allow"}))
