"""A second opinion on a page's article text (opt-in, ``ExtractionOptions.second_opinion``):
readability's scoring of content blocks (trafilatura's port of it), and jusText as the third
voice on the lines only readability has. Readability runs on a copy of the page's one parsed
tree; trafilatura's own internals are left alone."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from crawler.extraction.text import WORD, with_breaks, word_runs

# A second opinion from a differently built extractor (readability's scoring of content
# blocks, trafilatura's port of it): where its text is almost all inside trafilatura's and
# not much shorter, trafilatura has taken the same article plus something around it (a
# sidebar, a promo, related links), and the tighter text is the article. Anywhere else the two
# disagree about what the article is, and trafilatura is right far more often. The thresholds
# here (and AGREED_* below) were chosen on the AEB pages (by folds of pages, not of sites):
# on wcxb-dev and fundus-news, never tuned on, they do not beat trafilatura's plain text, so
# this is opt-in (second=True).
SECOND_OPINION_SHARED = 0.95  # share of its 4-word runs found in trafilatura's text
SECOND_OPINION_LENGTH = 0.7  # at least this share of trafilatura's length

# Where trafilatura is unsure the other way (it kept one block of an article split over several,
# or dropped a paragraph), readability often has the missing paragraphs, along with bylines,
# captions and related headlines. A third voice decides: jusText, classifying readability's
# own blocks by length, link density and the share of the page language's stopwords. A line of
# readability's that is new to trafilatura's text and that jusText keeps too is added, after
# the line readability has before it. Minimum words: 0, 4 and 8 tie on the AEB pages; 8 keeps
# bylines and credits out where jusText would let one through.
AGREED_NEW = 0.3  # a line is new when less than this share of its 4-word runs is in the text
AGREED_MIN_WORDS = 8  # shorter new lines are not added (bylines, credits, one-word labels)
AGREED_KEPT = 0.5  # share of the line's 4-word runs jusText must keep


def readability_text(html: bytes | str) -> str | None:
    """The article text by readability's scoring, one paragraph per line; None if none."""
    from trafilatura.utils import load_html

    return readability_lines(readability_summary(load_html(html)))


def readability_summary(tree):
    """readability's article in the parsed page (left as it is), as an lxml element, or
    None."""
    from lxml import html as lxml_html
    from trafilatura.readability_lxml import Document

    if tree is None:
        return None
    try:
        summary = Document(copy.deepcopy(tree)).summary()
        return lxml_html.fromstring(summary) if summary.strip() else None
    except Exception:  # noqa: BLE001 - only a second opinion: without it trafilatura decides
        return None


def readability_lines(summary) -> str | None:
    """The text of readability's article, one paragraph per line; None if none."""
    if summary is None:
        return None
    # text in paragraphs, headings, lists and quotes only: what readability keeps loose in its
    # containers is mostly captions, bylines and credits
    blocks = [
        element for element in summary.iter(*_READABILITY_BLOCKS)
        if not any(a.tag in _READABILITY_BLOCKS for a in element.iterancestors())
    ]
    lines = (" ".join(line.split()) for block in blocks for line in with_breaks(block).split("\n"))
    return "\n".join(line for line in lines if line) or None


def justext_kept(summary, language: str | None) -> str | None:
    """The paragraphs of readability's article jusText classifies as text, one a line.

    jusText judges them by length, link density and the share of stopwords of ``language`` (a
    primary subtag, "en"); without a stoplist for it, None.
    """
    from trafilatura.settings import JUSTEXT_LANGUAGES

    if summary is None or language not in JUSTEXT_LANGUAGES:
        return None
    from justext.core import (
        ParagraphMaker,
        classify_paragraphs,
        preprocessor,
        revise_paragraph_classification,
    )

    try:  # on a copy: jusText's preprocessing changes the tree
        paragraphs = ParagraphMaker.make_paragraphs(preprocessor(copy.deepcopy(summary)))
        classify_paragraphs(paragraphs, _stoplist(JUSTEXT_LANGUAGES[language]))
        revise_paragraph_classification(paragraphs)
    except Exception:  # noqa: BLE001 - only a vote: without it nothing is added
        return None
    return "\n".join(p.text for p in paragraphs if not p.is_boilerplate) or None


@lru_cache(maxsize=8)
def _stoplist(name: str) -> frozenset[str]:
    from justext import get_stoplist

    return get_stoplist(name)


_READABILITY_BLOCKS = ("p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre")


def second_opinion(
    text: str,
    other: str | None,
    shared: float = SECOND_OPINION_SHARED,
    length: float = SECOND_OPINION_LENGTH,
) -> str:
    """``other`` where it is nearly all inside ``text`` and not much shorter, else ``text``.

    Where ``other`` leaves nothing of ``text`` out, ``text`` stays: it is trafilatura's, with
    its paragraphs and tables.
    """
    if not other or not text or not length * len(text) <= len(other) <= len(text):
        return text
    runs, inside = word_runs(other), word_runs(text)
    total = sum(runs.values())
    if not total or not inside - runs:
        return text
    return other if sum((runs & inside).values()) / total >= shared else text


def agreed_lines(
    text: str,
    other: str | None,
    kept: str | None | Callable[[], str | None],
    new: float = AGREED_NEW,
    min_words: int = AGREED_MIN_WORDS,
    agree: float = AGREED_KEPT,
) -> str:
    """``text`` with the lines of ``other`` it lacks where ``kept`` (a third voice) agrees.

    A line of ``other`` is lacking when under ``new`` of its 4-word runs are in ``text``; it is
    added when it has at least ``min_words`` words and ``agree`` of its runs are in ``kept``
    (a callable is asked for that text only when some line is lacking). It goes after the line
    of ``text`` that holds the line before it in ``other``.
    """
    if not text or not other or not kept:
        return text
    lacking = _lacking_lines(text, other, new, min_words)
    if not lacking:
        return text
    if callable(kept):
        kept = kept()
        if not kept:
            return text
    agreed = word_runs(kept)
    added: dict[int, list[str]] = {}  # line number of text -> lines to add after it
    for anchor, line, runs in lacking:
        if sum((runs & agreed).values()) >= agree * sum(runs.values()):
            added.setdefault(anchor, []).append(line)
    if not added:
        return text
    result = added.get(-1, [])
    for number, line in enumerate(text.split("\n")):
        result.append(line)
        result.extend(added.get(number, ()))
    return "\n".join(result)


def _lacking_lines(
    text: str, other: str, new: float, min_words: int
) -> list[tuple[int, str, Counter[tuple[str, ...]]]]:
    """(line number of ``text`` to add after, or -1; the line; its 4-word runs) for each line of
    ``other`` that ``text`` lacks and that has at least ``min_words`` words."""
    where: dict[tuple[str, ...], int] = {}  # 4-word run -> the first line of text holding it
    for number, line in enumerate(text.split("\n")):
        for run in word_runs(line):
            where.setdefault(run, number)
    lacking = []
    anchor = -1
    for line in other.split("\n"):
        runs = word_runs(line)
        total = sum(runs.values())
        if not total:
            continue
        if sum(count for run, count in runs.items() if run in where) >= new * total:
            anchor = max([anchor, *(where[run] for run in runs if run in where)])
        elif len(WORD.findall(line)) >= min_words:
            lacking.append((anchor, line, runs))
    return lacking
