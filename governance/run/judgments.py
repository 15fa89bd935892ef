"""Every judgment a run's release rests on, recomputed from raw evidence and the run's *registered* policy.

The reports and the log entries of a run are written by the process that trained it, which its engineer can patch
in memory. Nothing here reads a verdict or a status: the bias verdict is rejudged from each group's counts, the
privacy verdict from the stored member and non-member losses, the DP claim is held to the logged run config and
its epsilon recomputed, and the logged splits are held to the gated card (their sizes always; their digests
re-derived from the decrypted vault when ``recompute_splits``). A claim that differs is an ``IntegrityError``
(exit 5) naming the check. What this cannot catch (a process that forges the counts or the losses themselves)
is what a runner (``govtrain runner``) and a replay are for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import IntegrityError
from governance.run.config import RunConfig, config_digest
from governance.run.folder import EncryptedRunStore, RunFolder
from governance.trust.ledger import RunRecord

if TYPE_CHECKING:
    from datacards.card import DatasetCard
    from governance.crypto import MasterKey
    from governance.workspace import Workspace
    from policies import Policy
    from reports.privacy import DifferentialPrivacy, PrivacyReport, PrivacyVerdict
    from reports.verdict import Verdict

PRIVACY_EVIDENCE = "privacy_evidence.json"
"""The losses behind the membership AUC, stored encrypted with the run (the report states their digest)."""


@dataclass(frozen=True)
class RunJudgments:
    """The verdicts recomputed for one run (None where the run wrote no such report)."""

    bias: Verdict | None
    privacy: PrivacyVerdict | None


def logged_config(folder: RunFolder, record: RunRecord) -> RunConfig:
    """The run's stored config, which must be the one its ``run.started`` entry names by digest."""
    from governance.run.config import load_run_config

    config = load_run_config(folder.path / "config.yaml")
    assert record.started is not None
    if config_digest(config) != record.started.get("config_digest"):
        raise IntegrityError(f"run {record.run_id}: config.yaml is not the config its run.started entry logged",
                             hint="the run folder's config was replaced after the run started")
    return config


def rejudge_run(folder: RunFolder, record: RunRecord, policy: Policy, digests: dict[str, str], kek: MasterKey
                ) -> RunJudgments:
    """The run's bias and privacy verdicts recomputed from evidence under ``policy``; its DP claim checked."""
    from reports.bias import BiasReport
    from reports.errors import ReportIntegrityError
    from reports.privacy import PrivacyReport
    from reports.rejudge import rejudge_bias, rejudge_privacy

    config = logged_config(folder, record)
    test_rows = _logged_sizes(record).get("test")
    bias = privacy = None
    privacy_report = None
    try:
        if "bias.json" in digests:
            report = BiasReport.model_validate(json.loads((folder.reports / "bias.json").read_bytes()))
            bias = rejudge_bias(report, policy.bias, test_rows=test_rows)
        if "privacy.json" in digests:
            privacy_report = PrivacyReport.model_validate(json.loads((folder.reports / "privacy.json").read_bytes()))
            privacy = rejudge_privacy(privacy_report, policy.privacy, _stored_evidence(folder, kek, privacy_report),
                                      language_model=config.task == "causal-lm",
                                      extraction_suffix=config.privacy.extraction_suffix)
    except ReportIntegrityError as exc:
        raise IntegrityError(f"run {record.run_id}: {exc}",
                             hint="the report's verdict is not what its evidence and the registered policy give; "
                                  "the run's reports were forged or altered") from None
    check_dp_claim(record, config, privacy_report.differential_privacy if privacy_report else None)
    return RunJudgments(bias, privacy)


def _stored_evidence(folder: RunFolder, kek: MasterKey, report: PrivacyReport) -> Any:
    from reports.privacy import MembershipEvidence

    store = EncryptedRunStore(folder.path, kek)
    if report.membership is None or not store.exists(PRIVACY_EVIDENCE):
        return None
    return MembershipEvidence.model_validate_json(store.read(PRIVACY_EVIDENCE))


def check_dp_claim(record: RunRecord, config: RunConfig, stated: DifferentialPrivacy | None) -> None:
    """A DP accounting is a claim about how the run trained: it must agree with the logged run config (no claim
    when DP was off; the config's target, delta and clipping bound when on), with the accounting ``run.finished``
    logged, and its noise and epsilon must be what the RDP accountant gives for its stated plan."""
    assert record.finished is not None
    where = f"run {record.run_id}: DP claim"
    wanted = config.training.differential_privacy
    logged = record.finished.get("differential_privacy")
    if wanted is None:
        if stated is not None or logged is not None:
            raise IntegrityError(f"{where}: the report or run.finished states a DP-SGD accounting, but the logged "
                                 "run config trained without differential privacy",
                                 hint="a DP guarantee the run never had was written into its evidence")
        return
    if stated is None:
        if "privacy.json" in ((record.report or {}).get("digests") or {}):
            raise IntegrityError(f"{where}: the run config trained with DP-SGD but the privacy report states no "
                                 "accounting")
        return
    from reports.privacy import DifferentialPrivacy

    if logged is None or DifferentialPrivacy.model_validate(logged) != stated:
        raise IntegrityError(f"{where}: the privacy report's accounting differs from the one run.finished logged")
    from trainer.dp import default_delta, recomputed_accounting

    delta = wanted.delta if wanted.delta is not None else default_delta(stated.training_examples)
    if not (_close(stated.target_epsilon, wanted.target_epsilon) and _close(stated.delta, delta)
            and _close(stated.max_grad_norm, wanted.max_grad_norm)):
        raise IntegrityError(f"{where}: its target epsilon, delta or clipping bound is not the logged config's")
    noise, epsilon = recomputed_accounting(target_epsilon=stated.target_epsilon, delta=stated.delta,
                                           sample_rate=stated.sample_rate, planned_steps=stated.planned_steps,
                                           steps=stated.steps)
    if not (_close(stated.noise_multiplier, noise) and _close(stated.epsilon, epsilon)):
        raise IntegrityError(f"{where}: epsilon {stated.epsilon:.4g} at noise {stated.noise_multiplier:.4g} is not "
                             f"what the accountant gives for its plan (epsilon {epsilon:.4g}, noise {noise:.4g})")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _logged_sizes(record: RunRecord) -> dict[str, int]:
    sizes = (record.splits or {}).get("sizes")
    return {str(k): int(v) for k, v in sizes.items()} if isinstance(sizes, dict) else {}


def check_splits(workspace: Workspace, record: RunRecord, card: DatasetCard, config: RunConfig | None = None,
                 kek: MasterKey | None = None) -> None:
    """The run's logged splits are made of the gated card's rows: their sizes and the duplicates dropped add up to
    the rows the card stored; with ``config`` and ``kek``, their digests are re-derived from the card's
    decrypted vault (the same deterministic split) and must be the logged ones."""
    if record.splits is None:
        raise IntegrityError(f"run {record.run_id}: the audit log records no run.splits for it")
    sizes = _logged_sizes(record)
    dropped = int(record.splits.get("duplicates_dropped") or 0)
    if sum(sizes.values()) + dropped != card.rows.stored:
        raise IntegrityError(
            f"run {record.run_id}: its logged splits hold {sum(sizes.values())} rows (+{dropped} duplicates "
            f"dropped), the card it was gated on ({card.ref}) stores {card.rows.stored}",
            hint="the run trained on other data than the approved card its run.started names")
    if config is None or kek is None:
        return
    from governance.gate.approvals import ApprovedDataset, card_status, check_vault
    from governance.run.data import prepare_data

    approved = ApprovedDataset(card, check_vault(workspace, card), (), card_status(workspace, card))
    if prepare_data(approved, config, kek).plan.digests() != record.splits.get("digests"):
        raise IntegrityError(f"run {record.run_id}: its logged split digests are not the split of {card.ref}",
                             hint="the run trained on other rows than the approved card its run.started names")
