"""``govtrain predict``: an exported classifier's predictions, its inputs scrubbed as its training data was."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import click

from governance.cli.app import AppContext, cli, pass_app


@cli.command()
@click.argument("export_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.File("r", encoding="utf-8"), default=None,
              help="Read one input per line from FILE ('-': standard input) instead of TEXTS.")
@click.option("--max-length", type=click.IntRange(1, 8192), default=512, show_default=True,
              help="Tokens per input (longer inputs are truncated).")
@click.option("--show-scrubbed", is_flag=True, help="Also print each input as the model saw it (scrubbed).")
@pass_app
def predict(app: AppContext, export_dir: Path, texts: tuple[str, ...], file: TextIO | None,
            max_length: int, show_scrubbed: bool) -> None:
    """Classify TEXTS with the model exported to EXPORT_DIR ('govtrain runs export').

    Every input is scrubbed first with the PII settings the model's training data was scrubbed with (the export's
    scrub.json: same presidio detector and operators), since the model learned from scrubbed text. Needs no
    workspace and no role: the export is the release.
    """
    from governance.errors import ConfigError
    from governance.run.predict import ScrubbedClassifier

    inputs = [line.rstrip("\n") for line in file] if file is not None else list(texts)
    if not inputs:
        raise ConfigError("nothing to predict", hint="give TEXTS or --file FILE")
    classifier = ScrubbedClassifier(export_dir, max_length=max_length)
    scrubbed, _ = classifier.scrub(inputs) if show_scrubbed else ([], [])
    predictions = classifier(inputs)
    rows = [{"label": p.label, "probabilities": p.probabilities, "pii_scrubbed": p.scrubbed,
             **({"scrubbed_text": scrubbed[i]} if show_scrubbed else {})} for i, p in enumerate(predictions)]
    lines = [f"{p.label}\t{p.probabilities[p.label]:.3f}\t{p.scrubbed} PII scrubbed"
             + (f"\t{scrubbed[i]}" if show_scrubbed else "") for i, p in enumerate(predictions)]
    app.emit({"predictions": rows, "scrub": str(export_dir / "scrub.json")}, "\n".join(lines))
