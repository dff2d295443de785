"""An article's headline, authors and dates from what the page declares about itself.

Publishers state these for search engines and social networks: schema.org JSON-LD
(``NewsArticle``, ``Article`` and kin), OpenGraph (``og:title``, ``article:published_time``)
and ``<meta>`` tags. Those are read first, before anything guessed from the page's text
(trafilatura's heuristics are the fallback, in crawler/extraction/article.py). Pure functions of an
lxml tree; nothing here knows any language.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

__all__ = ["Declared", "clean_authors", "declared", "headline"]

#: schema.org types of an article (and of a page that is one)
ARTICLE_TYPES = frozenset({
    "Article", "NewsArticle", "ReportageNews", "AnalysisNewsArticle", "OpinionNewsArticle",
    "ReviewNewsArticle", "BackgroundNewsArticle", "AskPublicNewsArticle", "LiveBlogPosting",
    "BlogPosting", "SocialMediaPosting", "TechArticle", "ScholarlyArticle", "Report",
    "SatiricalArticle", "AdvertiserContentArticle", "MedicalScholarlyArticle", "Review",
})
_ORGANIZATION_TYPES = frozenset({"Organization", "NewsMediaOrganization", "Corporation",
                                 "WebSite", "Brand"})


@dataclass(frozen=True)
class Declared:
    """What the page says of itself; None (or empty) where it says nothing."""

    headline: str | None = None
    #: og:title, twitter:title: a headline, sometimes with the site's name
    social_title: str | None = None
    #: <title>: the headline with the site's name or section, mostly
    page_title: str | None = None
    #: the visible headline(s): <h1> texts
    h1: tuple[str, ...] = ()
    site_name: str | None = None
    authors: tuple[str, ...] = ()
    published: str | None = None
    modified: str | None = None
    language: str | None = None


def declared(tree) -> Declared:
    """Everything :class:`Declared` holds, from a parsed page (lxml.html)."""
    article = _first_article(_json_ld(tree))
    meta = _meta(tree)
    site_name = _text(_first_meta(meta, ("og:site_name", "application-name"))
                      or _organization_name(article.get("publisher")))
    authors = clean_authors(_ld_authors(article.get("author")), site_name)
    if not authors:
        authors = clean_authors(
            _split_meta(meta, ("author", "article:author", "parsely-author", "sailthru.author",
                               "dc.creator", "dcterms.creator", "byl")), site_name)
    title = tree.find(".//title")
    return Declared(
        headline=_text(article.get("headline")) or _text(article.get("name")),
        social_title=_text(_first_meta(meta, ("og:title", "twitter:title"))),
        page_title=_text(title.text_content()) if title is not None else None,
        h1=tuple(t for t in (_text(h.text_content()) for h in tree.iter("h1")) if t)[:5],
        site_name=site_name,
        authors=authors,
        published=_text(article.get("datePublished")) or _first_meta(meta, _PUBLISHED_META),
        modified=_text(article.get("dateModified")) or _first_meta(meta, _MODIFIED_META),
        language=_text(article.get("inLanguage")) or _first_meta(
            meta, ("og:locale", "content-language", "dc.language", "language")),
    )


_PUBLISHED_META = ("article:published_time", "og:published_time", "datepublished",
                   "parsely-pub-date", "sailthru.date", "dc.date.issued", "dcterms.created",
                   "dc.date", "pubdate", "publishdate", "date")
_MODIFIED_META = ("article:modified_time", "og:updated_time", "datemodified",
                  "dcterms.modified", "last-modified")


# -- headline ------------------------------------------------------------------------------------

# what joins a headline to the site's name or section in a <title>: a spaced separator
_SEPARATORS = re.compile(r"\s+[|\-–—:·•»›/]+\s+|\s*[|·•»›]\s*")


def headline(page: Declared, shown_first: bool = True, host: str | None = None) -> str | None:
    """The headline: without the site's name after it or a section before it.

    The declared headline (JSON-LD), else the social one, else <title>; where the visible
    <h1> is one of the parts a separator splits it into (or the whole), the <h1> is it.
    ``host`` (the page's) names the site where the page does not.
    """
    candidates = [c for c in (page.headline, page.social_title, page.page_title) if c]
    site_name = page.site_name or _host_label(host)
    site = _fold(site_name) if site_name else None
    h1s = list(dict.fromkeys(h for h in page.h1 if _fold(h) != site and len(h.split()) >= 2))
    if shown_first and len(h1s) == 1:
        # a visible headline that is a declared one with a kicker before it: the declared one
        shown = _fold(h1s[0])
        for candidate in candidates:
            cut = _without_site(candidate, site_name)
            if len(cut.split()) >= 3 and _fold(cut) != shown and _fold(cut) in shown:
                return cut
        return h1s[0]
    if not candidates:
        return h1s[0] if len(h1s) == 1 else None
    folded_h1 = {_fold(h): h for h in h1s}
    for candidate in candidates:
        if _fold(candidate) in folded_h1:
            return candidate
    for candidate in candidates:
        for part in _parts(candidate):
            if _fold(part) in folded_h1:
                return part
    return _without_site(candidates[0], site_name)


def _host_label(host: str | None) -> str | None:
    """The name a host's owner goes by: "tastewise" of www.tastewise.io."""
    if not host:
        return None
    labels = [label for label in host.lower().split(".") if label not in ("www", "m", "amp")]
    return labels[-2] if len(labels) >= 2 else None


def _parts(title: str) -> list[str]:
    """The title's parts between separators, and each run of them from either end."""
    pieces = _SEPARATORS.split(title)
    if len(pieces) < 2:
        return []
    seps = _SEPARATORS.findall(title)
    runs = []
    for end in range(len(pieces) - 1, 0, -1):  # dropping parts at the end: the site's name
        runs.append(pieces[0] + "".join(s + p for s, p in zip(seps[: end - 1], pieces[1:end],
                                                                  strict=True)))
    for start in range(1, len(pieces)):  # dropping parts at the start: a section
        runs.append(pieces[start] + "".join(s + p for s, p in zip(seps[start:],
                                                                      pieces[start + 1:],
                                                                      strict=True)))
    return runs


def _without_site(title: str, site_name: str | None) -> str:
    """``title`` without a first or last part that is the site's name, and without a short
    section name between the headline and the site's name ("Headline - Panorama - Site")."""
    pieces = _SEPARATORS.split(title)
    if len(pieces) < 2 or not site_name:
        return title
    site = _fold(site_name)
    seps = _SEPARATORS.findall(title)

    def is_site(piece: str) -> bool:
        folded = _fold(piece)
        return folded == site or (site in folded and len(piece) < 40) or (
            folded and folded in site) or folded.replace(" ", "") == site.replace(" ", "")

    if is_site(pieces[-1]):
        pieces, seps = pieces[:-1], seps[:-1]
        if len(pieces) > 1 and len(pieces[-1].split()) <= 2 < len(pieces[0].split()):
            pieces, seps = pieces[:-1], seps[:-1]
    elif is_site(pieces[0]):
        pieces, seps = pieces[1:], seps[1:]
    else:
        return title
    joined = pieces[0] + "".join(s + p for s, p in zip(seps, pieces[1:], strict=True))
    return joined.strip() or title


def _fold(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


# -- authors -------------------------------------------------------------------------------------

# "By" and its kin before a name, in the languages of the news the crawler meets most; a
# name without one is left as it is, so a missing word costs nothing
_BY = re.compile(
    r"^(?:by|from|written by|words by|von|vom|par|por|per|di|da|door|av|af|przez|od|tekst|"
    r"text|texto|testo|autor|autorin|author|авторы?|от)\s*[:\s]\s*", re.IGNORECASE)
_SPLIT_AUTHORS = re.compile(r"\s*(?:,|;|\||/|&|\band\b|\bund\b|\bet\b|\by\b|\be\b|\bog\b|"
                            r"\bi\b|\boch\b|\ben\b|\bund\b)\s*", re.IGNORECASE)
_DATE_LIKE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}:\d{2}|\b(?:19|20)\d{2}\b")
_BRACKETED = re.compile(r"\s*[(\[][^()\[\]]*(?:[)\]]|$)")
_EMAIL_OR_URL = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")


def clean_authors(names: Iterable[str], site_name: str | None = None) -> tuple[str, ...]:
    """Person names, each once: no "By", no dates, e-mails or URLs, not the site's name.

    A credit that lists several ("A, B and C") is split; a part that is no name (a role, a
    date, a place after a comma) is left out by shape: names have 2 to 5 words of letters,
    each beginning with a capital, or are what the page gave whole.
    """
    site = _fold(site_name) if site_name else None
    found: dict[str, None] = {}
    for raw in names:
        raw = " ".join(unescape(raw).split())
        if not raw or _EMAIL_OR_URL.fullmatch(raw):
            continue
        raw = _EMAIL_OR_URL.sub("", _BY.sub("", raw))
        # initials or a role in brackets ("Elena Oberholzer (obe)"), cut or not
        raw = _BRACKETED.sub("", raw).strip(" ,;|-–—:")
        parts = [p.strip(" .,;|-–—:()\"'“”„«»") for p in _SPLIT_AUTHORS.split(raw)]
        names_here = [p for p in parts if _is_name(p)]
        for name in names_here:
            if site and _fold(name) == site:
                continue
            found.setdefault(name, None)
    return tuple(found)


def _is_name(part: str) -> bool:
    if not part or _DATE_LIKE.search(part) or ":" in part:  # "Image: Getty", "Foto: dpa"
        return False
    words = part.split()
    return 1 <= len(words) <= 5 and all(w[:1].isupper() or not w[:1].isalpha() for w in words
                                        if len(w) > 3) and any(c.isalpha() for c in part)


# -- JSON-LD -------------------------------------------------------------------------------------


def _json_ld(tree) -> Iterator[dict[str, Any]]:
    """Every object of the page's JSON-LD, nested ones included, in page order."""
    for script in tree.xpath('//script[contains(translate(@type, "LDJSON", "ldjson"), '
                             '"ld+json")]'):
        source = (script.text or "").strip()
        if not source:
            continue
        try:
            data = json.loads(source, strict=False)
        except ValueError:
            try:  # a trailing semicolon or comma, or two objects one after another
                data = json.loads(f"[{source.rstrip(';, ').replace('}{', '},{')}]",
                                  strict=False)
            except ValueError:
                continue
        yield from _objects(data)


def _objects(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 6:
        return
    if isinstance(data, list):
        for entry in data:
            yield from _objects(entry, depth + 1)
    elif isinstance(data, dict):
        yield data
        for key in ("@graph", "mainEntity", "mainEntityOfPage", "itemListElement"):
            if key in data:
                yield from _objects(data[key], depth + 1)


def _types(entry: dict[str, Any]) -> set[str]:
    kind = entry.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {k.rsplit("/", 1)[-1] for k in kinds if isinstance(k, str)}


def _first_article(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The first article object (one with a headline before one without), else {}."""
    articles = [entry for entry in objects if _types(entry) & ARTICLE_TYPES]
    with_headline = [a for a in articles if a.get("headline")]
    return (with_headline or articles or [{}])[0]


def _ld_authors(value: Any) -> list[str]:
    """The names of JSON-LD authors that are people (or of unknown type)."""
    values = value if isinstance(value, list) else [value]
    names = []
    for entry in values:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, dict) and not _types(entry) & _ORGANIZATION_TYPES:
            name = entry.get("name")
            if isinstance(name, list):
                names.extend(n for n in name if isinstance(n, str))
            elif isinstance(name, str):
                names.append(name)
    return names


def _organization_name(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else None
    return value if isinstance(value, str) else None


# -- meta tags -----------------------------------------------------------------------------------


def _meta(tree) -> dict[str, list[str]]:
    """<meta> name or property (lower case) -> contents, in page order."""
    found: dict[str, list[str]] = {}
    for element in tree.iter("meta"):
        key = element.get("property") or element.get("name") or element.get("itemprop") or (
            element.get("http-equiv"))
        content = element.get("content")
        if key and content and content.strip():
            found.setdefault(key.strip().lower(), []).append(content.strip())
    return {key: values for key, values in found.items()}


def _first_meta(meta: dict[str, list[str]], keys: Iterable[str]) -> str | None:
    for key in keys:
        if meta.get(key):
            return meta[key][0]
    return None


def _split_meta(meta: dict[str, list[str]], keys: Iterable[str]) -> list[str]:
    """The values of the first key that has any (one name a tag, or a list in one)."""
    for key in keys:
        values = [v for v in meta.get(key, ()) if not _EMAIL_OR_URL.fullmatch(v)]
        if values:
            return values
    return []


def _text(value: Any) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str)), None)
    if not isinstance(value, str):
        return None
    return " ".join(unescape(value).split()) or None
