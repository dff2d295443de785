"""The simulated outlet: real HTTP on loopback, every mirror behaviour, listings, ground truth."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.robotparser
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest

from crawler.core.outlets import OutletError, load_outlet_file
from crawler.demo import BEHAVIOURS, DemoOutlet, DemoSite, MirrorServer
from crawler.demo.server import REDIRECT_TARGET, SEIZED_PAGE
from crawler.demo.site import ARCHIVED, NEWS, REL_NEXT_SECTIONS, SECTIONS, VIDEO
from crawler.extraction import extract_article

ARTICLE_PATH = re.compile(r"^/news/\d{4}/\d{2}/\d{2}/\d+/")


def get(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One GET, no redirects followed: (status, headers, body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target or "/")
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def request(url: str, head: bool = False, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET (or HEAD) with ``headers`` (``If_None_Match=...``): (status, headers, raw
    body, as sent)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("HEAD" if head else "GET", target or "/",
                           headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def links(base_url: str, body: bytes) -> list[str]:
    document = lxml.html.fromstring(body)
    return [a.get("href") for a in document.iter("a") if a.get("href") is not None]


def article_links(outlet, page_url: str, body: bytes) -> set[str]:
    """Canonical URLs of the articles a page links to, on any of the outlet's mirrors."""
    found = set()
    for href in links(page_url, body):
        url = urljoin(page_url, href)
        if outlet.mirror_of(url) and ARTICLE_PATH.match(urlsplit(url).path):
            found.add(outlet.canonical_url(url).split("#")[0])
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with DemoOutlet(tmp_path_factory.mktemp("outlets"), articles=60) as fx:
        yield fx


@pytest.fixture(scope="module")
def healthy(demo):
    return demo.server("healthy").base_url


@pytest.fixture
def site():
    return DemoSite(articles=60, seed=3, mirrors=["http://127.0.0.1:9"])


# -- the site as data -------------------------------------------------------------------------


def test_same_seed_same_site_other_seed_other_site():
    first, again, other = DemoSite(seed=7), DemoSite(seed=7), DemoSite(seed=8)
    assert [a.path for a in first.articles] == [a.path for a in again.articles]
    article = first.articles[10].path
    assert first.truth(article) == again.truth(article)
    assert [a.title for a in first.articles] != [a.title for a in other.articles]


def test_sections_and_special_articles(site):
    assert len(SECTIONS) >= 3
    assert all(site.listings[s] for s in SECTIONS)
    assert any(len(a.sections) == 2 for a in site.articles)
    assert site.video_article.kind == VIDEO and site.truth(site.video_article.path).text == ""
    archived = site.disallowed_article
    assert archived.path.startswith("/news/2020/") and archived.kind == ARCHIVED
    for special in (site.video_article, archived):
        assert any(special in site.listing(s, 1) for s in special.sections)


def test_ground_truth_is_realistic_prose(site):
    for article in site.articles:
        truth = site.truth(article.path)
        if article.kind == VIDEO:
            continue
        words = len(truth.text.split())
        assert 250 <= words <= 1100, words
        paragraphs = truth.text.split("\n")
        assert len(paragraphs) >= 4
        assert truth.published.startswith(f"{article.published:%Y-%m-%d}T")
        assert truth.author and truth.title
        sentence_lengths = {len(s.split()) for s in re.split(r"(?<=[.!?\"])\s", truth.text)}
        assert len(sentence_lengths) > 5  # varied, not one template repeated


def test_expected_articles_need_mirrors_and_grow_with_depth(site):
    assert DemoSite(articles=20).expected_paths(1)
    with pytest.raises(RuntimeError):
        DemoSite(articles=20).expected_articles(1)
    shallow, deep = site.expected_articles(1), site.expected_articles(5)
    assert shallow < deep
    assert all(url.startswith("http://127.0.0.1:9/news/") for url in deep)
    everything = {site.mirrors[0] + a.path for a in site.articles if a.kind == NEWS}
    assert deep == everything


def test_a_large_site_builds_and_renders(tmp_path):
    big = DemoSite(articles=600, mirrors=["http://127.0.0.1:9"])
    assert len(big.articles) == 600
    assert len(big.expected_articles(100)) == 598
    status, _, body = big.page(big.articles[-1].path)
    assert status == 200 and b'class="body"' in body


# -- the healthy mirror over HTTP ---------------------------------------------------------------


def test_article_page_markup_and_ground_truth(demo, healthy):
    article = next(a for a in demo.site.articles if a.kind == NEWS and len(a.sections) == 1)
    status, headers, body = get(healthy + article.path)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 30_000 <= len(body) <= 80_000
    truth = demo.truth(demo.canonical + article.path)
    page = lxml.html.fromstring(body)
    assert page.get("lang") == "en"
    assert truth.title in page.findtext(".//title")
    meta = {m.get("property") or m.get("name"): m.get("content") for m in page.iter("meta")}
    assert meta["og:title"] == truth.title
    assert meta["author"] == truth.author
    assert meta["article:published_time"] == truth.published
    assert meta["description"]
    paragraphs = page.xpath('//div[@class="body"]/p')
    assert "\n".join(p.text_content() for p in paragraphs if "Roku" not in p.text_content()) == (
        truth.text
    )
    visible = page.text_content()
    assert f"By {truth.author}" in visible
    for boilerplate in (
        "SHARE THIS ARTICLE",
        "Demo News Roku",
        "Demo News's website can also be accessed at the following alternate addresses:",
    ):
        assert boilerplate in visible
    assert visible.index("SHARE THIS ARTICLE") > visible.index(truth.text.split("\n")[-1])
    for mirror in demo.mirrors:
        assert mirror in visible


def test_the_crawlers_extraction_recovers_ground_truth(demo, healthy):
    outlet = demo.outlet()
    for article in demo.site.articles[:12]:
        _, _, body = get(healthy + article.path)
        extracted = extract_article(body, demo.canonical + article.path, outlet.boilerplate)
        truth = demo.truth(article.path)
        if article.kind == VIDEO:
            assert extracted is None
            continue
        assert extracted is not None
        assert extracted.text == truth.text
        assert (extracted.title, extracted.author) == (truth.title, truth.author)
        assert extracted.published == truth.published
        assert extracted.language == "en"


def test_video_article_has_no_text(demo, healthy):
    video = demo.site.video_article
    status, _, body = get(healthy + video.path)
    assert status == 200
    page = lxml.html.fromstring(body)
    assert page.xpath('//div[@class="body"]//video')
    assert page.xpath('string(//div[@class="body"])').strip() == ""


def test_robots_txt_disallows_the_archived_article(demo, healthy):
    status, _, body = get(healthy + "/robots.txt")
    assert status == 200
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(body.decode().splitlines())
    archived = demo.site.disallowed_article
    assert not robots.can_fetch("news-crawler", healthy + archived.path)
    assert all(
        robots.can_fetch("news-crawler", healthy + a.path)
        for a in demo.site.articles
        if a.kind != ARCHIVED
    )


def test_unknown_paths_and_wrong_dates_are_404(demo, healthy):
    article = demo.site.articles[0]
    wrong_date = article.path.replace(f"/{article.published:%d}/", "/31/", 1)
    for path in ("/nothing", "/section/sport", "/news/2024/01/01/99999/x", wrong_date):
        assert get(healthy + path)[0] == 404, path
    assert get(healthy + "/about")[0] == 200
    assert get(healthy + "/")[0] == 200


def test_path_pagination_every_section_and_404_past_the_end(demo, healthy):
    outlet = demo.outlet()
    for section in SECTIONS:
        pages = demo.site.section_pages(section)
        assert pages >= 2
        seen = []
        for page in range(1, pages + 1):
            url = outlet.section_page_url(section, page).replace(demo.canonical, healthy)
            status, _, body = get(url)
            assert status == 200, url
            listed = {
                demo.canonical + a.path for a in demo.site.listing(section, page)
            }
            assert listed <= article_links(outlet, url, body)
            seen.append(listed)
        assert set().union(*seen) == {demo.canonical + a.path for a in demo.site.listings[section]}
        assert get(f"{healthy}/section/{section}/page/{pages + 1}")[0] == 404
        assert get(f"{healthy}/section/{section}?page={pages + 1}")[0] == 404
        first_page = get(f"{healthy}/section/{section}")[2]
        assert get(f"{healthy}/section/{section}/page/1")[2] == first_page


def test_rel_next_pagination_in_some_sections_only(demo, healthy):
    assert REL_NEXT_SECTIONS and set(SECTIONS) - set(REL_NEXT_SECTIONS)
    for section in SECTIONS:
        url, chain = f"{healthy}/section/{section}", []
        while url:
            status, _, body = get(url)
            assert status == 200
            chain.append(body)
            nexts = lxml.html.fromstring(body).xpath('//a[@rel="next"]/@href')
            url = urljoin(url, nexts[0]) if nexts else None
        if section in REL_NEXT_SECTIONS:
            assert len(chain) == demo.site.section_pages(section)
            for number, body in enumerate(chain[1:], 2):
                assert body == get(f"{healthy}/section/{section}/page/{number}")[2]
        else:
            assert len(chain) == 1


def test_listing_links_that_lead_off_the_outlet_or_nowhere(demo, healthy):
    url = f"{healthy}/section/economy"
    hrefs = links(url, get(url)[2])
    other_mirrors = [m for m in demo.mirrors if m != healthy]
    assert any(h.startswith(tuple(m + "/news/" for m in other_mirrors)) for h in hrefs)
    assert any(h.startswith("/news/") for h in hrefs)  # relative
    assert any(urlsplit(h).hostname and urlsplit(h).hostname.endswith(".invalid") for h in hrefs)
    offsite = [h for h in hrefs if urlsplit(h).hostname == "partner.example.invalid"]
    assert offsite and ARTICLE_PATH.match(urlsplit(offsite[0]).path)  # article-shaped, off-site
    assert any(h.startswith("mailto:") for h in hrefs)
    assert any(h.startswith("javascript:") for h in hrefs)
    assert "#top" in hrefs and "/about" in hrefs


def test_expected_articles_match_what_the_listings_link(demo, healthy):
    outlet = demo.outlet()
    _, _, robots_txt = get(healthy + "/robots.txt")
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(robots_txt.decode().splitlines())
    for depth in (1, 2, 5):
        found = set()
        for section in SECTIONS:
            for page in range(1, depth + 1):
                url = outlet.section_page_url(section, page).replace(demo.canonical, healthy)
                status, _, body = get(url)
                if status == 404:
                    break
                found |= article_links(outlet, url, body)
        storable = set()
        for url in found:
            if not robots.can_fetch("news-crawler", url):
                continue
            body = get(outlet.on_mirror(url, healthy))[2]
            if lxml.html.fromstring(body).xpath('string(//div[@class="body"])').strip():
                storable.add(url)
        assert storable == demo.expected_articles(depth), depth
    assert demo.expected_articles() == demo.expected_articles(demo.max_section_pages)


def test_same_document_on_every_live_mirror(tmp_path):
    with DemoOutlet(tmp_path, behaviours=("healthy", "healthy")) as fx:
        path = fx.site.articles[5].path
        first, second = (get(server.base_url + path)[2] for server in fx.servers)
        assert first == second


# -- the outlet file ---------------------------------------------------------------------------


def test_outlet_file_loads_and_points_at_the_mirrors(demo):
    outlet = load_outlet_file(demo.outlet_dir / "demonews.yaml")
    assert outlet.name == demo.name == "demonews"
    assert list(outlet.mirrors) == list(demo.mirrors)
    assert outlet.canonical == demo.canonical == demo.servers[0].base_url
    assert demo.servers[0].behaviour == "dead"  # canonical, though dead
    assert set(outlet.sections) == set(SECTIONS)
    assert outlet.page_path == "{path}/page/{page}"
    assert outlet.blocked_markers == ["This domain has been seized"]
    assert "SHARE THIS ARTICLE" in outlet.boilerplate.cut_from
    assert outlet.boilerplate.drop_lines == ["Demo News Roku"]
    assert outlet.max_section_pages == 5
    assert all(outlet.article_pattern.match(a.path) for a in demo.site.articles)


def test_outlet_file_with_politeness_and_depth(tmp_path):
    politeness = {"requests_per_second": 5, "concurrency": 2}
    with DemoOutlet(
        tmp_path / "nested", behaviours="healthy", max_section_pages=2, politeness=politeness
    ) as fx:
        outlet = fx.outlet()
        assert outlet.politeness.requests_per_second == 5
        assert outlet.politeness.concurrency == 2
        assert outlet.max_section_pages == 2
        assert fx.expected_articles() == fx.site.expected_articles(2)


def test_bad_configuration_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown behaviour"):
        DemoOutlet(tmp_path, behaviours=("healthy", "sleepy"))
    with pytest.raises(Exception, match="politeness"):
        DemoOutlet(tmp_path, behaviours="healthy", politeness={"rate": 1}).start().stop()
    (tmp_path / "demonews.yaml").write_text("name: demonews\n")
    with pytest.raises(OutletError):
        load_outlet_file(tmp_path / "demonews.yaml")


# -- behaviours --------------------------------------------------------------------------------


def test_every_behaviour_is_known():
    assert set(BEHAVIOURS) == {
        "healthy", "dead", "seized", "hanging", "flaky", "forbidden", "redirect_off", "garbage"
    }


def test_dead_refuses_connections(demo):
    with pytest.raises(ConnectionRefusedError):
        get(demo.server("dead").base_url + "/section/politics")
    assert demo.server("dead").hits() == 0


def test_seized_answers_every_path_with_the_notice(demo):
    seized = demo.server("seized").base_url
    outlet = demo.outlet()
    for path in ("/", "/robots.txt", "/section/world", demo.site.articles[0].path, "/x"):
        status, _, body = get(seized + path)
        assert status == 200
        assert b"This domain has been seized" in body
        assert not article_links(outlet, seized + path, body)


@pytest.mark.parametrize(
    ("behaviour", "status"), [("forbidden", 403), ("redirect_off", 302), ("garbage", 200)]
)
def test_failing_behaviours(site, behaviour, status):
    with MirrorServer(site, behaviour) as server:
        site.mirrors = [server.base_url]
        article = site.articles[0]
        for path in ("/section/politics", article.path):
            code, headers, body = get(server.base_url + path)
            assert code == status
            if behaviour == "redirect_off":
                assert headers["Location"] == REDIRECT_TARGET
            assert article.title.encode() not in body
            assert b"/news/" not in body
            assert b"has been seized" not in body
        assert [r.status for r in server.requests] == [status, status]


def test_flaky_fails_every_third_request(site):
    with MirrorServer(site, "flaky") as server:
        statuses = [get(server.base_url + "/section/world")[0] for _ in range(9)]
    assert statuses == [200, 200, 503] * 3
    assert [r.status for r in server.requests] == statuses


def test_hanging_never_answers_until_released(site):
    server = MirrorServer(site, "hanging").start()
    try:
        with pytest.raises(TimeoutError):
            get(server.base_url + "/section/world", timeout=0.5)
        assert server.hits("/section/world") == 1
        assert server.requests[0].status is None
    finally:
        server.stop()
    with pytest.raises(ConnectionRefusedError):
        get(server.base_url + "/")


def test_behaviour_switches_at_run_time_on_the_same_port(site):
    server = MirrorServer(site, "dead").start()
    url = server.base_url + "/section/culture"
    try:
        with pytest.raises(ConnectionRefusedError):
            get(url)
        server.behaviour = "healthy"
        assert get(url)[0] == 200
        server.behaviour = "seized"
        assert b"has been seized" in get(url)[2]
        server.behaviour = "dead"
        with pytest.raises(ConnectionRefusedError):
            get(url)
        server.behaviour = "flaky"
        assert [get(url)[0] for _ in range(3)] == [200, 200, 503]
        assert server.base_url.endswith(f":{server.port}")
    finally:
        server.stop()


def test_going_dead_drops_kept_alive_connections(site):
    with MirrorServer(site, "healthy") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("GET", "/about")
        assert connection.getresponse().read()
        server.behaviour = "dead"
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("GET", "/about")
            connection.getresponse().read()
        connection.close()


def test_switching_away_from_hanging_releases_waiting_requests(site):
    with MirrorServer(site, "hanging") as server:
        errors = []

        def fetch():
            try:
                get(server.base_url + "/", timeout=30)
            except Exception as exc:  # noqa: BLE001 - the connection is dropped unanswered
                errors.append(exc)

        thread = threading.Thread(target=fetch)
        thread.start()
        _wait_for(lambda: server.hits() == 1)
        server.behaviour = "healthy"
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert len(errors) == 1 and not isinstance(errors[0], TimeoutError)
        assert get(server.base_url + "/")[0] == 200


# -- the request log ---------------------------------------------------------------------------


def test_request_log_counts_paths_statuses_and_times(site):
    with MirrorServer(site, "healthy") as server:
        for path in ("/section/world", "/section/world", "/nothing", "/section/world?page=2"):
            get(server.base_url + path)
        assert server.hits("/section/world") == 2
        assert server.hits("/section/world?page=2") == 1
        assert server.hits() == 4
        log = server.requests
        assert [r.status for r in log] == [200, 200, 404, 200]
        assert all(r.finished >= r.started for r in log)
        assert [r.started for r in log] == sorted(r.started for r in log)
        assert server.paths()[2] == "/nothing"
        server.clear_log()
        assert server.hits() == 0


# -- answering as real servers do ---------------------------------------------------------------


def test_pages_are_gzipped_when_the_client_accepts_it(demo, healthy):
    url = healthy + demo.site.articles[0].path
    status, plain_headers, plain = get(url)
    assert status == 200 and "Content-Encoding" not in plain_headers
    assert plain_headers["Vary"] == "Accept-Encoding"
    for accept in ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5", "*", "x-gzip"):
        status, headers, body = request(url, Accept_Encoding=accept)
        assert (status, headers["Content-Encoding"]) == (200, "gzip"), accept
        assert headers["Vary"] == "Accept-Encoding"
        assert int(headers["Content-Length"]) == len(body) < len(plain) / 3
        assert gzip.decompress(body) == plain
    for accept in ("identity", "gzip;q=0", "br", "*, gzip;q=0", ""):
        status, headers, body = request(url, Accept_Encoding=accept)
        assert "Content-Encoding" not in headers and body == plain, accept
    # HEAD says what GET would send
    _, head_headers, empty = request(url, head=True, Accept_Encoding="gzip")
    assert empty == b"" and head_headers["Content-Encoding"] == "gzip"
    assert head_headers["Content-Length"] == str(len(request(url, Accept_Encoding="gzip")[2]))


def test_what_is_compressed_follows_nginx(demo, healthy, site):
    robots = request(healthy + "/robots.txt", Accept_Encoding="gzip")
    assert robots[1]["Content-Encoding"] == "gzip"
    assert robots[1]["Content-Type"] == "text/plain; charset=utf-8"
    missing = request(healthy + "/nothing", Accept_Encoding="gzip")
    assert (missing[0], missing[1]["Content-Encoding"]) == (404, "gzip")
    seized = request(demo.server("seized").base_url + "/x", Accept_Encoding="gzip")
    assert gzip.decompress(seized[2]) == SEIZED_PAGE
    with MirrorServer(site, "flaky") as server:
        answers = [request(server.base_url + "/robots.txt", Accept_Encoding="gzip")
                   for _ in range(3)]
    assert answers[2][0] == 503 and "Content-Encoding" not in answers[2][1]  # as nginx
    with MirrorServer(site, "redirect_off") as server:
        redirect = request(server.base_url + "/", Accept_Encoding="gzip")
    assert redirect[0] == 302 and "Content-Encoding" not in redirect[1]


def test_validators_and_304_not_modified(demo, healthy):
    url = healthy + "/section/world"
    status, headers, body = get(url)
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert status == 200 and etag.startswith('"') and parsedate_to_datetime(modified)
    _, gzipped_headers, _ = request(url, Accept_Encoding="gzip")
    assert gzipped_headers["ETag"] == f"W/{etag}"  # another byte sequence, as nginx says
    assert gzipped_headers["Last-Modified"] == modified
    for validators in ({"If_None_Match": etag}, {"If_None_Match": f'"x", W/{etag}'},
                       {"If_None_Match": "*"}, {"If_Modified_Since": modified},
                       {"If_Modified_Since": formatdate(time.time() + 60, usegmt=True)}):
        status, headers, empty = request(url, Accept_Encoding="gzip", **validators)
        assert (status, empty) == (304, b""), validators
        assert headers["ETag"] == f"W/{etag}" and "Content-Encoding" not in headers
    for validators in ({"If_None_Match": '"other"'},
                       {"If_Modified_Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
                       {"If_Modified_Since": "not a date"},
                       # If-None-Match decides when both are sent
                       {"If_None_Match": '"other"', "If_Modified_Since": modified}):
        status, _, again = request(url, **validators)
        assert (status, again) == (200, body), validators
    assert demo.server("healthy").requests[-1].status == 200
    other_page = get(healthy + "/section/politics")[1]["ETag"]
    assert other_page != etag


def test_server_sees_concurrent_requests(site):
    with MirrorServer(site, "hanging") as server:
        threads = [
            threading.Thread(target=_swallow, args=(get, server.base_url + f"/?n={n}", 30))
            for n in range(6)
        ]
        for thread in threads:
            thread.start()
        _wait_for(lambda: server.hits() == 6)
        assert server.max_in_flight == 6
        server.behaviour = "healthy"
        for thread in threads:
            thread.join(timeout=30)


def test_outlet_hits_sum_over_mirrors(tmp_path):
    with DemoOutlet(tmp_path, behaviours=("healthy", "seized")) as fx:
        for server in fx.servers:
            get(server.base_url + "/robots.txt")
        assert fx.hits("/robots.txt") == 2


# -- standalone ----------------------------------------------------------------------------------


def test_command_line_serves_until_interrupted(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler.demo.server", "--articles", "20",
         "--behaviours", "seized,healthy", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        outlet_file = Path(process.stdout.readline().strip())
        assert outlet_file == tmp_path / "demonews.yaml"
        outlet = load_outlet_file(outlet_file)
        status, _, _ = get(outlet.mirrors[1] + "/section/politics")
        assert status == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        process.stdout.close()


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _swallow(function, *args) -> None:
    with contextlib.suppress(Exception):  # only the server's view matters here
        function(*args)
