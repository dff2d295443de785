"""The Article Extraction Benchmark corpus and its scoring method.

The corpus is not part of the project: it lives beside the repository at
``../shared/corpus/aeb-dev`` (``html/<id>.html.gz`` and ``ground-truth.json``). Scoring follows
the benchmark's published method: 4-token shingle multisets over ``\\w+`` tokens, counts
normalised per page, precision and recall averaged over the pages where they are defined,
F1 from the two means.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from crawler.demo import corpus as _corpus
from crawler.demo.corpus import CorpusPage as Page

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "aeb-dev"

_TOKEN = re.compile(r"\w+")
_SHINGLE_SIZE = 4


def load_pages(corpus: Path = CORPUS) -> list[Page]:
    """Every page of the corpus, sorted by id; the HTML stays raw bytes (UTF-8)."""
    return _corpus.load_pages(corpus)


def shingles(text: str | None) -> Counter[str]:
    """Multiset of 4-token shingles; a text of fewer tokens is one shingle of what is there."""
    tokens = _TOKEN.findall(text or "")
    count = max(1, len(tokens) - _SHINGLE_SIZE + 1)
    return Counter(
        shingle
        for shingle in (" ".join(tokens[i : i + _SHINGLE_SIZE]) for i in range(count))
        if shingle
    )


def page_counts(truth: str, predicted: str | None) -> tuple[float, float, float]:
    """(tp, fp, fn) for one page, divided by tp + fp + fn so that every page weighs the same."""
    true, pred = shingles(truth), shingles(predicted)
    tp = sum((true & pred).values())
    fp = sum((pred - true).values())
    fn = sum((true - pred).values())
    total = tp + fp + fn
    if total:
        return tp / total, fp / total, fn / total
    return 0.0, 0.0, 0.0


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    pages: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __str__(self) -> str:
        return f"F1 {self.f1:.3f}  precision {self.precision:.3f}  recall {self.recall:.3f}"


def score(pairs: Iterable[tuple[str, str | None]]) -> Score:
    """Score (truth, predicted) pairs: the mean precision and mean recall over the pages."""
    return score_counts(page_counts(truth, predicted) for truth, predicted in pairs)


def score_counts(counts: Iterable[tuple[float, float, float]]) -> Score:
    """Score pages by their :func:`page_counts`."""
    precisions, recalls = [], []
    for tp, fp, fn in counts:
        perfect = fp == 0 and fn == 0
        if tp + fp > 0:
            precisions.append(1.0 if perfect else tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(1.0 if perfect else tp / (tp + fn))
    return Score(_mean(precisions), _mean(recalls), max(len(precisions), len(recalls)))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def worst(pairs: Iterable[tuple[str, str, str | None]], n: int = 5) -> Iterator[tuple]:
    """The n pages with the lowest (precision + recall), as (id, precision, recall)."""
    rows = []
    for page_id, truth, predicted in pairs:
        tp, fp, fn = page_counts(truth, predicted)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        rows.append((p + r, page_id, p, r))
    for _, page_id, p, r in sorted(rows)[:n]:
        yield page_id, p, r
