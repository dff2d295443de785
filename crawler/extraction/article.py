"""The article in one fetched page: text, title, date, authors, language, categories.

The page is parsed once (:func:`parse_page`); that tree is read for what the page declares of
itself, for the outlet's selectors and for its links, and handed to trafilatura, which works
on its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crawler.core.error_pages import error_page_heading, unavailable_text
from crawler.extraction.boilerplate import BoilerplateRules, apply_boilerplate
from crawler.extraction.options import DEFAULT_OPTIONS, ExtractionOptions, date_params
from crawler.extraction.second_opinion import (
    agreed_lines,
    justext_kept,
    readability_lines,
    readability_summary,
    second_opinion,
)
from crawler.extraction.selectors import SelectorRules, by_selectors
from crawler.extraction.text import (
    WORD,
    categories,
    clean,
    declared_date,
    decode,
    html_lang,
    iso_date,
    language_subtag,
    normalize,
    without_link_markup,
)
from crawler.language import guess_language
from crawler.metadata import Declared, clean_authors, declared, headline


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



def extract_article(
    body: bytes | str,
    url: str,
    boilerplate: BoilerplateRules | None = None,
    encoding: str | None = None,
    selectors: SelectorRules | None = None,
    options: ExtractionOptions = DEFAULT_OPTIONS,
) -> Extracted | None:
    """The article in ``body``, or None when the page has no article text.

    ``encoding`` is the one the response declared (Scrapy's ``response.encoding``); without it
    trafilatura guesses from the bytes. ``selectors`` (the outlet's) name fields by CSS; each
    one that finds nothing is left to trafilatura.
    """
    html = decode(body, encoding)
    tree = parse_page(html)
    document = trafilatura_document(tree, url, options)
    found = by_selectors(tree, selectors) if selectors is not None else {}
    if document is None and "body" not in found:
        return None
    page = declared(tree) if tree is not None else Declared()
    title = found.get("title") or headline(
        page, options.headline_shown_first, urlsplit(url).hostname) or clean(
        document.title if document else None)
    language = (language_subtag(document.language) if document else None) or html_lang(
        html) or language_subtag(page.language)
    if "body" in found:
        text = found["body"]
    else:
        text = body_text_of(document.body)
        if options.second_opinion:
            summary = readability_summary(tree)
            other = readability_lines(summary)
            text = agreed_lines(
                second_opinion(text, other), other, lambda: justext_kept(summary, language)
            )
    text = normalize(without_link_markup(text), title)
    if boilerplate is not None:
        text = apply_boilerplate(text, boilerplate)
    if not text or (tree is not None and _only_links(text, tree)):
        return None
    if language is None:  # the page does not say: the text does
        language = guess_language(text)
    authors = choose_authors(found.get("author"), page, document.author if document else None,
                       options.authors_declared_first)
    declares_article = bool(page.headline or page.authors or page.published)
    return Extracted(
        title=title,
        author=", ".join(authors) or None,
        published=found.get("published") or published_date(
            page, document.date if document else None, options.date_declared_first),
        language=language,
        text=text,
        categories=categories(document.categories, document.tags) if document else (),
        selector_fallback=bool(selectors and selectors.body) and "body" not in found,
        authors=authors,
        modified=declared_date(page.modified),
        error_page=error_page_heading(text, (page.page_title, *page.h1), declares_article)
        or unavailable_text(text, declares_article),
    )


def parse_page(html: bytes | str):
    """The page's one tree, as trafilatura parses it; None where it will not parse."""
    from trafilatura.utils import load_html

    try:
        return load_html(html)
    except Exception:  # noqa: BLE001 - a page that will not parse has no article
        return None


def trafilatura_document(tree, url: str, options: ExtractionOptions = DEFAULT_OPTIONS):
    """trafilatura's result for the parsed page (it works on a copy of the tree), or None."""
    import trafilatura  # here, not at the top: the crawling process never extracts itself

    if tree is None:
        return None
    return trafilatura.bare_extraction(
        tree, url=url, date_extraction_params=date_params(options.date_url_first),
        **options.trafilatura,
    )


def published_date(page: Declared, found: str | None,
                   declared_first: bool = DEFAULT_OPTIONS.date_declared_first) -> str | None:
    """The declared publication date and the one htmldate ``found``, in the chosen order;
    a date alone (as a URL gives it) takes the time of day of the other on the same day."""
    dates = [declared_date(page.published), iso_date(found)]
    if not declared_first:
        dates.reverse()
    chosen = next((d for d in dates if d), None)
    if chosen is not None and len(chosen) == 10:
        return next((d for d in dates if d and d[:10] == chosen and len(d) > 10), chosen)
    return chosen


def _only_links(text: str, tree) -> bool:
    """Every line of ``text`` is the text of a link of the page: navigation, not an article."""
    lines = set(text.split("\n"))
    for link in tree.iter("a"):
        lines.discard(" ".join(link.text_content().split()))
        if not lines:
            return True
    return False


def choose_authors(selected: str | None, page: Declared, guessed: str | None,
             declared_first: bool = DEFAULT_OPTIONS.authors_declared_first) -> tuple[str, ...]:
    """The outlet's selector's names, else the page's declared authors and those trafilatura
    found in the page, in the chosen order."""
    if selected:
        return clean_authors([selected], page.site_name) or (selected,)
    # trafilatura joins the names it finds with "; "
    found = clean_authors(guessed.split("; "), page.site_name) if guessed else ()
    return (page.authors or found) if declared_first else (found or page.authors)


def body_text_of(body) -> str:
    """trafilatura's text of its result tree, without the links it kept for judging.

    "" where the tree has no word outside its links: a page that is only navigation has no
    article text, however its links are written.
    """
    from lxml import etree
    from trafilatura.xml import xmltotxt

    if body is None or body.tag == "ref" or not any(
        WORD.search(text) for text in body.xpath(".//text()[not(ancestor::ref)]")
    ):
        return ""
    # strip_tags leaves the root alone: a tree that is one link (the tag checked above) would
    # come out as markdown
    etree.strip_tags(body, "ref")
    return xmltotxt(body, False) or ""
