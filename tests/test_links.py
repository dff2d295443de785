"""The links of a page (``crawler.core.links``), on pages laid out as news sites lay them
out: relative links resolved against the page's URL, or against its ``<base href>`` when it
has one; links that lead to no document left out; and every scanner of the crawl reading a
page's links alike."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from scrapy.http import HtmlResponse

from crawler.core.judging import links_into_outlet
from crawler.core.links import ANCHORS, base_url, page_links, page_tree
from crawler.core.mirror_notices import NOTICE, named_mirrors
from crawler.core.outlets import Outlet
from crawler.extensions.mirror_discovery import article_links
from crawler.outlet_init import Page
from crawler.spiders.outlet import _outlet_links

A, B = "https://www.news.example", "https://news-mirror.example"
WORLD = f"{B}/section/world"

# a section's listing as a mirror serves it, with a <base href> in the head or not
LISTING = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>World | The News</title>{base}
<link rel="stylesheet" href="/static/site.css">
<link rel="next" href="world?page=2">
</head><body>
<header><a href="/" class="logo">The News</a>
<nav><a href="/section/world">World</a> <a href="economy">Economy</a></nav></header>
<main class="listing"><ul class="stories">
<li><h3><a href="a/101/storm-hits-the-coast">Storm hits
    the coast</a></h3></li>
<li><h3><a href=" /a/102/talks-resume#comments ">Talks resume</a></h3></li>
<li><h3><a href="//photos.news.example/a/103/a-photo-essay">A photo essay</a></h3></li>
<li><h3><a href="https://partner.example.org/a/104/offer">Partner offer</a></h3></li>
</ul>
<p class="tools"><a href="#top">Back to top</a> <a href="JavaScript:window.print()">Print</a>
<a href="mailto:tips@news.example">Send us a tip</a> <a href="tel:+441234567">Call us</a>
<a href="">Reload</a> <a name="end">the end</a></p></main></body></html>"""


def listing(base: str = "") -> bytes:
    return LISTING.format(base=f'<base href="{base}">' if base else "").encode()


def urls(body: bytes, page_url: str = WORLD, xpath: str = ANCHORS) -> list[str]:
    return [link.url for link in page_links(page_tree(body), page_url, xpath)]


def test_relative_links_resolve_against_the_page_url_without_a_base():
    assert urls(listing()) == [
        f"{B}/", f"{B}/section/world", f"{B}/section/economy",
        f"{B}/section/a/101/storm-hits-the-coast", f"{B}/a/102/talks-resume",
        "https://photos.news.example/a/103/a-photo-essay",
        "https://partner.example.org/a/104/offer"]


def test_relative_links_resolve_against_the_base_href():
    assert urls(listing(f"{A}/")) == [
        f"{A}/", f"{A}/section/world", f"{A}/economy",
        f"{A}/a/101/storm-hits-the-coast", f"{A}/a/102/talks-resume",
        "https://photos.news.example/a/103/a-photo-essay",  # absolute: as they were
        "https://partner.example.org/a/104/offer"]


def test_a_protocol_relative_link_takes_the_scheme_of_the_base():
    assert "http://photos.news.example/a/103/a-photo-essay" in urls(listing(
        "http://www.news.example/"))
    assert "https://photos.news.example/a/103/a-photo-essay" in urls(listing())


@pytest.mark.parametrize(("base", "resolved"), [
    ("/", f"{B}/"),
    ("../en/", f"{B}/en/"),
    ("//www.news.example/en/", f"{A}/en/"),
])
def test_a_relative_base_href_is_resolved_against_the_page_url(base, resolved):
    assert base_url(page_tree(listing(base)), WORLD) == resolved
    assert urls(listing(base))[3] == resolved + "a/101/storm-hits-the-coast"


def test_only_the_first_base_href_counts_and_only_a_web_address():
    targeted = b'<html><head><base target="_blank"><base href="/en/"><base href="/fr/">' \
               b'</head><body><a href="a/1">one</a></body></html>'
    assert urls(targeted) == [f"{B}/en/a/1"]  # a <base> without href is no base
    scripted = b'<html><head><base href="javascript:void(0)"></head>' \
               b'<body><a href="a/1">one</a></body></html>'
    assert urls(scripted) == [f"{B}/section/a/1"]


def test_links_that_lead_to_no_document_are_left_out_and_the_rest_kept_as_written():
    links = page_links(page_tree(listing()), WORLD)
    assert not [link for link in links if link.href.lower().startswith(
        ("#", "javascript:", "mailto:", "tel:")) or not link.href]
    talks = links[4]
    assert talks.href == "/a/102/talks-resume#comments"  # stripped, fragment kept
    assert talks.url == f"{B}/a/102/talks-resume"  # fragment left out
    assert links[3].text == "Storm hits the coast"
    assert links[0].rel == frozenset()


def test_repeated_links_are_all_kept_in_page_order():
    page = b'<ul><li><a href="/a/1"><img src="t.jpg"></a> <a href="/a/1">Title</a></li>' \
           b'<li><a href="/a/2">Next</a></li></ul>'
    assert urls(page) == [f"{B}/a/1", f"{B}/a/1", f"{B}/a/2"]


def test_other_elements_with_an_href_are_read_by_xpath():
    next_pages = page_links(page_tree(listing("/")), WORLD, "//link[@rel='next'][@href]")
    assert [(link.url, link.rel) for link in next_pages] == [
        (f"{B}/world?page=2", frozenset({"next"}))]


def test_a_response_a_parsed_page_and_a_block_of_it_read_alike():
    body = listing(f"{A}/")
    response = HtmlResponse(WORLD, body=body, encoding="utf-8")
    assert [link.url for link in page_links(response, WORLD)] == urls(body)
    # a block of the page: its own links, resolved against the page's base
    stories = page_tree(body).xpath("//ul[@class='stories']")[0]
    assert [link.url for link in page_links(stories, WORLD)][:2] == [
        f"{A}/a/101/storm-hits-the-coast", f"{A}/a/102/talks-resume"]
    # the block a notice names a link in may be the link itself
    [logo] = page_tree(body).xpath("//a[@class='logo']")
    assert [link.url for link in page_links(logo, WORLD)] == [f"{A}/"]


def test_a_body_that_parses_to_nothing_has_no_tree():
    assert page_tree(b"") is None
    assert page_tree(b"   ") is None


# -- the crawl's scanners, each honouring the base ---------------------------------------------

OUTLET = Outlet.model_validate({
    "name": "news", "mirrors": [A, B], "sections": {"world": "/section/world"},
    "article_url": r"^/a/\d+"})


def test_the_spider_reads_a_listings_articles_against_its_base():
    def articles(body: bytes) -> set[str]:
        response = HtmlResponse(WORLD, body=body, encoding="utf-8")
        return {url for url, path, _ in _outlet_links(OUTLET, response)
                if OUTLET.article_pattern.search(path)}

    assert articles(listing()) == {f"{A}/a/102/talks-resume"}
    assert articles(listing("/")) == {f"{A}/a/101/storm-hits-the-coast",
                                      f"{A}/a/102/talks-resume"}
    [next_page] = [url for url, _, is_next in _outlet_links(
        OUTLET, HtmlResponse(WORLD, body=listing("/"), encoding="utf-8")) if is_next]
    assert next_page == f"{A}/world?page=2"


def test_mirror_discovery_counts_a_candidates_articles_against_its_base():
    response = HtmlResponse(WORLD, body=listing("/"), encoding="utf-8")
    assert article_links(response, OUTLET) == 2
    assert article_links(HtmlResponse(WORLD, body=listing(), encoding="utf-8"), OUTLET) == 1


def test_a_short_page_links_into_the_outlet_through_its_base():
    page = b'<html><head><base href="/"></head><body><p>Read more:</p>' \
           b'<a href="a/7/more">an article</a></body></html>'
    served_at = f"{B}/section/world/brief-5"
    assert links_into_outlet(page, served_at, OUTLET)
    # without the base, /section/world/a/7/more: neither an article nor a section
    assert not links_into_outlet(page.replace(b'<base href="/">', b""), served_at, OUTLET)


def test_a_notice_names_the_host_its_base_leads_to():
    notice = b'<html><head><base href="https://news-new.example/"></head><body><article>' \
             b'<p>The News can also be accessed at the following alternate addresses:</p>' \
             b'<p><a href="/">our new address</a></p></article></body></html>'
    named = named_mirrors(notice, f"{B}/a/5", known=[urlsplit(B).netloc])
    assert [(n.base, n.source) for n in named] == [("https://news-new.example", NOTICE)]


def test_outlets_init_reads_a_home_pages_links_and_feeds_against_its_base():
    home = b'<html><head><base href="https://www.news.example/en/">' \
           b'<link rel="alternate" type="application/rss+xml" href="feed.xml"></head>' \
           b'<body><a href="world">World</a></body></html>'
    page = Page.parse(f"{B}/", home)
    assert page.links() == [(f"{A}/en/world", "World")]
    assert page.feeds() == [f"{A}/en/feed.xml"]
