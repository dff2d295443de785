"""The article corpora beside the repository, and extraction run over them in processes.

The corpora are not part of the project: they live at ``../shared/corpus/<name>``
(``html/<id>.html.gz`` and ``ground-truth.json``), where a user's clone has none; whatever
uses them skips without them. ``aeb-dev`` has body text only; ``wcxb-dev`` and
``fundus-news`` also title, author and publication date; ``htmldate-dev`` dates only.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2] / "shared" / "corpus"
NAMES = ("wcxb-dev", "fundus-news", "aeb-dev", "htmldate-dev")


@dataclass(frozen=True)
class Page:
    corpus: str
    id: str
    url: str
    html: bytes = field(repr=False)
    #: the ground truth's entry: articleBody, and title, author, published, country where given
    truth: dict[str, Any] = field(repr=False)


def available(name: str, root: Path = ROOT) -> bool:
    return (root / name / "ground-truth.json").is_file() and (root / name / "html").is_dir()


def load(name: str, root: Path = ROOT) -> list[Page]:
    """Every page of corpus ``name``, sorted by id; the HTML stays raw bytes."""
    folder = root / name
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for page_id in sorted(truth):
        with gzip.open(folder / "html" / f"{page_id}.html.gz") as fh:
            pages.append(Page(name, page_id, truth[page_id]["url"], fh.read(), truth[page_id]))
    return pages


def run(function: Callable[[bytes, str], Any], pages: Iterable[Page], processes: int = 0) -> list:
    """``function(html, url)`` of every page, in page order, in ``processes`` worker processes
    (0: one per CPU), since extraction is CPU-bound. ``function`` is pickled by name: a
    module-level function of an importable module (``extract_article``) or of the script run."""
    pages = list(pages)
    processes = processes or os.cpu_count() or 1
    if processes == 1:
        _quiet()
        return [function(page.html, page.url) for page in pages]
    with ProcessPoolExecutor(processes, initializer=_quiet) as pool:
        return list(pool.map(function, [p.html for p in pages], [p.url for p in pages],
                             chunksize=4))


def _quiet() -> None:
    logging.disable(logging.WARNING)  # trafilatura logs every page it discards
