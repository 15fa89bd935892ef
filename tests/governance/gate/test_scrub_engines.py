"""Tests for governance/gate/scrub_engines.py: which engine runs (the engines themselves: tests/integration/test_scale.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.errors import ConfigError
from governance.gate.scrub_engines import RAY_MIN_ROWS, choose_engine


def test_auto_uses_ray_only_for_several_workers_on_enough_rows() -> None:
    assert choose_engine("auto", 1, 10 * RAY_MIN_ROWS, None) == "local"
    assert choose_engine("auto", 2, RAY_MIN_ROWS - 1, None) == "local"
    assert choose_engine("auto", 2, RAY_MIN_ROWS, None) == "ray"


def test_an_address_or_an_explicit_choice_wins() -> None:
    assert choose_engine("auto", 1, 10, "ray://head:10001") == "ray"
    assert choose_engine("ray", 1, 10, None) == "ray"
    assert choose_engine("local", 1, 10 * RAY_MIN_ROWS, None) == "local"
    assert choose_engine("local", 1, 10 * RAY_MIN_ROWS, "ray://head:10001") == "local"  # RAY_ADDRESS set elsewhere


@pytest.mark.parametrize(("choice", "workers"), [("local", 2), ("auto", 0)])
def test_contradictory_options_are_refused(choice: str, workers: int) -> None:
    with pytest.raises(ConfigError) as caught:
        choose_engine(choice, workers, 100, None)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2


NODE = """
import sys, time
from governance.gate.scrub_engines import LocalRayNode
node = LocalRayNode(1)
print(node.folder, flush=True)
time.sleep(600)
"""


def test_a_local_ray_whose_driver_and_reaper_were_killed_together_is_swept() -> None:
    """A container stop kills the driver and its reaper at once: nothing is left to clean the node's folder and
    processes. The next local Ray (here, its sweep) removes both once neither owner runs."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from governance.gate.scrub_engines import REAPER_MARKER, _node_processes, sweep_stale_local_rays

    tmp_path = Path(tempfile.mkdtemp(prefix="gt-", dir="/tmp"))  # short: Ray's socket paths stay under 108 bytes
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    driver = subprocess.Popen([sys.executable, "-c", NODE], env=env, stdout=subprocess.PIPE, text=True)
    assert driver.stdout is not None
    folder = Path(driver.stdout.readline().strip())
    assert folder.parent == tmp_path and folder.is_dir()
    reaper = json.loads((folder / REAPER_MARKER).read_text())["pid"]
    assert _node_processes(folder, {}, skip=os.getpid())  # the node runs
    os.kill(reaper, signal.SIGKILL)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    time.sleep(1.0)
    assert folder.is_dir()  # nobody cleaned up
    assert sweep_stale_local_rays(tmp_path) == 1
    assert not folder.exists()
    deadline = time.monotonic() + 10
    while _node_processes(folder, {}, skip=os.getpid()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _node_processes(folder, {}, skip=os.getpid())
    assert sweep_stale_local_rays(tmp_path) == 0
    tmp_path.rmdir()
