"""The article corpora beside the repository, extraction run over them, and its scoring.

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
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aeb import score

from crawler.extraction import text as extraction_text

ROOT = Path(__file__).resolve().parents[2] / "shared" / "corpus"
NAMES = ("wcxb-dev", "fundus-news", "aeb-dev", "htmldate-dev")


# the languages of a publisher's country, for pages that do not say theirs
COUNTRY_LANGUAGES = {
    "at": {"de"}, "au": {"en"}, "be": {"nl", "fr", "de", "en"}, "ca": {"en", "fr"},
    "ch": {"de", "fr", "it"}, "cn": {"zh"}, "cz": {"cs"}, "de": {"de"}, "dk": {"da"},
    "es": {"es", "ca", "de", "en"}, "fr": {"fr"}, "gl": {"da", "kl"}, "id": {"id"},
    "il": {"he", "en"}, "ind": {"en", "hi"}, "isl": {"is"}, "it": {"it", "de"},
    "jp": {"ja", "en"}, "kr": {"ko"}, "lb": {"ar", "fr", "en"}, "li": {"de"}, "ls": {"en"},
    "lt": {"lt"}, "lu": {"de", "fr", "lb"}, "mx": {"es", "en"}, "my": {"en", "ms"},
    "na": {"en"}, "no": {"no", "nb", "nn"}, "pl": {"pl"}, "pt": {"pt", "en"},
    "py": {"es", "de"}, "ru": {"ru"}, "se": {"sv"}, "tr": {"tr"}, "tw": {"zh"},
    "tz": {"en", "sw"}, "ua": {"uk", "ru"}, "uk": {"en"}, "us": {"en"}, "vn": {"vi"},
    "za": {"en"},
}



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


# -- scoring ---------------------------------------------------------------------------------


def fields(extracted) -> dict[str, Any]:
    """What an :class:`~crawler.extraction.Extracted` gives to be scored ({} for None)."""
    if extracted is None:
        return {}
    return {"text": extracted.text, "title": extracted.title, "authors": list(extracted.authors),
            "published": extracted.published, "modified": extracted.modified,
            "language": extracted.language}


def _norm(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


_CREDIT = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.IGNORECASE)


def author_matches(authors: list[str], truth: str) -> bool:
    if _norm(", ".join(authors)) == _norm(truth):
        return True
    names = {_norm(n) for n in _CREDIT.split(truth) if n.strip()}
    return bool(authors) and {_norm(a) for a in authors} == names


def date_matches(published: str | None, truth: str | None) -> bool:
    return bool(published and truth) and published[:10] == truth[:10]


def page_language(page: Page) -> set[str]:
    lang = extraction_text.html_lang(page.html)
    if lang:
        return {lang, *({"no"} if lang in ("nb", "nn") else ())}
    return COUNTRY_LANGUAGES.get(page.truth.get("country", ""), set())


def field_scores(pages: list[Page], answers: list[dict[str, Any]]) -> dict[str, Any]:
    """body (aeb Score), title, author, date, language: shares; and the counts behind them."""
    scores: dict[str, Any] = {"body": score((p.truth.get("articleBody") or "", a.get("text"))
                                            for p, a in zip(pages, answers, strict=True))}
    titled = [(p, a) for p, a in zip(pages, answers, strict=True) if p.truth.get("title")]
    authored = [(p, a) for p, a in zip(pages, answers, strict=True) if p.truth.get("author")]
    dated = [(p, a) for p, a in zip(pages, answers, strict=True) if p.truth.get("published")]
    if titled:
        scores["title"] = _share(_norm(a.get("title")) == _norm(p.truth["title"])
                                 for p, a in titled)
        scores["no title"] = sum(not a.get("title") for _, a in titled)
    if authored:
        scores["author"] = _share(author_matches(a.get("authors") or [], p.truth["author"])
                                  for p, a in authored)
        scores["no author"] = sum(not a.get("authors") for _, a in authored)
    if dated:
        scores["date"] = _share(date_matches(a.get("published"), p.truth["published"])
                                for p, a in dated)
        scores["no date"] = sum(not a.get("published") for _, a in dated)
    if pages and "country" in pages[0].truth:
        scores["language"] = _share(
            extraction_text.language_subtag(a.get("language")) in page_language(p)
            for p, a in zip(pages, answers, strict=True))
    return scores


def _share(hits: Iterable[bool]) -> float:
    hits = list(hits)
    return sum(hits) / len(hits) if hits else 0.0
