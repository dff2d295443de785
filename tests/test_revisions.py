"""What makes a revision, and the stores' one design for revisions, removals and revisits
(SQLite and PostgreSQL alike)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta

import pytest
from conftest import project_crawler
from scrapy import Request

from crawler.context import crawl_context
from crawler.core.judging import NOT_FOUND, judge_redirect
from crawler.core.meta import REVISIT
from crawler.core.outlets import load_outlet_file
from crawler.core.revisions import is_revision, normalize_published, revision_hash, version_diff
from crawler.extensions.revisits import RevisitRecorder
from crawler.revisits import due_revisits
from crawler.spiders.outlet import OutletSpider
from crawler.storage import open_store

URL = "https://www.example-outlet.test/news/2026/11/20/101/a-story"
TEXT = ("The ministry said on Friday that the new budget would raise spending on schools.\n"
        "Critics said the figures did not add up.")


def record(text: str = TEXT, *, title: str = "Budget raises school spending",
           published: str | None = "2026-11-20T08:00:00+00:00",
           fetched_at: str = "2026-11-20T09:00:00+00:00", url: str = URL, **extra) -> dict:
    return {
        "canonical_url": url, "url": url, "mirror": "https://www.example-outlet.test",
        "outlet": "example", "section": "politics", "title": title, "author": None,
        "published": published, "language": "en", "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest(), "fetched_at": fetched_at,
        "etag": '"abc"', "last_modified": None, **extra,
    }


# -- what a revision is --------------------------------------------------------------------------


def test_whitespace_is_not_an_edit():
    spaced = "  The ministry said on Friday that the new budget would raise spending on\n" \
             "schools.\n\n   Critics  said the figures did not add up.  "
    assert revision_hash(record(spaced)) == revision_hash(record())
    assert not is_revision({"revision_hash": revision_hash(record())}, record(spaced))


@pytest.mark.parametrize("change", [
    {"text": TEXT.replace("Friday", "Thursday")},
    {"title": "Budget cuts school spending"},
    {"published": "2026-11-19T08:00:00+00:00"},
])
def test_a_changed_title_date_or_text_is_an_edit(change):
    assert is_revision({"revision_hash": revision_hash(record())}, {**record(), **change})


def test_one_moment_spelled_two_ways_is_one_date():
    assert normalize_published("2026-11-20") == normalize_published("2026-11-20T00:00:00Z")
    assert normalize_published("2026-11-20T10:00:00+02:00") == "2026-11-20T08:00:00+00:00"
    assert normalize_published("last Friday") == "last Friday"
    assert normalize_published(None) == ""


def test_rows_stored_before_revision_hashes_compare_by_content_hash():
    stored = {"revision_hash": None, "content_hash": record()["content_hash"]}
    assert not is_revision(stored, record())
    assert is_revision(stored, record(TEXT + " More."))


def test_the_diff_shows_title_date_and_text_lines_that_changed():
    before = {**record(), "revision": 1}
    after = {**record(TEXT.replace("Friday", "Thursday"), title="Budget row"), "revision": 2}
    diff = version_diff(before, after)
    assert "--- title (revision 1)\n+++ title (revision 2)\n" in diff
    assert "-Budget raises school spending\n+Budget row\n" in diff
    assert "-The ministry said on Friday" in diff and "+The ministry said on Thursday" in diff
    assert "Critics said" in diff  # context
    assert "published" not in diff
    assert version_diff(before, {**before, "revision": 2}) == ""


# -- the stores ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    uri = (request.getfixturevalue("pg_uri") if request.param == "postgresql"
           else f"sqlite:///{tmp_path}/store.db")
    opened = open_store(uri)
    yield opened
    opened.close()


def stored(store) -> dict:
    [row] = [r for r in store.read() if r["canonical_url"] == URL]
    return row


def test_an_edit_keeps_the_earlier_version_and_whitespace_only_says_seen(store):
    assert store.write([record()]).new == 1
    spaced = record(TEXT.replace(" ", "  "), fetched_at="2026-11-20T15:00:00+00:00")
    written = store.write([spaced])
    assert (written, written.new, written.revised) == (0, 0, ())
    row = stored(store)
    assert (row["revision"], row["text"]) == (1, TEXT)
    assert row["fetched_at"] == row["first_seen"] == "2026-11-20T09:00:00+00:00"
    assert row["last_seen"] == "2026-11-20T15:00:00+00:00"

    edited = record(TEXT + " The finance minister resigned.", title="Minister resigns",
                    fetched_at="2026-11-20T21:00:00+00:00", warc_file="a.warc.gz",
                    warc_record_id="<urn:uuid:1>")
    written = store.write([edited])
    assert (written, written.new, written.revised) == (1, 0, (URL,))
    row = stored(store)
    assert (row["revision"], row["title"], row["warc_record_id"]) == (
        2, "Minister resigns", "<urn:uuid:1>")
    assert row["first_seen"] == "2026-11-20T09:00:00+00:00"
    assert row["fetched_at"] == row["last_seen"] == "2026-11-20T21:00:00+00:00"
    versions = store.history(URL)
    assert [(v["revision"], v["title"]) for v in versions] == [
        (1, "Budget raises school spending"), (2, "Minister resigns")]
    assert versions[0]["fetched_at"] == "2026-11-20T09:00:00+00:00"
    assert versions[-1]["removed_at"] is None
    assert store.history(URL + "/other") == []


def test_removal_is_marked_once_counted_per_revisit_and_undone_by_a_return(store):
    store.write([record()])
    [first] = store.mark_removed([URL], "2026-11-21T09:00:00+00:00")
    assert (first.removed_at, first.checks) == ("2026-11-21T09:00:00+00:00", 1)
    [second] = store.mark_removed([URL, URL + "/never-stored"], "2026-11-21T15:00:00+00:00")
    assert (second.removed_at, second.checks) == ("2026-11-21T09:00:00+00:00", 2)
    assert stored(store)["removed_at"] == "2026-11-21T09:00:00+00:00"
    assert store.count() == 1  # marked, never deleted
    exported = list(store.read(changed_since="2026-11-21T00:00:00+00:00"))
    assert [r["canonical_url"] for r in exported] == [URL]

    store.write([record(fetched_at="2026-11-22T09:00:00+00:00")])  # served again
    row = stored(store)
    assert (row["removed_at"], row["revision"]) == (None, 1)


def test_due_revisits_follow_the_window_the_interval_and_the_removal_checks(store):
    old = URL.replace("101", "99")
    written = [
        record(),
        record(url=old, published="2026-11-01T08:00:00+00:00"),
        record(url=URL + "-undated", published=None),
    ]
    store.write(written)

    def due(checked_before: str, checks: int = 3) -> set[str]:
        rows = store.due_for_revisit("example", published_after="2026-11-18T00:00:00+00:00",
                                     checked_before=checked_before, removal_checks=checks,
                                     limit=10)
        return {row["canonical_url"] for row in rows}

    assert due("2026-11-20T08:00:00+00:00") == set()  # checked since
    assert due("2026-11-20T10:00:00+00:00") == {URL, URL + "-undated"}  # first seen counts
    [row] = [r for r in store.due_for_revisit(
        "example", published_after="2026-11-18", checked_before="2026-11-21",
        removal_checks=3, limit=1)]
    assert row["etag"] == '"abc"' and row["removed"] is False
    # the version it was queued for: a revisit that finds it again writes no WARC record
    versions = {r["canonical_url"]: revision_hash(r) for r in written}
    assert row["revision_hash"] == versions[row["canonical_url"]]

    store.seen_unchanged([URL], "2026-11-21T09:00:00+00:00")
    assert due("2026-11-21T08:00:00+00:00") == {URL + "-undated"}
    assert stored(store)["last_seen"] == "2026-11-21T09:00:00+00:00"

    # a removed article is revisited until enough revisits agreed, even out of the window
    store.mark_removed([old], "2026-11-21T09:00:00+00:00")
    assert old in due("2026-11-22T00:00:00+00:00", checks=2)
    # recent and removed articles together, least recently checked first, up to the limit
    rows = store.due_for_revisit("example", published_after="2026-11-18T00:00:00+00:00",
                                 checked_before="2026-11-22T00:00:00+00:00", removal_checks=3,
                                 limit=3)
    found = [(r["canonical_url"], r["removed"]) for r in rows]
    # checked on the 20th, then the two checked on the 21st, one of them removed
    assert found[0] == (URL + "-undated", False)
    assert set(found[1:]) == {(URL, False), (old, True)}
    store.mark_removed([old], "2026-11-21T15:00:00+00:00")
    assert old not in due("2026-11-22T00:00:00+00:00", checks=2)


def test_with_a_backoff_an_article_is_revisited_less_often_as_it_ages(store):
    young, old, future = URL, URL.replace("101", "99"), URL.replace("101", "98")
    store.write([
        record(),  # published 08:00, checked at 09:00: 1 h old
        record(url=old, published="2026-11-18T09:00:00+00:00"),  # 48 h old when checked
        record(url=future, published="2026-11-25T00:00:00+00:00"),  # a wrong date: age 0
    ])

    def due(now: str, backoff: float) -> set[str]:
        at = datetime.fromisoformat(now)
        rows = store.due_for_revisit(
            "example", published_after="2026-11-17T00:00:00+00:00",
            checked_before=(at - timedelta(hours=6)).isoformat(), removal_checks=3,
            limit=10, now=now, backoff=backoff)
        return {row["canonical_url"] for row in rows}

    # every interval (6 h) without a backoff
    assert due("2026-11-20T15:00:00+00:00", 0) == {young, old, future}
    # with one, the article 48 h old at its check waits 48 h; the young one the interval
    assert due("2026-11-20T15:00:00+00:00", 1) == {young, future}
    assert due("2026-11-22T08:00:00+00:00", 1) == {young, future}
    assert due("2026-11-22T09:00:00+00:00", 1) == {young, old, future}
    # ten times its age: the young one (1 h) after 10 h, not after the 6 h interval
    assert young not in due("2026-11-20T18:00:00+00:00", 10)
    assert young in due("2026-11-20T19:00:00+00:00", 10)


def test_an_outlets_revisits_back_off_by_default(store, tmp_path):
    (tmp_path / "example.yaml").write_text(OUTLET_FILE)
    outlet = load_outlet_file(tmp_path / "example.yaml")
    assert (outlet.revisit.interval, outlet.revisit.backoff) == ("6h", 1.0)
    old = URL.replace("101", "99")
    store.write([record(url=old, published="2026-11-19T09:00:00+00:00")])  # 24 h at its check

    def due(now: str) -> list[str]:
        return [row["canonical_url"]
                for row in due_revisits(store, outlet, 10, datetime.fromisoformat(now))]

    assert due("2026-11-20T21:00:00+00:00") == []  # 12 h on: the interval alone would say due
    assert due("2026-11-21T09:00:00+00:00") == [old]


# -- judging and recording what a revisit found ---------------------------------------------------

OUTLET_FILE = """
name: example
mirrors: [https://www.example-outlet.test, https://mirror.example-outlet.test]
sections: {politics: /section/politics/}
article_url: '^/news/'
"""


@pytest.fixture
def crawler(tmp_path):
    (tmp_path / "example.yaml").write_text(OUTLET_FILE)
    crawler = project_crawler(OutletSpider, OUTLETS_DIR=str(tmp_path),
                              STORE_URI=f"sqlite:///{tmp_path}/c.db", STORE_FLUSH_SECONDS=0.05)
    crawler.stats.open_spider()
    return crawler


@pytest.mark.parametrize(("location", "gone"), [
    (b"/", True), (b"https://mirror.example-outlet.test/", True),
    (b"/section/politics", True), (b"/news/2026/11/20/102/another-story", False),
])
def test_an_article_sent_to_the_home_page_or_a_section_is_gone(crawler, location, gone):
    outlet = crawl_context(crawler).catalog.get("example")
    verdict = judge_redirect(URL, 301, location, outlet, article=True)
    assert (verdict is not None and verdict.answer == NOT_FOUND) is gone
    # a listing or feed redirected home is not an article taken down
    assert judge_redirect(URL, 301, location, outlet, article=False) is None


def test_the_recorder_writes_removals_and_304s_in_the_background_and_at_close(crawler):
    context = crawl_context(crawler)
    unchanged = URL.replace("101", "102")
    context.store.write([record(), record(url=unchanged)])
    recorder = RevisitRecorder.from_crawler(crawler)
    outlet = context.catalog.get("example")
    spider = OutletSpider()
    due = {"canonical_url": URL, "etag": '"abc"'}

    async def revisits_end() -> None:
        revisit = spider.revisit_request(outlet, due)
        assert revisit.headers["If-None-Match"] == b'"abc"' and revisit.meta[REVISIT]
        recorder.request_finished(revisit, "not_found")
        recorder.request_finished(spider.revisit_request(
            outlet, {**due, "canonical_url": unchanged}), "not_modified")
        recorder.request_finished(Request(URL, meta={"outlet": "example"}), "not_found")
        await asyncio.sleep(0.5)  # the flush timer (50 ms) and the write

    asyncio.run(revisits_end())
    rows = {r["canonical_url"]: r for r in context.store.read()}
    assert rows[URL]["removed_at"] is not None
    assert rows[unchanged]["removed_at"] is None
    assert rows[unchanged]["last_seen"] > record()["fetched_at"]
    assert crawler.stats.get_value("articles/removed") == 1
    assert crawler.stats.get_value("revisits/not_modified") == 1

    recorder.close()  # nothing left to write
    history = context.store.history(URL)
    assert history[-1]["removal_checks"] == 1
    context.store.close()
