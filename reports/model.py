"""The base of every report model, the interval type they share, and canonical JSON bytes and digests.

Reports are written to disk as JSON, the source of truth: RFC 8785 canonical bytes, whose SHA-256 is the
report's digest. Non-finite numbers have no JSON form, so undefined values are ``None`` throughout.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field

from reports.errors import ReportInputError

Task = Literal["text-classification", "causal-lm"]
"""The tasks reports are written for (``trainer.config.Task`` and ``policies.model.Task`` are the same words; a test
ties the three: the packages sit on one layer and may not import each other)."""


class ReportModel(BaseModel):
    """Strict and immutable: unknown fields are errors, and nothing changes a report once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(ReportModel):
    """A confidence interval and how it was obtained."""

    low: float | None = Field(description="Lower bound (None when undefined in too many resamples).")
    high: float | None = Field(description="Upper bound.")
    confidence: float = Field(gt=0.0, lt=1.0, description="Nominal coverage, e.g. 0.95.")
    method: str = Field(description="'bootstrap-percentile', 'bootstrap-percentile-stratified', 'wilson' or "
                                    "'clopper-pearson-sidak' (exact, simultaneous over `family` intervals).")
    samples: int = Field(ge=0, description="Bootstrap resamples (0 for closed-form intervals).")
    seed: int | None = Field(None, description="Seed of the resampling generator.")
    family: int = Field(1, ge=1, description="How many intervals hold together with probability `confidence` "
                                             "(Šidák correction); 1 for a single interval.")


class Estimate(ReportModel):
    """A point value with its interval; ``value`` is None when the quantity is undefined."""

    value: float | None
    interval: Interval | None = None


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None (NaN and infinities have no JSON form)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def canonical_bytes(report: BaseModel, *, exclude_none: bool = False) -> bytes:
    """The RFC 8785 canonical JSON of ``report`` (field aliases used, as in the published schema);
    ``exclude_none`` omits unset optional fields (formats like in-toto that expect absence, not null)."""
    data = report.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)
    try:
        return rfc8785.dumps(data)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ReportInputError(f"{type(report).__name__} cannot be written as canonical JSON: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex characters."""
    return hashlib.sha256(data).hexdigest()


def report_digest(report: BaseModel) -> str:
    """The digest of a report: SHA-256 of its canonical JSON bytes."""
    return sha256_hex(canonical_bytes(report))
