"""The reference corpora the PII detector is measured on (issue 23): the extracts kept in the repository load
without the network, their texts are rebuilt as written, and the corpora the detector was tuned on are marked."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest

from governance.errors import DataValidationError
from governance.gate.pii_eval import (
    CORPORA,
    DEV_NAME_TEMPLATES,
    NAME_TEMPLATES,
    Span,
    faker_name_sentences,
    load_conll,
    load_name_sentences,
    over_scrub_rate,
    rebuild_text,
    reference_corpora,
    script_of,
)

REPO_CORPORA = ("wnut17", "wikigold", "re3d", "sec-filings", "names-by-script")


@pytest.mark.parametrize("name", REPO_CORPORA)
def test_each_extract_is_small_and_matches_its_source_note(name: str) -> None:
    """Every extract has a SOURCE.md naming a commit and a license, stays well under 400 KB, and its sha256 is
    the one the note states (an edited extract would no longer be the published data)."""
    folder = CORPORA / name
    note = (folder / "SOURCE.md").read_text(encoding="utf-8")
    assert re.search(r"commit `[0-9a-f]{40}`", note) and "License" in note
    data = [path for path in folder.iterdir() if path.name != "SOURCE.md"]
    assert len(data) == 1
    content = data[0].read_bytes()
    assert len(content) < 300_000
    assert hashlib.sha256(content).hexdigest() in note


def test_reference_corpora_name_tuning_and_held_out_sets(tmp_path: Path) -> None:
    corpora = reference_corpora(tmp_path)  # no shared data: the repository's extracts still load
    assert {name for name, corpus in corpora.items() if corpus.tuned} == {"btc-h-dev", "btc-f", "faker-names-dev"}
    held_out = {name for name, corpus in corpora.items() if not corpus.tuned}
    assert set(REPO_CORPORA) | {"presidio-synth"} == held_out
    for name in REPO_CORPORA:
        texts = corpora[name].load()
        assert len(texts) > 250 and any(span.entity_type == "PERSON" for t in texts for span in t.spans)
    with pytest.raises(DataValidationError, match="btc-f is missing"):
        corpora["btc-f"].load()


def test_conll_texts_are_rebuilt_as_written(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART- O\n\nRT\tO\n@\tO\nHozay\tO\n_\tO\n_\tO\n:\tO\nI\tO\ndo\tO\nn\tO\n'\tO\nt\tO\nlike\tO\n"
                    "Anna\tB-person\nMaria\tI-person\n(\tO\nin\tO\nNew\tB-location\nYork\tI-location\n)\tO\n.\tO\n\n"
                    "Smith\tI-PER\nand\tO\nJones\tI-PER\nJones\tB-PER\nvisited\tO\nParis\tI-LOC\n", encoding="utf-8")
    first, second = load_conll(path)
    assert first.text == "RT @Hozay__: I don't like Anna Maria (in New York)."
    assert [(s.entity_type, first.text[s.start : s.end]) for s in first.spans] == [
        ("PERSON", "Anna Maria"), ("LOCATION", "New York")]
    plain = [first.text[a:b] for a, b in first.plain_tokens]
    assert "Hozay" not in plain and "@" not in plain and "RT" in plain  # a handle names an account
    assert [second.text[s.start : s.end] for s in second.spans] == ["Smith", "Jones", "Jones", "Paris"]  # IOB1
    assert over_scrub_rate([first], [[Span("PERSON", 3, 10)]]) == (0, len(first.plain_tokens))
    path.write_text("only\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="line 1"):
        load_conll(path)


def test_rebuilt_offsets_point_at_the_tokens() -> None:
    words = ["He", "said", ",", "\"", "it", "'", "s", "#", "fine", "$", "5", "!"]
    text, offsets = rebuild_text(words)
    assert [text[a:b] for a, b in offsets] == words
    assert text == 'He said, " it\'s #fine $5!'


def test_name_sentences_cover_every_name_once_per_form() -> None:
    path = CORPORA / "names-by-script" / "forenames.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = load_name_sentences(path)
    native = {row["localized"] for row in rows if row["localized"]}
    romanized = {row["romanized"] for row in rows if row["romanized"] and script_of(row["localized"]) != "Latin"}
    assert len(texts) == len(native | (romanized - native))
    assert {"Hangul", "Han", "Arabic", "Cyrillic", "Latin (romanized)"} <= {t.group for t in texts}
    for sample in texts:
        (span,) = sample.spans
        name = sample.text[span.start : span.end]
        assert sample.text in {template.replace("{name}", name) for template in NAME_TEMPLATES}
        assert all(not (a < span.end and span.start < b) for a, b in sample.plain_tokens)
    assert load_name_sentences(path) == texts  # the same sentences every run


def test_development_names_use_other_sentences() -> None:
    dev = faker_name_sentences()
    assert len(dev) > 400 and {"Hangul", "Han", "Arabic", "Cyrillic", "Latin"} <= {t.group for t in dev}
    assert not set(NAME_TEMPLATES) & set(DEV_NAME_TEMPLATES)
    held_out = {sample.text for sample in load_name_sentences(CORPORA / "names-by-script" / "forenames.csv")}
    assert not held_out & {sample.text for sample in dev}


def test_script_of_names_the_script() -> None:
    assert [script_of(word) for word in ("Anna", "서윤", "未未", "Дечо", "هانیه", "Γιώργος", "ნუცა", "123")] == [
        "Latin", "Hangul", "Han", "Cyrillic", "Arabic", "Greek", "Georgian", "none"]
