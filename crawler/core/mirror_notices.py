"""Mirrors an outlet names on its own pages: one parser for ``crawler outlets init`` and for
the crawl's mirror discovery (:mod:`crawler.extensions.mirror_discovery`).

An outlet tells its readers where else it can be read: a notice in its boilerplate ("can also
be accessed at the following alternate addresses", with links or bare host names), an
``Onion-Location`` header, a ``<link rel="canonical">`` or ``og:url`` naming another host.
What is found here is only a *candidate*: a page can name any host, so nothing here is
trusted until the host served the outlet's own articles (:mod:`crawler.mirror_verification`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import lxml.html

from crawler.core.links import page_links, page_tree

#: phrases that open a mirror notice, when the outlet file gives none (``mirror_notices``);
#: compared case-insensitively with the text of one element
DEFAULT_MIRROR_NOTICES = (
    "alternate address",
    "alternative address",
    "also be accessed at",
    "new address",
    "mirror site",
)
#: hosts one page may name: a notice naming more is read for its first ones only
MAX_PER_PAGE = 5

NOTICE = "notice"
ONION_LOCATION = "onion_location"
CANONICAL = "canonical"
OG_URL = "og_url"
#: where a mirror in rotation redirected off the outlet
REDIRECT = "redirect"
#: an article link of the outlet's feed (crawler.extensions.mirror_discovery.feed_hosts)
FEED = "feed"

# a host name written as text ("www.presstv.co.uk"); file names that look like one are not
_HOST_TEXT = re.compile(
    r"(?<![\w.@/-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62})"
    r"(:\d{1,5})?(?![\w-])", re.IGNORECASE)
_NOT_HOSTS = frozenset({"html", "htm", "php", "asp", "aspx", "jsp", "jpg", "jpeg", "png",
                        "gif", "svg", "webp", "pdf", "css", "js", "xml", "rss", "txt"})
# cheap looks at the bytes before a page is parsed
_CANONICAL = re.compile(
    rb"""<link\b[^>]*?\brel\s*=\s*["']?canonical\b[^>]*>""", re.IGNORECASE)
_OG_URL = re.compile(
    rb"""<meta\b[^>]*?\bproperty\s*=\s*["']?og:url\b[^>]*>""", re.IGNORECASE)
_ATTR = {name: re.compile(rb"""\b""" + name + rb"""\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
         for name in (b"href", b"content")}
_BLOCKS = frozenset({"body", "html", "main", "article"})


@dataclass(frozen=True)
class NamedMirror:
    #: ``scheme://host[:port]``, host in lower case
    base: str
    #: how the page named it: NOTICE, ONION_LOCATION, CANONICAL or OG_URL
    source: str


def base_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL that names a host, else None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None  # a URL with credentials is never a mirror (they would be logged)
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def notice_blocks(tree: lxml.html.HtmlElement,
                  phrases: Iterable[str] = DEFAULT_MIRROR_NOTICES) -> list[lxml.html.HtmlElement]:
    """The elements that hold a mirror notice and what it names: the notice's parent (the
    notice is a line of a block that lists the addresses), or, where that parent is the page
    or the article itself, the notice and the element after it."""
    wanted = [p.lower() for p in phrases if p.strip()]
    blocks: list[lxml.html.HtmlElement] = []
    for node in tree.iter():
        if not isinstance(node.tag, str) or node.tag in ("script", "style"):
            continue
        own = " ".join([node.text or ""] + [child.tail or "" for child in node]).lower()
        if not any(phrase in own for phrase in wanted):
            continue
        parent = node.getparent()
        if parent is None or parent.tag in _BLOCKS:
            following = node.getnext()
            found = [node] + ([following] if following is not None else [])
        else:
            found = [parent]
        blocks += [b for b in found if not any(b is seen for seen in blocks)]
    return blocks


def named_in_block(block: lxml.html.HtmlElement, page_url: str) -> list[str]:
    """Base URLs a notice block names: its links, then host names written as text."""
    bases = []
    for link in page_links(block, page_url):
        base = base_of(link.url)
        if base:
            bases.append(base)
    scheme = urlsplit(page_url).scheme or "https"
    for match in _HOST_TEXT.finditer(block.text_content()):
        host = match.group(1).lower()
        if host.rsplit(".", 1)[-1] in _NOT_HOSTS:
            continue
        base = base_of(f"{scheme}://{host}{match.group(2) or ''}")
        if base:
            bases.append(base)
    return list(dict.fromkeys(bases))


def _attribute(tag: bytes, name: bytes) -> str | None:
    match = _ATTR[name].search(tag)
    return match.group(1).decode("latin-1") if match else None


def named_mirrors(body: bytes, url: str, headers: Mapping[str, str] | None = None,
                  phrases: Iterable[str] = DEFAULT_MIRROR_NOTICES,
                  known: Collection[str] = (), limit: int = MAX_PER_PAGE) -> list[NamedMirror]:
    """The hosts a page names as the outlet's, other than the ``known`` ones (host[:port]), in
    the order found, at most ``limit`` (a notice naming dozens of hosts is not a list of
    mirrors to try): the ``Onion-Location`` header, the canonical link and ``og:url``, the
    notices' links and host names."""
    found: list[NamedMirror] = []
    known = {k.lower() for k in known}

    def add(base: str | None, source: str) -> None:
        if (base and urlsplit(base).netloc not in known
                and all(n.base != base for n in found)):
            found.append(NamedMirror(base, source))

    for name, value in (headers or {}).items():
        if name.lower() == "onion-location":
            add(base_of(value), ONION_LOCATION)
    for pattern, attribute, source in ((_CANONICAL, b"href", CANONICAL),
                                       (_OG_URL, b"content", OG_URL)):
        for tag in pattern.findall(body):
            target = _attribute(tag, attribute)
            if target:
                add(base_of(urljoin(url, target)), source)
    phrases = tuple(phrases)
    lowered = body.lower()
    if any(p.lower().encode("utf-8") in lowered for p in phrases if p.strip()):
        tree = page_tree(body)
        if tree is not None:
            for block in notice_blocks(tree, phrases):
                for base in named_in_block(block, url):
                    add(base, NOTICE)
    return found[:limit]
