"""Whether a trained model may be released, decided from the verified log and evidence recomputed under the run's
registered policy.

The run's ``report.written`` entry fixes the report digests. Nothing is read as a verdict: the bias and privacy
verdicts are rejudged from the reports' raw evidence (:mod:`governance.run.judgments`), the DP claim is held to the
logged config, the logged splits to the card the run was gated on, and the provenance must be signed by the key
that started the run. A run is releasable when nothing blocks it (a FAIL under ``bias.action: block``, a NOT
JUDGED check under ``bias.unjudged: block``, the same for privacy, an audit run with canaries, or a run no runner
executed under ``release.require_runner``) and, where the policy asks for one (every flagged or not fully judged
run, or every run under ``release.require_approval: always``), enough compliance officers signed
``govtrain runs approve``. A claim in the log that disagrees with the recomputation, or a second
``report.written`` for the run, is an integrity error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from governance.errors import ConfigError, IntegrityError, PolicyRefusal
from governance.run.folder import RunFolder, find_run
from governance.trust.ledger import Decision, Ledger, RunRecord
from governance.trust.policy_registry import RegisteredPolicy, registered_policy
from governance.trust.replay import load_ledger
from governance.trust.session import Session
from governance.workspace import Workspace

if TYPE_CHECKING:
    from datacards.card import DatasetCard
    from reports.privacy import PrivacyVerdict
    from reports.verdict import Outcome, Verdict


@dataclass(frozen=True)
class ReportOutcome:
    """One report's recomputed verdict in the one vocabulary: PASS, FAIL or NOT JUDGED, with its counts; ``None``
    when the run wrote no such report (then nothing is printed as its verdict)."""

    report: str  # bias | privacy
    outcome: Outcome | None
    checks: int = 0
    failed: int = 0
    not_judged: int = 0

    def line(self) -> str:
        """``bias FAIL (2 of 8 checks beyond the bound, 1 not judged)``, or ``bias: no report``."""
        if self.outcome is None:
            return f"{self.report}: no report"
        counts = [f"{self.failed} of {self.checks} check(s) beyond the bound"] if self.failed else []
        counts += [f"{self.not_judged} of {self.checks} not judged"] if self.not_judged else []
        return f"{self.report} {self.outcome}" + (f" ({', '.join(counts)})" if counts else "")


@dataclass(frozen=True)
class ReleaseState:
    """A run's release position: the recomputed verdicts and the release approvals that count."""

    run_id: str
    verdict: str  # the bias report's release word: pass | flagged | blocked | not judged
    failed: int
    unjudged: int
    needs_approval: bool
    approvals: tuple[Decision, ...]
    quorum: int
    policy: RegisteredPolicy
    privacy: str = "not measured"  # the privacy report's release word, or not measured / not judged without one
    audit_run: bool = False  # trained with planted canaries, under a policy that does not release such models
    executed_by: str = ""  # the name and role of the identity that signed run.started
    needs_runner: bool = False  # release.require_runner, and no runner executed the run
    needs_replay: int = 0  # release.require_replay: segments a passing replay by another key must still cover
    outcomes: tuple[ReportOutcome, ...] = ()  # bias and privacy, in the one vocabulary

    @property
    def blocked(self) -> bool:
        """Whether a blocking policy rule forbids release, whatever anyone approves."""
        return self.verdict == "blocked" or self.privacy == "blocked" or self.audit_run or self.needs_runner

    @property
    def releasable(self) -> bool:
        if self.blocked or self.needs_replay:
            return False
        return not self.needs_approval or len(self.approvals) >= self.quorum

    @property
    def position(self) -> str:
        """``releasable``, ``needs approval`` or ``blocked``."""
        return "blocked" if self.blocked else "releasable" if self.releasable else "needs approval"

    def summary(self) -> str:
        """Each report's verdict in one line: ``bias FAIL (1 of 8 check(s) beyond the bound); privacy PASS``."""
        return "; ".join(o.line() for o in self.outcomes) or "no judged reports"

    def explain(self) -> str:
        """Why the run is or is not releasable, in one line naming the report (or rule) that decides."""
        if self.needs_runner:
            return (f"it was executed by {self.executed_by}, not by a runner (release.require_runner: an engineer's "
                    "own run is an experiment; submit it with 'govtrain run --submit' for a runner to execute)")
        if self.audit_run:
            return "it is an audit run trained with planted canaries (privacy.allow_canary_release: false)"
        if self.needs_replay:
            return (f"release.require_replay: no passing 'govtrain audit replay' of {self.needs_replay} segment(s) "
                    "by a key other than the one that executed the run is logged")
        by = {o.report: o for o in self.outcomes}
        if self.verdict == "blocked":
            bias = by["bias"]
            if bias.failed and self.policy.policy.bias.action == "block":
                return f"{bias.line()} under a blocking policy (bias.action: block)"
            return f"{bias.line()} under a blocking policy (bias.unjudged: block)"
        if self.privacy == "blocked":
            return f"{by['privacy'].line()} under a blocking policy (privacy.action or privacy.unjudged: block)"
        if self.releasable:
            signed = f"; release approved by {', '.join(d.name for d in self.approvals)}" if self.approvals else ""
            return f"{self.summary()}{signed}"
        reasons = [o.line() for o in self.outcomes if o.outcome != "PASS"]
        if self.privacy == "not judged" and "privacy" not in by:
            reasons.append("privacy: the policy asks for a privacy report and none was written")
        why = "; ".join(reasons) or "release.require_approval: always"
        return (f"{why}: {len(self.approvals)} of {self.quorum} release approval(s) from "
                f"{' or '.join(self.policy.policy.release.approver_roles)}")


def judge_release(bias: Verdict | None) -> tuple[str, int, int]:
    """The release verdict from a (recomputed) bias verdict: ``(verdict, failed, not judged)``.

    ``blocked``: something failed under ``action: block``, or could not be judged under ``unjudged: block``;
    ``flagged``: something failed (and nothing blocks); ``not judged``: nothing failed but some check could not
    be judged, or there was no verdict at all (a language model, no bias report); ``pass``: every check passed.
    The actions are the policy's: a verdict comes from :func:`reports.rejudge.rejudge_bias` or ``judge`` with
    the registered rules, never from a report as written.
    """
    if bias is None:
        return "not judged", 0, 1
    failed = sum(c.status == "FAIL" for c in bias.checks)
    unjudged = sum(c.status not in ("PASS", "FAIL") for c in bias.checks) + (0 if bias.checks else 1)
    if (failed and bias.action == "block") or (unjudged and bias.unjudged == "block"):
        return "blocked", failed, unjudged
    if failed:
        return "flagged", failed, unjudged
    return ("not judged" if unjudged else "pass"), failed, unjudged


def privacy_word(verdict: PrivacyVerdict | None, expected: bool) -> str:
    """The privacy verdict in release words; a policy that asks for the report gets "not judged" without one."""
    if verdict is None:
        return "not judged" if expected else "not measured"
    return ("blocked" if not verdict.releasable else "pass" if verdict.outcome == "PASS"
            else "flagged" if verdict.outcome == "FAIL" else "not judged")


def finished_record(ledger: Ledger, run_id: str) -> RunRecord:
    """The run's record, with reports logged and no contradicting entries; exit 4 or 5 otherwise."""
    record = ledger.run(run_id)
    if record is None or record.finished is None:
        raise PolicyRefusal(f"run {run_id} has not finished (the audit log records no run.finished for it)")
    if record.contradictions:
        raise IntegrityError(f"run {run_id}: the audit log holds contradicting entries ({record.contradictions[0]})",
                             hint="someone appended entries that disagree with the run's record")
    if record.report is None:
        raise PolicyRefusal(f"run {run_id} has no reports in the audit log")
    return record


def release_state(workspace: Workspace, run_id: str, ledger: Ledger | None = None, *,
                  recompute_splits: bool = False) -> ReleaseState:
    """Recompute the run's verdicts from its digest-checked evidence under its registered policy, bind its claims
    to each other, and count its release approvals. ``recompute_splits`` also re-derives the split digests from
    the gated card's decrypted vault (export and release approval do; it costs a pass over the data)."""
    from governance.crypto.keyring import workspace_master_key
    from governance.run.judgments import check_splits, logged_config, rejudge_run
    from reports.verify import verify_report_digests

    ledger = ledger or load_ledger(workspace)
    record = finished_record(ledger, run_id)
    assert record.report is not None and record.started is not None
    folder = find_run(workspace, run_id)
    digests: dict[str, str] = record.report.get("digests") or {}
    problems = verify_report_digests(folder.reports, digests)
    if problems:
        raise IntegrityError(f"run {run_id} reports: {problems[0]}")
    policy = registered_policy(workspace, str(record.started.get("policy_digest")), ledger)
    card = _check_gate_at_start(workspace, ledger, record, policy)
    kek = workspace_master_key(workspace)
    judged = rejudge_run(folder, record, policy.policy, digests, kek)
    check_splits(workspace, record, card, logged_config(folder, record) if recompute_splits else None,
                 kek if recompute_splits else None)
    check_provenance(ledger, folder, record, digests)
    verdict, failed, unjudged = judge_release(judged.bias)
    if record.report.get("releasable") is not (verdict != "blocked") or record.report.get("flagged") is not (failed > 0):
        raise IntegrityError(f"run {run_id}: the release claim in the audit log disagrees with its recomputed bias "
                             "verdict", hint="the report.written entry was forged or the report replaced")
    privacy = privacy_word(judged.privacy, "privacy" in policy.policy.reports.emit)
    rules = policy.policy.release
    needs = rules.require_approval == "always" or verdict != "pass" or privacy not in ("pass", "not measured")
    counted: dict[str, Decision] = {}
    for decision in record.releases:
        member = ledger.member_by_key(decision.key_id)
        if member is not None and not member.compromised and decision.role in rules.approver_roles:
            counted.setdefault(decision.key_id, decision)
    audit_run = bool(record.started.get("audit_run")) and not policy.policy.privacy.allow_canary_release
    executor = ledger.member_by_key(record.started_by or "")
    by_runner = executor is not None and executor.role == "runner" and _requested(ledger, record)
    return ReleaseState(run_id, verdict, failed, unjudged, needs, tuple(counted.values()), rules.quorum, policy,
                        privacy, audit_run,
                        executed_by=f"{executor.name} ({executor.role})" if executor else "an unknown key",
                        needs_runner=rules.require_runner and not by_runner,
                        needs_replay=_replay_missing(record, rules.require_replay.segments
                                                     if rules.require_replay is not None else 0),
                        outcomes=_outcomes(judged.bias, judged.privacy))


def _outcomes(bias: Verdict | None, privacy: PrivacyVerdict | None) -> tuple[ReportOutcome, ...]:
    """The written reports' verdicts, in the one vocabulary."""
    out = []
    for name, verdict in (("bias", bias), ("privacy", privacy)):
        if verdict is not None:
            out.append(ReportOutcome(name, verdict.outcome, len(verdict.checks), verdict.failed,
                                     verdict.not_judged))
    return tuple(out)


def _replay_missing(record: RunRecord, segments: int) -> int:
    """0 when a passing replay of at least ``segments`` segments (or all of a shorter run) by another key than the
    run's executor is logged; else the segments required."""
    if segments == 0:
        return 0
    for replay in record.replays:
        covered = replay.segments >= min(segments, replay.segments_total or segments)
        if replay.outcome == "pass" and covered and replay.key_id != record.started_by:
            return 0
    return segments


def _requested(ledger: Ledger, record: RunRecord) -> bool:
    """A runner's run counts as one only when it executes an engineer's logged request for the same config: a
    runner key alone (leaked, or misused) cannot make a config releasable that nobody asked for."""
    assert record.started is not None
    request = ledger.requests.get(str(record.started.get("request_id")))
    if request is None or request.config_digest != record.started.get("config_digest"):
        return False
    requester = ledger.member_by_key(request.key_id)
    return requester is not None and requester.role == "engineer" and request.seq < (record.started_seq or 0)


def check_provenance(ledger: Ledger, folder: RunFolder, record: RunRecord, digests: dict[str, str]) -> None:
    """The provenance attestation (when the run logged one) is signed by the key that signed ``run.started`` and
    its subjects are the model files ``run.finished`` logged."""
    from governance.trust.roles import parse_public_key
    from reports.errors import ReportError
    from reports.provenance import verify_dsse

    if "provenance.json" not in digests:  # the logged set decides what must be checked, not what is on disk
        return
    run_id = record.run_id
    envelope = json.loads((folder.reports / "provenance.json").read_bytes())
    signers = {s.get("keyid") for s in envelope.get("signatures", [])}
    executor = ledger.member_by_key(record.started_by or "")
    if executor is None or executor.key_id not in signers:
        raise IntegrityError(f"run {run_id}: the provenance attestation is not signed by the key that started "
                             "the run", hint="provenance binds a model to the party that trained it")
    try:
        statement = verify_dsse(envelope, parse_public_key(executor.public_key))
    except ReportError as exc:
        raise IntegrityError(f"run {run_id}: provenance attestation: {exc}") from None
    subjects = {str(s.name): s.digest["sha256"] for s in statement.subject}
    assert record.finished is not None
    if subjects != record.finished.get("model_digests"):
        raise IntegrityError(f"run {run_id}: the provenance subjects differ from the model digests in the log")


def _check_gate_at_start(workspace: Workspace, ledger: Ledger, record: RunRecord, policy: RegisteredPolicy
                         ) -> DatasetCard:
    """The run's logged start must name a card that was ingested under the run's policy and approved (quorum, no
    standing rejection) before the run started: a run appended to the log by hand around a model trained on
    unapproved data is not releasable, whatever its reports say. Returns that card (read and digest-checked)."""
    from governance.gate.approvals import count_decisions
    from governance.gate.catalog import DatasetCatalog

    assert record.started is not None and record.started_seq is not None
    ingest = ledger.ingest_of(str(record.started.get("card_digest")))
    if ingest is None or ingest.policy_digest != policy.digest or ingest.seq >= record.started_seq:
        raise IntegrityError(f"run {record.run_id}: its logged start names no card ingested under its policy",
                             hint="the run's entries were not written by govtrain run")
    counted, rejection = count_decisions(ledger, ingest, policy, before_seq=record.started_seq)
    if rejection is not None or len(counted) < policy.policy.approval.quorum:
        raise PolicyRefusal(f"run {record.run_id} started on {ingest.dataset} without a standing approval "
                            "(not approved then, or its approval was voided since)",
                            hint="a run whose entries govtrain run did not write, or whose approver was revoked "
                                 "as compromised, cannot be released")
    catalog = DatasetCatalog(workspace)
    card = catalog.read_card(*catalog.resolve(ingest.dataset))
    if card.digest() != ingest.card_digest:
        raise IntegrityError(f"run {record.run_id}: the card of {ingest.dataset} is not the one its run started on")
    return card


def approve_release(session: Session, run_id: str) -> ReleaseState:
    """Log the session actor's approval of a run's release (compliance), after recomputing its evidence."""
    state = release_state(session.workspace, run_id, recompute_splits=True)
    actor = session.actor
    assert actor is not None
    if state.blocked:
        raise PolicyRefusal(f"run {run_id} cannot be released: {state.explain()}",
                            hint="a blocking policy admits no override; retrain, or re-run under another policy")
    if actor.role not in state.policy.policy.release.approver_roles:
        raise PolicyRefusal(f"policy '{state.policy.registration.name}' counts release approvals only from "
                            f"{' or '.join(state.policy.policy.release.approver_roles)}")
    if any(d.key_id == actor.signer.key_id for d in state.approvals):
        raise ConfigError(f"'{actor.name}' has already approved the release of {run_id}")
    session.record("run.release.approved", {"run_id": run_id, "verdict": state.verdict,
                                            "report_digests": _digests(session.workspace, run_id)})
    return release_state(session.workspace, run_id)


def _digests(workspace: Workspace, run_id: str) -> dict[str, str]:
    record = load_ledger(workspace).run(run_id)
    assert record is not None and record.report is not None
    return dict(record.report.get("digests") or {})
