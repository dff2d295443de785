"""Article text and metadata from a fetched page: the outlet's CSS selectors where it has them,
else trafilatura; then the outlet's boilerplate rules.

:func:`extract_article` does the work for one page. :class:`ExtractorPool` runs it in worker
processes so that a page trafilatura chokes on costs at most ``timeout`` seconds: the worker
is killed and replaced, and the caller gets :class:`ExtractionTimeout`.

The workers import this module and trafilatura, nothing of the crawling side (Scrapy, asyncio,
pydantic and the outlet files): each crawl pays for their start-up once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import multiprocessing
import queue
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from multiprocessing.connection import Connection
from typing import Protocol
from urllib.parse import urlsplit

from crawler.core.error_pages import error_page_heading, unavailable_text
from crawler.core.stalls import wait_without_stalls
from crawler.language import guess_language
from crawler.metadata import Declared, clean_authors, declared, headline

__all__ = [
    "ExtractionError",
    "ExtractionTimeout",
    "Extracted",
    "ExtractorPool",
    "extract_article",
]


@dataclass(frozen=True)
class Extracted:
    #: the headline, without the site's name or a section around it
    title: str | None
    #: the authors as one text, ", " between them (the stored field)
    author: str | None
    #: ISO-8601: date and time of day where the page gives one, else the date alone; the
    #: first publication, not the last update
    published: str | None
    language: str | None
    #: paragraphs separated by "\n"
    text: str
    categories: tuple[str, ...]
    #: the outlet names the body by selector, but it found nothing here: trafilatura's text
    selector_fallback: bool = False
    #: person names, no "By", roles or dates, never the site's name
    authors: tuple[str, ...] = ()
    #: the last update where the page states one, as ``published``
    modified: str | None = None
    #: the heading that makes the page an error page served as a page (a "soft" 404 or 503,
    #: :func:`~crawler.core.error_pages.error_page_heading`), or its whole text where that
    #: says it is not there (:func:`~crawler.core.error_pages.unavailable_text`): no article
    error_page: str | None = None


class BoilerplateRules(Protocol):
    """An outlet's text rules (``crawler.core.outlets.Boilerplate``, or
    :class:`PlainBoilerplate`)."""

    @property
    def cut_from(self) -> Sequence[str]: ...
    @property
    def drop_lines(self) -> Sequence[str]: ...


class SelectorRules(Protocol):
    """An outlet's CSS selectors (``crawler.core.outlets.Selectors``, or
    :class:`PlainSelectors`)."""

    @property
    def body(self) -> str | None: ...
    @property
    def title(self) -> str | None: ...
    @property
    def published(self) -> str | None: ...
    @property
    def author(self) -> str | None: ...


@dataclass(frozen=True)
class PlainBoilerplate:
    """The rules as plain data: what a worker is sent, so that it never imports the models."""

    cut_from: tuple[str, ...] = ()
    drop_lines: tuple[str, ...] = ()

    @classmethod
    def of(cls, rules: BoilerplateRules | None) -> PlainBoilerplate | None:
        return None if rules is None else cls(tuple(rules.cut_from), tuple(rules.drop_lines))


@dataclass(frozen=True)
class PlainSelectors:
    """The selectors as plain data, as :class:`PlainBoilerplate`."""

    body: str | None = None
    title: str | None = None
    published: str | None = None
    author: str | None = None

    @classmethod
    def of(cls, selectors: SelectorRules | None) -> PlainSelectors | None:
        if selectors is None:
            return None
        return cls(selectors.body, selectors.title, selectors.published, selectors.author)


_SELECTOR_FIELDS = ("body", "title", "published", "author")


class ExtractionTimeout(Exception):
    """The page took longer than the pool's time limit; its worker was replaced."""


class ExtractionError(Exception):
    """Extraction crashed (an exception in trafilatura, or the worker process died)."""


# -- one page ------------------------------------------------------------------------------------

# trafilatura's options, chosen by benchmarks/extraction.py on wcxb-dev and fundus-news
# (cross-validated by site) and confirmed on aeb-dev. Its defaults, but comments are not the
# article; tables are kept: in news they are data the article reports. favor_precision and
# include_links (keeping links so that it judges link density on them, the markup dropped
# after) won on the AEB pages they were tuned on, and lost on the others.
TRAFILATURA_OPTIONS = dict(
    favor_precision=False,
    include_comments=False,
    include_tables=True,
    include_images=False,
    include_links=False,
    include_formatting=False,
    with_metadata=True,
)
#: what ``second=True`` runs trafilatura with: the second opinion's thresholds were chosen
#: with these, on the AEB pages
SECOND_OPINION_OPTIONS = dict(TRAFILATURA_OPTIONS, favor_precision=True, include_links=True)

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

# htmldate keeps the time of day and the offset when the page states them (meta tags, JSON-LD,
# <time datetime>); a date-only source comes out at midnight without an offset.
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

# How the metadata is chosen, each chosen by benchmarks/extraction.py as the body options:
#: the date a news URL holds (/2024/03/14/) before the one htmldate finds in the page
DATE_URL_FIRST = True
#: the page's declared publication date (JSON-LD, article:published_time) before htmldate's:
#: chosen on the tuning corpora (0.912 against 0.909), but worse than trafilatura alone on
#: htmldate-dev (0.891 against 0.905), so not adopted; the declared date still gives the
#: time of day to a date alone of the same day
DATE_DECLARED_FIRST = False
#: the authors the page declares (JSON-LD, meta) before those trafilatura finds in the text
AUTHORS_DECLARED_FIRST = True
#: the visible <h1> as the headline where there is one, before the declared ones: the
#: declared first did better on the tuning corpora, 0.796 against 0.792
HEADLINE_SHOWN_FIRST = False


def date_params(url_first: bool = DATE_URL_FIRST) -> dict:
    """htmldate's parameters: the original (first) publication, searching the whole page."""
    return {
        "original_date": True,
        "extensive_search": True,
        "deferred_url_extractor": not url_first,
        "max_date": datetime.now().astimezone().strftime("%Y-%m-%d"),
        "outputformat": _DATE_FORMAT,
    }


# the root element's lang attribute, read from the markup
_HTML_LANG = re.compile(
    r"""<html\b[^>]*?\slang\s*=\s*["']?\s*([A-Za-z]{2,3})(?![A-Za-z])""", re.IGNORECASE
)


def extract_article(
    body: bytes | str,
    url: str,
    boilerplate: BoilerplateRules | None = None,
    encoding: str | None = None,
    selectors: SelectorRules | None = None,
    second: bool = False,
) -> Extracted | None:
    """The article in ``body``, or None when the page has no article text.

    ``encoding`` is the one the response declared (Scrapy's ``response.encoding``); without it
    trafilatura guesses from the bytes. ``selectors`` (the outlet's) name fields by CSS; each
    one that finds nothing is left to trafilatura. ``second``: trafilatura in precision mode
    judging links (:data:`SECOND_OPINION_OPTIONS`), with readability's opinion
    (:func:`second_opinion`) and jusText's on the lines only readability has
    (:func:`agreed_lines`): better on the AEB pages it was tuned on, not on others.
    """
    html = _decode(body, encoding)
    found = _by_selectors(html, selectors) if selectors is not None else {}
    listen = second and "body" not in found  # the outlet's selector found the body: no need
    document, summary = trafilatura_with_readability(
        html, url, listen=listen, options=SECOND_OPINION_OPTIONS if second else None)
    if document is None and "body" not in found:
        return None
    tree = _parsed(html)
    page = declared(tree) if tree is not None else Declared()
    title = found.get("title") or headline(
        page, HEADLINE_SHOWN_FIRST, urlsplit(url).hostname) or _clean(
        document.title if document else None)
    language = (_language(document.language) if document else None) or _html_lang(html) or (
        _language(page.language))
    if "body" in found:
        text = found["body"]
    else:
        text = _body_text_of(document.body)
        if second:
            if summary is None:  # trafilatura did not ask readability: ask it here
                summary = _readability_summary(html)
            other = _readability_lines(summary)
            text = agreed_lines(
                second_opinion(text, other), other, lambda: _justext_kept(summary, language)
            )
    text = _normalize(_without_link_markup(text), title)
    if boilerplate is not None:
        text = apply_boilerplate(text, boilerplate)
    if not text or (tree is not None and _only_links(text, tree)):
        return None
    if language is None:  # the page does not say: the text does
        language = guess_language(text)
    authors = _authors(found.get("author"), page, document.author if document else None)
    declares_article = bool(page.headline or page.authors or page.published)
    return Extracted(
        title=title,
        author=", ".join(authors) or None,
        published=found.get("published") or published_date(
            page, document.date if document else None),
        language=language,
        text=text,
        categories=_categories(document.categories, document.tags) if document else (),
        selector_fallback=bool(selectors and selectors.body) and "body" not in found,
        authors=authors,
        modified=_declared_date(page.modified),
        error_page=error_page_heading(text, (page.page_title, *page.h1), declares_article)
        or unavailable_text(text, declares_article),
    )


def published_date(page: Declared, found: str | None,
                   declared_first: bool = DATE_DECLARED_FIRST) -> str | None:
    """The declared publication date and the one htmldate ``found``, in the chosen order;
    a date alone (as a URL gives it) takes the time of day of the other on the same day."""
    dates = [_declared_date(page.published), _iso_date(found)]
    if not declared_first:
        dates.reverse()
    chosen = next((d for d in dates if d), None)
    if chosen is not None and len(chosen) == 10:
        return next((d for d in dates if d and d[:10] == chosen and len(d) > 10), chosen)
    return chosen


def _parsed(html: bytes | str):
    """The page as trafilatura parses it, for its metadata; None where it will not parse."""
    from trafilatura.utils import load_html

    try:
        return load_html(html)
    except Exception:  # noqa: BLE001 - only metadata: trafilatura's heuristics remain
        return None


def _declared(html: bytes | str) -> Declared:
    """What the page declares of itself (crawler.metadata)."""
    tree = _parsed(html)
    return declared(tree) if tree is not None else Declared()


def _only_links(text: str, tree) -> bool:
    """Every line of ``text`` is the text of a link of the page: navigation, not an article."""
    lines = set(text.split("\n"))
    for link in tree.iter("a"):
        lines.discard(" ".join(link.text_content().split()))
        if not lines:
            return True
    return False


def _authors(selected: str | None, page: Declared, guessed: str | None,
             declared_first: bool = AUTHORS_DECLARED_FIRST) -> tuple[str, ...]:
    """The outlet's selector's names, else the page's declared authors and those trafilatura
    found in the page, in the chosen order."""
    if selected:
        return clean_authors([selected], page.site_name) or (selected,)
    # trafilatura joins the names it finds with "; "
    found = clean_authors(guessed.split("; "), page.site_name) if guessed else ()
    return (page.authors or found) if declared_first else (found or page.authors)


def _declared_date(value: str | None) -> str | None:
    """A declared date (ISO-8601, or as in e-mail headers) as :func:`_iso_date` gives one."""
    if not value:
        return None
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if not 1990 <= moment.year <= datetime.now().year + 1:  # a placeholder, not a date
        return None
    if len(value) <= 10:
        return moment.date().isoformat()
    return moment.replace(microsecond=0).isoformat()


def _body_text_of(body) -> str:
    """trafilatura's text of its result tree, without the links it kept for judging.

    "" where the tree has no word outside its links: a page that is only navigation has no
    article text, however its links are written.
    """
    from lxml import etree
    from trafilatura.xml import xmltotxt

    if body is None or body.tag == "ref" or not any(
        _WORD.search(text) for text in body.xpath(".//text()[not(ancestor::ref)]")
    ):
        return ""
    # strip_tags leaves the root alone: a tree that is one link (the tag checked above) would
    # come out as markdown
    etree.strip_tags(body, "ref")
    return xmltotxt(body, False) or ""


def trafilatura_with_readability(
    html: bytes | str, url: str, listen: bool = True, options: dict | None = None
) -> tuple:
    """(trafilatura's document, the article readability found while trafilatura judged).

    trafilatura asks readability about every page (unless told to be fast) to compare with its
    own result; the second opinion listens to that answer instead of running readability again.
    The second item is readability's article as an lxml element (empty where readability found
    none), or None when trafilatura did not ask (or its internals changed), or when not
    ``listen``. ``options`` are trafilatura's, over the crawler's (:data:`TRAFILATURA_OPTIONS`).
    """
    import trafilatura  # here, not at the top: the crawling process never extracts itself

    heard: list = []
    _heard.summaries = heard if listen and _listen_to_readability() else None
    try:
        document = trafilatura.bare_extraction(
            html, url=url, date_extraction_params=date_params(),
            **{**TRAFILATURA_OPTIONS, **(options or {})},
        )
    finally:
        _heard.summaries = None
    return document, (heard[0] if heard else None)


_heard = threading.local()


def _listen_to_readability() -> bool:
    """Wraps trafilatura's call of readability (once) so that its result is kept in ``_heard``."""
    from trafilatura import external

    asked = getattr(external, "try_readability", None)
    if asked is None:
        return False
    if getattr(asked, "heard_by_crawler", False):
        return True

    def try_readability(tree):
        result = asked(tree)
        summaries = getattr(_heard, "summaries", None)
        # the first is on the page as fetched (a later one on trafilatura's retry); a copy,
        # since trafilatura may adopt and rework the element it returns
        if summaries is not None and not summaries and result is not None:
            summaries.append(copy.deepcopy(result))
        return result

    try_readability.heard_by_crawler = True
    external.try_readability = try_readability
    return True


def readability_text(html: bytes | str) -> str | None:
    """The article text by readability's scoring, one paragraph per line; None if none."""
    return _readability_lines(_readability_summary(html))


def _readability_summary(html: bytes | str):
    """readability's article as an lxml element, or None."""
    from lxml import html as lxml_html
    from trafilatura.readability_lxml import Document
    from trafilatura.utils import load_html

    try:
        tree = load_html(html)
        summary = Document(tree).summary() if tree is not None else ""
        return lxml_html.fromstring(summary) if summary.strip() else None
    except Exception:  # noqa: BLE001 - only a second opinion: without it trafilatura decides
        return None


def _readability_lines(summary) -> str | None:
    """The text of readability's article, one paragraph per line; None if none."""
    if summary is None:
        return None
    # text in paragraphs, headings, lists and quotes only: what readability keeps loose in its
    # containers is mostly captions, bylines and credits
    blocks = [
        element for element in summary.iter(*_READABILITY_BLOCKS)
        if not any(a.tag in _READABILITY_BLOCKS for a in element.iterancestors())
    ]
    lines = (" ".join(line.split()) for block in blocks for line in _with_breaks(block).split("\n"))
    return "\n".join(line for line in lines if line) or None


def _justext_kept(summary, language: str | None) -> str | None:
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
    runs, inside = _word_runs(other), _word_runs(text)
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
    agreed = _word_runs(kept)
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
        for run in _word_runs(line):
            where.setdefault(run, number)
    lacking = []
    anchor = -1
    for line in other.split("\n"):
        runs = _word_runs(line)
        total = sum(runs.values())
        if not total:
            continue
        if sum(count for run, count in runs.items() if run in where) >= new * total:
            anchor = max([anchor, *(where[run] for run in runs if run in where)])
        elif len(_WORD.findall(line)) >= min_words:
            lacking.append((anchor, line, runs))
    return lacking


_WORD = re.compile(r"\w+")


def _word_runs(text: str, size: int = 4) -> Counter[tuple[str, ...]]:
    """The multiset of runs of ``size`` consecutive words (fewer words: one run of them all)."""
    words = _WORD.findall(text)
    if len(words) < size:
        return Counter([tuple(words)])
    return Counter(zip(*(words[i:] for i in range(size)), strict=False))


def _decode(body: bytes | str, encoding: str | None) -> bytes | str:
    if isinstance(body, str) or not encoding:
        return body
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:  # an encoding name Python does not know: let trafilatura guess
        return body


# a markdown link or image to a page: [label](https://...), [label](/path), ![alt](<...>)
_LINK_MARKUP = re.compile(
    r"!?\[((?:[^\[\]\n\\]|\\.)*)\]\(\s*"
    r"(?:<(?:[a-z][a-z0-9+.-]*:|/)[^>\n]*>|(?:[a-z][a-z0-9+.-]*:|/)[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"\s*\)",
    re.IGNORECASE,
)


def _without_link_markup(text: str) -> str:
    """``text`` with each markdown link as its label alone, whichever path the text took.

    The links trafilatura keeps to judge link density are stripped from its tree, but a
    fallback's text, or a page that writes such markup itself, would carry the targets into
    the stored text.
    """
    if "](" not in text:
        return text
    return _LINK_MARKUP.sub(lambda m: re.sub(r"\\([\[\]])", r"\1", m.group(1)), text)


def _normalize(text: str, title: str | None) -> str:
    """One paragraph per line, runs of whitespace (including no-break spaces) as one space.

    A line that repeats the title (the page's headline) goes, wherever it stands: the title has
    its field, and a line readability adds may come before it.
    """
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line and line != title)


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    return " ".join(value.split()) or None


def _iso_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.strptime(value, _DATE_FORMAT)
    except ValueError:
        try:
            moment = datetime.strptime(value, _DATE_FORMAT.removesuffix("%z"))
        except ValueError:
            return value[:10] if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value) else None
    if moment.tzinfo is None and (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.isoformat()


def _language(value: str | None) -> str | None:
    """The primary language subtag, lower case: "en-GB" and "en_US" are "en"."""
    if not value:
        return None
    primary = re.split(r"[-_\s]", value.strip(), maxsplit=1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def _html_lang(html: bytes | str) -> str | None:
    if isinstance(html, bytes):
        html = html[:65536].decode("ascii", errors="replace")
    match = _HTML_LANG.search(html)
    return match.group(1).lower() if match else None


def _categories(categories: list[str] | None, tags: list[str] | None) -> tuple[str, ...]:
    """Categories then tags, each once, in page order (trafilatura joins a tag list with ", ")."""
    seen: dict[str, None] = {}
    for entry in [*(categories or ()), *(tags or ())]:
        for name in entry.split(", "):
            name = " ".join(name.split())
            if name:
                seen.setdefault(name, None)
    return tuple(seen)


# -- outlet selectors ------------------------------------------------------------------------------

# never article text, whatever a body selector's element holds
_NOT_TEXT = ("script", "style", "noscript", "template", "svg", "iframe", "form", "button",
             "figure", "figcaption")
# elements that start a new paragraph of the body
_BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "blockquote", "pre", "ul", "ol", "li", "dl", "dt", "dd",
    "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "header", "footer", "aside",
})


def _by_selectors(html: bytes | str, selectors: SelectorRules) -> dict[str, str]:
    """The fields the outlet's selectors find in the page: name -> text; a miss is absent."""
    if not any(getattr(selectors, name) for name in _SELECTOR_FIELDS):
        return {}
    from lxml import etree
    from lxml import html as lxml_html
    from lxml.cssselect import CSSSelector

    try:
        if isinstance(html, str):  # lxml refuses str with an encoding declaration
            parser = lxml_html.HTMLParser(encoding="utf-8")
            tree = lxml_html.document_fromstring(html.encode("utf-8"), parser=parser)
        else:
            tree = lxml_html.document_fromstring(html)
    except (etree.ParserError, ValueError):  # an empty or unparsable page
        return {}
    found: dict[str, str] = {}
    for name in _SELECTOR_FIELDS:
        selector = getattr(selectors, name)
        if not selector:
            continue
        elements = CSSSelector(selector)(tree)
        if name == "body":
            value = _body_text(elements)
        elif name == "published":
            value = _selected_date(elements[0]) if elements else None
        else:
            value = _clean(elements[0].text_content()) if elements else None
        if value:
            found[name] = value
    return found


def _body_text(elements: list) -> str | None:
    """Every matched element's text, one paragraph per line; one nested in another counts once."""
    matched = set(elements)
    lines: list[str] = []
    for element in elements:
        if any(ancestor in matched for ancestor in element.iterancestors()):
            continue
        for unwanted in element.xpath(" | ".join(f".//{tag}" for tag in _NOT_TEXT)):
            unwanted.drop_tree()
        lines.append(_with_breaks(element))
    text = "\n".join(lines)
    return text if text.strip() else None


def _with_breaks(element) -> str:
    """The element's text with a line break around every block and at every <br>.

    A line break in the markup is a space (in <pre>, a line break): it does not end a paragraph.
    """
    parts: list[str] = []

    def walk(node, tail: bool = True, pre: bool = False) -> None:
        if isinstance(node.tag, str):  # not a comment or processing instruction
            block = node.tag in _BLOCK_TAGS
            pre = pre or node.tag == "pre"
            parts.append("\n" if block else "")
            parts.append(_spaced(node.text, pre))
            for child in node:
                walk(child, pre=pre)
            parts.append("\n" if block or node.tag == "br" else "")
        if tail:
            parts.append(_spaced(node.tail, pre and node.tag != "pre"))

    walk(element, tail=False)  # the text after the element is not in it
    return "".join(parts)


def _spaced(text: str | None, pre: bool) -> str:
    if not text:
        return ""
    return text if pre else text.replace("\r", " ").replace("\n", " ")


def _selected_date(element) -> str | None:
    """ISO-8601 from a date element: its datetime or content attribute, else its text."""
    value = element.get("datetime") or element.get("content") or element.text_content()
    value = " ".join(value.split())
    if not value:
        return None
    moment = _iso_date(value)
    if moment is not None:
        return moment
    from html import escape

    import htmldate

    # a date written out ("Thursday, 14 March 2024 09:42"): htmldate reads it as page text
    return _iso_date(htmldate.find_date(
        f"<html><body><p>{escape(value)}</p></body></html>",
        outputformat=_DATE_FORMAT, original_date=True, extensive_search=True,
    ))


# -- outlet boilerplate rules ----------------------------------------------------------------------


@dataclass(frozen=True)
class _CompiledRules:
    cut_from: re.Pattern[str] | None
    drop_lines: re.Pattern[str] | None


@lru_cache(maxsize=256)
def _compile(cut_from: tuple[str, ...], drop_lines: tuple[str, ...]) -> _CompiledRules:
    def alternation(markers: tuple[str, ...]) -> re.Pattern[str] | None:
        markers = tuple(m for m in markers if m)
        return re.compile("|".join(map(re.escape, markers))) if markers else None

    return _CompiledRules(alternation(cut_from), alternation(drop_lines))


def apply_boilerplate(text: str, rules: BoilerplateRules) -> str:
    """``text`` (one paragraph per line) without the outlet's boilerplate.

    The first line holding a ``cut_from`` marker ends the article: it and all after it go.
    Lines holding a ``drop_lines`` marker go wherever they stand.
    """
    compiled = _compile(tuple(rules.cut_from), tuple(rules.drop_lines))
    if compiled.cut_from is not None:
        match = compiled.cut_from.search(text)
        if match is not None:
            text = text[: text.rfind("\n", 0, match.start()) + 1].rstrip("\n")
    if compiled.drop_lines is not None and compiled.drop_lines.search(text):
        drop = compiled.drop_lines.search
        text = "\n".join(line for line in text.split("\n") if not drop(line))
    return text


# -- worker processes -----------------------------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    # Never fork: the crawling process runs Twisted and its threads. A forkserver that has
    # imported trafilatura once starts (and after a timeout, replaces) workers quickly.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "trafilatura"])
        return context
    return multiprocessing.get_context("spawn")


def _serve(conn: Connection) -> None:
    """Worker loop: extract_article's arguments in, ("ok", result) or ("error", msg) out."""
    # Ctrl+C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # trafilatura warns about every page it discards; without handlers that goes to stderr
    logging.getLogger().addHandler(logging.NullHandler())
    conn.send("ready")  # imports are done: from here on the time limit is the page's alone
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        try:
            reply = ("ok", extract_article(*job))
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker lives on
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


#: seconds a new worker may take to import trafilatura (spawn) before it is given up
_STARTUP_TIMEOUT = 120.0


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_conn,), name="crawler-extraction", daemon=True
        )
        self.process.start()
        child_conn.close()
        try:
            ready = self.conn.poll(_STARTUP_TIMEOUT) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ExtractionError("an extraction worker failed to start")

    def stop(self, grace: float = 1.0) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(grace)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()
        self.process.close()


class ExtractorPool:
    """Runs :func:`extract_article` in worker processes with a time limit per page.

    ``extract`` is awaited inside the running asyncio loop; each call waits in an executor
    thread (one per worker) so the loop never blocks. Workers start on first use and are
    reused; one that overruns ``timeout`` is killed and replaced by the next call. The time
    this process stood still is not counted (:func:`~crawler.core.stalls.wait_without_stalls`).
    ``processes=0`` extracts inline in the calling thread, without a time limit.
    """

    def __init__(self, processes: int, timeout: float, second_opinion: bool = False) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.processes = processes
        self.timeout = timeout
        self.second_opinion = second_opinion
        self._closed = False
        self._slots: queue.SimpleQueue[list[_Worker | None]] = queue.SimpleQueue()
        self._all_slots: list[list[_Worker | None]] = []
        self._executor: ThreadPoolExecutor | None = None
        if processes:
            self._context = _context()
            self._executor = ThreadPoolExecutor(processes, thread_name_prefix="extraction")
            for _ in range(processes):
                slot: list[_Worker | None] = [None]
                self._all_slots.append(slot)
                self._slots.put(slot)

    async def extract(
        self,
        body: bytes | str,
        url: str,
        boilerplate: BoilerplateRules | None = None,
        encoding: str | None = None,
        selectors: SelectorRules | None = None,
    ) -> Extracted | None:
        import asyncio  # here: the workers import this module and never need it

        if self._closed:
            raise RuntimeError("the extractor pool is closed")
        job = (body, url, PlainBoilerplate.of(boilerplate), encoding,
               PlainSelectors.of(selectors), self.second_opinion)
        if self._executor is None:
            try:
                return extract_article(*job)
            except Exception as exc:
                raise ExtractionError(f"{type(exc).__name__}: {exc}") from exc
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._extract_in_worker, job)

    def _extract_in_worker(self, job: tuple) -> Extracted | None:
        # at most `processes` executor threads run this, so a slot is always free
        slot = self._slots.get()
        try:
            worker = slot[0]
            if worker is None or not worker.process.is_alive():
                slot[0] = None
                if worker is not None:  # died while idle (killed from outside, out of memory)
                    worker.kill()
                worker = slot[0] = _Worker(self._context)
            try:
                worker.conn.send(job)
                # the limit is on the time this process could wait: a pause of the whole
                # crawl (a paused container, SIGSTOP) is no overrun of the page
                ready = wait_without_stalls(worker.conn.poll, self.timeout, time.monotonic)
                if not ready:
                    slot[0] = None
                    worker.kill()
                    raise ExtractionTimeout(f"extraction took over {self.timeout:g} s: {job[1]}")
                status, value = worker.conn.recv()
            except (EOFError, OSError) as exc:
                slot[0] = None
                worker.kill()
                raise ExtractionError(f"extraction worker died on {job[1]}") from exc
        finally:
            self._slots.put(slot)
        if status == "error":
            raise ExtractionError(value)
        return value

    def worker_pids(self) -> list[int]:
        """Process ids of the workers running now."""
        pids = []
        for slot in self._all_slots:
            worker = slot[0]
            with contextlib.suppress(ValueError):  # closed by a thread meanwhile
                if worker is not None and worker.process.is_alive():
                    pids.append(worker.process.pid)
        return pids

    def close(self) -> None:
        """Stops and reaps the workers; waits for extractions in progress (up to ``timeout``)."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for slot in self._all_slots:
            worker, slot[0] = slot[0], None
            if worker is not None:
                worker.stop()

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
