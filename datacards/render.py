"""Render a dataset card as a Hugging Face dataset card: YAML front matter plus Datasheets for Datasets sections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from datacards.approval import CardDecision
from datacards.build import size_category
from datacards.card import DatasetCard, MeasuredRecall


@dataclass(frozen=True)
class LoggedReview:
    """A person's signed review of random stored rows of the card (``data.reviewed``), as the log holds it."""

    by: str
    role: str
    time: str
    sample: int
    rows_stored: int
    rows_with_identifier: int
    identifiers: int
    upper_per_100: float
    """One-sided 95% Clopper-Pearson upper bound on rows with a remaining identifier, per 100 rows."""


@dataclass(frozen=True)
class CardReviews:
    """The card's reviews read from the audit log (not part of the card or its digest) and what its policy asks."""

    reviews: tuple[LoggedReview, ...]
    """Reviews that count, in log order."""
    not_counted: int
    """Logged reviews that do not count (by the ingesting key, a key revoked as compromised, or of other rows)."""
    required_sample: int | None
    """Rows a review must read for approval (None: the policy requires no review)."""
    max_per_100: float | None
    """The policy's bound on the upper bound (None: no review required)."""
    approvable: bool | None
    """Whether the reviews let the card be approved under its policy (None: no review required)."""
    failing: LoggedReview | None = None
    """The review above the policy's bound that keeps the card from approval, if any."""


def front_matter(card: DatasetCard) -> dict[str, object]:
    """The Hugging Face metadata block."""
    task = "text-classification" if card.label_column else "text-generation"
    return {
        "pretty_name": card.provenance.pretty_name,
        "license": card.provenance.license.lower(),
        "language": ["en"],
        "task_categories": [task],
        "size_categories": [size_category(card.rows.stored)],
        "source_datasets": [card.provenance.source],
        "tags": ["govtrain", "pii-scrubbed", f"policy-{card.policy.name}"],
        "govtrain": {"card_digest": card.digest(), "dataset": card.ref, "policy_digest": card.policy.digest},
    }


def _recall(measured: MeasuredRecall | None) -> list[str]:
    """The measured-recall section: per held-out reference set and entity, recall with its 95% interval and the
    spread over them; the sets the detector was tuned on follow, marked as not the recall."""
    if measured is None or not measured.measured:
        digest = measured.detector_digest[:12] if measured else "unknown"
        return [(f"**Measured recall: none.** This detector configuration (sha256:{digest}) was never measured on "
                 "reference data; nothing is claimed about how much PII it misses."), ""]

    def rows(tuned: bool) -> list[tuple[object, ...]]:
        return [(reference, measured.corpora.get(reference, ""), entity, f"{f.recall:.2f} [{f.low:.2f}, {f.high:.2f}]",
                 f.gold, f"{measured.floors[entity]:.2f}" if entity in measured.floors else "-")
                for reference, figures in sorted(measured.references.items())
                if (reference in measured.tuned_on) == tuned for entity, f in sorted(figures.items()) if f.gold]

    held_out = rows(False)
    spread = []
    for entity in sorted({str(r[2]) for r in held_out}):
        figures = {str(r[0]): measured.references[str(r[0])][entity].recall for r in held_out if r[2] == entity}
        lowest = min(figures, key=lambda name: figures[name])
        spread.append(f"{entity} {min(figures.values()):.2f} to {max(figures.values()):.2f} over {len(figures)} "
                      f"set(s), lowest on {lowest}")
    header = ["reference set", "what the text is", "entity", "recall [95% CI]", "annotated spans", "policy floor"]
    out = [(f"**Measured recall** of this detector configuration (sha256:{measured.detector_digest[:12]}): "
            f"{measured.method}."), "",
           ("On text nobody tuned the detector on (read the set most like this dataset's text; the lowest figure "
            "is the cautious reading): " + "; ".join(spread) + ".") if spread else
           "No held-out reference set measures this configuration.", "", _table(header, held_out), ""]
    if measured.tuned_on:
        out += [(f"Tuned on {', '.join(measured.tuned_on)}: figures on text the rules were chosen on overstate what "
                 "they remove elsewhere, so they are shown for completeness and are not the recall."), "",
                _table(header, rows(True)), ""]
    return out


def _post_scrub(card: DatasetCard) -> list[str]:
    post = card.post_scrub
    if post is None:
        return []
    return [(f"**After the scrub** validation ran again on the scrubbed table ({post.expectations} expectations, "
             f"{post.failed} failed): {post.scrub_created_duplicates} rows became duplicates of another row only "
             f"because of the scrub ({post.duplicates_before_scrub} duplicates before, {post.duplicates_after_scrub} "
             f"after); policy: {post.action}, {post.rows_dropped} rows dropped."), ""]


def _sensitive_scan(findings: Mapping[str, Mapping[str, int]] | None) -> list[str]:
    """What the scan of the sensitive columns' values found (counts of values by type)."""
    if findings is None:
        return []
    found = {column: counts for column, counts in findings.items() if counts}
    if not found:
        return [(f"The values of the sensitive columns ({', '.join(findings)}) were scanned for PII with the same "
                 "detector at ingest: none found."), ""]
    said = "; ".join(f"`{column}`: " + ", ".join(f"{entity} in {n} distinct values" for entity, n in counts.items())
                     for column, counts in found.items())
    return [(f"**PII in sensitive columns**, kept because the policy allows it (pii.sensitive_column_pii: allow): "
             f"{said}. These values appear above and in bias reports as they are."), ""]


def _reviews(reviews: CardReviews | None) -> list[str]:
    """The review section: the only figure measured on this dataset itself."""
    if reviews is None:
        return []
    elsewhere = ("the recall figures above are measured on reference corpora, and the re-scans count what detectors "
                 "still find, not what they miss")
    if reviews.reviews:
        r = reviews.reviews[-1]
        parts = [(f"**Reviewed on this dataset.** On {r.time} {r.by} ({r.role}) read {r.sample:,} random stored rows "
                  f"of {r.rows_stored:,} and marked {r.identifiers:,} remaining identifier(s) in "
                  f"{r.rows_with_identifier:,} of them: at most **{r.upper_per_100:.2f} rows per 100** hold an "
                  "identifier (one-sided 95% Clopper-Pearson upper bound). This is the only figure on this card "
                  f"measured on this dataset itself: {elsewhere}.")]
        if len(reviews.reviews) > 1:
            parts.append(f"{len(reviews.reviews) - 1} earlier review(s) are in the audit log.")
    else:
        parts = [("**Not reviewed on this dataset.** Nobody has logged a review of its scrubbed rows ('govtrain data "
                  f"review'), so no figure on this card is measured on this dataset itself: {elsewhere}.")]
    if reviews.not_counted:
        parts.append(f"{reviews.not_counted} logged review(s) do not count (by the ingesting key, by a key revoked as "
                     "compromised, or of another number of rows).")
    if reviews.required_sample is not None and reviews.max_per_100 is not None:
        state = "met" if reviews.approvable else "not met"
        failing = reviews.failing
        if failing is not None:
            state += (f": the review by {failing.by} on {failing.time} found an identifier in "
                      f"{failing.rows_with_identifier:,} of {failing.sample:,} rows, at most "
                      f"{failing.upper_per_100:.2f} per 100")
        parts.append(f"The policy's pii.review asks for a review of at least {reviews.required_sample:,} rows with an "
                     f"upper bound of at most {reviews.max_per_100:g} per 100, and none above it before approval: "
                     f"{state}.")
    return [" ".join(parts), ""]


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(card: DatasetCard, decisions: Sequence[CardDecision] = (),
                    reviews: CardReviews | None = None) -> str:
    """The card as Markdown. Decisions, if given, are listed under Maintenance, and reviews read from the log
    under Privacy (neither is part of the digest)."""
    p = card.provenance
    pii = card.pii
    parts = ["---", yaml.safe_dump(front_matter(card), sort_keys=False).rstrip(), "---", ""]
    parts += [f"# {p.pretty_name} ({card.ref})", "", p.description, ""]
    parts += ["## Motivation", "", f"**Intended use.** {p.intended_use}", ""]
    if p.out_of_scope_use:
        parts += [f"**Out-of-scope use.** {p.out_of_scope_use}", ""]
    parts += ["## Composition", "",
              f"{card.rows.stored} rows ({card.rows.input} read from a {card.file_format} file).", "",
              _table(["column", "type", "role"], [(c.name, c.type, c.role) for c in card.schema_]), ""]
    if card.allowed_labels:
        parts += [f"Allowed labels: {', '.join(card.allowed_labels)}.", ""]
    for rep in card.representation:
        parts += [f"### Representation by `{rep.column}`", ""]
        rate_header = f"rate of label {rep.positive_label}" if rep.positive_label else "label counts"
        rows = [
            (group, s.count, f"{s.share:.1%}",
             f"{s.label_rate:.1%}" if s.label_rate is not None else (s.label_counts or "-"))
            for group, s in rep.groups.items()
        ]
        parts += [_table(["group", "rows", "share", rate_header], rows), ""]
    parts += ["## Collection process", "", p.collection_process, "", f"Source: {p.source}", ""]
    parts += ["## Preprocessing", "",
              (f"Validated with {card.validation.engine}: {card.validation.expectations} expectations, "
              f"{card.validation.failed} failed."), ""]
    parts += ["Transformations applied:", ""] + [f"- {t}" for t in card.transformations] + [""]
    parts += ["## Privacy", "",
              (f"Text columns ({', '.join(card.text_columns)}) were scanned for "
              f"{', '.join(pii.entities_requested)} with presidio {pii.presidio_version} and the spaCy NER model "
              f"{pii.ner_model} {pii.ner_model_version} (score threshold {pii.score_threshold}). "
              f"{pii.texts_scanned} texts scanned; {sum(pii.findings_by_entity.values())} findings removed."), ""]
    if pii.findings_by_entity:
        parts += [_table(["entity", "found and removed", "operator", "re-scan, same detector",
                          "re-scan, independent detector"],
                         [(e, n, pii.operators.get(e, pii.operators.get("DEFAULT", "replace")),
                           pii.residual_by_entity.get(e, 0), pii.independent_residual_by_entity.get(e, 0))
                          for e, n in sorted(pii.findings_by_entity.items())]), ""]
    parts += [(f"Detection layers: NER, ORG spans taken as PERSON: {pii.org_as_person}; name lists: "
               f"{pii.name_lists}. Recognizers: {', '.join(pii.recognizers)}."), ""]
    parts += _recall(pii.measured_recall)
    parts += _post_scrub(card)
    parts += [f"A re-scan of the scrubbed text with the same detector found {sum(pii.residual_by_entity.values())} "
              f"residual findings (tolerance {pii.residual_tolerance}); an independent re-scan (no NER model: "
              f"{', '.join(pii.independent_recognizers) or 'none'}) found "
              f"{sum(pii.independent_residual_by_entity.values())}. Neither is proof of absence: the recall above "
              f"is what was measured. Sensitive columns ({', '.join(card.sensitive_columns) or 'none'}) "
              "are categories kept for bias measurement; they are not scrubbed and never fed to models. "
              "The raw input is not kept" + (" (except encrypted, as the policy asks)." if card.digests.raw_ciphertext else "."), ""]
    parts += _reviews(reviews)
    parts += _sensitive_scan(pii.sensitive_column_findings)
    parts += ["## Uses", "", p.intended_use, ""]
    parts += ["## Distribution", "", (f"License: {p.license}. Stored encrypted (AES-256-GCM) in the workspace vault "
              f"at `{card.vault_object}`; readable only with the workspace master key."), ""]
    parts += ["## Maintenance", "", p.maintenance or "Maintained by the workspace's data owners.", "",
              (f"Ingested by {card.ingestion.identity} ({card.ingestion.key_id}) on {card.ingestion.time} with "
              f"govtrain {card.ingestion.govtrain_version} under policy {card.policy.name} "
              f"(sha256:{card.policy.digest[:12]})."), ""]
    parts += ["Digests (sha256):", "", f"- raw input: `{card.digests.raw_file}`",
              f"- scrubbed Parquet: `{card.digests.scrubbed_parquet}`",
              (f"- vault manifest ({card.digests.shards} encrypted shards): `{card.digests.ciphertext}`"
               if card.digests.shards else f"- ciphertext: `{card.digests.ciphertext}`"),
              f"- this card: `{card.digest()}`", ""]
    if decisions:
        parts += ["### Decisions", ""] + [
            f"- {d.decision} by {d.by_name} ({d.role}) on {d.time}" + (f": {d.note}" if d.note else "")
            for d in decisions
        ] + [""]
    return "\n".join(parts)
