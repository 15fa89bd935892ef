"""The ledger: every governance decision, replayed from the verified audit log.

The log is the source of truth. Its genesis entry (``workspace.created``, seq 0) names the root admin key and is
signed by it; every other key and role comes from later ``identity.*`` entries signed by an admin who was
active at that moment. Policy registrations, dataset ingests, approvals and rejections, runs, report verdicts and
release decisions are replayed the same way, in log order. An entry whose actor lacked the role (or whose
meaning contradicts what came before, like a second ``report.written`` for a run) is a *finding*: reported by
``audit verify`` (exit 5) and ignored for every decision, without making the rest of the log unusable.

Files such as ``identities.json`` and decision files are caches; :func:`load_ledger` checks the identity cache
against the replay, and callers decide from the ledger only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from audit.entry import AuditEntry
from audit.errors import AuditIntegrityError
from audit.keys import TrustedKey, key_id
from audit.verify import Finding, VerifyReport
from policies.model import ROLES, Role

PUBLIC_KEY_PREFIX = "ed25519:"
GENESIS_EVENT = "workspace.created"

_ANY_MEMBER = frozenset(ROLES)
# Which roles may sign which events ("x." covers every event under x; the longest match wins). Every event
# the code records has a rule; an entry whose event has none is a finding, and Session.record refuses it.
EVENT_ROLES: dict[str, frozenset[str]] = {
    "workspace.": frozenset({"admin"}),
    "identity.": frozenset({"admin"}),
    "keys.": frozenset({"admin"}),
    "policy.registered": frozenset({"admin"}),
    "data.ingest.": frozenset({"engineer", "compliance"}),
    "data.ingested": frozenset({"engineer", "compliance"}),
    "data.approved": frozenset({"compliance", "admin"}),
    "data.rejected": frozenset({"compliance", "admin"}),
    "data.sampled": frozenset({"compliance", "admin"}),
    "data.reviewed": frozenset({"compliance", "admin"}),
    # A run is executed by an engineer (an experiment) or by a runner (a service key no engineer holds);
    # only engineers ask a runner for a run.
    "run.": frozenset({"engineer", "runner"}),
    "run.requested": frozenset({"engineer"}),
    "run.exported": frozenset({"engineer", "compliance"}),
    "run.export.started": frozenset({"engineer", "compliance"}),
    "run.replayed": frozenset({"auditor", "compliance"}),
    "run.release.approved": frozenset({"compliance", "admin"}),
    "report.": frozenset({"engineer", "runner"}),
    "integrity.failure": _ANY_MEMBER,
    "command.failed": _ANY_MEMBER,
    "command.refused": _ANY_MEMBER,
}


def rule_for(event: str) -> frozenset[str] | None:
    """The roles allowed to sign ``event``, or None when no rule covers it."""
    if event in EVENT_ROLES:
        return EVENT_ROLES[event]
    prefixes = [p for p in EVENT_ROLES if p.endswith(".") and event.startswith(p)]
    return EVENT_ROLES[max(prefixes, key=len)] if prefixes else None


def public_key_raw_of(text: str) -> bytes:
    """The raw 32 bytes of ``ed25519:<base64url>``; ValueError when malformed."""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError("not an ed25519: public key")
    body = text.removeprefix(PUBLIC_KEY_PREFIX)
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


@dataclass(frozen=True)
class Member:
    """An identity as the log establishes it: one key, one role, its validity window."""

    name: str
    role: Role
    key_id: str
    public_key: str
    granted_at: str
    granted_by: str
    revoked_at: str | None = None
    compromised: bool = False

    def role_at(self, time: str) -> Role | None:
        """The member's role at ``time``, or None outside its validity window."""
        if time < self.granted_at or (self.revoked_at is not None and time >= self.revoked_at):
            return None
        return self.role


@dataclass(frozen=True)
class PolicyRegistration:
    """An admin's registration of a policy (by name and digest) for use in this workspace."""

    name: str
    digest: str
    self_approval: bool
    seq: int
    time: str
    by: str


@dataclass(frozen=True)
class Ingest:
    """A dataset card version as the log recorded its ingest."""

    dataset: str
    card_digest: str
    key_id: str
    seq: int
    time: str
    policy: str | None
    policy_digest: str | None


@dataclass(frozen=True)
class Decision:
    """A signed decision in the log: a dataset approval or rejection, or a release approval."""

    subject: str  # the card digest, or the run id
    decision: str  # approved | rejected | released
    key_id: str
    name: str
    role: Role
    seq: int
    time: str
    digest: str | None = None  # of the decision file, for dataset decisions


@dataclass(frozen=True)
class Review:
    """A person's signed review of random stored rows of a card (``data.reviewed``): counts, never text."""

    card_digest: str
    key_id: str
    name: str
    role: Role
    seq: int
    time: str
    sample: int  # rows reviewed
    rows_stored: int  # rows the card stores, as the reviewer's process read them
    rows_with_identifier: int  # reviewed rows in which the reviewer marked at least one remaining identifier
    identifiers: int  # identifiers marked, over all reviewed rows


@dataclass(frozen=True)
class Replay:
    """An auditor's re-execution of segments of a run (``run.replayed``): who, the outcome, how many segments."""

    key_id: str
    outcome: str  # pass | fail
    segments: int
    seq: int
    segments_total: int = 0  # segments the run has (a run shorter than K is replayed whole)


@dataclass(frozen=True)
class RunRequest:
    """An engineer's signed request that a runner execute a run config (by its digest)."""

    request_id: str
    config_digest: str
    key_id: str
    seq: int
    time: str


@dataclass
class RunRecord:
    """One run as the log tells it."""

    run_id: str
    started: dict[str, Any] | None = None
    started_seq: int | None = None
    started_by: str | None = None  # key id that signed run.started: every later run.* and report.* entry must match
    resumed: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_digests: list[str] = field(default_factory=list)
    splits: dict[str, Any] | None = None  # the run.splits payload: digests and sizes of train/validation/test
    finished: dict[str, Any] | None = None
    finished_seq: int | None = None
    failed: dict[str, Any] | None = None  # the run.failed payload (error class only)
    report: dict[str, Any] | None = None
    report_seq: int | None = None
    releases: list[Decision] = field(default_factory=list)
    contradictions: list[str] = field(default_factory=list)
    exported: bool = False
    replays: list[Replay] = field(default_factory=list)


class Ledger:
    """The replayed state of one workspace's log; a :class:`audit.verify.LogReplay`."""

    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.root: Member | None = None
        self.master_key_id: str | None = None
        self._members: dict[str, Member] = {}
        self._keys: dict[str, TrustedKey] = {}
        self.policies: list[PolicyRegistration] = []
        self.ingests: dict[str, Ingest] = {}  # by card digest
        self.decisions: list[Decision] = []
        self.reviews: list[Review] = []
        self.runs: dict[str, RunRecord] = {}
        self.requests: dict[str, RunRequest] = {}  # by request id, in log order
        self.report: VerifyReport | None = None

    # --- the LogReplay protocol -------------------------------------------------------------------------

    def genesis_key(self, entry: AuditEntry) -> TrustedKey:
        """Entry 0 must be ``workspace.created`` naming this workspace and its root key (self-signed)."""
        payload = entry.payload
        root = payload.get("root")
        if entry.event != GENESIS_EVENT or payload.get("workspace") != self.workspace_id or not isinstance(root, dict):
            raise AuditIntegrityError(0, "the first entry is not this workspace's genesis (workspace.created "
                                         "naming its root key)")
        try:
            raw = public_key_raw_of(str(root.get("public_key")))
        except ValueError:
            raise AuditIntegrityError(0, "the genesis entry's root public key is malformed") from None
        if key_id(raw) != root.get("key_id"):
            raise AuditIntegrityError(0, "the genesis entry's root key id does not match its public key")
        member = Member(str(root.get("name", "root")), "admin", key_id(raw), str(root["public_key"]),
                        entry.time, key_id(raw))
        self.root = member
        self.master_key_id = payload.get("master_key_id")
        self._members[member.key_id] = member
        self._keys[member.key_id] = TrustedKey(member.key_id, raw, "admin", entry.time)
        return self._keys[member.key_id]

    def keys(self) -> Mapping[str, TrustedKey]:
        """Every key the log has granted so far, with its validity window."""
        return self._keys

    def apply(self, entry: AuditEntry, key: TrustedKey) -> str | None:
        """Take in an authorized entry; return why it is refused instead, if it is."""
        if entry.seq == 0:
            return None
        handler = _HANDLERS.get(entry.event)
        if handler is None:
            for prefix, candidate in _PREFIX_HANDLERS:
                if entry.event.startswith(prefix):
                    handler = candidate
                    break
        return handler(self, entry, self._members[key.key_id]) if handler is not None else None

    # --- queries ----------------------------------------------------------------------------------------

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Entries the replay ignored, with why."""
        return self.report.findings if self.report is not None else ()

    def members(self) -> list[Member]:
        """Every identity ever granted, in grant order."""
        return sorted(self._members.values(), key=lambda m: m.granted_at)

    def member_by_key(self, key: str) -> Member | None:
        """The member holding key id ``key``, or None."""
        return self._members.get(key)

    def registration(self, digest: str) -> PolicyRegistration | None:
        """The first registration of a policy digest, or None."""
        return next((p for p in self.policies if p.digest == digest), None)

    def latest_registration(self, name: str) -> PolicyRegistration | None:
        """The newest registration under ``name``, or None."""
        found = [p for p in self.policies if p.name == name]
        return found[-1] if found else None

    def ingest_of(self, card_digest: str) -> Ingest | None:
        """The logged ingest of a card, or None."""
        return self.ingests.get(card_digest)

    def decisions_on(self, subject: str) -> list[Decision]:
        """Decisions about a card digest or run id, in log order."""
        return [d for d in self.decisions if d.subject == subject]

    def reviews_of(self, card_digest: str) -> list[Review]:
        """Reviews of a card digest, in log order."""
        return [r for r in self.reviews if r.card_digest == card_digest]

    def run(self, run_id: str) -> RunRecord | None:
        """A run's record, or None if the log never mentions it."""
        return self.runs.get(run_id)

    # --- replay handlers (each returns a reason to refuse the entry, or None) ------------------------------

    def _granted(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        role = p.get("role")
        if role not in ROLES:
            return f"grants unknown role {role!r}"
        try:
            raw = public_key_raw_of(str(p.get("public_key")))
        except ValueError:
            return "grants a malformed public key"
        subject = key_id(raw)
        if subject != p.get("key_id"):
            return "the granted key id does not match the public key"
        if subject in self._members:
            return f"key {subject} was already granted (one key holds one role)"
        member = Member(str(p.get("name")), role, subject, str(p["public_key"]), entry.time, actor.key_id)
        self._members[subject] = member
        self._keys[subject] = TrustedKey(subject, raw, role, entry.time)
        return None

    def _revoked(self, entry: AuditEntry, actor: Member) -> str | None:
        subject = entry.payload.get("key_id")
        target = self._members.get(str(subject))
        if target is None or target.revoked_at is not None:
            return f"revokes key {subject}, which is not active"
        if self.root is not None and subject == self.root.key_id:
            return "the root key cannot be revoked"
        compromised = bool(entry.payload.get("compromised", False))
        self._members[target.key_id] = replace(target, revoked_at=entry.time, compromised=compromised)
        old = self._keys[target.key_id]
        self._keys[target.key_id] = TrustedKey(old.key_id, old.public_key_raw, old.role, old.granted_at, entry.time)
        return None

    def _policy_registered(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        name, digest = p.get("name"), p.get("digest")
        if not isinstance(name, str) or not isinstance(digest, str):
            return "a policy registration needs a name and a digest"
        self.policies.append(PolicyRegistration(name, digest, bool(p.get("self_approval", False)), entry.seq,
                                                entry.time, actor.key_id))
        return None

    def _ingested(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        digest = p.get("card_digest")
        if not isinstance(digest, str):
            return "an ingest entry needs a card digest"
        if digest in self.ingests:
            return "this card digest was already ingested"
        policy_digest = p.get("policy_digest")
        registration = self.registration(policy_digest) if isinstance(policy_digest, str) else None
        if registration is None:
            return "the dataset was ingested under a policy no admin registered"
        self.ingests[digest] = Ingest(str(p.get("dataset")), digest, actor.key_id, entry.seq, entry.time,
                                      registration.name, registration.digest)
        return None

    def _data_decision(self, entry: AuditEntry, actor: Member) -> str | None:
        digest = entry.payload.get("card_digest")
        if not isinstance(digest, str) or digest not in self.ingests:
            return "decides on a card the log never ingested"
        self.decisions.append(Decision(digest, entry.event.removeprefix("data."), actor.key_id, actor.name,
                                       actor.role, entry.seq, entry.time, entry.payload.get("decision_digest")))
        return None

    def _data_reviewed(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        digest = p.get("card_digest")
        if not isinstance(digest, str) or digest not in self.ingests:
            return "reviews a card the log never ingested"
        counts = [p.get(k) for k in ("sample", "rows_stored", "rows_with_identifier", "identifiers")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            return "a review needs whole, non-negative counts (sample, rows_stored, rows_with_identifier, identifiers)"
        sample, stored, found, identifiers = (int(n) for n in counts)  # type: ignore[arg-type]
        if not 1 <= sample <= stored or found > min(sample, identifiers) or (identifiers > 0 and found == 0):
            return "a review's counts contradict each other"
        self.reviews.append(Review(digest, actor.key_id, actor.name, actor.role, entry.seq, entry.time, sample, stored,
                                   found, identifiers))
        return None

    def _run_requested(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        request_id, digest = p.get("request_id"), p.get("config_digest")
        if not isinstance(request_id, str) or not isinstance(digest, str):
            return "a run request needs a request_id and a config_digest"
        if request_id in self.requests:
            return "a second run.requested with the same request_id"
        self.requests[request_id] = RunRequest(request_id, digest, actor.key_id, entry.seq, entry.time)
        return None

    def _run(self, run_id: Any) -> RunRecord:
        return self.runs.setdefault(str(run_id), RunRecord(str(run_id)))

    def _run_event(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        if not isinstance(p.get("run_id"), str):
            return "a run event needs a run_id"
        record = self._run(p["run_id"])
        event = entry.event
        if event == "run.started":
            if record.started is not None:
                record.contradictions.append(f"entry {entry.seq}: a second run.started")
                return "a second run.started for the run"
            request_id = p.get("request_id")
            if request_id is not None and any((r.started or {}).get("request_id") == request_id
                                              for r in self.runs.values() if r is not record):
                record.contradictions.append(f"entry {entry.seq}: a second run for request {request_id}")
                return f"a second run.started for request {request_id}"
            record.started, record.started_seq, record.started_by = dict(p), entry.seq, actor.key_id
        elif record.started_by is not None and actor.key_id != record.started_by \
                and event not in ("run.exported", "run.export.started", "run.replayed"):
            # One party executes a run: entries about it signed by anyone else are someone else's claims.
            record.contradictions.append(f"entry {entry.seq}: {event} signed by another key than run.started")
            return f"{event} for a run another key started"
        elif event == "run.resumed":
            record.resumed.append(dict(p))
        elif event == "run.splits":
            if record.splits is not None and record.splits.get("digests") != p.get("digests"):
                record.contradictions.append(f"entry {entry.seq}: run.splits differ from the first")
                return "run.splits that differ from the run's first"
            record.splits = dict(p)
        elif event == "run.checkpoint":
            if isinstance(p.get("digest"), str):
                record.checkpoint_digests.append(p["digest"])
        elif event == "run.finished":
            if record.finished is not None:
                record.contradictions.append(f"entry {entry.seq}: a second run.finished")
                return "a second run.finished for the run"
            record.finished, record.finished_seq = dict(p), entry.seq
        elif event == "run.failed":
            record.failed = dict(p)
        elif event == "run.exported":
            record.exported = True
        elif event == "run.replayed":
            segments, total = p.get("segments"), p.get("segments_total")
            record.replays.append(Replay(actor.key_id, str(p.get("outcome")),
                                         segments if isinstance(segments, int) else 0, entry.seq,
                                         total if isinstance(total, int) else 0))
        return None

    def _report_written(self, entry: AuditEntry, actor: Member) -> str | None:
        p = entry.payload
        if not isinstance(p.get("run_id"), str):
            return "a report entry needs a run_id"
        record = self._run(p["run_id"])
        if record.report is not None:
            record.contradictions.append(f"entry {entry.seq}: a second report.written")
            return "a second report.written for the run contradicts the first"
        if record.started is None:
            return "reports for a run the log never started"
        if actor.key_id != record.started_by:
            record.contradictions.append(f"entry {entry.seq}: report.written signed by another key than run.started")
            return "reports signed by another key than the one that started the run"
        record.report, record.report_seq = dict(p), entry.seq
        return None

    def _release(self, entry: AuditEntry, actor: Member) -> str | None:
        run_id = entry.payload.get("run_id")
        record = self.runs.get(str(run_id))
        if record is None or record.report is None:
            return "approves the release of a run without logged reports"
        record.releases.append(Decision(str(run_id), "released", actor.key_id, actor.name, actor.role, entry.seq,
                                        entry.time))
        return None


_HANDLERS = {
    "identity.granted": Ledger._granted,
    "identity.revoked": Ledger._revoked,
    "policy.registered": Ledger._policy_registered,
    "data.ingested": Ledger._ingested,
    "data.approved": Ledger._data_decision,
    "data.rejected": Ledger._data_decision,
    "data.reviewed": Ledger._data_reviewed,
    "report.written": Ledger._report_written,
    "run.release.approved": Ledger._release,
    "run.requested": Ledger._run_requested,
}
_PREFIX_HANDLERS = (("run.", Ledger._run_event),)
