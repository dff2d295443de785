"""Revisits against nginx mirrors: an edit becomes a revision, whitespace does not, an
article gone from every mirror is marked removed (from one mirror only, it is not), and
`crawler history` / `crawler export` show it."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import FAST, REPO, crawler_env, run_crawler, stored_records, wait_for
from redis import Redis

from crawler.core.meta import REVISIT
from crawler.core.outlets import load_outlet_file
from crawler.distributed.keys import RedisKeys
from crawler.distributed.queue import OutletQueues
from crawler.distributed.revisits import RevisitQueuer
from crawler.revisits import REVISIT_PRIORITY
from crawler.spiders.outlet import OutletSpider
from crawler.storage import open_store

EDIT = "The ministry later corrected the figures it had given in this report."


def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                       *FAST, *extra)


def revisit_every_second(fx, removal_checks: int = 2) -> None:
    document = yaml.safe_load(fx.outlet_file.read_text())
    document["revisit"] = {"window": "30d", "interval": "1s", "backoff": 0,
                           "removal_checks": removal_checks}
    fx.outlet_file.write_text(yaml.safe_dump(document, sort_keys=False))


def page_of(fx, path: str) -> bytes:
    return (fx.mirror(0).root / path.strip("/") / "index.html").read_bytes()


def first_paragraph_edited(body: bytes, edit) -> bytes:
    """The page with its longest paragraph (article text, not a cookie banner) edited."""
    match = max(re.finditer(rb"<p>([^<]+)</p>", body), key=lambda m: len(m.group(1)))
    return body[: match.start(1)] + edit(match.group(1)) + body[match.end(1):]


def serve_everywhere(fx, path: str, body: bytes) -> None:
    for index in range(len(fx.mirrors_)):
        fx.serve_page(index, path, body)


def by_url(store: str) -> dict[str, dict]:
    return {r["canonical_url"]: r for r in stored_records(store)}


@pytest.fixture
def crawled(nginx_outlet, tmp_path):
    """Two healthy mirrors of the demo outlet, crawled once; revisits due after a second."""
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=12,
                      newest=datetime.now(UTC) - timedelta(hours=1))
    revisit_every_second(fx)
    store = f"sqlite:///{tmp_path}/crawl.db"
    first = crawl(fx, store)
    assert first.returncode == 0, first.stderr[-3000:]
    stored = by_url(store)
    assert set(stored) == fx.expected_articles()
    return fx, store, sorted(stored)


def test_edits_become_revisions_and_removals_are_marked(crawled, tmp_path):
    fx, store, urls = crawled
    edited, spaced, gone, gone_on_one, redirected = (urlsplit(u).path for u in urls[:5])
    serve_everywhere(fx, edited, first_paragraph_edited(
        page_of(fx, edited), lambda text: text + b" " + EDIT.encode()))
    serve_everywhere(fx, spaced, first_paragraph_edited(
        page_of(fx, spaced), lambda text: b"\n   " + text.replace(b" ", b"  \n  ") + b"\n"))
    for index in range(len(fx.mirrors_)):
        fx.mirror(index).extra.append(f"location = {gone} {{ return 410; }}")
        fx.mirror(index).extra.append(f"location = {redirected} {{ return 301 /; }}")
    fx.mirror(0).extra.append(f"location = {gone_on_one} {{ return 404; }}")
    fx.reload()
    time.sleep(1.1)  # fetched_at counts whole seconds: the first crawl's are all before
    before_revisit = datetime.now(UTC).isoformat(timespec="seconds")
    time.sleep(1.5)  # the revisit interval (1 s) is over

    second = crawl(fx, store, "--revisit")
    assert second.returncode == 0, second.stderr[-3000:]
    stored = by_url(store)
    assert set(stored) == fx.expected_articles()  # nothing deleted
    revisions = {url: r["revision"] for url, r in stored.items()}
    assert revisions == {url: 2 if url == urls[0] else 1 for url in urls}
    assert EDIT in stored[urls[0]]["text"]
    assert {url for url, r in stored.items() if r["removed_at"]} == {urls[2], urls[4]}
    assert all(r["last_seen"] >= before_revisit for url, r in stored.items()
               if url not in (urls[2], urls[4]))
    # unchanged pages answered 304 to the revisit's If-None-Match
    assert "'revisits/not_modified'" in second.stderr
    assert fx.mirror(1).hits(status=304) + fx.mirror(0).hits(status=304) >= len(urls) - 5

    history = run_crawler("history", fx.mirrors[1] + edited, "--store", store,
                          "--outlets-dir", str(fx.outlet_dir))
    assert history.returncode == 0, history.stderr
    assert "2 versions" in history.stdout
    assert re.search(r"^\+.*" + re.escape(EDIT[:30]), history.stdout, re.M), history.stdout
    as_json = json.loads(run_crawler("history", urls[0], "--json", "--store", store,
                                     "--outlets-dir", str(fx.outlet_dir)).stdout)
    assert [v["revision"] for v in as_json["versions"]] == [1, 2]
    assert as_json["versions"][0]["diff"] is None
    assert "+" in as_json["versions"][1]["diff"] and EDIT[:30] in as_json["versions"][1]["diff"]
    unchanged = json.loads(run_crawler("history", urls[1], "--json", "--store", store,
                                       "--outlets-dir", str(fx.outlet_dir)).stdout)
    assert len(unchanged["versions"]) == 1
    removed = run_crawler("history", urls[2], "--store", store,
                          "--outlets-dir", str(fx.outlet_dir))
    assert "removed since" in removed.stdout and "1 revisit agreed" in removed.stdout

    changed = [json.loads(line) for line in run_crawler(
        "export", "--store", store, "--changed-since", before_revisit).stdout.splitlines()]
    assert {r["canonical_url"] for r in changed} == {urls[0], urls[2], urls[4]}
    assert {"revision", "first_seen", "last_seen", "removed_at"} <= set(changed[0])

    # a second revisit confirms the removals; the article that came back is not removed
    for index in range(len(fx.mirrors_)):
        fx.mirror(index).extra.remove(f"location = {redirected} {{ return 301 /; }}")
    fx.reload()
    time.sleep(1.5)
    third = crawl(fx, store, "--revisit")
    assert third.returncode == 0, third.stderr[-3000:]
    stored = by_url(store)
    assert stored[urls[2]]["removed_at"] is not None
    assert stored[urls[4]]["removed_at"] is None
    checks = sqlite3.connect(urlsplit(store).path[1:]).execute(
        "SELECT removal_checks FROM articles WHERE canonical_url = ?", (urls[2],)).fetchone()
    assert checks == (2,)
    # final after removal_checks (2) revisits: no longer due
    asked = fx.mirror(0).hits(gone) + fx.mirror(1).hits(gone)
    time.sleep(1.5)
    fourth = crawl(fx, store, "--revisit")
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert fx.mirror(0).hits(gone) + fx.mirror(1).hits(gone) == asked


def test_the_beat_queues_due_revisits_once_per_interval(crawled, redis_url):
    fx, store, urls = crawled
    outlet = load_outlet_file(fx.outlet_file)
    time.sleep(1.5)
    server = Redis.from_url(redis_url)
    keys = RedisKeys()
    spider = OutletSpider()
    queues = OutletQueues(server, keys, "beat", spider)
    db = open_store(store)
    try:
        queuer = RevisitQueuer(server, keys, db, queues, spider, batch=100)
        now = time.time()
        assert queuer.queue_due(outlet, now) == len(urls)
        assert queuer.queue_due(outlet, now + 0.5) == 0  # queued already
        queued = [queues.decode(p) for p in server.zrange(keys.queue(outlet.name), 0, -1)]
        assert len(queued) == len(urls)
        assert all(r.meta[REVISIT] and r.priority == REVISIT_PRIORITY and r.dont_filter
                   and r.headers.get("If-None-Match") for r in queued)
        assert queuer.queue_due(outlet, now + 2) == len(urls)  # the interval is over
    finally:
        db.close()


def test_workers_and_the_beat_revisit_into_postgresql(nginx_outlet, redis_url, pg_uri, workers,
                                                      tmp_path):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=10,
                      newest=datetime.now(UTC) - timedelta(hours=1))
    revisit_every_second(fx)
    worker = workers(redis_url, pg_uri, fx.outlet_dir)
    wait_for(lambda: "taking work from Redis" in worker.output(), 60, "the worker to start")
    # queued now; and a recurring schedule, whose outlet the beat revisits
    for every in ([], ["--every", "1h"]):
        scheduled = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                                "--redis", redis_url, *every)
        assert scheduled.returncode == 0, scheduled.stderr
    expected = fx.expected_articles()
    wait_for(lambda: len(stored_records(pg_uri)) == len(expected), 120, "the first crawl")

    urls = sorted(expected)
    edited, gone = urlsplit(urls[0]).path, urlsplit(urls[1]).path
    serve_everywhere(fx, edited, first_paragraph_edited(
        page_of(fx, edited), lambda text: text + b" " + EDIT.encode()))
    for index in range(len(fx.mirrors_)):
        fx.mirror(index).extra.append(f"location = {gone} {{ return 404; }}")
    fx.reload()
    beat_log = tmp_path / "beat.log"
    beat = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "beat", "--redis", redis_url, "--store", pg_uri,
         "--outlets-dir", str(fx.outlet_dir), "--tick", "0.2",
         "-s", "REVISIT_CHECK_SECONDS=1"],
        stdout=beat_log.open("w"), stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env())
    try:
        def revisited():
            stored = by_url(pg_uri)
            return (stored[urls[0]]["revision"] == 2 and stored[urls[1]]["removed_at"]
                    and all(r["last_seen"] > r["first_seen"] for url, r in stored.items()
                            if url != urls[1]))

        wait_for(revisited, 120, "the revisits: " + beat_log.read_text()[-2000:])
    finally:
        beat.send_signal(signal.SIGTERM)
        beat.wait(30)
    assert "Queued" in beat_log.read_text() and "revisits of demonews" in beat_log.read_text()
    stored = by_url(pg_uri)
    assert EDIT in stored[urls[0]]["text"]
    db = open_store(pg_uri)
    try:
        assert [r["revision"] for r in db.history(urls[0])] == [1, 2]
    finally:
        db.close()
    assert worker.stop(signal.SIGTERM) < 30
