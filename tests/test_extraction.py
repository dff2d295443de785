"""Article extraction on real HTML, and the worker pool that bounds its time per page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lxml.html
import pytest
from fault_schedule import DEAD_END_PAGE
from nginx_outlet import SORRY_PAGE_IN_TEMPLATE

from crawler.core.error_pages import (
    ERROR_PAGE_MAX_TEXT,
    UNAVAILABLE_MAX_TEXT,
    error_page_heading,
    unavailable_text,
)
from crawler.core.outlets import Boilerplate, OutletError, Selectors, load_outlet_file
from crawler.extraction import (
    Extracted,
    ExtractionError,
    ExtractionOptions,
    ExtractionTimeout,
    ExtractorPool,
    PlainSelectors,
    apply_boilerplate,
    extract_article,
)
from crawler.extraction.article import parse_page
from crawler.extraction.second_opinion import (
    agreed_lines,
    justext_kept,
    readability_lines,
    readability_summary,
    readability_text,
    second_opinion,
)
from crawler.extraction.text import normalize

URL = "https://www.presstv.ir/Detail/2024/03/14/722115/Iran-oil-exports-Asia-record"

PARAGRAPHS = [
    "Iran's crude oil exports to Asian buyers climbed to their highest level in five years "
    "in February, according to tanker-tracking data compiled by independent analysts.",
    "Shipments averaged about 1.6 million barrels per day over the month, up from 1.4 million "
    "in January, with most cargoes discharged at independent refineries on China's east coast.",
    "Oil Minister Javad Owji told reporters in Tehran on Wednesday that the country had found "
    "new customers despite sanctions and that production capacity would keep expanding.",
    "Analysts said the rise reflected steady demand from refiners seeking discounted barrels, "
    "as well as a larger fleet of tankers willing to carry Iranian oil across the region.",
    "The National Iranian Oil Company plans to raise output at several southern fields this "
    "year, with new wells scheduled to come online before the end of the Iranian calendar year.",
]

ARTICLE_PAGE = f"""<!DOCTYPE html>
<html lang="en-US">
<head>
<meta charset="utf-8">
<title>Iran's oil exports to Asia hit five-year high | Press TV</title>
<meta property="og:title" content="Iran's oil exports to Asia hit five-year high">
<meta property="og:type" content="article">
<meta property="og:site_name" content="Press TV">
<meta property="og:url" content="{URL}">
<meta name="author" content="Maryam Hosseini">
<meta property="article:published_time" content="2024-03-14T09:42:00+03:30">
<meta property="article:section" content="Economy">
<meta property="article:tag" content="Oil">
<meta property="article:tag" content="Asia">
<link rel="canonical" href="{URL}">
</head>
<body>
<header class="site-header">
  <nav class="main-nav"><ul>
    <li><a href="/">Home</a></li><li><a href="/Section/10101">Iran</a></li>
    <li><a href="/Section/10102">Economy</a></li><li><a href="/Section/10104">World</a></li>
    <li><a href="/Section/10105">Video</a></li><li><a href="/Section/10106">Opinion</a></li>
  </ul></nav>
</header>
<main>
<article class="news-detail">
  <h1>Iran's oil exports to Asia hit five-year high</h1>
  <div class="byline">By Maryam Hosseini &middot; Thu Mar 14, 2024 09:42AM</div>
  <div class="body">
    {"".join(f"<p>{p}</p>" for p in PARAGRAPHS[:3])}
    <p><strong>Press TV News Roku</strong>: get our channel on your streaming device today.</p>
    {"".join(f"<p>{p}</p>" for p in PARAGRAPHS[3:])}
    <p>SHARE THIS ARTICLE</p>
    <p>Press TV's website can also be accessed at the following alternate addresses:</p>
    <p>www.presstv.co.uk</p>
    <p>www.presstv.tv</p>
  </div>
</article>
<aside class="related"><h3>Related</h3><ul>
  <li><a href="/Detail/2024/03/13/1">Gas exports to Iraq resume after payment deal</a></li>
  <li><a href="/Detail/2024/03/12/2">Rial firms as central bank widens currency window</a></li>
</ul></aside>
</main>
<footer class="site-footer">
  <p>Copyright &copy; 2024 Press TV. All rights reserved.</p>
  <ul><li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li></ul>
</footer>
</body>
</html>
"""

NO_ARTICLE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><title>Press TV</title></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/Section/10102">Economy</a></li></ul></nav>
<footer><p>Copyright &copy; 2024 Press TV</p></footer>
</body></html>
"""

RULES = Boilerplate(
    cut_from=[
        "SHARE THIS ARTICLE",
        "Press TV's website can also be accessed at the following alternate addresses",
    ],
    drop_lines=["Press TV News Roku", "Follow Press TV on"],
)


def slow_page(paragraphs: int = 40_000) -> bytes:
    """A real, large page: trafilatura needs many seconds for it (about 20 s per 3 MB here)."""
    blocks = "".join(
        f"<div class='c{i % 7}'><p>Paragraph {i} of a very long page, about the economy and "
        f"trade.</p><a href='/x{i}'>link {i}</a></div>"
        for i in range(paragraphs)
    )
    page = f"<html lang='en'><head><title>Long</title></head><body><article>{blocks}"
    return (page + "</article></body></html>").encode()


# -- extract_article ----------------------------------------------------------------------------


def test_metadata_from_the_page():
    extracted = extract_article(ARTICLE_PAGE.encode(), URL, RULES, encoding="utf-8")
    assert extracted is not None
    assert extracted.title == "Iran's oil exports to Asia hit five-year high"
    assert extracted.author == "Maryam Hosseini"
    assert extracted.published == "2024-03-14T09:42:00+03:30"
    assert extracted.language == "en"
    assert "Economy" in extracted.categories
    assert {"Oil", "Asia"} <= set(extracted.categories)


def test_an_error_page_in_the_sites_template_is_told_by_its_heading():
    extracted = extract_article(SORRY_PAGE_IN_TEMPLATE, URL, encoding="utf-8")
    # its apology passes for a short text: the page says what it is
    assert len(extracted.text) > 200
    assert extracted.error_page == "Page temporarily unavailable | Demo News"
    # the same words as a headline over an article's metadata, or over an article's text
    dated = SORRY_PAGE_IN_TEMPLATE.replace(
        b"</head>", b'<meta property="article:published_time" content="2024-03-14">'
                    b"</head>")
    assert extract_article(dated, URL, encoding="utf-8").error_page is None
    assert extract_article(ARTICLE_PAGE.replace(
        "<title>", "<title>Sorry, ").encode(), URL, encoding="utf-8").error_page is None


def test_error_page_headings_in_several_languages():
    for heading in ("404 - Page Not Found", "Oops! That page can’t be found.", "Error",
                    "Service temporarily unavailable", "Seite nicht gefunden",
                    "Page introuvable", "Página no encontrada", "Страница не найдена",
                    "الصفحة غير موجودة", "صفحه مورد نظر یافت نشد"):
        assert error_page_heading("We could not find it.", [None, heading], False) == heading
    assert error_page_heading("We could not find it.", ["Oil exports hit a high"], False) \
        is None
    assert error_page_heading("x" * (ERROR_PAGE_MAX_TEXT + 1), ["Error"], False) is None
    assert error_page_heading("We could not find it.", ["Error"], True) is None


def test_a_tiny_page_whose_text_says_it_is_not_there_is_an_error_page():
    # its heading says nothing ("Notice"): its whole text says it
    extracted = extract_article(DEAD_END_PAGE, URL, encoding="utf-8")
    assert extracted.text == "This content is not available at the moment."
    assert extracted.error_page == extracted.text
    # the same line on a page that declares an article (a date): left to the text checks
    dated = DEAD_END_PAGE.replace(
        b"</head>", b'<meta property="article:published_time" content="2024-03-14"></head>')
    assert extract_article(dated, URL, encoding="utf-8").error_page is None
    # a brief as short that says nothing of the kind
    brief = DEAD_END_PAGE.replace(b"This content is not available at the moment.",
                                  b"The council met on Monday and extended the night buses.")
    assert extract_article(brief, URL, encoding="utf-8").error_page is None


def test_texts_that_say_the_content_is_not_there_in_several_languages():
    for text in ("This content is not available at the moment.",
                 "Sorry, this article has been removed.", "The page could not be found.",
                 "Dieser Inhalt ist nicht mehr verfügbar.", "Ce contenu n’est plus disponible.",
                 "Este contenido no está disponible.", "Questo contenuto non è più disponibile.",
                 "Deze pagina is niet meer beschikbaar.", "Este conteúdo não está disponível.",
                 "Страница не найдена.", "المحتوى غير موجود", "页面不存在"):
        assert unavailable_text(text, False) == text, text
    assert unavailable_text("The council met on Monday.", False) is None
    # longer than a line: an article may say it of something ("the minister was not
    # available for comment"); one that declares an article is one
    line = "This content is not available at the moment. "
    assert unavailable_text(line + "x" * UNAVAILABLE_MAX_TEXT, False) is None
    assert unavailable_text(line, True) is None


def test_body_kept_and_boilerplate_removed():
    extracted = extract_article(ARTICLE_PAGE.encode(), URL, RULES, encoding="utf-8")
    assert extracted is not None
    assert extracted.text == "\n".join(PARAGRAPHS)
    for gone in ("SHARE THIS ARTICLE", "alternate addresses", "presstv.co.uk", "Roku",
                 "Home", "Copyright", "Gas exports to Iraq"):
        assert gone not in extracted.text


def test_rules_are_what_removes_the_outlet_boilerplate():
    # without the outlet's rules trafilatura keeps the share bar and the mirror notice
    bare = extract_article(ARTICLE_PAGE.encode(), URL, encoding="utf-8")
    assert bare is not None
    assert "SHARE THIS ARTICLE" in bare.text
    assert "www.presstv.tv" in bare.text
    assert "Press TV News Roku" in bare.text
    assert bare.text.startswith(PARAGRAPHS[0])  # the headline is the title, not the text


def test_page_without_article_text_is_none():
    assert extract_article(NO_ARTICLE_PAGE.encode(), "https://www.presstv.ir/") is None


def test_page_that_is_only_boilerplate_is_none():
    page = ARTICLE_PAGE
    for paragraph in PARAGRAPHS:
        page = page.replace(f"<p>{paragraph}</p>", "")
    assert extract_article(page, URL) is not None  # the notice alone is "text" to trafilatura
    assert extract_article(page, URL, RULES) is None


# one character of text, nested deeper than trafilatura reads, and a link home: all that is
# left to trafilatura is the link, which it keeps as the whole result tree
DEEP_NESTING_PAGE = (
    "<html><head><title>Press TV</title></head><body>"
    "<a href='http://www.presstv.ir/'>Home</a>"
    + "<div>" * 5000 + "x" + "</div>" * 5000
    + "</body></html>"
)

LINKED_PAGE = ARTICLE_PAGE.replace(
    PARAGRAPHS[1], PARAGRAPHS[1].replace(
        "independent refineries", '<a href="https://www.presstv.ir/Section/10102">independent '
        'refineries</a>')
).replace(
    PARAGRAPHS[2], PARAGRAPHS[2].replace("Javad Owji", '<a href="/tag/owji">Javad Owji</a>')
)


@pytest.mark.parametrize("second", [True, False])
def test_page_of_one_deeply_nested_character_and_a_link_has_no_text(second):
    options = ExtractionOptions(second_opinion=second)
    assert extract_article(DEEP_NESTING_PAGE, "http://www.presstv.ir/a", options=options) is None
    stale = Selectors(body="div.gone")
    assert extract_article(DEEP_NESTING_PAGE, "http://www.presstv.ir/a", selectors=stale,
                           options=ExtractionOptions(second_opinion=second)) is None


def test_a_page_that_is_only_links_has_no_text():
    links = "".join(f"<p><a href='/section/{i}'>Section number {i} of the site</a></p>"
                    for i in range(12))
    page = f"<html><body><main>{links}</main></body></html>"
    assert extract_article(page, "http://www.presstv.ir/a") is None


@pytest.mark.parametrize("second", [True, False])
def test_links_in_the_article_leave_their_words_and_no_markup(second):
    extracted = extract_article(LINKED_PAGE.encode(), URL, RULES, "utf-8",
                                options=ExtractionOptions(second_opinion=second))
    assert extracted is not None
    assert extracted.text == "\n".join(PARAGRAPHS)
    assert "](" not in extracted.text and "http" not in extracted.text


def test_selected_body_with_links_has_no_markup():
    page = """<html><body><div id="story"><p>Shipments rose, <a href="/x">tanker data</a>
    show.</p><p>See [the report](<a href="https://example.com/r">https://example.com/r</a>).</p>
    </div></body></html>"""
    extracted = extract_article(page, URL, selectors=Selectors(body="#story"))
    assert extracted is not None
    assert extracted.text == "Shipments rose, tanker data show.\nSee the report."


def test_markdown_links_a_page_writes_itself_are_their_labels():
    # a page's own text in markdown: the targets would be links in all but name
    paragraphs = [*PARAGRAPHS[:2], PARAGRAPHS[2] + " Source: [NIOC](<a href='https://nioc.ir/'>"
                  "https://nioc.ir/</a>) and [the ministry](/fa/news)."]
    page = ARTICLE_PAGE
    for old, new in zip(PARAGRAPHS[:3], paragraphs, strict=True):
        page = page.replace(old, new)
    extracted = extract_article(page, URL, RULES)
    assert extracted is not None
    assert extracted.text.split("\n")[2] == PARAGRAPHS[2] + " Source: NIOC and the ministry."


def test_second_opinion_drops_a_teaser_list_trafilatura_keeps():
    teasers = "".join(
        f'<li><a href="/Detail/2024/03/1{i}/{i}">{headline}</a></li>'
        for i, headline in enumerate([
            "Rial firms as central bank widens currency window",
            "Tehran stock index closes at a record high on Monday",
            "Caspian shipping line adds a weekly route to Russia",
        ])
    )
    page = ARTICLE_PAGE.replace('<div class="body">', f'<div class="body"><ul>{teasers}</ul>')
    extracted = extract_article(page.encode(), URL, RULES, encoding="utf-8",
                                options=ExtractionOptions(second_opinion=True))
    assert extracted is not None
    # trafilatura keeps the list; readability leaves it out and agrees on everything else
    assert extracted.text == "\n".join(PARAGRAPHS)


def test_readability_text_is_the_article_paragraphs():
    text = readability_text(ARTICLE_PAGE.encode())
    assert text is not None
    lines = text.split("\n")
    assert all(paragraph in lines for paragraph in PARAGRAPHS)
    # inline markup is not a word break; navigation is not the article
    assert "Press TV News Roku: get our channel on your streaming device today." in lines
    assert "Home" not in lines and "About us" not in lines


ARTICLE = "\n".join(PARAGRAPHS)
PROMO = "Sign up for our daily newsletter and get the top stories in your inbox every morning."


def test_second_opinion_takes_the_tighter_text_both_found():
    assert second_opinion(f"{ARTICLE}\n{PROMO}", ARTICLE) == ARTICLE
    assert second_opinion(f"{PROMO}\n{ARTICLE}", ARTICLE, shared=0.9, length=0.5) == ARTICLE


def test_second_opinion_leaves_trafilatura_where_they_disagree():
    # the other text holds something trafilatura did not find: a different reading of the page
    assert second_opinion(ARTICLE, f"{PARAGRAPHS[0]}\n{PROMO}") == ARTICLE
    # much shorter: the other extractor found a part of the article, not a tighter whole
    assert second_opinion(ARTICLE, PARAGRAPHS[0], length=0.5) == ARTICLE
    # the same words: trafilatura's text stays, with its paragraphs
    assert second_opinion(ARTICLE, " ".join(PARAGRAPHS)) == ARTICLE
    assert second_opinion(ARTICLE, None) == ARTICLE
    assert second_opinion("", ARTICLE) == ""


# what jusText needs to call a block text: a long paragraph dense in the language's stopwords
LONG_PARAGRAPH = (
    "Traders in Singapore said the February figures were the strongest since sanctions were "
    "reimposed in 2018, and that buyers in Shandong province had taken most of the extra "
    "cargoes, paying discounts of several dollars a barrel to the Brent benchmark."
)
CREDIT = "Photo: Tasnim News Agency"
HEADLINE = "Rial firms as central bank widens currency window"


def test_agreed_lines_adds_what_trafilatura_lacks_where_the_third_voice_agrees():
    text = "\n".join(PARAGRAPHS[:2] + PARAGRAPHS[3:])  # trafilatura dropped the third
    other = "\n".join([CREDIT, *PARAGRAPHS, HEADLINE])  # readability: with credit, teaser
    kept = "\n".join(PARAGRAPHS)  # jusText keeps the paragraphs only
    assert agreed_lines(text, other, kept) == ARTICLE
    # where the third voice does not keep it, the line is not added
    assert agreed_lines(text, other, "\n".join(PARAGRAPHS[:2])) == text
    # nor a line shorter than min_words, even where it is kept
    assert agreed_lines(ARTICLE, f"{ARTICLE}\n{CREDIT}", CREDIT, min_words=8) == ARTICLE
    assert agreed_lines(ARTICLE, f"{ARTICLE}\n{CREDIT}", CREDIT, min_words=0) == (
        f"{ARTICLE}\n{CREDIT}")
    # a lacking first line goes first
    assert agreed_lines(ARTICLE, f"{LONG_PARAGRAPH}\n{ARTICLE}", LONG_PARAGRAPH) == (
        f"{LONG_PARAGRAPH}\n{ARTICLE}")


def test_a_line_that_repeats_the_title_goes_wherever_it_stands():
    title = "Iran's oil exports to Asia hit five-year high"
    # a lead paragraph added ahead of the headline
    text = f"{LONG_PARAGRAPH}\n{title}\n{ARTICLE}"
    assert normalize(text, title) == f"{LONG_PARAGRAPH}\n{ARTICLE}"
    assert normalize(f"  {title} \n\n{ARTICLE}", title) == ARTICLE
    assert normalize(text, None) == text


def test_agreed_lines_adds_nothing_trafilatura_has_in_other_lines():
    # readability joined two paragraphs in one line: nothing is lacking
    other = "\n".join([PARAGRAPHS[0], " ".join(PARAGRAPHS[1:3]), *PARAGRAPHS[3:]])
    asked = []
    assert agreed_lines(ARTICLE, other, lambda: asked.append(1) or other) == ARTICLE
    assert not asked  # the third voice is asked only about lacking lines
    assert agreed_lines(ARTICLE, None, ARTICLE) == ARTICLE
    assert agreed_lines(ARTICLE, LONG_PARAGRAPH, None) == ARTICLE
    assert agreed_lines(ARTICLE, LONG_PARAGRAPH, lambda: None) == ARTICLE
    assert agreed_lines("", LONG_PARAGRAPH, LONG_PARAGRAPH) == ""


ARTICLE_WITH_EXTRAS = ARTICLE_PAGE.replace(
    f"<p>{PARAGRAPHS[2]}</p>",
    f"<p>{PARAGRAPHS[2]}</p><p>{LONG_PARAGRAPH}</p>"
    f'<figure><img src="/oil.jpg" alt=""><figcaption>{CREDIT}</figcaption></figure>'
    f'<p><a href="/Detail/2024/03/13/1">{HEADLINE}</a></p>',
)


def test_justext_keeps_readabilitys_paragraphs_not_credits_or_teasers():
    summary = readability_summary(parse_page(ARTICLE_WITH_EXTRAS.encode()))
    assert summary is not None
    assert HEADLINE in readability_lines(summary).split("\n")
    kept = justext_kept(summary, "en").split("\n")
    assert all(paragraph in kept for paragraph in [*PARAGRAPHS[:3], LONG_PARAGRAPH])
    assert CREDIT not in kept and HEADLINE not in kept
    # judged on a copy: the summary is unchanged
    assert HEADLINE in readability_lines(summary).split("\n")
    # no stoplist for the language, or no language: no vote
    assert justext_kept(summary, "xx") is None
    assert justext_kept(summary, None) is None
    assert justext_kept(None, "en") is None


def test_second_opinion_reads_the_pages_one_tree_and_leaves_it_whole():
    tree = parse_page(ARTICLE_WITH_EXTRAS.encode())
    before = lxml.html.tostring(tree)
    lines = readability_lines(readability_summary(tree)).split("\n")
    assert all(paragraph in lines for paragraph in [*PARAGRAPHS, LONG_PARAGRAPH])
    assert lxml.html.tostring(tree) == before
    # the stored text: the paragraph readability found too, not its credit or teaser
    extracted = extract_article(ARTICLE_WITH_EXTRAS.encode(), URL, RULES, encoding="utf-8",
                                options=ExtractionOptions(second_opinion=True))
    assert extracted is not None
    assert LONG_PARAGRAPH in extracted.text.split("\n")
    assert CREDIT not in extracted.text and HEADLINE not in extracted.text


# -- outlet selectors ---------------------------------------------------------------------------

# the article page as an outlet with its own markup serves it: the body holds a teaser block
# that generic extraction cannot tell from text, and the date is written out
SELECTOR_PAGE = ARTICLE_PAGE.replace(
    '<div class="body">',
    '<div class="body"><div class="lede"><span class="writer">M. Hosseini, Tehran</span>'
    '<span class="stamp">Thursday, 14 March 2024</span></div>',
)
SELECTORS = Selectors(
    body="article .body > p", title="article h1", published="span.stamp", author=".writer"
)


def test_selectors_name_the_parts_when_they_match():
    extracted = extract_article(SELECTOR_PAGE.encode(), URL, RULES, "utf-8", SELECTORS)
    assert extracted is not None
    assert extracted.text == "\n".join(PARAGRAPHS)  # boilerplate rules still applied after
    assert extracted.title == "Iran's oil exports to Asia hit five-year high"
    assert extracted.author == "M. Hosseini, Tehran"
    assert extracted.published == "2024-03-14"
    assert extracted.language == "en"  # what no selector names still comes from the page
    assert not extracted.selector_fallback


def test_body_selector_keeps_paragraphs_and_leaves_scripts_out():
    page = """<html><body><div id="story"><p>First <b>bold</b> paragraph.</p>
    <script>var ad = 1;</script><p>Second<br>line.</p>
    <figure><figcaption>Photo: Reuters</figcaption></figure></div></body></html>"""
    extracted = extract_article(page, URL, selectors=Selectors(body="#story"))
    assert extracted is not None
    assert extracted.text == "First bold paragraph.\nSecond\nline."


def test_trafilatura_when_the_selectors_find_nothing():
    stale = Selectors(body="div.gone", title="h1.gone", author=".gone", published=".gone")
    extracted = extract_article(ARTICLE_PAGE.encode(), URL, RULES, "utf-8", stale)
    plain = extract_article(ARTICLE_PAGE.encode(), URL, RULES, "utf-8")
    assert extracted is not None and plain is not None
    assert extracted.selector_fallback
    assert extracted.text == plain.text == "\n".join(PARAGRAPHS)
    assert (extracted.title, extracted.author, extracted.published) == (
        plain.title, plain.author, plain.published)
    assert not plain.selector_fallback  # no body selector: nothing to fall back from


def test_selectors_reach_the_worker_processes():
    with ExtractorPool(processes=1, timeout=30) as pool:
        extracted = asyncio.run(
            pool.extract(SELECTOR_PAGE.encode(), URL, RULES, "utf-8", SELECTORS))
    assert extracted == extract_article(SELECTOR_PAGE.encode(), URL, RULES, "utf-8", SELECTORS)


def test_workers_import_nothing_of_the_crawling_side():
    # what the forkserver preloads: every crawl pays for it once more, beside the crawling process
    code = ("import sys, crawler.extraction, trafilatura; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'asyncio', 'pydantic', 'yaml', 'scrapy', 'twisted'} or m == 'crawler.core.outlets'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("selector", ["div..body", "a[", "p::text", "  "])
def test_invalid_selector_is_a_one_line_outlet_error(tmp_path, selector):
    path = tmp_path / "example.yaml"
    path.write_text(
        "name: example\nmirrors: [https://example.org]\nsections: {news: /news}\n"
        f"article_url: '^/a/'\nselectors:\n  title: h1\n  body: '{selector}'\n"
    )
    with pytest.raises(OutletError) as error:
        load_outlet_file(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: field 'selectors.body': ")


def test_bundled_outlet_selectors_are_valid():
    from crawler.core.outlets import BUNDLED_OUTLETS

    outlet = load_outlet_file(BUNDLED_OUTLETS / "presstv.yaml")
    assert outlet.selectors.body


def test_declared_encoding_is_used():
    page = ARTICLE_PAGE.replace('<meta charset="utf-8">', "").replace(
        PARAGRAPHS[1], PARAGRAPHS[1] + " Prices were quoted in rials by the ministère."
    )
    extracted = extract_article(page.encode("cp1252"), URL, RULES, encoding="cp1252")
    assert extracted is not None
    assert "ministère" in extracted.text


def test_date_without_time_of_day_stays_a_date():
    page = ARTICLE_PAGE.replace(
        '<meta property="article:published_time" content="2024-03-14T09:42:00+03:30">',
        '<meta name="date" content="2024-03-14">',
    )
    extracted = extract_article(page, URL, RULES)
    assert extracted is not None
    assert extracted.published == "2024-03-14"


def test_language_falls_back_to_the_html_lang_attribute_then_the_text():
    page = ARTICLE_PAGE.replace('lang="en-US"', 'lang="fa-IR"')
    extracted = extract_article(page, URL, RULES)
    assert extracted is not None
    assert extracted.language == "fa"
    # a page that does not say: its text does
    no_lang = extract_article(ARTICLE_PAGE.replace(' lang="en-US"', ""), URL, RULES)
    assert no_lang is not None
    assert no_lang.language == "en"


def test_boilerplate_rules_on_text():
    text = "\n".join(
        [
            "First paragraph.",
            "Follow Press TV on Telegram",
            "Second paragraph.",
            "Please SHARE THIS ARTICLE with friends",
            "After the cut.",
            "Follow Press TV on X",
        ]
    )
    assert apply_boilerplate(text, RULES) == "First paragraph.\nSecond paragraph."
    assert apply_boilerplate("SHARE THIS ARTICLE\nrest", RULES) == ""
    assert apply_boilerplate("share this article", RULES) == "share this article"
    assert apply_boilerplate(text, Boilerplate()) == text
    # regex metacharacters in markers are plain text
    dotted = Boilerplate(drop_lines=["(c) 2024 *"])
    assert apply_boilerplate("keep\n(c) 2024 * Outlet\nc 2024 x", dotted) == "keep\nc 2024 x"


# -- ExtractorPool ------------------------------------------------------------------------------


def run(coroutine):
    return asyncio.run(coroutine)


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every live process below ``pid``."""
    parents, cmdlines = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[int(entry.name)] = ppid
        cmdlines[int(entry.name)] = cmdline
    found, frontier = {}, [pid]
    while frontier:
        current = frontier.pop()
        for child, ppid in parents.items():
            if ppid == current and child not in found:
                found[child] = cmdlines[child]
                frontier.append(child)
    return found


def is_multiprocessing_helper(cmdline: str) -> bool:
    """The forkserver and resource tracker multiprocessing keeps for the life of the process."""
    return "multiprocessing.forkserver" in cmdline or "multiprocessing.resource_tracker" in cmdline


@pytest.fixture
def pool():
    pool = ExtractorPool(processes=2, timeout=3.0)
    yield pool
    pool.close()


def test_pool_results_equal_inline_ones(pool):
    inline = extract_article(ARTICLE_PAGE.encode(), URL, RULES, encoding="utf-8")

    async def both():
        return await asyncio.gather(
            pool.extract(ARTICLE_PAGE.encode(), URL, RULES, encoding="utf-8"),
            pool.extract(NO_ARTICLE_PAGE.encode(), "https://www.presstv.ir/"),
        )

    article, nothing = run(both())
    assert isinstance(article, Extracted)
    assert article == inline
    assert nothing is None
    assert len(pool.worker_pids()) == 2
    assert os.getpid() not in pool.worker_pids()


# a selector an outlet file would refuse: lxml raises on it in the middle of an extraction
UNCHECKED_SELECTORS = PlainSelectors(body="a[")


def test_inline_pool_has_no_workers():
    pool = ExtractorPool(processes=0, timeout=1.0)
    try:
        result = run(pool.extract(ARTICLE_PAGE, URL, RULES))
        assert result == extract_article(ARTICLE_PAGE, URL, RULES)
        assert pool.worker_pids() == []
        with pytest.raises(ExtractionError, match="SelectorSyntaxError"):
            run(pool.extract(ARTICLE_PAGE, URL, selectors=UNCHECKED_SELECTORS))
    finally:
        pool.close()


def test_timeout_kills_the_worker_and_the_pool_goes_on():
    pool = ExtractorPool(processes=1, timeout=3.0)

    async def scenario():
        # warm the worker up first so that the slow page is the only thing being timed
        await pool.extract(ARTICLE_PAGE, URL, RULES)
        before = set(pool.worker_pids())
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        with pytest.raises(ExtractionTimeout):
            await pool.extract(slow_page(), "https://www.presstv.ir/Detail/2024/03/14/1/slow")
        ticking.cancel()
        after_timeout = set(pool.worker_pids())
        result = await pool.extract(ARTICLE_PAGE, URL, RULES)
        return before, after_timeout, result, ticks

    try:
        before, after_timeout, result, ticks = run(scenario())
    finally:
        pool.close()
    assert ticks > 1  # the event loop went on running while the page was being extracted
    assert len(before) == 1
    assert not before & after_timeout  # the overrunning worker is gone
    for pid in before:
        assert pid not in descendants(os.getpid())
    assert result == extract_article(ARTICLE_PAGE, URL, RULES)


#: a crawling process with a pool of one worker: it names the worker once that has started,
#: then extracts the page at argv[2] at each line read, and says how that ended
CRAWLING_PROCESS = """
import asyncio, sys
from crawler.extraction import ExtractionTimeout, ExtractorPool
page = open(sys.argv[2], "rb").read()
url = "https://www.presstv.ir/Detail/2024/03/14/722115/a"
with ExtractorPool(processes=1, timeout=float(sys.argv[1])) as pool:
    asyncio.run(pool.extract(page, url))
    print(*pool.worker_pids(), flush=True)
    for _ in sys.stdin:
        print("extracting", flush=True)
        try:
            print("ok" if asyncio.run(pool.extract(page, url)) else "none", flush=True)
        except ExtractionTimeout:
            print("timeout", flush=True)
"""


@pytest.fixture
def crawling_process(tmp_path):
    """Start CRAWLING_PROCESS with ``timeout`` in a process group of its own (its worker and
    the forkserver in it too, as in a container); yields (process, worker pid)."""
    (tmp_path / "page.html").write_text(ARTICLE_PAGE, encoding="utf-8")
    started = []

    def start(timeout: float):
        process = subprocess.Popen(
            [sys.executable, "-c", CRAWLING_PROCESS, str(timeout), str(tmp_path / "page.html")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        started.append(process)
        worker = int(process.stdout.readline())
        assert os.getpgid(worker) == process.pid
        return process, worker

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def extract_once(process) -> None:
    process.stdin.write(b"go\n")
    process.stdin.flush()
    assert process.stdout.readline() == b"extracting\n"


def test_a_crawl_frozen_past_the_timeout_counts_no_extraction_timeout(crawling_process):
    timeout = 3.0
    process, worker = crawling_process(timeout)
    os.kill(worker, signal.SIGSTOP)  # the page cannot be done before the freeze
    extract_once(process)
    time.sleep(0.3)  # the page is sent, and the crawling process waits for its text
    # the whole crawl stands still, as in a paused container, twice the timeout
    os.killpg(process.pid, signal.SIGSTOP)
    time.sleep(2 * timeout)
    os.killpg(process.pid, signal.SIGCONT)
    assert process.stdout.readline() == b"ok\n"


def test_a_page_that_overruns_while_the_crawl_runs_still_times_out(crawling_process):
    process, worker = crawling_process(1.0)
    os.kill(worker, signal.SIGSTOP)  # the worker alone stands still: the page never ends
    extract_once(process)
    assert process.stdout.readline() == b"timeout\n"
    # the stuck worker is replaced
    extract_once(process)
    assert process.stdout.readline() == b"ok\n"


def test_exception_in_worker_becomes_extraction_error(pool):
    async def scenario():
        with pytest.raises(ExtractionError, match="SelectorSyntaxError"):
            await pool.extract(ARTICLE_PAGE, URL, selectors=UNCHECKED_SELECTORS)
        pids = pool.worker_pids()
        return pids, await pool.extract(ARTICLE_PAGE, URL, RULES)

    pids, result = run(scenario())
    assert len(pids) == 1  # the worker survived its exception
    assert result is not None and result.text == "\n".join(PARAGRAPHS)


def test_worker_killed_from_outside_is_replaced(pool):
    run(pool.extract(ARTICLE_PAGE, URL, RULES))
    (pid,) = pool.worker_pids()
    os.kill(pid, 9)
    result = run(pool.extract(ARTICLE_PAGE, URL, RULES))
    assert result is not None
    assert pid not in pool.worker_pids()


def test_close_leaves_no_child_processes():
    pool = ExtractorPool(processes=2, timeout=10.0)

    async def load():
        pages = [pool.extract(ARTICLE_PAGE, URL, RULES) for _ in range(4)]
        return await asyncio.gather(*pages)

    assert all(run(load()))
    workers = pool.worker_pids()
    assert len(workers) == 2
    assert set(workers) <= set(descendants(os.getpid()))
    pool.close()
    left = descendants(os.getpid())
    assert not set(workers) & set(left)
    assert all(is_multiprocessing_helper(cmdline) for cmdline in left.values()), left
    with pytest.raises(RuntimeError):
        run(pool.extract(ARTICLE_PAGE, URL))


# -- one parse per page ---------------------------------------------------------------------------

#: where lxml turns a whole page into a tree, as trafilatura, htmldate and readability reach it
PARSERS = [("lxml.html", "fromstring"), ("lxml.html", "document_fromstring"),
           ("lxml.etree", "fromstring"), ("lxml.etree", "HTML"),
           ("trafilatura.utils", "fromstring"), ("trafilatura.utils", "fromstring_bytes"),
           ("htmldate.utils", "fromstring"), ("htmldate.utils", "fromstring_bytes")]


@pytest.mark.parametrize("selectors", [None, SELECTORS], ids=["trafilatura", "selectors"])
def test_a_page_is_parsed_once_on_the_article_path(monkeypatch, selectors):
    import importlib

    page = SELECTOR_PAGE.encode()
    parses, depth = [], [0]
    for module_name, name in PARSERS:
        module = importlib.import_module(module_name)
        parse = getattr(module, name)

        def counted(markup, *args, _parse=parse, **kwargs):
            # the whole page, not a fragment of it (a date written out, a summary), and once
            # however many of these entry points one parse passes through
            if depth[0] == 0 and len(markup) >= len(page) // 2:
                parses.append(markup)
            depth[0] += 1
            try:
                return _parse(markup, *args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(module, name, counted)
    extracted = extract_article(page, URL, RULES, "utf-8", selectors)
    assert extracted is not None and extracted.text
    assert len(parses) == 1
