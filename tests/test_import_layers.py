"""The import contract in pyproject.toml ([tool.importlinter]): no module imports one of a
layer above it, no modules of a package import each other in a cycle, and the pure core
imports nothing of the crawler outside it. And one owner for a SQLite file: its store."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_every_import_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "named"), [
    # the core importing the context: an import of a layer above
    ("core/upward.py", "from crawler.context import crawl_context",
     "crawler.core.upward -> crawler.context"),
    # the ledger importing the validators, which import the ledger: a cycle in one layer
    ("ledger.py", "import crawler.validators", ".validators -> .ledger"),
], ids=["upward", "cycle"])
def test_a_wrong_import_breaks_the_contract(tmp_path, module, line, named):
    # the same contracts over a copy of the package with the one import added
    copy = tmp_path / "crawler"
    subprocess.run(["cp", "-r", str(ROOT / "crawler"), str(copy)], check=True)
    target = copy / module
    target.write_text((target.read_text() if target.exists() else "") + f"\n{line}\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert named in result.stdout


def test_only_the_sqlite_store_opens_sqlite_files():
    # the store owns every table of its file and their schema; the others use its methods
    opening = []
    for path in sorted((ROOT / "crawler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) else [])
            if "sqlite3" in names:
                opening.append(str(path.relative_to(ROOT)))
    assert opening == ["crawler/storage/sqlite.py"]
