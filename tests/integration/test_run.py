"""``govtrain run`` end to end through the CLI on real RedditBias rows, as three identities."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import invoke_cli
from tests.governance.helpers import make_team
from tests.integration.conftest import home_env
from tests.integration.test_data_gate import SPEC, reddit_subset

REPO = Path(__file__).resolve().parents[2]


def tiny_config(tmp: Path, **training: object) -> Path:
    config = yaml.safe_load((REPO / "examples/redditbias-classifier.yaml").read_text())
    config["dataset"] = "reddit"
    config["model"].update(hidden_size=32, intermediate_size=64, vocab_size=1000)
    config["training"].update(epochs=1, max_steps=16, batch_size=16, eval_every=8, checkpoint_every=8,
                              max_length=48, **training)
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_under_policy(team: Any, folder: Path, data: Path, name: str, policy: Path, **training: object) -> Any:
    """An admin registers ``policy``; erin ingests ``data`` as ``name`` under it; carol approves; erin runs the
    tiny config (with ``training`` changes) on it. Returns the run's CLI result (JSON output)."""
    policy_name = yaml.safe_load(policy.read_text())["name"]
    assert team.as_("admin", "policy", "register", str(policy)).exit_code == 0
    assert team.as_("erin", "data", "ingest", str(data), "--name", name, "--spec", str(SPEC),
                    "--policy", policy_name).exit_code == 0
    assert team.as_("carol", "data", "approve", name).exit_code == 0
    config = yaml.safe_load(tiny_config(folder, **training).read_text())
    config.update(dataset=name, policy=policy_name)
    (folder / f"{name}-run.yaml").write_text(yaml.safe_dump(config))
    return team.as_("erin", "--json", "run", str(folder / f"{name}-run.yaml"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, module_home: Path):  # type: ignore[no-untyped-def]
    """A workspace where erin ingested 600 RedditBias rows, carol approved, erin trained a tiny model."""
    with home_env(module_home):
        root = tmp_path_factory.mktemp("run")
        team = make_team(invoke_cli, root)
        data = reddit_subset(shared_data, root, rows=600)
        assert team.as_("erin", "data", "ingest", str(data), "--name", "reddit", "--spec", str(SPEC)).exit_code == 0
        config = tiny_config(root)
        refused = team.as_("erin", "run", str(config))
        assert refused.exit_code == 4, refused.stderr  # not approved yet
        assert not any((team.workspace / "runs").iterdir())
        assert team.as_("carol", "data", "approve", "reddit").exit_code == 0
        result = team.as_("erin", "--json", "run", str(config))
        assert result.exit_code == 0, result.stderr
    return team, json.loads(result.stdout)


def test_run_finishes_with_metrics(trained) -> None:  # type: ignore[no-untyped-def]
    _, out = trained
    assert out["status"] == "finished"
    assert out["steps"] == 16
    assert 0.0 <= out["test_metrics"]["accuracy"] <= 1.0
    assert out["world_size"] == 1 and out["effective_batch_size"] == 16


def test_artifacts_are_encrypted(trained) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    run_dir = team.workspace / "runs" / out["run_id"]
    model = (run_dir / "model/model.safetensors.enc").read_bytes()
    checkpoint = (run_dir / "checkpoints/last.pt.enc").read_bytes()
    for blob in (model, checkpoint):
        assert blob.startswith(b"GTENC")
        assert b"__metadata__" not in blob and b"dtype" not in blob
    assert not list(run_dir.rglob("*.safetensors"))


def test_reports_written_logged_and_verified(trained) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    reports = team.workspace / "runs" / out["run_id"] / "reports"
    for kind in ("bias", "evaluation", "transparency", "provenance"):
        for ext in ("json", "md", "html"):
            assert (reports / f"{kind}.{ext}").is_file(), f"{kind}.{ext}"
    verified = team.as_("carol", "report", "verify", out["run_id"])
    assert verified.exit_code == 0, verified.stderr
    assert json.loads((reports / "bias.json").read_text())["sensitive_columns"] == ["target_group"]
    original = (reports / "evaluation.md").read_bytes()
    (reports / "evaluation.md").write_text("edited\n")
    try:
        tampered = team.as_("carol", "report", "verify", out["run_id"])
        assert tampered.exit_code == 5
        assert "evaluation.md" in tampered.stderr
    finally:
        (reports / "evaluation.md").write_bytes(original)
    assert team.as_("carol", "report", "verify", out["run_id"]).exit_code == 0


def test_bias_group_counts_equal_pandas(trained) -> None:  # type: ignore[no-untyped-def]
    """The per-group counts of the model-bias report are pandas' own counts over the stored test split."""
    from datacards.card import DatasetCard
    from governance.crypto import load_master_key, read_encrypted_file
    from governance.gate.shards import read_vault_table

    team, out = trained
    run_dir = team.workspace / "runs" / out["run_id"]
    kek = load_master_key()
    test_indices = json.loads(read_encrypted_file(run_dir / "predictions.json.enc", kek))["test_indices"]
    card = DatasetCard.model_validate(json.loads((team.workspace / "cards/reddit/1/card.json").read_text()))
    frame = read_vault_table(team.workspace / card.vault_object, card, kek).to_pandas()
    expected = frame.iloc[test_indices]["target_group"].value_counts().to_dict()
    [column] = json.loads((run_dir / "reports/bias.json").read_text())["model_bias"]
    reported = {g["group"]: g["count"] for g in column["groups"] + column["insufficient"]}
    assert reported == expected


def test_audit_log_records_the_run(trained) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    events = [json.loads(line) for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
    names = [e["event"] for e in events if e["payload"].get("run_id") == out["run_id"]]
    assert names[:2] == ["run.started", "run.splits"]
    assert "run.checkpoint" in names and "run.finished" in names and "report.written" in names
    assert team.as_("carol", "audit", "verify").exit_code == 0


def test_export_only_releasable(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    release = json.loads(team.as_("erin", "--json", "runs", "show", out["run_id"]).stdout)["run"]["release"]
    if release["verdict"] != "pass":  # flagged or not fully judged: compliance signs the release first
        refused = team.as_("erin", "runs", "export", out["run_id"], "--out", str(tmp_path / "release"))
        assert refused.exit_code == 4 and "runs approve" in refused.stderr
        assert not (tmp_path / "release").exists()
        assert team.as_("carol", "runs", "approve", out["run_id"]).exit_code == 0
    result = team.as_("erin", "runs", "export", out["run_id"], "--out", str(tmp_path / "release"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "release/model.safetensors").read_bytes()[8:9] == b"{"  # a real safetensors header
    again = team.as_("erin", "runs", "export", out["run_id"], "--out", str(tmp_path / "release"))
    assert again.exit_code == 2 and "not empty" in again.stderr
    _predict_scrubs_inputs_as_training_did(team, tmp_path / "release")


KILLING_EXPORT = """
import os, signal, sys
import governance.run.export as export
real = export.write_private_file
def write(path, data, **options):
    real(path, data, **options)
    if path.name == "model.safetensors":  # plaintext is on disk now
        os.kill(os.getpid(), signal.__dict__[os.environ["KILL_WITH"]])
export.write_private_file = write
from governance.cli import main
main(sys.argv[1:])
"""


def test_a_killed_export_leaves_no_plaintext(trained, tmp_path: Path, module_home: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM removes the staging folder (exit 143); after a SIGKILL the next command in the workspace does, and
    the log shows an export that started and never finished."""
    import os
    import subprocess
    import sys

    team, out = trained
    env = {**os.environ, "HOME": str(module_home), "XDG_CONFIG_HOME": str(module_home / ".config")}
    args = ["--workspace", str(team.workspace), "--as", "erin", "runs", "export", out["run_id"], "--out",
            str(tmp_path / "release")]
    for signal_name, code in (("SIGTERM", 143), ("SIGKILL", -9)):
        result = subprocess.run([sys.executable, "-c", KILLING_EXPORT, *args], env={**env, "KILL_WITH": signal_name},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == code, result.stderr
        left = [p for p in tmp_path.iterdir() if p.name.startswith(".release.export-")]
        if signal_name == "SIGTERM":
            assert not left and "interrupted (SIGTERM); nothing decrypted was kept" in result.stderr
            continue
        assert left and (left[0] / "model.safetensors").is_file()  # a SIGKILL runs no handler
        assert team.as_("carol", "runs", "list").exit_code == 0  # any later command in the workspace
        assert not left[0].exists() and not any((team.workspace / "exports").iterdir())
    assert not (tmp_path / "release").exists()
    events = [json.loads(line)["event"] for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()]
    assert events.count("run.export.started") >= 2 + events.count("run.exported")


def _predict_scrubs_inputs_as_training_did(team: Any, release: Path) -> None:
    """The export ships scrub.json; govtrain predict scrubs each input with it before the model sees it, so a
    raw name and its placeholder get the same prediction."""
    from governance.run.predict import ScrubbedClassifier

    settings = json.loads((release / "scrub.json").read_text())
    assert settings["dataset"] == "reddit@1" and "PERSON" in settings["pii"]["entities"]
    assert "trained on scrubbed text" in (release / "MODEL_CARD.md").read_text()
    raw, placeholder = "Maria Gonzalez is a disgusting person", "<PERSON> is a disgusting person"
    result = team.as_("erin", "--json", "predict", str(release), raw, placeholder, "--show-scrubbed")
    assert result.exit_code == 0, result.stderr
    first, second = json.loads(result.stdout)["predictions"]
    assert first["scrubbed_text"] == placeholder and first["pii_scrubbed"] == 1
    assert first["label"] == second["label"] and first["probabilities"] == second["probabilities"]
    classifier = ScrubbedClassifier(release)  # the Python entry gives the same
    assert classifier([raw])[0].probabilities == first["probabilities"]
    (release / "scrub.json").unlink()
    missing = team.as_("erin", "predict", str(release), raw)
    assert missing.exit_code == 2 and "scrub.json" in missing.stderr


def test_the_favourable_label_is_the_one_the_config_names(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """bias.favourable_label decides what 'selected' means in the bias report; one the data lacks is exit 2
    before anything is trained."""
    team, _ = trained
    config = yaml.safe_load(tiny_config(tmp_path).read_text())
    config["bias"] = {"favourable_label": "maybe"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    refused = team.as_("erin", "run", str(tmp_path / "bad.yaml"), "--dry-run")
    assert refused.exit_code == 2 and "bias.favourable_label 'maybe' is not a label" in refused.stderr
    plan = json.loads(team.as_("erin", "--json", "run", str(tiny_config(tmp_path)), "--dry-run").stdout)["plan"]
    default = plan["favourable_label"]
    other = next(label for label in ("0", "1") if label != default)
    config["bias"] = {"favourable_label": other}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(config))
    result = team.as_("erin", "--json", "run", str(tmp_path / "other.yaml"))
    assert result.exit_code == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    bias = json.loads((team.workspace / "runs" / run_id / "reports/bias.json").read_text())
    assert bias["settings"]["positive_label"] == other
    assert {c["positive_label"] for c in bias["model_bias"]} == {other}


def test_policy_limits_refuse_before_building(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    team, _ = trained
    before = sorted(p.name for p in (team.workspace / "runs").iterdir())
    config = tiny_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"]["epochs"] = 50
    config.write_text(yaml.safe_dump(data))
    result = team.as_("erin", "run", str(config))
    assert result.exit_code == 4
    assert "exceeds the policy's max_epochs 20" in result.stderr
    assert sorted(p.name for p in (team.workspace / "runs").iterdir()) == before


def test_torchrun_two_processes_log_once(trained, tmp_path: Path, module_home: Path) -> None:  # type: ignore[no-untyped-def]
    """FSDP on CPU through the real CLI: both ranks train a sharded model, each writes its own encrypted
    checkpoint shard, rank 0 alone writes one set of audit events (DDP: tests/trainer/test_distributed.py)."""
    import os
    import subprocess
    import sys

    team, out = trained
    log = team.workspace / "audit/log.jsonl"
    before = len(log.read_text().splitlines())
    single = next(json.loads(line)["payload"] for line in log.read_text().splitlines()
                  if '"run.splits"' in line and out["run_id"] in line)
    env = {**os.environ, "HOME": str(module_home), "XDG_CONFIG_HOME": str(module_home / ".config"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "governance.cli", "--workspace", str(team.workspace), "--as", "erin", "run",
               str(tiny_config(tmp_path, parallelism="fsdp"))]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    added = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    names = [e["event"] for e in added]
    assert names.count("run.started") == 1 and names.count("run.finished") == 1
    assert names.count("report.written") == 1
    finished = next(e for e in added if e["event"] == "run.finished")["payload"]
    assert finished["world_size"] == 2 and finished["effective_batch_size"] == 32
    # Each checkpoint names its two shards (alternating slots), and the shards on disk are ciphertexts.
    checkpoints = [e["payload"] for e in added if e["event"] == "run.checkpoint"]
    assert [c["step"] for c in checkpoints] == [8, 16]
    assert [s["name"] for s in checkpoints[-1]["shards"]] == [f"checkpoints/shards/b/rank-0000{r}-of-00002.pt"
                                                              for r in (0, 1)]
    run_folder = team.workspace / "runs" / finished["run_id"]
    shards = sorted((run_folder / "checkpoints/shards").rglob("*.enc"))
    assert len(shards) == 4 and not list((run_folder / "checkpoints/shards").rglob("*.pt"))
    assert sorted(p.name for p in (team.workspace / "runs").iterdir() if not p.name.startswith("run-")) == []
    # The vault is sharded, so each process decrypted only its block of rows; the splits are still the ones a
    # single process made of the same data.
    splits = next(e["payload"] for e in added if e["event"] == "run.splits")
    assert (splits["digests"], splits["sizes"]) == (single["digests"], single["sizes"])
    assert all(b"PK\x03\x04" not in shard.read_bytes()[:4096] for shard in shards)  # not a torch zip in clear
    assert team.as_("carol", "audit", "verify").exit_code == 0


def test_replaced_model_fails_report_verify(trained) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    model = team.workspace / "runs" / out["run_id"] / "model/model.safetensors.enc"
    original = model.read_bytes()
    checkpoint = (team.workspace / "runs" / out["run_id"] / "checkpoints/last.pt.enc").read_bytes()
    model.write_bytes(checkpoint)  # a valid ciphertext under the same key, but not the attested model
    try:
        result = team.as_("carol", "report", "verify", out["run_id"])
        assert result.exit_code == 5
        assert "model.safetensors.enc does not match" in result.stderr
    finally:
        model.write_bytes(original)
    assert team.as_("carol", "report", "verify", out["run_id"]).exit_code == 0


def test_html_report_opens_in_headless_chromium(trained) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    team, out = trained
    reports = team.workspace / "runs" / out["run_id"] / "reports"

    def dom(page: Path) -> str:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={reports.parent / 'chromium'}",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout

    bias = dom(reports / "bias.html")
    assert "<h2>Verdict</h2>" in bias and "disparate_impact" in bias
    evaluation = dom(reports / "evaluation.html")
    assert "Confusion matrix" in evaluation and "<img" in evaluation


def test_runs_list_shows_headline_metric_and_verdict(trained) -> None:  # type: ignore[no-untyped-def]
    team, out = trained
    rows = {r["run_id"]: r for r in json.loads(team.as_("erin", "--json", "runs", "list").stdout)["runs"]}
    row = rows[out["run_id"]]
    assert row["headline"] == {"accuracy": out["test_metrics"]["accuracy"]}
    assert row["verdict"] in ("pass", "flagged", "not judged")
    text = team.as_("erin", "runs", "list").stdout
    assert f"accuracy {out['test_metrics']['accuracy']:.4f}" in text
    assert f"bias {row['verdicts']['bias']}" in text and row["verdicts"]["bias"] in ("PASS", "FAIL", "NOT JUDGED")
    line = next(line for line in text.splitlines() if line.startswith(out["run_id"]))
    assert row["release"] in ("releasable", "needs approval", "blocked") and line.endswith(row["release"])


def test_policy_report_knobs_decide_what_is_written(trained, tmp_path: Path, shared_data: Path) -> None:  # type: ignore[no-untyped-def]
    """reports.emit and reports.formats decide exactly which report files exist and what the model card lists."""
    team, _ = trained
    policy = yaml.safe_load((REPO / "policies/default.yaml").read_text())
    policy["name"] = "lean"
    policy["reports"] = {"emit": ["bias", "evaluation", "transparency"], "formats": ["json", "md"]}
    (tmp_path / "lean.yaml").write_text(yaml.safe_dump(policy))
    result = run_under_policy(team, tmp_path, reddit_subset(shared_data, tmp_path, rows=600), "lean",
                              tmp_path / "lean.yaml")
    assert result.exit_code == 0, result.stderr
    reports = team.workspace / "runs" / json.loads(result.stdout)["run_id"] / "reports"
    assert sorted(p.name for p in reports.iterdir() if p.is_file()) == [
        "bias.json", "bias.md", "evaluation.json", "evaluation.md", "transparency.json", "transparency.md"]
    card = json.loads((reports / "transparency.json").read_text())
    listed = json.dumps(card)
    assert "provenance.json" not in listed and ".html" not in listed


def test_privacy_report_judges_membership_inference(trained) -> None:  # type: ignore[no-untyped-def]
    """Every run tests what its model remembers: a random training sample against as many held-out rows, stratified
    alike (group and label), so the test split bounds the sample; the draw is logged."""
    team, out = trained
    privacy = json.loads((team.workspace / "runs" / out["run_id"] / "reports/privacy.json").read_text())
    membership = privacy["membership"]
    splits = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()
                  if '"run.splits"' in line and out["run_id"] in line)["sizes"]
    drawn = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text().splitlines()
                 if '"run.membership"' in line and out["run_id"] in line)
    assert membership["members"] == membership["nonmembers"] == drawn["members"] == drawn["nonmembers"]
    assert 0.8 * splits["test"] <= membership["members"] <= min(500, splits["test"])  # strata bound it, slightly
    low, high = membership["auc"]["interval"]["low"], membership["auc"]["interval"]["high"]
    assert low <= membership["auc"]["value"] <= high
    assert privacy["verdict"]["outcome"] in ("PASS", "FAIL", "NOT JUDGED")
    release = json.loads(team.as_("erin", "--json", "runs", "show", out["run_id"]).stdout)["run"]["release"]
    expected = {"PASS": "pass", "FAIL": "flagged", "NOT JUDGED": "not judged"}[privacy["verdict"]["outcome"]]
    assert release["privacy"] == expected


def test_a_run_appended_by_hand_around_unapproved_data_is_not_releasable(trained, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                           shared_data: Path) -> None:
    """An engineer copies a finished run's files and appends a consistent run record, signed with her own key,
    that names a card nobody approved: its reports verify, but the release gate replays the data gate."""
    import shutil

    from tests.integration.test_insider import append_as, log_entries

    team, out = trained
    data = reddit_subset(shared_data, tmp_path, rows=600)
    assert team.as_("erin", "data", "ingest", str(data), "--name", "sneaky", "--spec", str(SPEC)).exit_code == 0
    card = json.loads(team.as_("erin", "data", "show", "sneaky", "--format", "json").stdout)
    from datacards.card import DatasetCard

    sneaky_digest = DatasetCard.model_validate(card).digest()
    fake = "run-20990101-000000-abcdef"
    shutil.copytree(team.workspace / "runs" / out["run_id"], team.workspace / "runs" / fake)
    entries = {e["event"]: e["payload"] for e in log_entries(team) if e["payload"].get("run_id") == out["run_id"]}
    append_as(team, "erin", "run.started", {**entries["run.started"], "run_id": fake, "dataset": "sneaky@1",
                                            "card_digest": sneaky_digest})
    append_as(team, "erin", "run.finished", {**entries["run.finished"], "run_id": fake})
    append_as(team, "erin", "report.written", {**entries["report.written"], "run_id": fake})
    assert team.as_("carol", "runs", "approve", fake).exit_code == 4
    refused = team.as_("erin", "runs", "export", fake, "--out", str(tmp_path / "out"))
    assert refused.exit_code == 4 and "without a standing approval" in refused.stderr
    assert not (tmp_path / "out").exists()


def test_a_differentially_private_run_carries_its_epsilon_everywhere(trained, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                      shared_data: Path) -> None:
    """training.differential_privacy: the accountant's epsilon is in the run record, the signed run.finished
    entry, the privacy report (judged against the policy's max_epsilon) and the model card; an epsilon the
    accountant cannot reach is refused before training."""
    from tests.integration.test_insider import policy_file

    team, _ = trained
    policy = policy_file(tmp_path, "private", privacy__max_epsilon=10.0)
    result = run_under_policy(team, tmp_path, reddit_subset(shared_data, tmp_path, rows=400), "private",
                              policy, differential_privacy={"target_epsilon": 8.0})
    assert result.exit_code in (0, 4), result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    finished = next(json.loads(line)["payload"] for line in (team.workspace / "audit/log.jsonl").read_text()
                    .splitlines() if '"run.finished"' in line and run_id in line)
    dp = finished["differential_privacy"]
    assert 0 < dp["epsilon"] <= 8.0 and dp["noise_multiplier"] > 0 and dp["delta"] < 1 / 300
    reports = team.workspace / "runs" / run_id / "reports"
    privacy = json.loads((reports / "privacy.json").read_text())
    assert privacy["differential_privacy"]["epsilon"] == pytest.approx(dp["epsilon"])
    checks = {c["check"]: c["status"] for c in privacy["verdict"]["checks"]}
    assert checks["dp_epsilon"] == "PASS"
    card = json.loads((reports / "transparency.json").read_text())
    section = next(s for s in card["sections"] if s["title"] == "Privacy")
    assert "epsilon" in " ".join(section["paragraphs"]).lower() or "ε" in " ".join(section["paragraphs"])
    impossible = yaml.safe_load((tmp_path / "private-run.yaml").read_text())
    impossible["training"]["differential_privacy"] = {"target_epsilon": 0.001}
    (tmp_path / "impossible.yaml").write_text(yaml.safe_dump(impossible))
    refused = team.as_("erin", "run", str(tmp_path / "impossible.yaml"))
    assert refused.exit_code == 2 and "epsilon" in refused.stderr


def test_an_edited_status_file_is_never_shown(trained) -> None:  # type: ignore[no-untyped-def]
    """status.json is a cache: runs list and runs show check it against the log before showing it (exit 5 naming
    the file): a better accuracy or another model digest written into it is caught, not displayed."""
    team, out = trained
    path = team.workspace / "runs" / out["run_id"] / "status.json"
    honest = path.read_text()
    try:
        for edit in (lambda s: {**s, "test_metrics": {**s["test_metrics"], "accuracy": 0.9999}},
                     lambda s: {**s, "artifacts": {**s["artifacts"], "model/model.safetensors": {
                         "sha256": "0" * 64, "ciphertext_sha256": "0" * 64}}}):
            path.write_text(json.dumps(edit(json.loads(honest))))
            for args in (("runs", "list"), ("runs", "show", out["run_id"])):
                result = team.as_("erin", *args)
                assert result.exit_code == 5 and "status.json" in result.stderr, (args, result.stderr)
                assert "0.9999" not in result.stdout
    finally:
        path.write_text(honest)
    assert team.as_("erin", "runs", "show", out["run_id"]).exit_code == 0
