"""The links of a page, resolved as a browser resolves them: one reader for the spider's
listings, the page judging, mirror notices, mirror discovery and ``crawler outlets init``.

A relative ``href`` is resolved against the page's ``<base href>`` when it has one (itself
resolved against the page's URL), else against the page's URL. Links that lead to no
document (``javascript:``, ``mailto:``, ``tel:``, a fragment of the page itself) are left
out; what else a link must be to count (on the outlet, an article) is each caller's to say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

if TYPE_CHECKING:
    from scrapy.http import TextResponse

#: the page's ``<a href>`` links, the element the search starts from included (a notice
#: block may be a link itself)
ANCHORS = "descendant-or-self::a[@href]"
_NO_DOCUMENT = ("javascript:", "mailto:", "tel:")
_BASE = "(//base[@href])[1]/@href"


@dataclass(frozen=True)
class Link:
    #: absolute, without its fragment
    url: str
    #: as the page wrote it, whitespace around it stripped
    href: str
    element: lxml.etree._Element

    @property
    def rel(self) -> frozenset[str]:
        return frozenset((self.element.get("rel") or "").split())

    @property
    def text(self) -> str:
        """The link's text, whitespace collapsed."""
        return " ".join(self.element.xpath("string()").split())


def page_tree(body: bytes) -> lxml.html.HtmlElement | None:
    """The parsed page; None for a body that parses to nothing (empty, only a declaration)."""
    try:
        return lxml.html.fromstring(body)
    except (ValueError, lxml.etree.ParserError):
        return None


def base_url(tree: lxml.etree._Element, page_url: str) -> str:
    """What the page's relative links are relative to: its first ``<base href>``, resolved
    against ``page_url``, when that is a web address; else ``page_url``."""
    hrefs = tree.getroottree().xpath(_BASE)
    if not hrefs:
        return page_url
    base = urljoin(page_url, hrefs[0].strip())
    # a base of another scheme would turn every relative link into one that leads nowhere
    return base if urlsplit(base).scheme in ("http", "https") else page_url


def link_url(href: str, base: str) -> str | None:
    """The absolute URL, without its fragment, of a stripped ``href`` relative to ``base``;
    None when it leads to no document."""
    if not href or href[0] == "#" or href[:11].lower().startswith(_NO_DOCUMENT):
        return None
    return urljoin(base, href).split("#", 1)[0]


def page_links(page: lxml.etree._Element | TextResponse, page_url: str,
               xpath: str = ANCHORS) -> list[Link]:
    """The links ``xpath`` selects under ``page`` (a parsed page or an element of one, or a
    Scrapy response), in page order, repeats included; ``page_url`` is where the page was
    served from."""
    root = page if isinstance(page, lxml.etree._Element) else page.selector.root
    base = base_url(root, page_url)
    resolved: dict[str, str | None] = {}  # listings repeat hrefs: each is resolved once
    links = []
    for element in root.xpath(xpath):
        href = (element.get("href") or "").strip()
        if href not in resolved:
            resolved[href] = link_url(href, base)
        url = resolved[href]
        if url is not None:
            links.append(Link(url, href, element))
    return links
