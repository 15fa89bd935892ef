"""The CLI's import path stays light: ``govtrain --help`` must answer in well under a second."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "presidio_analyzer", "great_expectations", "fairlearn", "pandas", "matplotlib")


def test_cli_import_pulls_in_no_heavy_library() -> None:
    code = (
        "import sys, governance.cli\n"
        "from governance.cli import cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported by governance.cli: {out}"


def test_help_runs_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from governance.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED=\n" in out
