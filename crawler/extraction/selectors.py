"""The fields an outlet's CSS selectors find in a page (its ``selectors:``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from crawler.extraction.options import DATE_FORMAT
from crawler.extraction.text import clean, iso_date, with_breaks


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
class PlainSelectors:
    """The selectors as plain data: what a worker is sent, so that it never imports the
    models."""

    body: str | None = None
    title: str | None = None
    published: str | None = None
    author: str | None = None

    @classmethod
    def of(cls, selectors: SelectorRules | None) -> PlainSelectors | None:
        if selectors is None:
            return None
        return cls(selectors.body, selectors.title, selectors.published, selectors.author)


FIELDS = ("body", "title", "published", "author")

# never article text, whatever a body selector's element holds
_NOT_TEXT = frozenset({"script", "style", "noscript", "template", "svg", "iframe", "form",
                       "button", "figure", "figcaption"})


def by_selectors(tree, selectors: SelectorRules) -> dict[str, str]:
    """The fields the outlet's selectors find in the parsed page: name -> text; a miss is
    absent. The tree is only read."""
    if tree is None or not any(getattr(selectors, name) for name in FIELDS):
        return {}
    from lxml.cssselect import CSSSelector

    found: dict[str, str] = {}
    for name in FIELDS:
        selector = getattr(selectors, name)
        if not selector:
            continue
        elements = CSSSelector(selector)(tree)
        if name == "body":
            value = _body_text(elements)
        elif name == "published":
            value = _selected_date(elements[0]) if elements else None
        else:
            value = clean(elements[0].text_content()) if elements else None
        if value:
            found[name] = value
    return found


def _body_text(elements: list) -> str | None:
    """Every matched element's text, one paragraph per line; one nested in another counts once."""
    matched = set(elements)
    lines = [with_breaks(element, skip=_NOT_TEXT) for element in elements
             if not any(ancestor in matched for ancestor in element.iterancestors())]
    text = "\n".join(lines)
    return text if text.strip() else None


def _selected_date(element) -> str | None:
    """ISO-8601 from a date element: its datetime or content attribute, else its text."""
    value = element.get("datetime") or element.get("content") or element.text_content()
    value = " ".join(value.split())
    if not value:
        return None
    moment = iso_date(value)
    if moment is not None:
        return moment
    from html import escape

    import htmldate

    # a date written out ("Thursday, 14 March 2024 09:42"): htmldate reads it as page text
    return iso_date(htmldate.find_date(
        f"<html><body><p>{escape(value)}</p></body></html>",
        outputformat=DATE_FORMAT, original_date=True, extensive_search=True,
    ))
