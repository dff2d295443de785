"""The parts of mirror discovery around the judgments: only pages of mirrors in rotation are
heard, candidates are capped, and adopted mirrors survive a restart at the lowest
preference without changing any identity (unit tests on a crawler from get_crawler)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NEWS_MIRRORS, NEWS_OUTLET_FILE, outlet_crawler
from scrapy import Request
from scrapy.http import HtmlResponse

from crawler.context import crawl_context
from crawler.core import meta
from crawler.extensions.mirror_discovery import MirrorDiscovery, due
from crawler.mirror_registry import Candidate, StoreMirrorRegistry, decide
from crawler.storage import open_store

A, B = NEWS_MIRRORS
OUTLET_FILE = NEWS_OUTLET_FILE + "mirror_discovery: adopt\n"


def page(names: list[str]) -> bytes:
    links = "".join(f'<li><a href="{n}/">{n}</a></li>' for n in names)
    return (f"<html><body><article><p>{'A story. ' * 40}</p><div><p>News can also be "
            f"accessed at the following alternate addresses:</p><ul>{links}</ul></div>"
            "</article></body></html>").encode()


def make_crawler(tmp_path: Path):
    return outlet_crawler(tmp_path, OUTLET_FILE, "news", MIRROR_DISCOVERY_MAX_CANDIDATES=3)


@pytest.fixture
def crawler(tmp_path: Path):
    return make_crawler(tmp_path)


@pytest.fixture
def discovery(crawler, monkeypatch):
    found = MirrorDiscovery.from_crawler(crawler)
    started: list[str] = []
    # the verification's requests need a running engine: recorded here, run end to end in
    # tests/e2e/test_mirror_discovery.py
    monkeypatch.setattr(found, "start", lambda outlet, candidate: started.append(candidate.base))
    found.started = started
    return found


def test_only_a_page_a_mirror_in_rotation_served_is_heard(crawler):
    health = crawl_context(crawler).health
    request = Request(f"{A}/a/1", meta={meta.OUTLET: "news", meta.MIRROR: A})
    response = HtmlResponse(f"{A}/a/1", body=page(["https://c.example"]), request=request,
                            headers={"Onion-Location": "http://x.onion/a/1"})
    (item,) = crawler.spider.parse_article(response)
    assert item.in_rotation and item.onion_location == "http://x.onion/a/1"
    health.record_failure("news", A, "block page", strong=True)
    (item,) = crawler.spider.parse_article(response)
    assert not item.in_rotation  # the pipeline does not pass its page on


def test_hosts_named_are_noted_once_capped_and_never_the_outlets_own(crawler, discovery):
    url = f"{A}/a/1"
    body = page([A, B, "https://c.example", "https://d.example", "https://e.example",
                 "https://f.example"])
    noted = discovery.page_accepted("news", A, url, body)
    assert [c.base for c in noted] == ["https://c.example", "https://d.example",
                                       "https://e.example"]
    assert discovery.started == [c.base for c in noted]
    assert crawler.stats.get_value("mirror/discovery/capped") == 1  # f: past the cap
    again = discovery.page_accepted("news", B, f"{B}/a/2", body)
    assert {c.first_seen for c in again} == {c.first_seen for c in noted}
    assert {c.found_on for c in again} == {url}


def test_adopted_mirrors_survive_a_restart_after_the_files_and_identity_stays(tmp_path):
    registry = StoreMirrorRegistry(open_store(f"sqlite:///{tmp_path}/c.db"))
    decide(registry, "news", "https://c.example", adopt=True)
    decide(registry, "news", "https://d.example", adopt=False)
    # a new process: the registry and catalog read it back when the spider opens
    crawler = make_crawler(tmp_path)
    found = crawler.extensions.middlewares[
        [type(m) for m in crawler.extensions.middlewares].index(MirrorDiscovery)]
    found.apply_adopted()
    context = crawl_context(crawler)
    outlet = context.catalog.get("news")
    assert outlet.mirrors == [A, B, "https://c.example"]
    assert context.catalog.file_mirrors("news") == [A, B]
    assert outlet.canonical_url("https://c.example/a/7?utm_source=x") == f"{A}/a/7"
    health = context.health
    for mirror in (A, B):
        health.record_failure("news", mirror, "block page", strong=True)
    assert health.choose(outlet) == "https://c.example"
    health_states = health.states(outlet)
    assert list(health_states) == [A, B, "https://c.example"]
    # a person's rejection takes it out of rotation again
    decide(registry, "news", "https://c.example", adopt=False)
    found.refresh()
    assert context.catalog.get("news").mirrors == [A, B]


def test_a_candidate_is_looked_at_again_only_after_the_recheck_interval():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    fresh = Candidate("news", "https://c.example", "notice", "", now.isoformat())
    assert due(fresh, 3600, now)
    checked = Candidate("news", "https://c.example", "notice", "", now.isoformat(),
                        state="rejected", evidence="other text", checked_at=now.isoformat())
    assert not due(checked, 3600, now + timedelta(minutes=59))
    assert due(checked, 3600, now + timedelta(minutes=61))
    by_person = Candidate("news", "https://c.example", "notice", "", now.isoformat(),
                          state="rejected", evidence="by a person at ...",
                          checked_at=now.isoformat())
    assert not due(by_person, 3600, now + timedelta(days=9))


def test_article_links_of_a_feed_on_an_unknown_host_are_candidates(crawler, discovery):
    from crawler.extensions.mirror_discovery import feed_hosts

    outlet = crawl_context(crawler).catalog.get("news")
    links = [f"{A}/a/1", "/a/2", "https://news-new.example/a/3", "https://news-new.example/a/4",
             "https://cdn.example/img/5.jpg", "https://other.example/about"]
    assert [(n.base, n.source) for n in feed_hosts(outlet, f"{A}/rss", links)] == [
        ("https://news-new.example", "feed")]
    noted = discovery.feed_read("news", A, f"{A}/rss", links)
    assert [c.base for c in noted] == ["https://news-new.example"]
    assert discovery.started == ["https://news-new.example"]


def test_a_redirect_off_the_outlet_names_its_target_only_from_a_mirror_in_rotation(
        crawler, discovery):
    from crawler.core.signals import redirect_off_outlet
    from crawler.downloadermiddlewares.mirror_failover import MirrorFailoverMiddleware

    heard: list[dict] = []
    crawler.signals.connect(lambda **kw: heard.append(kw), signal=redirect_off_outlet,
                            weak=False)
    middleware = MirrorFailoverMiddleware.from_crawler(crawler)
    request = Request(f"{A}/a/1", meta={meta.OUTLET: "news", meta.KIND: "article",
                                        meta.MIRROR: A})
    moved = HtmlResponse(f"{A}/a/1", status=301, request=request,
                         headers={"Location": "https://news-moved.example/a/1"})
    middleware.process_response(request, moved)
    assert [h["target"] for h in heard] == ["https://news-moved.example/a/1"]
    assert discovery.started == ["https://news-moved.example"]
    (candidate,) = discovery.registry.candidates("news")
    assert candidate.source == "redirect" and candidate.found_on == f"{A}/a/1"
    # three redirects take A out; a fourth from the mirror out of rotation names nothing
    for _ in range(3):
        middleware.process_response(request.replace(dont_filter=True), moved)
    heard.clear()
    crawl_context(crawler).health.record_failure("news", A, "block page", strong=True)
    middleware.process_response(request.replace(dont_filter=True), moved)
    assert heard == []


def test_crawler_mirrors_says_in_one_line_what_it_cannot_do(tmp_path):
    from conftest import run_crawler

    (tmp_path / "news.yaml").write_text(OUTLET_FILE)
    store = f"sqlite:///{tmp_path}/none.db"
    args = ("--outlets-dir", str(tmp_path), "--store", store)
    shown = run_crawler("mirrors", "news", *args, "--json")
    assert shown.returncode == 0 and '"candidates": []' in shown.stdout
    assert not (tmp_path / "none.db").exists()  # looking makes no store
    own = run_crawler("mirrors", "adopt", "news", A, *args)
    assert own.returncode == 2 and "in the outlet file already" in own.stderr
    wrong = run_crawler("mirrors", "adopt", "news", *args)
    assert wrong.returncode == 2 and "usage: crawler mirrors adopt OUTLET URL" in wrong.stderr
    adopted = run_crawler("mirrors", "adopt", "news", "https://c.example/x", *args)
    assert adopted.returncode == 0 and "https://c.example: adopted" in adopted.stdout
    store = open_store(f"sqlite:///{tmp_path}/none.db")
    (candidate,) = StoreMirrorRegistry(store).candidates("news")
    assert candidate.state == "adopted" and candidate.evidence.startswith("by a person")
