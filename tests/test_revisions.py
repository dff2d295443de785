"""What makes a revision, and the stores' one design for revisions, removals and revisits
(SQLite and PostgreSQL alike)."""

from __future__ import annotations

import hashlib

import pytest

from crawler.revisions import is_revision, normalize_published, revision_hash, version_diff
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
    store.write([
        record(),
        record(url=old, published="2026-11-01T08:00:00+00:00"),
        record(url=URL + "-undated", published=None),
    ])

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

    store.seen_unchanged([URL], "2026-11-21T09:00:00+00:00")
    assert due("2026-11-21T08:00:00+00:00") == {URL + "-undated"}
    assert stored(store)["last_seen"] == "2026-11-21T09:00:00+00:00"

    # a removed article is revisited until enough revisits agreed, even out of the window
    store.mark_removed([old], "2026-11-21T09:00:00+00:00")
    assert old in due("2026-11-22T00:00:00+00:00", checks=2)
    store.mark_removed([old], "2026-11-21T15:00:00+00:00")
    assert old not in due("2026-11-22T00:00:00+00:00", checks=2)
