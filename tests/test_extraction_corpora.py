"""Extraction over every page of the corpora beside the repository (``../shared/corpus``).

The corpora are not shipped with the project: each test skips without its corpus. Pages are
extracted once, in a process per CPU, and shared by the tests of this module.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from crawler.extraction import extract_article

pytestmark = [pytest.mark.corpus, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[1]


def load_benchmark_module(name: str):
    # benchmarks/ is a folder of scripts, not a package: load a module of it by path
    key = f"benchmarks_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[key]


corpora = load_benchmark_module("corpora")


@pytest.fixture(scope="module")
def extracted() -> dict[str, list]:
    """corpus name -> [(page, extract_article's result)] for every corpus that is there."""
    found = {}
    for name in corpora.NAMES:
        if corpora.available(name):
            pages = corpora.load(name)
            found[name] = list(zip(pages, corpora.run(extract_article, pages), strict=True))
    if not found:
        pytest.skip(f"no corpus at {corpora.ROOT}")
    return found


# what a markdown link leaves: trafilatura's for the links it keeps while judging
_MARKUP = re.compile(r"\]\((?:https?:|/)")


def test_no_extracted_text_holds_link_markup(extracted):
    marked = [
        f"{name}/{page.id}: {_MARKUP.search(result.text).group()!r}"
        for name, results in extracted.items()
        for page, result in results
        if result is not None and _MARKUP.search(result.text)
    ]
    assert not marked
    assert sum(len(results) for results in extracted.values()) >= 80
