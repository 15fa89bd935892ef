"""The PII engine: presidio's analyzer and anonymizer, built once from a policy's PII rules, failing closed.

Building it is the one place that touches presidio's and spaCy's setup. Besides presidio's own recognizers the
analyzer runs govtrain's layers (:mod:`pii_recognizers`) as the policy enables them, and the engine carries a
second, independent set of recognizers for the residual re-scan, none of which reads the NER model. If the spaCy model the policy names
cannot be loaded, has no NER component, or cannot produce PERSON when PERSON is asked for, the gate refuses
(exit 4): it never falls back to regex-only detection.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from governance.errors import PolicyRefusal
from governance.gate.pii_names import NAME_LOCALES
from policies.model import OperatorRule, PiiRules

if TYPE_CHECKING:
    from collections.abc import Mapping

    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, EntityRecognizer
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig
    from spacy.language import Language

HASH_TYPE = "sha256"
"""The digest the ``hash`` operator uses."""

_NER_FACTORIES = frozenset({"ner", "beam_ner"})
# presidio's own shipped NER settings (presidio_analyzer/conf/default.yaml), which a bare AnalyzerEngine() uses;
# only the model differs. Ignoring labels that are never PII keeps spaCy's CARDINAL, MONEY... out of the log.
_NER_MODEL_CONFIGURATION = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON", "PERSON": "PERSON", "NORP": "NRP", "FAC": "LOCATION", "LOC": "LOCATION",
        "GPE": "LOCATION", "LOCATION": "LOCATION", "ORG": "ORGANIZATION", "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME", "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    # ORGANIZATION is kept so the guarded spaCy recognizer can take the ORG spans that hold a listed name as
    # PERSON; presidio itself only reports it when a policy asks for ORGANIZATION, which none may.
    "labels_to_ignore": [
        "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL", "PERCENT", "PRODUCT",
        "QUANTITY", "WORK_OF_ART",
    ],
}
_UNREAD_PIPES = frozenset({"parser", "senter"})
"""Components whose output no recognizer reads (presidio reads entities, tokens, tags and lemmas; none reads
dependencies or sentences). Skipping the parser saves about a fifth of the small model's time; its sentence
boundaries only stop entities crossing them: on BTC section H 8 of 2,000 tweets got other entities and the
model's own PERSON and LOCATION recall was 500 vs 498 and 223 vs 222 spans of 1,372 and 297."""
_PRESIDIO_LOGGERS = ("presidio-analyzer", "presidio-anonymizer", "decision_process")
_OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    # tldextract (presidio's e-mail validation) otherwise fetches the public suffix list.
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    # Without it presidio imports torch to probe CUDA in every process; a small spaCy model runs on CPU.
    "PRESIDIO_DEVICE": "cpu",
}


@dataclass(frozen=True)
class EngineInfo:
    """What a scrub ran with, as the dataset card records it (no values, no salt)."""

    recognizers: tuple[str, ...]
    """Names of the presidio recognizers serving the policy's entities."""
    independent_recognizers: tuple[str, ...]
    """Names of the recognizers of the independent re-scan (no NER model, no tagger)."""
    name_lists: str
    """Where the name lists come from (Faker version and locales), or ``off``."""
    org_as_person: str
    ner_model: str
    """The spaCy model package the policy names."""
    ner_model_version: str
    """That package's version."""
    spacy_version: str
    presidio_version: str
    operators: Mapping[str, Mapping[str, object]]
    """Operator per entity type (and DEFAULT): its type and parameters."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form."""
        return {
            "recognizers": list(self.recognizers),
            "independent_recognizers": list(self.independent_recognizers),
            "name_lists": self.name_lists,
            "org_as_person": self.org_as_person,
            "ner_model": self.ner_model,
            "ner_model_version": self.ner_model_version,
            "spacy_version": self.spacy_version,
            "presidio_version": self.presidio_version,
            "operators": {entity: dict(params) for entity, params in self.operators.items()},
        }


@dataclass(frozen=True)
class PiiEngine:
    """A loaded analyzer and anonymizer with the policy's operators; build one with :func:`load_pii_engine`."""

    rules: PiiRules
    analyzer: AnalyzerEngine
    batch_analyzer: BatchAnalyzerEngine
    anonymizer: AnonymizerEngine
    independent: tuple[EntityRecognizer, ...]
    """The independent re-scan's recognizers: patterns and listed names, without the NER model or its tagger."""
    operators: Mapping[str, OperatorConfig] = field(repr=False)
    placeholders: re.Pattern[str]
    """Matches the ``<ENTITY>`` tokens the replace operator writes; findings inside them are not PII."""
    info: EngineInfo
    runs_transformers: bool
    """Whether the spaCy pipeline has a transformer component (and so needs the transformers library)."""
    hash_salt: bytes = field(repr=False)
    """Random, in memory only: equal values hash equally within this engine, and hashes cannot be reversed
    by enumerating values (an SSN has only 10^9)."""
    skipped_pipes: tuple[str, ...] = ()
    """spaCy components the scrub does not run (their output is never read): see ``_UNREAD_PIPES``."""


def load_pii_engine(rules: PiiRules, *, hash_salt: bytes | None = None) -> PiiEngine:
    """Build the analyzer and anonymizer for ``rules``; refuse (exit 4) if the NER model cannot serve them.

    ``hash_salt`` lets worker processes share their parent's salt; by default a fresh one is drawn.
    """
    _prepare_environment()
    _check_model_installed(rules.ner_model)
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider, SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

    _withhold_presidio_log_arguments()
    nlp_configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": rules.language, "model_name": rules.ner_model}],
        "ner_model_configuration": _NER_MODEL_CONFIGURATION,
    }
    try:
        nlp_engine = NlpEngineProvider(nlp_configuration=nlp_configuration).create_engine()
        analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=[rules.language])
    except Exception as exc:
        raise PolicyRefusal(
            f"the NER model '{rules.ner_model}' could not be loaded ({type(exc).__name__})",
            hint=f"reinstall it: pip install --force-reinstall {rules.ner_model}",
        ) from None
    if not isinstance(nlp_engine, SpacyNlpEngine):  # pragma: no cover - the configuration asks for spaCy
        raise PolicyRefusal(f"presidio did not build a spaCy NLP engine for '{rules.ner_model}'")
    nlp = nlp_engine.get_nlp(rules.language)
    _check_ner(nlp, rules, nlp_engine.ner_model_configuration.model_to_presidio_entity_mapping or {})
    independent = _add_govtrain_recognizers(analyzer, rules)
    recognizers = _check_recognizers(analyzer, rules)

    salt = hash_salt if hash_salt is not None else secrets.token_bytes(32)
    operators = {entity: _operator_config(entity, rule, salt) for entity, rule in _operator_rules(rules).items()}
    names = "|".join(re.escape(entity) for entity in sorted(rules.entities, key=len, reverse=True))
    info = EngineInfo(
        recognizers=recognizers,
        independent_recognizers=tuple(sorted({str(r.name) for r in independent})),  # type: ignore[has-type]
        name_lists=(f"Faker {metadata.version('faker')}: names of {', '.join(NAME_LOCALES)}; places"
                    if rules.name_lists else "off"),
        org_as_person=rules.org_as_person,
        ner_model=rules.ner_model,
        ner_model_version=str(nlp.meta.get("version", "unknown")),
        spacy_version=metadata.version("spacy"),
        presidio_version=metadata.version("presidio-analyzer"),
        operators={entity: _describe(rule) for entity, rule in _operator_rules(rules).items()},
    )
    return PiiEngine(
        rules=rules,
        analyzer=analyzer,
        batch_analyzer=BatchAnalyzerEngine(analyzer),
        anonymizer=AnonymizerEngine(),  # type: ignore[no-untyped-call]
        independent=independent,
        operators=operators,
        placeholders=re.compile(f"<(?:{names})>"),
        info=info,
        runs_transformers=any("transformer" in nlp.get_pipe_meta(name).factory for name in nlp.pipe_names),
        hash_salt=salt,
        skipped_pipes=tuple(name for name in nlp.pipe_names if name in _UNREAD_PIPES),
    )


def _add_govtrain_recognizers(analyzer: AnalyzerEngine, rules: PiiRules) -> tuple[EntityRecognizer, ...]:
    """Swap in the guarded spaCy recognizer, add the layers the policy enables, and return the independent set.

    The independent re-scan always runs the same set, whatever layers the first pass used: every recognizer
    that does not read the NER model (presidio's patterns and checksums), the account and obfuscated e-mail
    patterns, and the name lists judging context by capitals rather than by the model's tagger.
    """
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from governance.gate.pii_names import name_lists
    from governance.gate.pii_places import place_names
    from governance.gate.pii_recognizers import (
        AccountRecognizer,
        DigitGatedPhoneRecognizer,
        GuardedSpacyRecognizer,
        NameListRecognizer,
        ObfuscatedEmailRecognizer,
        PlaceListRecognizer,
    )

    registry = analyzer.registry
    registry.recognizers = [DigitGatedPhoneRecognizer.replacing(r) if type(r) is PhoneRecognizer else r
                            for r in registry.recognizers]
    lists = name_lists(NAME_LOCALES)
    places = place_names()
    independent: list[EntityRecognizer] = [
        r for r in registry.get_recognizers(language=rules.language, all_fields=True) if not _reads_ner(r)]
    independent += [AccountRecognizer(rules.language), ObfuscatedEmailRecognizer(rules.language),
                    NameListRecognizer(lists, rules.language, use_tagger=False),
                    PlaceListRecognizer(places, rules.language)]
    registry.remove_recognizer("SpacyRecognizer", language=rules.language)
    registry.add_recognizer(GuardedSpacyRecognizer(lists, rules.language, org_as_person=rules.org_as_person))
    if rules.account_patterns:
        registry.add_recognizer(AccountRecognizer(rules.language))
        registry.add_recognizer(ObfuscatedEmailRecognizer(rules.language))
    if rules.name_lists:
        registry.add_recognizer(NameListRecognizer(lists, rules.language))
        registry.add_recognizer(PlaceListRecognizer(places, rules.language))
    return tuple(r for r in independent if set(r.supported_entities) & set(rules.entities))


def _reads_ner(recognizer: EntityRecognizer) -> bool:
    """Recognizers whose findings come from the NER model's entities (presidio's spaCy/transformers ones)."""
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    return isinstance(recognizer, SpacyRecognizer) or "Transformers" in type(recognizer).__name__


def _prepare_environment() -> None:
    """Keep presidio, tldextract and huggingface-hub off the network (unless the user set otherwise)."""
    for name, value in _OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def _check_model_installed(model: str) -> None:
    """Refuse before presidio sees a missing model: presidio would try to download it."""
    import spacy.util

    if not (spacy.util.is_package(model) or Path(model).is_dir()):
        raise PolicyRefusal(
            f"the NER model '{model}' named by the policy (pii.ner_model) is not installed; "
            "PII scrubbing cannot detect names without it",
            hint=f"pip install {model}",
        )


def _check_ner(nlp: Language, rules: PiiRules, label_mapping: Mapping[str, str]) -> None:
    """The pipeline must run an NER component, and one that yields PERSON when the policy asks for it."""
    ner_pipes = [name for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory in _NER_FACTORIES]
    if not ner_pipes:
        raise PolicyRefusal(
            f"the spaCy model '{rules.ner_model}' has no NER component, so it cannot detect names",
            hint="name a spaCy pipeline with an 'ner' component in the policy's pii.ner_model",
        )
    labels = {label for name in ner_pipes for label in getattr(nlp.get_pipe(name), "labels", ())}
    if "PERSON" in rules.entities and not any(label_mapping.get(lbl, lbl) == "PERSON" for lbl in labels):
        raise PolicyRefusal(
            f"the NER model '{rules.ner_model}' has no label presidio maps to PERSON",
            hint="use a model trained with person names (e.g. the en_core_web_* family)",
        )


def _check_recognizers(analyzer: AnalyzerEngine, rules: PiiRules) -> tuple[str, ...]:
    """Every entity the policy lists needs a recognizer; return the names of those in use."""
    missing = sorted(set(rules.entities) - set(analyzer.get_supported_entities(rules.language)))
    if missing:
        raise PolicyRefusal(
            f"no presidio recognizer for {', '.join(missing)} in language '{rules.language}'",
            hint="remove them from the policy's pii.entities or use a language presidio supports for them",
        )
    recognizers = analyzer.registry.get_recognizers(language=rules.language, entities=list(rules.entities))
    return tuple(sorted({str(recognizer.name) for recognizer in recognizers}))  # type: ignore[has-type]


def _operator_rules(rules: PiiRules) -> dict[str, OperatorRule]:
    """The rule for every entity and for DEFAULT, so presidio's own default never applies silently."""
    default = rules.operators.get("DEFAULT", OperatorRule())
    chosen = {entity: rules.operators.get(entity, default) for entity in rules.entities}
    return {**chosen, "DEFAULT": default}


def _operator_config(entity: str, rule: OperatorRule, salt: bytes) -> OperatorConfig:
    """Translate one policy operator into presidio's form."""
    from presidio_anonymizer.entities import OperatorConfig

    if rule.type == "replace":
        return OperatorConfig("replace", {"new_value": f"<{entity}>"} if entity != "DEFAULT" else {})
    if rule.type == "mask":
        params = {"masking_char": rule.masking_char, "chars_to_mask": rule.chars_to_mask, "from_end": rule.from_end}
        return OperatorConfig("mask", params)
    if rule.type == "hash":
        return OperatorConfig("hash", {"hash_type": HASH_TYPE, "salt": salt})
    return OperatorConfig("redact", {})


def _describe(rule: OperatorRule) -> dict[str, object]:
    """An operator as the card shows it: the type and the parameters that matter for it."""
    if rule.type == "mask":
        return {"type": "mask", "masking_char": rule.masking_char, "chars_to_mask": rule.chars_to_mask,
                "from_end": rule.from_end}
    if rule.type == "hash":
        return {"type": "hash", "hash_type": HASH_TYPE, "salt": "random per engine, never stored"}
    return {"type": rule.type}


class _WithholdArguments(logging.Filter):
    """Drops presidio log records that interpolate arguments or are debug-level: those can carry text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.args and record.levelno > logging.DEBUG


def _withhold_presidio_log_arguments() -> None:
    """presidio logs candidate text in a few places (e.g. a failed IBAN check); PII never goes to logs."""
    for name in _PRESIDIO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _WithholdArguments) for existing in logger.filters):
            logger.addFilter(_WithholdArguments())
