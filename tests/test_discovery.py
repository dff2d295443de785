"""Finding articles through feeds and news sitemaps, asking only for what changed, and
paging only while there is something new: crawls of the demo outlet served by nginx."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import FAST, run_crawler, stored_records
from nginx_outlet import AccessEntry

from crawler.core.discovery import (
    MalformedDocument,
    conditional_headers,
    feed_entries,
    sitemap_entries,
    within_window,
)
from crawler.demo.site import NEWS, SECTIONS

WINDOW_DAYS = 2.0  # the outlet file's default sitemap_window_days


def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                       *FAST, *extra)


def ended(stderr: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"'requests/ended/([a-z_0-9]+)': (\d+)", stderr)}


def canonical(fx, articles) -> set[str]:
    return {fx.canonical + a.path for a in articles if a.kind == NEWS}


def recent_site(hours: float = 1.0) -> datetime:
    """The newest article an hour ago, so that the sitemap window holds a few days' news."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(second=0, microsecond=0)


# -- the pure parts ------------------------------------------------------------------------------


def test_a_malformed_feed_or_sitemap_is_an_error_not_a_crash():
    for body in (b"<html><body>Just a moment...</body></html>", b"\x00\x01garbage", b""):
        with pytest.raises(MalformedDocument):
            feed_entries(body)
        with pytest.raises(MalformedDocument):
            sitemap_entries(body)


def test_sitemap_dates_and_conditional_headers():
    now = datetime(2024, 6, 28, 12, tzinfo=UTC)
    assert within_window("2024-06-27T12:00:00Z", now, 2)
    assert not within_window("2024-06-25", now, 2)
    assert within_window(None, now, 2)  # undated: read it
    assert conditional_headers({"ETag": 'W/"a"', "Last-Modified": "x"}) == {
        "If-None-Match": 'W/"a"', "If-Modified-Since": "x"}
    assert conditional_headers(None) == {}


# -- crawls --------------------------------------------------------------------------------------


def test_an_outlet_with_only_feeds_stores_exactly_what_the_feeds_list(nginx_outlet, tmp_path):
    fx = nginx_outlet("seized", "healthy", pages="demo", articles=60, discovery=("feeds",))
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = set().union(*(canonical(fx, fx.site.feed_articles(s)) for s in SECTIONS))
    records = stored_records(store)
    assert {r["canonical_url"] for r in records} == expected
    assert len(records) == len(expected)
    for record in records:
        assert record["mirror"] == fx.mirrors[1]  # the seized mirror left rotation
        assert record["title"] == fx.truth(record["canonical_url"]).title
    assert not [e for e in fx.requests() if e.path.startswith("/section/")
                and not e.path.endswith("/feed.rss")], "a listing was fetched"
    assert ended(result.stderr)["feed_handled"] == len(SECTIONS)
    assert f"'articles/found_by/feed': {len(expected)}" in result.stderr


def test_a_malformed_feed_on_one_mirror_is_read_on_another(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=40, discovery=("feeds",))
    broken = "/section/politics/feed.rss"
    fx.serve(0, broken, b"<html><body><p>Sorry, try again later</p></body></html>")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = set().union(*(canonical(fx, fx.site.feed_articles(s)) for s in SECTIONS))
    assert {r["canonical_url"] for r in stored_records(store)} == expected
    assert "'discovery/malformed/feed': 1" in result.stderr
    assert f"Malformed feed at {fx.mirrors[0]}{broken}" in result.stderr
    assert fx.mirror(1).hits(broken, status=200) == 1
    assert "out of rotation" not in result.stderr  # one document's answer, not the mirror's


@pytest.mark.parametrize("source", ["sitemaps", "robots_sitemaps"])
def test_a_news_sitemap_index_is_read_within_its_window_only(nginx_outlet, tmp_path, source):
    fx = nginx_outlet("healthy", pages="demo", articles=60, discovery=(source,),
                      newest=recent_site())
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    now = datetime.now(UTC)
    assert result.returncode == 0, result.stderr[-3000:]
    horizon = now - timedelta(days=WINDOW_DAYS)
    recent = [a for a in fx.site.articles if a.published >= horizon]
    assert 2 <= len(canonical(fx, recent)) < len(fx.site.articles) // 2
    assert {r["canonical_url"] for r in stored_records(store)} == canonical(fx, recent)
    fetched = {e.path for e in fx.requests()}
    for day, articles in fx.site.sitemap_days().items():
        path = f"/sitemaps/news-{day}.xml.gz"
        # a day's sitemap is dated by its newest article
        assert (path in fetched) == (articles[0].published >= horizon), path
    assert "'articles/found_by/sitemap'" in result.stderr


def test_a_second_run_of_an_unchanged_outlet_gets_304_for_everything(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", pages="demo", articles=60,
                      discovery=("listings", "feeds", "sitemaps"), newest=recent_site())
    store = f"sqlite:///{tmp_path}/crawl.db"
    first = crawl(fx, store)
    assert first.returncode == 0, first.stderr[-3000:]
    stored = len(stored_records(store))
    assert stored >= len(fx.expected_articles())
    before = len(fx.requests())
    second = crawl(fx, store)
    assert second.returncode == 0, second.stderr[-3000:]
    again: list[AccessEntry] = fx.requests()[before:]
    documents = [e for e in again if e.path != "/robots.txt"]
    # the first listing page of each section, each feed and the sitemap index: unchanged
    assert len(documents) == 2 * len(SECTIONS) + 1, [e.target for e in documents]
    assert {e.status for e in documents} == {304}
    assert not [e for e in again if e.path.startswith("/news/")]
    assert ended(second.stderr) == {"not_modified": len(documents)}
    assert re.search(rf"not modified \(304\)\s*│?\s*{len(documents)}\b", second.stderr)
    assert len(stored_records(store)) == stored


def test_a_section_whose_newest_page_holds_nothing_new_is_not_paged_further(
    nginx_outlet, tmp_path
):
    fx = nginx_outlet("healthy", pages="demo", articles=120, max_section_pages=3)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store).returncode == 0
    # sections whose first page holds only articles that get stored (no video, no archive)
    plain = [s for s in SECTIONS if all(a.kind == NEWS for a in fx.site.listing(s, 1))]
    assert plain

    def older_pages(entries, section):
        return [e for e in entries if e.path.startswith(f"/section/{section}")
                and e.target != f"/section/{section}"]

    before = len(fx.requests())
    # without validators, the first pages come in full: the store says they hold nothing new
    second = crawl(fx, store, "-s", "CONDITIONAL_REQUESTS=False")
    assert second.returncode == 0, second.stderr[-3000:]
    again = fx.requests()[before:]
    for section in plain:
        assert older_pages(again, section) == [], section
    assert "'listing/stopped_nothing_new'" in second.stderr
    # only what was never stored is asked for again (a video page without text)
    never_stored = {a.path for a in fx.site.articles if a.kind != NEWS}
    assert {e.path for e in again if e.path.startswith("/news/")} <= never_stored

    before = len(fx.requests())
    full = crawl(fx, store, "--full")
    assert full.returncode == 0, full.stderr[-3000:]
    walked = fx.requests()[before:]
    for section in SECTIONS:
        assert len(older_pages(walked, section)) == 2, section  # pages 2 and 3
    assert {e.status for e in walked if e.path.startswith("/section/")} == {200}


def test_outlets_init_writes_a_starter_file_from_what_the_mirrors_serve(nginx_outlet, tmp_path):
    fx = nginx_outlet("dead", "healthy", pages="demo", articles=40)
    out = tmp_path / "new"
    out.mkdir()
    dead, healthy = fx.mirrors
    result = run_crawler("outlets", "init", "newsite", healthy, "--outlets-dir", str(out))
    assert result.returncode == 0, result.stderr
    written = (out / "newsite.yaml").read_text()
    from crawler.core.outlets import load_outlet_file

    outlet = load_outlet_file(out / "newsite.yaml")
    assert outlet.mirrors == [healthy]  # as given; nothing added silently
    assert outlet.feeds == ["/feed.rss"]
    assert outlet.sitemaps == ["/sitemap_news.xml"]
    assert {s.path for s in outlet.sections.values()} == {f"/section/{s}" for s in SECTIONS}
    for path in fx.site.expected_paths(1):
        assert outlet.article_pattern.search(path), path
    assert not outlet.article_pattern.search("/section/politics/page/2")
    # the article's mirror notice names the mirrors: proposed in a comment only
    assert outlet.article_url == r"^/news/\d{4}/\d{2}/\d{2}/\d+(/|$)"
    assert re.search(rf"^# .*NOT added.*\n(#.*\n)*#   - {re.escape(dead)}$", written, re.M)
    assert f"named on the site, not added (review): {dead}" in result.stdout
    assert "not inferred: page_path" in result.stdout
    listed = run_crawler("outlets", "--outlets-dir", str(out))
    assert listed.returncode == 0, listed.stderr
