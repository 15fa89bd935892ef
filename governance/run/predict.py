"""Prediction on an exported model, with its inputs scrubbed the way its training data was.

A model trained on scrubbed text learned from ``<PERSON> is ...``, not from ``Maria is ...``: fed raw text it sees
inputs unlike anything it trained on (a classifier that judged "<PERSON> is a disgusting muslim" BAD may call
"Maria is a disgusting muslim" NOT_BAD). So ``runs export`` ships ``scrub.json`` beside the model (the detector
and operator settings of the policy the dataset was ingested under), and :class:`ScrubbedClassifier` (the Python
entry) and ``govtrain predict`` (the CLI) scrub every input with the same presidio configuration before the
model sees it. Hash operators use a fresh salt here (the ingest's salt is a secret that is not exported), so a
hashed value never equals its training-time replacement; the default operators (replace with ``<ENTITY>``,
mask, redact) are reproduced exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from governance.errors import ConfigError
from policies.model import PiiRules

SCRUB_FILE: Final = "scrub.json"
SCRUB_FORMAT: Final = "govtrain.scrub/v1"


class ScrubSettings(BaseModel):
    """What an exported model's inputs must go through: the PII rules its training data was scrubbed with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["govtrain.scrub/v1"] = SCRUB_FORMAT
    dataset: str
    policy: str
    pii: PiiRules
    detector_digest: str | None
    note: str = ("The model was trained on text scrubbed with these settings; scrub every input the same way "
                 "(govtrain predict, or governance.run.predict.ScrubbedClassifier) before the model sees it.")


def scrub_settings(dataset: str, policy_name: str, rules: PiiRules, detector_digest: str | None) -> bytes:
    """``scrub.json`` for an export (pretty JSON: people read it)."""
    settings = ScrubSettings(dataset=dataset, policy=policy_name, pii=rules, detector_digest=detector_digest)
    return json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class Prediction:
    """One input's predicted label, every class's probability, and how many PII findings were scrubbed."""

    label: str
    probabilities: dict[str, float]
    scrubbed: int


class ScrubbedClassifier:
    """An exported text classifier whose inputs are scrubbed first: ``ScrubbedClassifier(folder)(texts)``."""

    def __init__(self, folder: Path, *, max_length: int = 512, batch_size: int = 32) -> None:
        self.folder = folder
        self.settings = _read_settings(folder)
        self.max_length, self.batch_size = max_length, batch_size
        self._model, self._tokenizer = _load_classifier(folder)
        from governance.gate.pii import load_pii_engine

        self._engine = load_pii_engine(self.settings.pii)

    def scrub(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        """The texts as the model's training data was scrubbed, and the findings replaced in each."""
        from governance.gate.pii_scan import scrub_texts

        out, counts = [], []
        for text in texts:  # one at a time: the count per input is what the caller sees
            scrubbed, found = scrub_texts([text], self._engine)
            out.append(scrubbed[0])
            counts.append(sum(found.values()))
        return out, counts

    def __call__(self, texts: Sequence[str]) -> list[Prediction]:
        from trainer.inference import predict_classification

        scrubbed, counts = self.scrub(texts)
        names = [str(self._model.config.id2label[i]) for i in range(self._model.config.num_labels)]
        predicted = predict_classification(self._model, self._tokenizer, scrubbed, max_length=self.max_length,
                                           batch_size=self.batch_size)
        return [Prediction(names[p.label], {n: float(q) for n, q in zip(names, p.probabilities, strict=True)}, c)
                for p, c in zip(predicted, counts, strict=True)]


def _read_settings(folder: Path) -> ScrubSettings:
    path = folder / SCRUB_FILE
    try:
        return ScrubSettings.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{folder} has no {SCRUB_FILE}: it is not a govtrain export, or one made before inputs "
                          "were scrubbed at prediction time", hint="export the run again with 'govtrain runs "
                                                                   "export'") from None
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"{path} cannot be read as scrub settings ({type(exc).__name__})") from None


def _load_classifier(folder: Path) -> tuple[Any, Any]:
    """The exported model and tokenizer, rebuilt strictly from the folder's files."""
    from governance.run.mitigation import THRESHOLDS_FILE
    from trainer.adapters import ADAPTER_WEIGHTS
    from trainer.modeling import load_saved_model
    from trainer.tokenization import tokenizer_from_files

    if (folder / ADAPTER_WEIGHTS).exists():
        raise ConfigError(f"{folder} holds LoRA adapters only", hint="export with --merged for prediction")
    if (folder / Path(THRESHOLDS_FILE).name).exists():
        raise ConfigError(f"{folder} is a post-processed model: its predictions need the sensitive attribute "
                          "and per-group thresholds, which govtrain predict does not apply")
    try:
        config = json.loads((folder / "config.json").read_bytes())
        if "ForSequenceClassification" not in " ".join(config.get("architectures") or []):
            raise ConfigError(f"{folder} holds a {', '.join(config.get('architectures') or ['?'])}: govtrain "
                              "predict serves text classifiers")
        files = {name: (folder / name).read_bytes() for name in ("config.json", "model.safetensors")}
        tokenizer = tokenizer_from_files({name: (folder / name).read_bytes()
                                          for name in ("tokenizer.json", "tokenizer_config.json")})
    except FileNotFoundError as exc:
        raise ConfigError(f"{folder} lacks {Path(str(exc.filename)).name}: not a complete export") from None
    return load_saved_model(files, "text-classification"), tokenizer
