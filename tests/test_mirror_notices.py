"""The mirrors an outlet names on its pages: notices (links and host names in the block),
Onion-Location, canonical and og:url; one parser for `crawler outlets init` and the crawl."""

from __future__ import annotations

from crawler.core.mirror_notices import (
    CANONICAL,
    NOTICE,
    OG_URL,
    ONION_LOCATION,
    base_of,
    named_mirrors,
)
from crawler.core.outlets import Outlet
from crawler.demo.site import NEWS, DemoSite

# the end of a Press TV article as the site lays it out: the notice is a paragraph of the
# article's footer, the addresses written as text and as links, beside share buttons
PRESSTV_FOOTER = b"""<!DOCTYPE html><html lang="en"><head>
<meta charset="utf-8"><title>Iran says ... | Press TV</title>
<link rel="canonical" href="https://www.presstv.ir/Detail/2024/06/28/729312/Iran-says">
<meta property="og:url" content="https://www.presstv.ir/Detail/2024/06/28/729312/Iran-says">
</head><body><div class="container"><article>
<h1 class="news-title-container">Iran says ...</h1>
<div class="news-body-container"><p>Tehran said on Friday that the talks would go on.</p></div>
<div class="share"><span>SHARE THIS ARTICLE</span>
<a href="https://twitter.com/intent/tweet?url=https://www.presstv.ir/Detail/729312">X</a>
<a href="https://www.facebook.com/sharer/sharer.php?u=729312">Facebook</a></div>
<div class="mirrors"><p>Press TV's website can also be accessed at the following alternate
addresses:</p><p>www.presstv.co.uk</p>
<p><a href="https://www.presstv.tv/">www.presstv.tv</a></p></div>
</article><footer><a href="https://www.presstv.ir/Section/10102">Economy</a>
<a href="https://apps.example.org/presstv">Get the app</a></footer></div></body></html>"""


def _named(body: bytes, url: str, **kwargs) -> dict[str, str]:
    return {n.base: n.source for n in named_mirrors(body, url, **kwargs)}


def test_a_press_tv_notice_names_its_addresses_as_text_and_links():
    named = _named(PRESSTV_FOOTER, "https://www.presstv.ir/Detail/2024/06/28/729312/Iran-says",
                   known={"www.presstv.ir"})
    # the share buttons, the footer's links and the outlet's own host are not mirrors
    assert named == {"https://www.presstv.co.uk": NOTICE, "https://www.presstv.tv": NOTICE}


def test_the_demo_sites_article_notice_names_every_mirror_and_nothing_else():
    site = DemoSite(articles=8, mirrors=("http://127.0.0.1:8001", "http://127.0.0.1:8002",
                                         "http://127.0.0.1:8003"))
    article = next(a for a in site.articles if a.kind == NEWS)
    page = site.page(article.path, "http://127.0.0.1:8002")
    named = _named(page.body.encode() if isinstance(page.body, str) else page.body,
                   "http://127.0.0.1:8002" + article.path, known={"127.0.0.1:8002"})
    # the canonical link names the first mirror; the notice the others
    assert named == {"http://127.0.0.1:8001": CANONICAL, "http://127.0.0.1:8003": NOTICE}


def test_onion_location_canonical_and_og_url_to_unknown_hosts():
    body = (b'<html><head><link href="https://new.example.net/a/1" rel="canonical">'
            b'<meta content="https://other.example.net/a/1" property="og:url"></head>'
            b"<body><p>Text</p></body></html>")
    named = _named(body, "https://old.example.net/a/1",
                   headers={"Onion-Location": "http://abcdefghijklmnop.onion/a/1"},
                   known={"old.example.net"})
    assert named == {"http://abcdefghijklmnop.onion": ONION_LOCATION,
                     "https://new.example.net": CANONICAL, "https://other.example.net": OG_URL}


def test_phrases_are_the_outlets_and_text_alone_names_nothing_without_one():
    body = (b"<html><body><div><p>Nous sommes aussi sur ces adresses :</p>"
            b'<a href="https://miroir.example.fr/">miroir</a></div>'
            b'<div><p>Read more at</p><a href="https://elsewhere.example.com/">x</a></div>'
            b"</body></html>")
    assert _named(body, "https://site.example.fr/") == {}
    assert _named(body, "https://site.example.fr/", phrases=["aussi sur ces adresses"]) == {
        "https://miroir.example.fr": NOTICE}


def test_a_notice_naming_a_crowd_of_hosts_is_capped_and_file_names_are_not_hosts():
    links = "".join(f'<li><a href="https://m{i}.example.net/">m{i}</a></li>' for i in range(40))
    body = (f"<html><body><div><p>Our alternate addresses (see index.html):</p>"
            f"<ul>{links}</ul></div></body></html>").encode()
    named = named_mirrors(body, "https://site.example.net/", limit=5)
    assert [n.base for n in named] == [f"https://m{i}.example.net" for i in range(5)]


def test_a_notice_directly_in_the_body_takes_the_next_block_not_the_whole_page():
    body = (b'<html><body><a href="https://ads.example.com/">ad</a>'
            b"<p>This site can also be accessed at:</p>"
            b'<ul><li><a href="http://127.0.0.7:8080/">127.0.0.7:8080</a></li></ul>'
            b'<a href="https://tracker.example.com/">t</a></body></html>')
    assert _named(body, "https://site.example.net/") == {"http://127.0.0.7:8080": NOTICE}


def test_base_of_refuses_what_is_not_an_http_host():
    assert base_of("HTTPS://WWW.Example.NET:8443/x?y") == "https://www.example.net:8443"
    assert base_of("https://user:pw@example.net/") is None
    assert base_of("ftp://example.net/") is None
    assert base_of("https://example.net:99999/") is None
    assert base_of("/relative") is None


def test_outlet_fields_for_discovery():
    document = {"name": "x", "mirrors": ["https://a.example"], "article_url": "^/n/",
                "feeds": ["/rss"]}
    outlet = Outlet.model_validate(document)
    assert outlet.mirror_discovery == "propose"
    assert "also be accessed at" in outlet.notice_phrases
    custom = Outlet.model_validate({**document, "mirror_notices": ["aussi sur"],
                                    "mirror_discovery": "adopt"})
    assert custom.notice_phrases == ("aussi sur",)
    adopted = custom.with_mirrors(["https://c.example"])
    assert adopted.mirrors == ["https://a.example", "https://c.example"]
    assert adopted.canonical_url("https://c.example/n/1") == "https://a.example/n/1"
