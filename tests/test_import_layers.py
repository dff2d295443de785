"""The import contract in pyproject.toml ([tool.importlinter]): no module imports one of a
layer above it, and the pure core imports nothing of the crawler outside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_every_import_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    # the same contract over a copy of the package in which the core imports the context
    copy = tmp_path / "crawler"
    subprocess.run(["cp", "-r", str(ROOT / "crawler"), str(copy)], check=True)
    (copy / "core" / "upward.py").write_text("from crawler.context import crawl_context\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "crawler.core.upward -> crawler.context" in result.stdout
