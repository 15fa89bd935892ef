"""UTC timestamps in the one fixed-width RFC 3339 form the audit log uses.

Every entry time is ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Because the width is fixed, string order equals time
order, so the verifier compares times (monotonicity, key validity windows) as plain strings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from audit.errors import AuditError

TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


def format_timestamp(moment: datetime) -> str:
    """Render an aware datetime as the log's UTC form with microseconds and a ``Z`` suffix."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise AuditError("audit timestamps must be timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_timestamp() -> str:
    """The current time in the log's form."""
    return format_timestamp(datetime.now(UTC))


def is_timestamp(text: str) -> bool:
    """Whether `text` is exactly in the log's form and names a real instant (no month 13)."""
    if TIMESTAMP_RE.fullmatch(text) is None:
        return False
    try:
        datetime.fromisoformat(text[:-1])
    except ValueError:
        return False
    return True


def normalize_timestamp(text: str) -> str:
    """Parse any RFC 3339 timestamp with an explicit offset and return it in the log's form."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"not an RFC 3339 timestamp: {text!r}") from exc
    if moment.tzinfo is None:
        raise AuditError(f"timestamp has no UTC offset: {text!r}")
    return format_timestamp(moment)
