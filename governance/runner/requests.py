"""Run requests: an engineer's submitted run config, stored in the workspace and signed into the log by digest.

The stored file is the resolved config (every default filled in), with the dataset pinned to the version the gate
passed at submission and the policy named by its registration, so the runner executes what was checked. The file
lives where engineers can write, so it proves nothing by itself: the runner re-reads it and refuses (exit 5) a
config whose digest is not the one ``run.requested`` signed.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from governance.errors import ConfigError, IntegrityError, UnexpectedError
from governance.run.command import validate_run
from governance.run.config import RunConfig, config_digest, load_run_config
from governance.run.orchestrate import policy_ref, resolved_yaml
from governance.trust.ledger import RunRequest
from governance.workspace import Workspace
from governance.workspace.fsutil import make_private_dir, write_private_file

REQUEST_ID = re.compile(r"^req-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")


def requests_dir(workspace: Workspace) -> Path:
    """The folder of stored run requests."""
    return workspace.root / "requests"


def request_path(workspace: Workspace, request_id: str) -> Path:
    """Where the config of request ``request_id`` is stored; a malformed id (it comes from a signed entry, but
    any engineer signs those) is exit 5, never a path."""
    if not REQUEST_ID.match(request_id):
        raise IntegrityError(f"run request id {request_id[:40]!r} is malformed",
                             hint="run requests are made with 'govtrain run --submit'")
    return requests_dir(workspace) / f"{request_id}.yaml"


def new_request_id() -> str:
    """A sortable, unique request id: ``req-YYYYMMDD-HHMMSS-xxxxxxxx``."""
    return dt.datetime.now(dt.UTC).strftime("req-%Y%m%d-%H%M%S-") + secrets.token_hex(4)


@dataclass(frozen=True)
class Submitted:
    """A logged run request."""

    request_id: str
    config_digest: str
    dataset: str
    approvers: tuple[str, ...]
    policy: str
    policy_digest: str
    path: Path


def submit_request(workspace: Workspace, config_path: Path, identity: str | None) -> Submitted:
    """``govtrain run --submit``: check ``config_path`` as ``govtrain run`` would before training, store it and sign
    ``run.requested`` (engineer)."""
    from governance.gate.approvals import check_dataset_gate
    from governance.runner.isolation import check_names_no_code
    from governance.trust.replay import load_ledger
    from governance.trust.session import open_session

    config = load_run_config(config_path)  # a bad config is exit 2 before anything else is looked at
    validated = validate_run(workspace, config)
    check_names_no_code(config)
    with open_session(workspace, identity, ["engineer"], "run --submit") as session:
        approved = check_dataset_gate(workspace, config.dataset, validated.registered)
        registration = validated.registered.registration
        newest = load_ledger(workspace).latest_registration(registration.name)
        if newest is None or newest.digest != registration.digest:
            raise ConfigError(f"{config_path} names policy sha256:{registration.digest[:12]}, which is not the newest "
                              f"registration of '{registration.name}': a runner could not resolve it by name",
                              hint=f"name the policy '{registration.name}' (its newest registration) in the config")
        pinned = config.model_copy(update={"dataset": approved.card.ref, "policy": registration.name})
        request_id = new_request_id()
        path = request_path(workspace, request_id)
        make_private_dir(requests_dir(workspace))
        write_private_file(path, resolved_yaml(pinned).encode(), exclusive=True)
        digest = config_digest(pinned)
        if config_digest(load_run_config(path)) != digest:  # what the runner will read must be what is signed
            path.unlink()
            raise UnexpectedError("the stored run request does not reload to the config it was made from")
        session.record("run.requested", {"request_id": request_id, "config_digest": digest,
                                         "dataset": approved.card.ref, "card_digest": approved.card.digest(),
                                         **policy_ref(validated.policy)})
    return Submitted(request_id, digest, approved.card.ref, approved.approvers, registration.name,
                     registration.digest, path)


def load_requested_config(workspace: Workspace, request: RunRequest) -> RunConfig:
    """The stored config of a logged request, read once; exit 5 when it is missing, unreadable, or not the config
    whose digest the request signed."""
    path = request_path(workspace, request.request_id)
    if not path.is_file():
        raise IntegrityError(f"run request {request.request_id}: its stored config {path} is missing",
                             hint="the engineer submits it again with 'govtrain run --submit'")
    try:
        config = load_run_config(path)
    except ConfigError as exc:
        raise IntegrityError(f"run request {request.request_id}: the stored config {path} no longer loads "
                             f"({exc.message})", hint="it was edited after it was submitted; submit it again") from None
    digest = config_digest(config)
    if digest != request.config_digest:
        raise IntegrityError(
            f"run request {request.request_id}: the stored config {path} has digest sha256:{digest[:12]}, "
            f"but the request signed sha256:{request.config_digest[:12]}",
            hint="it was edited after it was submitted; the runner executes only what was signed")
    return config
