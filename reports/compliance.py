"""The compliance map: for each EU AI Act article / Annex IV item and each NIST AI RMF function, which of
the run's artifacts provide evidence, and what the run does not cover.

The map is honest by construction: an item's evidence lists only artifacts the caller says exist (file
names passed in), an item whose artifacts are all absent says so, and every item names its gaps, which a
training platform cannot close (human oversight, post-market monitoring, the provider's own processes).
This is an aid for the people who write the documentation, not a conformity assessment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from reports.model import ReportModel

Artifact = Literal[
    "dataset_cards", "approvals", "policy", "run_config", "audit_log", "audit_checkpoint", "bias_report",
    "evaluation_report", "model_card", "provenance", "tensorboard", "privacy_report",
]


class ComplianceItem(ReportModel):
    """One requirement, the evidence the run provides for it, and what remains uncovered."""

    framework: Literal["EU AI Act", "GDPR", "NIST AI RMF 1.0"]
    item: str
    requirement: str
    evidence: list[str] = Field(description="File names of the artifacts that provide evidence.")
    covers: str
    not_covered: list[str]


@dataclass(frozen=True)
class _Spec:
    framework: Literal["EU AI Act", "GDPR", "NIST AI RMF 1.0"]
    item: str
    requirement: str
    artifacts: tuple[Artifact, ...]
    covers: str
    not_covered: tuple[str, ...]


_SPECS: tuple[_Spec, ...] = (
    _Spec("EU AI Act", "Art. 10", "Data and data governance",
          ("dataset_cards", "approvals", "bias_report", "privacy_report", "policy"),
          "Origin, license and collection of each dataset; validation results; PII found and removed, with the "
          "detector's measured recall; group representation; pre-training data bias; signed approvals under the "
          "policy; bias mitigation when the run config asks for it (balanced sampling, post-processing "
          "thresholds), before and after; what the model remembers of its training data.",
          ("Bias mitigation beyond balanced sampling by group x label and per-group thresholds (Art. 10(2)(g))",
           "Contextual suitability for the geographical, behavioural or functional setting (Art. 10(4))",
           "Safeguards and legal basis for processing special categories of personal data (Art. 10(5))",
           "Identification of data gaps beyond the recorded validation and group-size checks (Art. 10(2)(h))")),
    _Spec("EU AI Act", "Art. 11 + Annex IV(1)", "Technical documentation: general description of the system",
          ("model_card", "run_config", "provenance"),
          "Intended purpose and out-of-scope use as stated in the run config; model, versions of code and "
          "libraries, hardware; digests of the model files.",
          ("Provider name and contact", "Forms in which the system is placed on the market or put into service",
           "Instructions for use and user interface for deployers",
           "Interaction with other hardware or software outside the training run")),
    _Spec("EU AI Act", "Art. 11 + Annex IV(2)", "Technical documentation: elements and development process",
          ("run_config", "dataset_cards", "evaluation_report", "bias_report", "provenance", "policy"),
          "Training method and hyperparameters (resolved config), data requirements and provenance (dataset "
          "cards), validation and testing metrics (evaluation and bias reports), build provenance (SLSA).",
          ("Assessment of human oversight measures (Annex IV(2)(e), Art. 14)",
           "Pre-determined changes to the system and its performance (Annex IV(2)(f))",
           "Cybersecurity measures beyond encryption at rest and signatures (Annex IV(2)(h))",
           ("Annex IV(3)-(9): monitoring and control, risk management system (Art. 9), lifecycle changes, "
           "harmonised standards applied, EU declaration of conformity, post-market monitoring plan (Art. 72)"))),
    _Spec("EU AI Act", "Art. 12", "Record-keeping (automatic logging of events)",
          ("audit_log", "audit_checkpoint"),
          "Tamper-evident, append-only log of ingestion, approvals, training and reports, with signed "
          "checkpoints (tree size and root) for later verification.",
          (("Logging while the system is in use after deployment (Art. 12(2)-(3)): periods of use, reference "
           "databases, input data, persons verifying results"),)),
    _Spec("EU AI Act", "Art. 13", "Transparency and provision of information to deployers",
          ("model_card", "evaluation_report", "bias_report"),
          "Capabilities and limitations, accuracy metrics on held-out data, performance per group, "
          "training data description, caveats.",
          ("Human oversight measures and technical aids for interpreting outputs (Art. 13(3)(d))",
           "Expected lifetime, maintenance and care measures (Art. 13(3)(e))", "Provider identity and contact",
           "Mechanisms for deployers to collect and interpret logs (Art. 13(3)(f))")),
    _Spec("EU AI Act", "Art. 15", "Accuracy, robustness and cybersecurity",
          ("evaluation_report", "privacy_report", "audit_log", "provenance"),
          "Declared accuracy metrics with intervals; membership inference, verbatim extraction and canary "
          "exposure of the trained model; DP-SGD's (epsilon, delta) when used; encrypted data and checkpoints; a "
          "signed, verifiable record of every step.",
          ("Robustness to errors, faults and adversarial inputs (Art. 15(4)-(5))",
           "Feedback loops after deployment", "Cybersecurity of the deployed system")),
    _Spec("GDPR", "Art. 25", "Data protection by design and by default",
          ("dataset_cards", "policy", "privacy_report"),
          "PII scrubbed before training under a registered policy (measured recall on the card); training data "
          "encrypted at rest and decrypted in memory only; optional DP-SGD; the privacy report's measured leakage.",
          ("A data protection impact assessment (Art. 35)", "Legal basis and purpose limitation of the processing",
           "Data subject rights (access, erasure) against a trained model")),
    _Spec("GDPR", "Art. 32", "Security of processing",
          ("audit_log", "audit_checkpoint", "approvals", "privacy_report"),
          "AES-256-GCM at rest with key rotation; role-separated signed approvals; a tamper-evident audit log; "
          "tests of what the model leaks.",
          ("Organisational measures (access management, training, incident response)",
           "Regular testing of the deployed system's security")),
    _Spec("NIST AI RMF 1.0", "GOVERN", "Policies, roles and accountability",
          ("policy", "approvals", "audit_log"),
          "A named, digested policy; signed, role-checked approvals; an audit trail of who did what.",
          ("Organisational risk tolerance and risk management processes",
           "Workforce diversity, training and accountability structures", "Third-party and supply-chain risk policy",
           "Decommissioning and phase-out procedures")),
    _Spec("NIST AI RMF 1.0", "MAP", "Context, intended use and impacts",
          ("model_card", "dataset_cards"),
          "Intended and out-of-scope use, task, data origin and license, sensitive attributes considered.",
          ("Impact assessment for individuals, groups and society", "Engagement of affected stakeholders",
           "Elicitation of system requirements and deployment context")),
    _Spec("NIST AI RMF 1.0", "MEASURE", "Metrics, testing, evaluation, verification and validation",
          ("evaluation_report", "bias_report", "privacy_report", "provenance", "tensorboard"),
          "Held-out performance, calibration, learning curves, disaggregated fairness metrics with intervals, "
          "language-model probes, privacy (MEASURE 2.10: membership inference with intervals, extraction, "
          "canaries, DP-SGD accounting), verifiable provenance.",
          ("Measurement in production and over time", "Robustness and security testing (adversarial, poisoning)",
           "Privacy attacks stronger than loss thresholds (calibrated or reference-model attacks)",
           "Environmental impact: only wall time and hardware are recorded, not energy")),
    _Spec("NIST AI RMF 1.0", "MANAGE", "Risk treatment, response and monitoring",
          ("bias_report", "audit_log"),
          "The bias verdict (block or warn, releasable or not) and its record in the audit log.",
          ("Post-deployment monitoring and incident response", "Appeal and override mechanisms for affected people",
           "Risk treatment plans and residual-risk acceptance")),
)


def compliance_map(artifacts: Mapping[str, Sequence[str]]) -> list[ComplianceItem]:
    """The map, citing the file names given per artifact kind (see ``Artifact``); kinds not given are
    listed as missing evidence rather than claimed."""
    unknown = sorted(set(artifacts) - set(Artifact.__args__))  # type: ignore[attr-defined]
    if unknown:
        from reports.errors import ReportInputError

        raise ReportInputError(f"unknown artifact kind(s): {', '.join(unknown)}")
    items = []
    for spec in _SPECS:
        evidence = [name for kind in spec.artifacts for name in artifacts.get(kind, ())]
        missing = [kind for kind in spec.artifacts if not artifacts.get(kind)]
        gaps = [*spec.not_covered, *(f"Evidence not supplied for this run: {kind}" for kind in missing)]
        items.append(ComplianceItem(framework=spec.framework, item=spec.item, requirement=spec.requirement,
                                    evidence=evidence, covers=spec.covers if evidence else "Nothing supplied.",
                                    not_covered=gaps))
    return items
