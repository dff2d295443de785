"""One identity URL per document: in the spider's requests, the dupefilter, the stored-article
filter and every store, and the migration of stores keyed the old way."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import FAST, run_crawler, stored_records
from scrapy import Request

from crawler.core.identity import TRACKING_PARAMS, identity_url, is_tracking, without_tracking
from crawler.core.outlets import Outlet
from crawler.fingerprinter import MirrorAwareFingerprinter
from crawler.items import ARTICLE_FIELDS
from crawler.storage import open_store, rekeyed
from crawler.storage.postgres import SCHEMA_VERSION as PG_VERSION
from crawler.storage.postgres import migrate
from crawler.storage.sqlite import SCHEMA_VERSION as SQLITE_VERSION

OUTLET = Outlet(
    name="daily",
    mirrors=["https://www.daily.example", "http://mirror.daily.example:8080"],
    sections={"world": "/section/world"},
    article_url=r"^/news/\d+",
)
ARTICLE = "https://www.daily.example/news/1/caf%C3%A9"

#: the article fields of the stores' first schemas
OLD_FIELDS = ARTICLE_FIELDS[: ARTICLE_FIELDS.index("fetched_at") + 1]


# -- the identity function ----------------------------------------------------------------------


@pytest.mark.parametrize("variant", [
    "https://www.daily.example/news/1/caf%C3%A9?utm_source=x",
    "https://www.daily.example/news/1/caf%C3%A9?utm_medium=y&utm_campaign=z",
    "https://www.daily.example/news/1/caf%C3%A9?UTM_Source=x",
    "https://www.daily.example/news/1/caf%C3%A9?fbclid=IwAR0abc",
    "https://www.daily.example/news/1/caf%C3%A9?gclid=1&mc_cid=2&mc_eid=3&_ga=4&yclid=5",
    "https://www.daily.example/news/1/caf%c3%a9",
    "http://mirror.daily.example:8080/news/1/caf%c3%a9?igshid=q#comments",
    "https://www.daily.example/news/1/caf%C3%A9#top",
    "https://www.daily.example/news/1/caf%C3%A9?ref=home",  # not declared: not identity
])
def test_variants_of_an_article_have_one_identity(variant):
    assert OUTLET.canonical_url(variant) == ARTICLE


def test_a_tilde_and_its_escape_are_one_path():
    assert (OUTLET.canonical_url("https://www.daily.example/news/2/%7Eme")
            == OUTLET.canonical_url("http://mirror.daily.example:8080/news/2/~me")
            == "https://www.daily.example/news/2/~me")


def test_declared_identity_params_stay_sorted_and_the_rest_go():
    outlet = Outlet.model_validate({**OUTLET.model_dump(), "identity_params": ["id", "page"]})
    url = "http://mirror.daily.example:8080/news/3?page=2&utm_source=x&id=7&ref=home"
    assert outlet.canonical_url(url) == "https://www.daily.example/news/3?id=7&page=2"
    assert outlet.canonical_url("https://www.daily.example/news/3?id=8") != outlet.canonical_url(
        "https://www.daily.example/news/3?id=7")


def test_a_listing_keeps_its_query_but_not_tracking():
    assert (OUTLET.canonical_url("http://mirror.daily.example:8080/section/world?utm_source=a"
                                 "&page=2#x") == "https://www.daily.example/section/world?page=2")
    assert OUTLET.canonical_url("https://www.daily.example/section/world?page=2") != (
        OUTLET.canonical_url("https://www.daily.example/section/world?page=3"))


def test_what_is_fetched_keeps_the_query_the_server_may_need():
    url = "http://mirror.daily.example:8080/news/4?ref=home&utm_source=a&fbclid=b#c"
    assert OUTLET.fetch_url(url) == "https://www.daily.example/news/4?ref=home"
    assert without_tracking("https://a.example/x?%75tm_source=1&b=%7E") == (
        "https://a.example/x?b=%7E")


def test_tracking_params_are_a_documented_constant():
    assert {"fbclid", "gclid", "mc_cid", "mc_eid", "_ga", "yclid", "igshid"} <= TRACKING_PARAMS
    assert is_tracking("utm_anything") and not is_tracking("id") and not is_tracking("page")
    assert identity_url("https://a.example/x?b=2&a=1&utm_term=t") == "https://a.example/x?a=1&b=2"


def test_the_fingerprint_is_the_identity():
    fingerprinter = MirrorAwareFingerprinter(lambda: {"daily": OUTLET})
    prints = {
        fingerprinter.fingerprint(Request(url, meta={"outlet": "daily"}))
        for url in ("https://www.daily.example/news/1/caf%c3%a9?utm_source=a",
                    "http://mirror.daily.example:8080/news/1/caf%C3%A9?utm_medium=b#x")
    }
    assert len(prints) == 1


# -- stores: new records and migration ---------------------------------------------------------

OLD_SQLITE_SCHEMA = """
CREATE TABLE articles (
    canonical_url TEXT PRIMARY KEY, url TEXT NOT NULL, mirror TEXT NOT NULL,
    outlet TEXT NOT NULL, section TEXT, title TEXT, author TEXT, published TEXT,
    language TEXT, text TEXT NOT NULL, content_hash TEXT NOT NULL, fetched_at TEXT NOT NULL
);
"""
BASE = "https://www.daily.example/news/"


def record(key: str, fetched_at: str, text: str = "") -> dict:
    text = text or f"text of {key} at {fetched_at}"
    return {
        "canonical_url": key, "url": key, "mirror": "https://www.daily.example",
        "outlet": "daily", "section": "world", "title": "t", "author": None,
        "published": None, "language": "en", "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest(), "fetched_at": fetched_at,
    }


#: rows an older crawler stored: three variants of one article, two of another, one alone
OLD_ROWS = [
    record(BASE + "1?utm_source=a", "2024-05-01T10:00:00+00:00"),
    record(BASE + "1?utm_medium=b&fbclid=x", "2024-05-03T10:00:00+00:00", "latest of 1"),
    record(BASE + "1", "2024-05-02T10:00:00+00:00"),
    record(BASE + "caf%c3%a9", "2024-05-04T10:00:00+00:00", "latest of cafe"),
    record(BASE + "caf%C3%A9#x", "2024-05-01T09:00:00+00:00"),
    record(BASE + "2?id=5&utm_source=a", "2024-05-01T08:00:00+00:00", "only 2"),
]
MIGRATED = {
    BASE + "1": "latest of 1",
    BASE + "caf%C3%A9": "latest of cafe",
    BASE + "2?id=5": "only 2",
}


def test_the_plan_keeps_the_latest_of_each_identity():
    plan = rekeyed((r["canonical_url"], r["fetched_at"]) for r in OLD_ROWS)
    stays = {new: keep for _, keep, new in plan}
    assert stays == {BASE + "1": BASE + "1?utm_medium=b&fbclid=x",
                     BASE + "caf%C3%A9": BASE + "caf%c3%a9",
                     BASE + "2?id=5": BASE + "2?id=5&utm_source=a"}
    assert rekeyed([(BASE + "3", "2024")]) == []  # already an identity: nothing to do


def test_an_old_sqlite_store_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SQLITE_SCHEMA)
    marks = ", ".join(f":{f}" for f in OLD_FIELDS)
    db.executemany(f"INSERT INTO articles ({', '.join(OLD_FIELDS)}) VALUES ({marks})",
                   OLD_ROWS)
    db.commit()
    db.close()
    store = open_store(f"sqlite:///{path}")
    try:
        assert {r["canonical_url"]: r["text"] for r in store.read()} == MIGRATED
        assert store.existing([BASE + "1", BASE + "1?utm_source=a"]) == {BASE + "1"}
    finally:
        store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SQLITE_VERSION
    store = open_store(f"sqlite:///{path}")  # opening again changes nothing
    try:
        assert store.count() == len(MIGRATED)
    finally:
        store.close()


def test_a_new_sqlite_store_starts_at_the_current_version(tmp_path):
    path = tmp_path / "new.db"
    open_store(f"sqlite:///{path}").close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SQLITE_VERSION


def test_a_jsonl_store_reads_old_variants_as_one_article(tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in OLD_ROWS[:3]))
    store = open_store(f"jsonl:///{path}")
    try:
        assert store.existing([BASE + "1"]) == {BASE + "1"}
        # written last: the file's order is the order they were fetched in by one crawler
        assert [(r["canonical_url"], r["text"]) for r in store.read()] == [
            (BASE + "1", OLD_ROWS[2]["text"])]
        assert store.write([record(BASE + "1", "2024-06-01T00:00:00+00:00", "new")]) == 1
        assert [r["text"] for r in store.read()] == ["new"]
    finally:
        store.close()


def test_an_old_postgres_store_is_migrated_on_open_and_keeps_the_merged_rows(pg_uri):
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        assert migrate(conn, target=2) == 2  # the schema before identity URLs
        cols = ", ".join(OLD_FIELDS)
        marks = ", ".join(f"%({f})s" for f in OLD_FIELDS)
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO articles ({cols}) VALUES ({marks})", OLD_ROWS)
        # a row that is merged away has a revision of its own
        conn.execute("UPDATE articles SET text = 'changed', content_hash = 'h'"
                     " WHERE canonical_url = %s", [BASE + "1?utm_source=a"])
    with open_store(pg_uri) as store:
        assert {r["canonical_url"]: r["text"] for r in store.read()} == MIGRATED
        revisions = store.revisions(BASE + "1")
        assert [r["fetched_at"][:10] for r in revisions] == [
            "2024-05-01", "2024-05-01", "2024-05-02"]
        assert {r["text"] for r in revisions} >= {"changed", OLD_ROWS[0]["text"],
                                                   OLD_ROWS[2]["text"]}
        assert [r["text"] for r in store.revisions(BASE + "caf%C3%A9")] == [OLD_ROWS[4]["text"]]
        assert store.revisions(BASE + "2?id=5") == []
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        assert migrate(conn) == PG_VERSION


#: what the outlet-independent migration leaves: a query the outlet's rules do not count
UNRULY = [
    record(BASE + "7?ref=home", "2024-05-01T10:00:00+00:00"),
    record(BASE + "7", "2024-05-02T10:00:00+00:00", "latest of 7"),
    record(BASE + "8?from=rss", "2024-05-01T10:00:00+00:00", "only 8"),
    {**record("https://other.example/news/9?ref=x", "2024-05-01T10:00:00+00:00"),
     "outlet": "other"},
]


@pytest.fixture(params=["sqlite", "jsonl", "postgresql"])
def store_uri(request, tmp_path):
    if request.param == "postgresql":
        return request.getfixturevalue("pg_uri")
    return f"{request.param}:///{tmp_path}/store.{request.param}"


def test_rekey_applies_the_outlets_rules_to_its_articles_only(store_uri):
    store = open_store(store_uri)
    try:
        store.write(UNRULY)
        assert store.rekey("daily", OUTLET.canonical_url) == 2  # one merged, one moved
        assert {r["canonical_url"]: r["text"] for r in store.read()} == {
            BASE + "7": "latest of 7", BASE + "8": "only 8",
            "https://other.example/news/9?ref=x": UNRULY[3]["text"]}
        assert store.rekey("daily", OUTLET.canonical_url) == 0
        assert store.existing([BASE + "8"]) == {BASE + "8"}
    finally:
        store.close()


def test_the_rekey_command(tmp_path):
    outlets = tmp_path / "outlets"
    outlets.mkdir()
    (outlets / "daily.yaml").write_text(json.dumps(OUTLET.model_dump(exclude_defaults=True)))
    store = f"sqlite:///{tmp_path}/crawl.db"
    opened = open_store(store)
    opened.write(UNRULY)
    opened.close()
    result = run_crawler("rekey", "daily", "--store", store, "--outlets-dir", str(outlets))
    assert result.returncode == 0, result.stderr
    assert "2 stored articles of daily rekeyed or merged" in result.stdout
    assert {r["canonical_url"] for r in stored_records(store, "daily")} == {BASE + "7",
                                                                            BASE + "8"}


# -- end to end ---------------------------------------------------------------------------------


def _link_articles_with(fx, original: dict[Path, str], query: str) -> None:
    """Every listing page of every mirror links its articles with ``?query`` (written as
    :meth:`NginxOutlet.serve_page` does, for the ``?page=N`` pages too)."""
    for mirror in fx.mirrors_:
        for page in sorted((mirror.root / "section").rglob("*.html")):
            body = original.setdefault(page, page.read_text(encoding="utf-8"))
            page.unlink()  # a hard link shared with the other mirrors
            page.write_text(re.sub(r'href="(/news/[^"#?]+)"', rf'href="\1?{query}"', body),
                            encoding="utf-8")


def test_two_crawls_whose_listings_add_different_tracking_store_each_article_once(
    nginx_outlet, tmp_path
):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=12)
    store = f"sqlite:///{tmp_path}/crawl.db"
    original: dict[Path, str] = {}
    _link_articles_with(fx, original, "utm_source=a")
    first = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                        *FAST)
    assert first.returncode == 0, first.stderr[-3000:]
    urls = [r["canonical_url"] for r in stored_records(store)]
    assert sorted(urls) == sorted(fx.expected_articles())
    hits = fx.requests()
    assert not any("utm_" in e.target for e in fx.requests())  # tracking is not sent

    _link_articles_with(fx, original, "utm_medium=b&from=home")
    second = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                         *FAST)
    assert second.returncode == 0, second.stderr[-3000:]
    records = stored_records(store)
    assert sorted(r["canonical_url"] for r in records) == sorted(fx.expected_articles())
    # known by identity: not one article was fetched again
    # known by identity: no stored article was fetched again (1008 is not an article)
    again = [urlsplit(e.target).path for e in fx.requests()[len(hits):]]
    assert not {urlsplit(url).path for url in fx.expected_articles()} & set(again)
    assert all(urlsplit(r["canonical_url"]).query == "" for r in records)
