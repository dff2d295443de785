"""The code passes its linter (ruff, configured in pyproject.toml) wherever the suite runs,
so a change that breaks it fails CI rather than the next person's checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_finds_nothing():
    result = subprocess.run([str(RUFF), "check", "--no-cache", "crawler", "tests", "benchmarks"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
