"""The nginx-served outlet (tests/nginx_outlet.py) against real HTTP: it must answer as real
servers do (gzip, validators, keep-alive), and each mirror behaviour must be what it says."""

from __future__ import annotations

import gzip
import http.client
import re
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from nginx_outlet import (
    BOTCHECK,
    DEAD,
    FLAKY,
    GARBAGE,
    HEALTHY,
    REDIRECT_OFF,
    SEIZED,
    CorpusTruth,
    overlap,
)

from crawler.demo.server import PARKED_PAGE, REDIRECT_TARGET, SEIZED_PAGE
from crawler.demo.site import REL_NEXT_SECTIONS, SECTIONS

ARTICLE_PATH = re.compile(r"^/news/\d{4}/\d{2}/\d{2}/\d+/")


class Answer:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.raw = response.read()

    @property
    def body(self) -> bytes:
        """The body as sent before any compression."""
        if self.headers.get("content-encoding") == "gzip":
            return gzip.decompress(self.raw)
        return self.raw


def get(base_url: str, target: str = "/", gzip_ok: bool = True,
        connection: http.client.HTTPConnection | None = None, **headers: str) -> Answer:
    """One GET (no redirect followed), on ``connection`` when given (then left open)."""
    parts = urlsplit(base_url)
    own = connection is None
    if connection is None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    if gzip_ok:
        headers.setdefault("Accept-Encoding", "gzip, deflate")
    try:
        connection.request("GET", target, headers={k.replace("_", "-"): v
                                                   for k, v in headers.items()})
        return Answer(connection.getresponse())
    finally:
        if own:
            connection.close()


def links(body: bytes) -> list[str]:
    return [a.get("href") for a in lxml.html.fromstring(body).iter("a") if a.get("href")]


@pytest.fixture
def demo(nginx_outlet):
    return nginx_outlet(DEAD, SEIZED, BOTCHECK, FLAKY, HEALTHY, REDIRECT_OFF, GARBAGE,
                        articles=60)


# -- serving as real servers do --------------------------------------------------------------


def test_pages_are_gzipped_for_clients_that_accept_it(demo):
    healthy = demo.mirror(HEALTHY).base_url
    article = demo.site.articles[0].path
    compressed = get(healthy, article)
    plain = get(healthy, article, gzip_ok=False)
    assert compressed.status == plain.status == 200
    assert compressed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in compressed.headers["vary"].lower()
    assert "content-encoding" not in plain.headers
    assert len(compressed.raw) < len(plain.raw) / 3
    assert compressed.body == plain.raw == demo.site.page(article, healthy).body
    assert compressed.headers["content-type"] == "text/html; charset=utf-8"
    robots = get(healthy, "/robots.txt")
    assert robots.headers["content-type"] == "text/plain; charset=utf-8"
    assert robots.body.startswith(b"User-agent: *")


def test_validators_and_conditional_requests(demo):
    healthy = demo.mirror(HEALTHY).base_url
    for gzip_ok in (True, False):
        first = get(healthy, "/section/politics", gzip_ok=gzip_ok)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert parsedate_to_datetime(modified).year >= 2024
        again = get(healthy, "/section/politics", gzip_ok=gzip_ok, If_None_Match=etag)
        assert (again.status, again.raw) == (304, b"")
        since = get(healthy, "/section/politics", gzip_ok=gzip_ok, If_Modified_Since=modified)
        assert since.status == 304
        other = get(healthy, "/section/politics", gzip_ok=gzip_ok, If_None_Match='"other"')
        assert other.status == 200 and other.body == first.body


def test_connections_are_kept_alive(demo):
    parts = urlsplit(demo.mirror(HEALTHY).base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        for target in ("/", "/robots.txt", "/section/world", "/section/world/page/2"):
            answer = get("", target, connection=connection)
            assert answer.status == 200
            assert answer.headers.get("connection", "keep-alive").lower() == "keep-alive"
    finally:
        connection.close()


def test_the_demo_site_as_the_python_mirror_serves_it(demo):
    healthy = demo.mirror(HEALTHY).base_url
    site = demo.site
    targets = ["/", "/about", "/robots.txt", site.disallowed_article.path,
               site.video_article.path]
    for section in SECTIONS:
        targets += [f"/section/{section}", f"/section/{section}/page/2",
                    f"/section/{section}?page=2"]
    for target in targets:
        answer = get(healthy, target)
        assert (answer.status, answer.body) == (200, site.page(target, healthy).body), target
    for target in ("/nope", "/section/politics/page/99", "/section/politics?page=99",
                   "/section/nope", "/news/2024/01/01/1/x"):
        assert get(healthy, target).status == 404, target


def test_listings_link_every_expected_article(demo):
    healthy = demo.mirror(HEALTHY).base_url
    outlet = demo.outlet()
    found = set()
    for section in SECTIONS:
        target = f"/section/{section}"
        for _ in range(demo.max_section_pages):
            body = get(healthy, target).body
            for href in links(body):
                url = urljoin(healthy + target, href)
                if outlet.mirror_of(url) and ARTICLE_PATH.match(urlsplit(url).path):
                    found.add(outlet.canonical_url(url).split("#")[0])
            rel = "rel" if section in REL_NEXT_SECTIONS else "class"
            following = lxml.html.fromstring(body).xpath(f'//a[@{rel}="next"]/@href')
            if not following:
                break
            target = following[0]
    disallowed = demo.canonical + demo.site.disallowed_article.path
    video = demo.canonical + demo.site.video_article.path
    assert found - {disallowed, video} == demo.expected_articles()


def test_outlet_file_lists_the_mirrors_in_order(demo):
    outlet = demo.outlet()
    assert outlet.name == demo.name == "demonews"
    assert list(outlet.mirrors) == list(demo.mirrors)
    assert [m.behaviour for m in demo.mirrors_] == list(demo.behaviours)
    assert all(url.startswith(demo.canonical) for url in demo.expected_articles())
    assert demo.mirror(0).behaviour == DEAD  # canonical although it is dead


# -- behaviours ------------------------------------------------------------------------------


def test_dead_refuses_connections(demo):
    with pytest.raises(ConnectionRefusedError):
        get(demo.mirror(DEAD).base_url)


def test_seized_answers_every_path_with_the_same_notice(demo):
    seized = demo.mirror(SEIZED).base_url
    answers = [get(seized, target) for target in
               ("/", "/robots.txt", demo.site.articles[0].path, "/nope?x=1")]
    assert {a.status for a in answers} == {200}
    assert {a.body for a in answers} == {SEIZED_PAGE}


def test_botcheck_differs_on_every_request_and_links_into_the_site(demo):
    botcheck = demo.mirror(BOTCHECK).base_url
    answers = [get(botcheck, demo.site.articles[0].path) for _ in range(3)]
    assert {a.status for a in answers} == {200}
    assert len({a.body for a in answers}) == 3
    body = answers[0].body
    assert b"Just a moment..." in body and b"<!--#" not in body
    form = lxml.html.fromstring(body).xpath("//form/@action")
    assert form and form[0].startswith("/?")
    assert any(href.startswith("/") for href in links(body))


def test_flaky_fails_about_a_third_of_requests(demo):
    flaky = demo.mirror(FLAKY)
    parts = urlsplit(flaky.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        statuses = [get("", "/robots.txt", connection=connection).status for _ in range(200)]
    finally:
        connection.close()
    assert set(statuses) == {200, 503}
    assert 30 <= statuses.count(503) <= 90  # 30 %: 60 expected
    deadline = time.monotonic() + 5
    while flaky.hits() < 200 and time.monotonic() < deadline:
        time.sleep(0.05)  # nginx writes the line once the answer is out
    assert flaky.hits("/robots.txt", 503) == statuses.count(503)


def test_redirect_off_and_garbage(demo):
    redirect = get(demo.mirror(REDIRECT_OFF).base_url, "/section/world")
    assert (redirect.status, redirect.headers["location"]) == (302, REDIRECT_TARGET)
    parked = get(demo.mirror(GARBAGE).base_url, "/section/world")
    assert (parked.status, parked.body) == (200, PARKED_PAGE)


def test_set_down_one_mirror_or_all_while_nginx_runs(demo):
    healthy, flaky = demo.mirror(HEALTHY), demo.mirror(FLAKY)
    demo.set_down(HEALTHY)
    assert get(healthy.base_url, "/robots.txt").status == 503
    assert get(demo.mirror(SEIZED).base_url).status == 200
    demo.set_down()
    assert get(demo.mirror(SEIZED).base_url).status == 503
    demo.set_down(HEALTHY, False)
    assert get(healthy.base_url).status == 503  # still: all are down
    demo.set_down(down=False)
    assert get(healthy.base_url).status == 200
    statuses = [get(flaky.base_url, "/robots.txt").status for _ in range(20)]
    assert 200 in statuses


def test_a_mirror_goes_dead_and_comes_back_on_the_same_port(nginx_outlet):
    fx = nginx_outlet(DEAD, HEALTHY, articles=40)
    dead = fx.mirror(DEAD)
    fx.set_behaviour(DEAD, HEALTHY)
    assert get(dead.base_url, "/section/world").status == 200
    assert get(fx.mirror(1).base_url, "/").status == 200  # the others go on
    fx.set_behaviour(dead.name, DEAD)
    with pytest.raises(ConnectionRefusedError):
        get(dead.base_url)
    fx.set_behaviour(1, SEIZED)
    assert get(fx.mirror(1).base_url, "/section/world").body == SEIZED_PAGE
    assert fx.mirror(1).name == "m1-healthy"


def test_access_logs_count_hits_per_mirror_path_and_status(demo):
    healthy, seized = demo.mirror(HEALTHY), demo.mirror(SEIZED)
    for _ in range(3):
        get(healthy.base_url, "/section/world?page=2")
    get(healthy.base_url, "/nope", gzip_ok=False)
    get(seized.base_url, "/section/world?page=2")
    deadline = time.monotonic() + 5
    while (healthy.hits() < 4 or seized.hits() < 1) and time.monotonic() < deadline:
        time.sleep(0.05)  # nginx writes the line once the answer is out
    assert healthy.hits("/section/world?page=2") == 3
    assert healthy.hits(status=404) == healthy.hits("/nope") == 1
    assert demo.hits("/section/world?page=2") == 4
    entries = healthy.requests()
    assert [e.content_encoding for e in entries] == ["gzip"] * 3 + [""]
    assert entries[0].path == "/section/world"


# -- the corpus ------------------------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_pages_are_served_unchanged_behind_listings(nginx_outlet):
    fx = nginx_outlet(DEAD, HEALTHY, pages="corpus", copies=2)
    healthy = fx.mirror(HEALTHY).base_url
    expected = fx.expected_articles()
    assert len(expected) == 2 * len(fx.site.pages)
    found = set()
    for section in fx.outlet().sections.values():
        target: str | None = section.path
        while target:
            body = get(healthy, target).body
            found |= {fx.canonical + h for h in links(body) if ARTICLE_PATH.match(h)}
            following = lxml.html.fromstring(body).xpath('//a[@rel="next"]/@href')
            target = following[0] if following else None
    assert found == expected
    for url in sorted(expected)[:12]:
        path = urlsplit(url).path
        truth = fx.truth(url)
        assert isinstance(truth, CorpusTruth)
        answer = get(healthy, path)
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.body == truth.html  # byte for byte
    assert overlap(truth.text, truth.text) == 1.0
    assert overlap(truth.text, "nothing in common at all here") == 0.0


def test_outlets_with_names_of_their_own_and_slow_mirrors(nginx_outlet):
    first = nginx_outlet(HEALTHY, articles=20, name="slow1", limit_rate="4k")
    second = nginx_outlet(HEALTHY, articles=20, name="slow2", seed=8)
    assert (first.name, second.name) == ("slow1", "slow2")
    assert first.outlet_file.name == "slow1.yaml" and first.outlet().name == "slow1"
    assert not first.expected_articles() & second.expected_articles()
    # the slow mirror sends every answer at 4 KB/s: all of it arrives, as it would
    assert "limit_rate 4k;" in (first.server_dir / "nginx.conf").read_text()
    assert "limit_rate" not in (second.server_dir / "nginx.conf").read_text().replace(
        "# no limit_rate", "")
    article = sorted(first.expected_articles())[0]
    answer = get(first.canonical, urlsplit(article).path)
    assert answer.status == 200
    assert first.truth(article).title.encode() in answer.body


def test_a_slice_of_the_corpus(nginx_outlet):
    fx = nginx_outlet(HEALTHY, pages="corpus", copies=1, corpus_pages=slice(10, 20))
    assert len(fx.site.pages) == 10 and len(fx.expected_articles()) == 10
    first = fx.truth(sorted(fx.expected_articles(), key=lambda u: int(u.split("/")[-2]))[0])
    assert first.html == fx.site.pages[0].html
