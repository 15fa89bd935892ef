"""govtrain's PII scrub step against presidio used naively and against spaCy alone, with detection quality.

    python benchmarks/bench_pii.py [--texts 2000] [--repeats 3]

Texts: RedditBias comments (short) and Enron e-mail bodies (long), repeated to reach ``--texts`` each (the
full spec is 10,000 each). For each, median rows/s of:

- ``govtrain_w1``: ``scrub_text_columns`` in this process, including the re-scan of every rewritten text;
- ``govtrain_w2``: what ``govtrain data ingest --workers 2`` runs on the same rows (``scrub_engines``: in this
  process below ``RAY_MIN_ROWS`` rows, where starting workers costs more than it saves, Ray above; the crossover
  is measured in ``bench_scale.py``). ``scrub_text_columns(workers=2)`` (a process pool started per call, which
  no command uses) is no longer timed: it ran at 0.19x of one process on 300 texts, all of it start-up.
- ``presidio_naive``: ``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` per text, same entities,
  threshold and operators, no re-scan.
- ``spacy_floor``: the same spaCy model's ``nlp.pipe`` over the texts, every component (what the issue's 0.8x
  target is measured against);
- ``spacy_scrub_components``: the same, without the components the scrub skips because no recognizer reads
  them (``PiiEngine.skipped_pipes``: the parser), so the reader sees how much of the ratio that choice gives.

Also reports span-overlap recall and precision per entity type on presidio-research's synth_dataset_v2.json
with the same policy. Writes ``benchmarks/results/pii.json``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

# The repo root must be importable when this runs as a script, hence the late imports.
from governance.gate.pii import PiiEngine, load_pii_engine, scrub_text_columns
from governance.gate.pii_eval import SYNTH_ENTITIES, evaluate_engine, load_span_dataset
from policies import load_policy
from policies.model import PiiRules

WARM_UP_TEXTS = 32


def load_texts(name: str, count: int) -> list[str]:
    """``count`` texts of one corpus, cycling through it when it holds fewer."""
    if name == "redditbias":
        with (DATA / "redditbias" / "redditbias_annotated_combined.csv").open(newline="", encoding="utf-8") as f:
            texts = [row["comment"] for row in csv.DictReader(f) if row["comment"]]
    else:
        with (DATA / "aeslc-enron-dev" / "aeslc_enron_dev.jsonl").open(encoding="utf-8") as f:
            texts = [json.loads(line)["body"] for line in f if line.strip()]
    return list(itertools.islice(itertools.cycle(texts), count))


def median_seconds(action: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeats`` runs of ``action``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def presidio_naive(texts: list[str], engine: PiiEngine) -> list[str]:
    """presidio as its README shows it: one analyze and one anonymize call per text."""
    rules = engine.rules
    return [
        engine.anonymizer.anonymize(
            text=text,
            analyzer_results=engine.analyzer.analyze(  # type: ignore[arg-type]  # as presidio's README does
                text=text, language=rules.language, entities=list(rules.entities),
                score_threshold=rules.score_threshold,
            ),
            operators=dict(engine.operators),
        ).text
        for text in texts
    ]


def bench_corpus(name: str, texts: list[str], rules: PiiRules, engine: PiiEngine, repeats: int) -> dict[str, object]:
    """Time every method on one corpus; check that the two govtrain runs agree."""
    import pyarrow as pa

    nlp = engine.analyzer.nlp_engine.get_nlp(rules.language)  # type: ignore[attr-defined]
    table = pa.table({"text": texts})
    outputs: dict[str, list[str]] = {}
    scrub_stats: dict[str, dict[str, object]] = {}
    engines_used: dict[str, str] = {}

    def govtrain(workers: int) -> Callable[[], object]:
        def run() -> None:
            if workers == 1:
                result = scrub_text_columns(table, ["text"], rules, engine=engine)
                outputs["w1"] = result.table.column("text").to_pylist()
                scrub_stats["w1"] = result.stats.to_dict()
                return
            from governance.gate.scrub_engines import choose_engine, open_scrub_engine

            kind = choose_engine("auto", workers, table.num_rows, None)
            scrub = open_scrub_engine(kind, engine, ["text"], workers, address=None, progress=None)
            try:
                stretches = list(scrub.scrub(table.to_batches(max_chunksize=1024)))
            finally:
                scrub.close()
            outputs[f"w{workers}"] = [text for stretch in stretches
                                      for text in stretch.scrubbed.table.column("text").to_pylist()]
            engines_used[f"w{workers}"] = kind
        return run

    methods: dict[str, Callable[[], object]] = {
        "spacy_floor": lambda: list(nlp.pipe(texts, batch_size=64)),
        "spacy_scrub_components": lambda: list(nlp.pipe(texts, batch_size=64, disable=list(engine.skipped_pipes))),
        "presidio_naive": lambda: outputs.__setitem__("naive", presidio_naive(texts, engine)),
        "govtrain_w1": govtrain(1),
        "govtrain_w2": govtrain(2),
    }
    warm = texts[:WARM_UP_TEXTS]
    list(nlp.pipe(warm))
    presidio_naive(warm, engine)
    medians, every = {}, {}
    for method, action in methods.items():
        medians[method], every[method] = median_seconds(action, repeats)
        print(f"  {name:10s} {method:15s} {len(texts) / medians[method]:8.1f} rows/s", flush=True)
    rows_per_s = {method: len(texts) / seconds for method, seconds in medians.items()}
    return {
        "texts": len(texts),
        "mean_chars": round(sum(map(len, texts)) / len(texts), 1),
        "median_seconds": medians,
        "all_seconds": every,
        "rows_per_s": rows_per_s,
        "ratios": {
            "govtrain_w1_vs_naive": rows_per_s["govtrain_w1"] / rows_per_s["presidio_naive"],
            "govtrain_w2_vs_naive": rows_per_s["govtrain_w2"] / rows_per_s["presidio_naive"],
            "govtrain_w2_vs_w1": rows_per_s["govtrain_w2"] / rows_per_s["govtrain_w1"],
            "govtrain_w1_vs_spacy_floor": rows_per_s["govtrain_w1"] / rows_per_s["spacy_floor"],
            "govtrain_w1_vs_spacy_scrub_components": rows_per_s["govtrain_w1"] / rows_per_s["spacy_scrub_components"],
        },
        "w1_equals_w2": outputs["w1"] == outputs["w2"],
        "w2_engine": engines_used.get("w2"),
        "govtrain_counts": {key: scrub_stats["w1"][key] for key in ("findings", "rows_changed", "residual_total")},
        "texts_where_naive_output_differs": sum(a != b for a, b in zip(outputs["w1"], outputs["naive"])),
    }


def main() -> None:
    """Run the benchmark and write benchmarks/results/pii.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="texts per corpus (spec: 10000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method; the median is reported")
    parser.add_argument("--policy", default="default", help="policy whose PII rules are used")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "pii.json")
    args = parser.parse_args()

    rules = load_policy(args.policy).pii
    start = time.perf_counter()
    engine = load_pii_engine(rules)
    engine_seconds = time.perf_counter() - start
    print(f"engine built in {engine_seconds:.1f} s (presidio and spaCy imports included)", flush=True)

    corpora = {name: bench_corpus(name, load_texts(name, args.texts), rules, engine, args.repeats)
               for name in ("redditbias", "enron")}

    dataset = load_span_dataset(DATA / "presidio-synth-pii" / "synth_dataset_v2.json", SYNTH_ENTITIES)
    scores = evaluate_engine(dataset, engine)
    for entity, score in scores.items():
        print(f"  {entity:14s} recall {score.recall or 0:.3f} precision {score.precision or 0:.3f} "
              f"(gold {score.gold})")

    result = {
        "benchmark": "pii",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": {
            **{package: metadata.version(package) for package in
               ("presidio-analyzer", "presidio-anonymizer", "spacy", "pyarrow")},
            "ner_model": f"{engine.info.ner_model} {engine.info.ner_model_version}",
        },
        "inputs": {
            "policy": args.policy, "entities": list(rules.entities), "score_threshold": rules.score_threshold,
            "texts_per_corpus": args.texts, "repeats": args.repeats,
            "corpora": {"redditbias": "redditbias_annotated_combined.csv:comment",
                        "enron": "aeslc_enron_dev.jsonl:body"},
        },
        "engine_build_seconds": engine_seconds,
        "corpora": corpora,
        "detection": {"dataset": "presidio-research synth_dataset_v2.json", "texts": len(dataset),
                      "per_entity": {entity: score.to_dict() for entity, score in scores.items()}},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
