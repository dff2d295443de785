"""The text of a page and of its fields: decoding, paragraphs, dates, language subtags,
word runs (pure, no trafilatura)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from email.utils import parsedate_to_datetime

from crawler.extraction.options import DATE_FORMAT


def decode(body: bytes | str, encoding: str | None) -> bytes | str:
    if isinstance(body, str) or not encoding:
        return body
    try:
        return body.decode(encoding, errors="replace")
    except LookupError:  # an encoding name Python does not know: let trafilatura guess
        return body


_LINK_MARKUP = re.compile(
    r"!?\[((?:[^\[\]\n\\]|\\.)*)\]\(\s*"
    r"(?:<(?:[a-z][a-z0-9+.-]*:|/)[^>\n]*>|(?:[a-z][a-z0-9+.-]*:|/)[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"\s*\)",
    re.IGNORECASE,
)


def without_link_markup(text: str) -> str:
    """``text`` with each markdown link as its label alone, whichever path the text took.

    The links trafilatura keeps to judge link density are stripped from its tree, but a
    fallback's text, or a page that writes such markup itself, would carry the targets into
    the stored text.
    """
    if "](" not in text:
        return text
    return _LINK_MARKUP.sub(lambda m: re.sub(r"\\([\[\]])", r"\1", m.group(1)), text)


def normalize(text: str, title: str | None) -> str:
    """One paragraph per line, runs of whitespace (including no-break spaces) as one space.

    A line that repeats the title (the page's headline) goes, wherever it stands: the title has
    its field, and a line readability adds may come before it.
    """
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line and line != title)


def clean(value: str | None) -> str | None:
    if not value:
        return None
    return " ".join(value.split()) or None


def iso_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        moment = datetime.strptime(value, DATE_FORMAT)
    except ValueError:
        try:
            moment = datetime.strptime(value, DATE_FORMAT.removesuffix("%z"))
        except ValueError:
            return value[:10] if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value) else None
    if moment.tzinfo is None and (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.isoformat()


def declared_date(value: str | None) -> str | None:
    """A declared date (ISO-8601, or as in e-mail headers) as :func:`iso_date` gives one."""
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


def language_subtag(value: str | None) -> str | None:
    """The primary language subtag, lower case: "en-GB" and "en_US" are "en"."""
    if not value:
        return None
    primary = re.split(r"[-_\s]", value.strip(), maxsplit=1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


_HTML_LANG = re.compile(
    r"""<html\b[^>]*?\slang\s*=\s*["']?\s*([A-Za-z]{2,3})(?![A-Za-z])""", re.IGNORECASE
)


def html_lang(html: bytes | str) -> str | None:
    if isinstance(html, bytes):
        html = html[:65536].decode("ascii", errors="replace")
    match = _HTML_LANG.search(html)
    return match.group(1).lower() if match else None


def categories(categories: list[str] | None, tags: list[str] | None) -> tuple[str, ...]:
    """Categories then tags, each once, in page order (trafilatura joins a tag list with ", ")."""
    seen: dict[str, None] = {}
    for entry in [*(categories or ()), *(tags or ())]:
        for name in entry.split(", "):
            name = " ".join(name.split())
            if name:
                seen.setdefault(name, None)
    return tuple(seen)


WORD = re.compile(r"\w+")


def word_runs(text: str, size: int = 4) -> Counter[tuple[str, ...]]:
    """The multiset of runs of ``size`` consecutive words (fewer words: one run of them all)."""
    words = WORD.findall(text)
    if len(words) < size:
        return Counter([tuple(words)])
    return Counter(zip(*(words[i:] for i in range(size)), strict=False))


# elements that start a new paragraph
BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "blockquote", "pre", "ul", "ol", "li", "dl", "dt", "dd",
    "table", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "header", "footer", "aside",
})


def with_breaks(element, skip: frozenset[str] = frozenset()) -> str:
    """The element's text with a line break around every block and at every <br>; the
    elements inside it tagged as in ``skip`` are left out (their tails stay), the tree as
    it is: it may be shared.

    A line break in the markup is a space (in <pre>, a line break): it does not end a paragraph.
    """
    parts: list[str] = []

    def walk(node, tail: bool = True, pre: bool = False) -> None:
        # not a comment or processing instruction, nor left out
        if isinstance(node.tag, str) and (node is element or node.tag not in skip):
            block = node.tag in BLOCK_TAGS
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
