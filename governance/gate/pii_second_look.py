"""The independent second look as a gate: refuse a scrub after which a detector that never reads the NER model
still finds PII at a rate clean scrubbed text does not reach.

The same-detector re-scan (``residual``) cannot see what the first pass misses; the independent re-scan
(``independent_residual``: presidio's patterns and checksums, account patterns, obfuscated e-mails, listed names
judged by capitals and context instead of the tagger, listed places) can, but it also raises false alarms on
clean text ("against Company policy", "Jan. 24"). An absolute tolerance would refuse any large dataset, so the
gate is a rate: more findings than the policy's ``residual_tolerance`` *and* more than
``SECOND_LOOK_MAX_PER_TEXT`` per scrubbed text.

Measured (independent findings per 100 scrubbed texts, ``benchmarks/bench_pii_recall.py`` reports them):

==========================  ===========================  =========================================
texts                       default policy's first pass  NER-only first pass (no lists, accounts)
==========================  ===========================  =========================================
BTC section H, 2,000 tweets  0.1                          70
RedditBias, 2,000 comments   0.2                          2.7
Enron e-mails, 500           4.0                          96
==========================  ===========================  =========================================

So the limit (10 per 100) passes ordinary data under the shipped detectors with a margin of 2.5x on e-mail and
50x on tweets, and refuses a first pass that is blind to names on tweets and e-mail. It is an alarm for a gross
failure, not a measure of recall (that is :mod:`pii_recall`): a name-blind pass over comments that seldom name
anyone (RedditBias) stays under it.

**The approver's look** (:mod:`governance.gate.review_sample`) runs the same independent detector over the text
of a random sample of the stored rows and judges the sample by the same rule (:func:`check_review_sample`): at
most :func:`second_look_limit` of the texts it read. The rate is what a sample estimates, so an honest dataset
passes at the margins above (Enron e-mails, 4 to 5 per 100, against 10 per 100: with the default 200 rows, more
than 20 findings where 8 to 10 are expected has a Poisson probability of 1e-4 to 2e-3; a dataset no larger than
the sample is read whole, so there the approver repeats the ingest's own judgment), while stored text that was never
scrubbed is refused (the same 200 Enron e-mails unscrubbed: 794 findings). Text whose raw form holds little this
detector can see (lowercased RedditBias comments: 18 findings in 400 raw) passes this rule; the sample's
comparison with the card's own counts catches it (:func:`governance.gate.claims.check_sample_against_card`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from governance.errors import PolicyRefusal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from policies.model import PiiRules

SECOND_LOOK_MAX_PER_TEXT = 0.10
"""Most independent findings per scrubbed text before the gate refuses (see the module docstring)."""


def second_look_limit(texts_scanned: int, rules: PiiRules) -> int:
    """The most independent findings a scrub of ``texts_scanned`` texts may leave."""
    return max(rules.residual_tolerance, int(SECOND_LOOK_MAX_PER_TEXT * texts_scanned))


def _over_the_limit(findings: Mapping[str, int], texts: int, rules: PiiRules) -> tuple[int, int, str] | None:
    """``(total, limit, counts by type)`` when the findings in ``texts`` texts exceed :func:`second_look_limit`."""
    total = sum(findings.values())
    limit = second_look_limit(texts, rules)
    if total <= limit:
        return None
    return total, limit, ", ".join(f"{entity} {count}" for entity, count in sorted(findings.items()) if count)


def check_second_look(independent_residual: Mapping[str, int], texts_scanned: int, rules: PiiRules) -> None:
    """Refuse (exit 4) when the independent re-scan found more than :func:`second_look_limit` allows."""
    over = _over_the_limit(independent_residual, texts_scanned, rules)
    if over is None:
        return
    total, limit, counts = over
    raise PolicyRefusal(
        f"the independent re-scan (no NER model) still finds {total} PII findings in {texts_scanned} scrubbed "
        f"texts ({counts}); more than {limit} ({SECOND_LOOK_MAX_PER_TEXT:.0%} of the texts, or the policy's "
        f"tolerance of {rules.residual_tolerance}) means the first pass missed what it should have found",
        hint="enable pii.name_lists and pii.account_patterns, add the missing entity types, or review the data",
    )


def check_review_sample(findings: Mapping[str, int], texts: int, rows: int, rules: PiiRules) -> None:
    """Refuse (exit 4) when the approver's re-scan of ``texts`` texts of ``rows`` random stored rows found more than
    :func:`second_look_limit` allows for that many texts; says what was found by type and count, never values."""
    over = _over_the_limit(findings, texts, rules)
    if over is None:
        return
    total, limit, counts = over
    raise PolicyRefusal(
        f"a re-scan of {rows} random stored rows ({texts} texts) in the approver's process finds {total} PII "
        f"findings ({counts}); the policy allows at most {limit} ({SECOND_LOOK_MAX_PER_TEXT:.0%} of the texts, "
        f"or its tolerance of {rules.residual_tolerance}), so the stored data is not scrubbed as its card says",
        hint="reject the dataset ('govtrain data reject') and have it ingested again",
    )
