"""Crawls of mirrors that serve the way real web servers do: nginx on loopback, gzip on, ETag
and Last-Modified, keep-alive, real article pages (the AEB corpus, unchanged, where it is
there; the demo pages otherwise), and mirrors that fail as real ones fail."""

from __future__ import annotations

import gzip
import json
import re
import signal
import threading
from collections import Counter
from urllib.parse import urlsplit

import pytest
from conftest import FAST, run_crawler, store_count, stored_records, wait_for
from nginx_outlet import SORRY_PAGE_IN_TEMPLATE, overlap, with_link_markup

from crawler.distributed.keys import RedisKeys

KEYS = RedisKeys()
FAILING = ("dead", "seized", "botcheck")
SORRY_PAGE = (b"<!DOCTYPE html><html><head><title>Service unavailable</title></head><body>"
              b"<p>Sorry, this page is temporarily unavailable. Please try again later.</p>"
              b"</body></html>")

def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                       *FAST, *extra)


def assert_every_article_once(fx, records, failing=FAILING):
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls)), "an article was stored twice"
    missing = fx.expected_articles() - set(urls)
    assert not missing, f"{len(missing)} articles not stored, e.g. {sorted(missing)[:3]}"
    assert set(urls) == fx.expected_articles()
    marked = with_link_markup(records)
    assert not marked, f"{len(marked)} texts with link markup, e.g. {marked[:3]}"
    bad = {m.base_url for m in fx.mirrors_ if m.behaviour in failing}
    for record in records:
        assert record["mirror"] not in bad, f"{record['url']} came from a failing mirror"
        truth = fx.truth(record["canonical_url"])
        # the page's article, not a notice: extraction itself is measured elsewhere
        assert overlap(truth.text, record["text"]) > 0.5, record["canonical_url"]


def ended(stderr: str) -> dict[str, int]:
    """The crawl's requests by final outcome, from Scrapy's stats dump."""
    return {m[1]: int(m[2]) for m in re.finditer(r"'requests/ended/([a-z_0-9]+)': (\d+)", stderr)}


@pytest.mark.parametrize(
    "behaviours",
    [("dead", "seized", "botcheck", "flaky", "healthy"),
     ("botcheck", "healthy", "dead", "flaky", "seized"),
     ("healthy", "flaky", "seized", "botcheck", "dead")],
    ids=["failing-first", "mixed", "healthy-first"],
)
def test_real_pages_through_failing_nginx_mirrors(nginx_outlet, tmp_path, behaviours):
    fx = nginx_outlet(*behaviours, pages="corpus", copies=2)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_every_article_once(fx, stored_records(store))
    outcomes = ended(result.stderr)
    assert outcomes["stored"] == len(fx.expected_articles())
    assert not {"given_up", "error", "short_text", "no_text"} & set(outcomes), outcomes
    # the pages came compressed, as the crawler asked
    healthy = fx.mirror("healthy").requests()
    assert {e.content_encoding for e in healthy if e.path.startswith("/news/")} == {"gzip"}
    # mirrors that serve one page for everything leave rotation within a few documents
    for behaviour in ("seized", "botcheck"):
        assert fx.mirror(behaviour).hits() <= 8, behaviour


def test_a_crawl_started_during_an_outage_of_every_mirror(nginx_outlet, tmp_path):
    fx = nginx_outlet("flaky", "healthy", pages="demo", articles=30)
    store = f"sqlite:///{tmp_path}/crawl.db"
    fx.set_down()  # every mirror answers 503 ...
    recovery = threading.Timer(15.0, fx.set_down, kwargs={"down": False})
    recovery.start()  # ... for the first 15 seconds
    try:
        result = crawl(fx, store, "-s", "MIRROR_COOLDOWN=3")
    finally:
        recovery.cancel()
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"all 2 mirrors of \S+ out: \d+ documents waiting, next probe in \d+ s",
                     result.stderr)
    assert_every_article_once(fx, stored_records(store), failing=())
    assert "given_up" not in ended(result.stderr)


def test_an_outage_longer_than_max_wait_exits_non_zero_naming_what_was_not_stored(
    nginx_outlet, tmp_path
):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=10)
    fx.set_down()
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store, "--max-wait", "4s", "-s", "MIRROR_COOLDOWN=2")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.match(r"error: \d+ documents not stored: http://127\.0\.0\.1:\d+/section/", last)
    assert store_count(store) == 0


def test_a_short_error_page_on_one_mirror_loses_to_the_text_on_another(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=20)
    target = sorted(fx.expected_articles())[0]
    fx.serve_page(0, urlsplit(target).path, SORRY_PAGE)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {r["canonical_url"]: r for r in stored_records(store)}
    assert records[target]["text"] == fx.truth(target).text
    assert records[target]["mirror"] == fx.mirrors[1]
    # one document's answer is no verdict on its mirror: it served every other article
    assert Counter(r["mirror"] for r in records.values())[fx.mirrors[0]] == len(records) - 1


def crawl_past_one_bad_answer(fx, tmp_path, target: str):
    """Crawl an outlet whose first mirror gave a bad answer (its only one) for ``target``:
    every article is stored, ``target`` from the second mirror, and the first stays in
    rotation and serves the rest. The records by canonical URL, and the crawl's result."""
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fx.mirror(0).hits(urlsplit(target).path, 200) == 1
    records = {r["canonical_url"]: r for r in stored_records(store)}
    assert set(records) == fx.expected_articles()
    assert records[target]["mirror"] == fx.mirrors[1]
    assert "out of rotation" not in result.stderr
    assert Counter(r["mirror"] for r in records.values())[fx.mirrors[0]] == len(records) - 1
    return records, result


def test_a_gzip_body_cut_short_on_one_mirror_is_taken_whole_from_another(nginx_outlet,
                                                                        tmp_path):
    # every page twice (copies=2): the copy's record is the page's text as a whole answer
    fx = nginx_outlet("healthy", "healthy", pages="corpus", copies=2, corpus_pages=slice(0, 4))
    target = sorted(fx.expected_articles())[0]
    page = fx.truth(target).html
    whole = gzip.compress(page)
    # a precompressed file cut short: nginx sends its length as Content-Length, so the
    # download itself ends without a complaint, and Scrapy decodes what came; at 90 % this
    # page's first part has text enough (the site's corporate blurb) to pass for the article
    fx.serve_gzipped(0, urlsplit(target).path, whole[:len(whole) * 9 // 10])
    records, result = crawl_past_one_bad_answer(fx, tmp_path, target)
    copy = next(r for url, r in records.items()
                if url != target and fx.truth(url).page_id == fx.truth(target).page_id)
    assert records[target]["text"] == copy["text"]
    assert "gzip body cut short" in result.stderr


def test_an_error_page_in_the_sites_template_loses_to_the_article_on_another_mirror(
    nginx_outlet, tmp_path
):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=20)
    target = sorted(fx.expected_articles())[0]
    fx.serve_page(0, urlsplit(target).path, SORRY_PAGE_IN_TEMPLATE)
    records, _ = crawl_past_one_bad_answer(fx, tmp_path, target)
    assert records[target]["text"] == fx.truth(target).text
    assert not [r["url"] for r in records.values() if "temporarily unavailable" in r["text"]]


def test_a_pdf_and_a_redirect_off_the_outlet_leave_healthy_mirrors_in_rotation(
    nginx_outlet, tmp_path
):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=30)
    pdf_url, redirected_url = sorted(fx.expected_articles())[:2]
    for mirror in (0, 1):  # the document is a PDF on every mirror
        fx.serve(mirror, urlsplit(pdf_url).path, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    fx.answer(0, urlsplit(redirected_url).path, "return 302 http://127.0.0.2:9/elsewhere")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {r["canonical_url"]: r for r in stored_records(store)}
    assert set(records) == fx.expected_articles() - {pdf_url}
    assert records[redirected_url]["mirror"] == fx.mirrors[1]
    assert ended(result.stderr)["not_html"] == 1  # asked of both mirrors: they agree
    assert "out of rotation" not in result.stderr
    assert Counter(r["mirror"] for r in records.values())[fx.mirrors[0]] == len(records) - 1


def test_gzip_bombs_and_oversized_pages_end_without_a_leak(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", pages="demo", articles=10)
    target = sorted(fx.expected_articles())[0]
    fx.serve_page(0, urlsplit(target).path,
                  b"<html><body><p>" + b"x " * 400_000 + b"</p></body></html>")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store, "-s", "DOWNLOAD_MAXSIZE=200000")
    # the page decompresses past DOWNLOAD_MAXSIZE: Scrapy drops it, and the crawl says so
    assert ended(result.stderr).get("too_large") == 1, result.stderr[-3000:]
    assert result.returncode == 1
    assert target in result.stderr.strip().splitlines()[-1]
    assert store_count(store) == len(fx.expected_articles()) - 1


# -- distributed ----------------------------------------------------------------------------


def schedule(fx, redis_url: str) -> None:
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_url)
    assert result.returncode == 0, result.stderr


def status(redis_url: str) -> dict:
    result = run_crawler("status", "--json", "--redis", redis_url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def settle(redis_url: str, outlet: str, timeout: float = 60) -> None:
    """Wait until nothing of the outlet is queued, in flight or waiting in Redis."""
    last: dict = {}

    def settled() -> bool:
        last.update(status(redis_url)["outlets"].get(outlet, {}))
        return not last.get("queued") and not last.get("in_flight") and not last.get("waiting")

    try:
        wait_for(settled, timeout, "nothing queued, in flight or waiting")
    except pytest.fail.Exception:
        import redis
        from scrapy_redis import picklecompat
        client = redis.Redis.from_url(redis_url)
        leased = [picklecompat.loads(v.split(b"\0", 2)[2])
                  for k in client.scan_iter("crawler:inflight:*") for v in client.hvals(k)]
        pytest.fail(f"not settled after {timeout:.0f} s: {last} "
                    f"{[(d['url'], d['meta']) for d in leased][:3]}")


def test_three_workers_one_killed_over_gzip_lose_nothing_and_leave_nothing_in_flight(
    nginx_outlet, redis_server, workers, tmp_path
):
    fx = nginx_outlet("dead", "seized", "botcheck", "flaky", "healthy", pages="corpus", copies=3)
    store = f"sqlite:///{tmp_path}/crawl.db"
    crew = [workers(redis_server.url, store, fx.outlet_dir) for _ in range(3)]
    schedule(fx, redis_server.url)
    expected = len(fx.expected_articles())
    wait_for(lambda: store_count(store) >= expected // 3, 120, "a third of the articles")
    crew[0].stop(signal.SIGKILL)
    wait_for(lambda: store_count(store) >= expected, 180, "every article stored")
    settle(redis_server.url, fx.name)
    for worker in crew[1:]:
        assert worker.stop(signal.SIGTERM) < 30
        assert worker.process.returncode == 0, worker.output()[-2000:]
    assert_every_article_once(fx, stored_records(store))


def test_workers_wait_through_an_outage_and_one_killed_meanwhile_loses_nothing(
    nginx_outlet, redis_server, workers, tmp_path
):
    fx = nginx_outlet("flaky", "healthy", pages="demo", articles=40)
    store = f"sqlite:///{tmp_path}/crawl.db"
    fx.set_down()
    crew = [workers(redis_server.url, store, fx.outlet_dir, "-s", "MIRROR_COOLDOWN=3")
            for _ in range(2)]
    schedule(fx, redis_server.url)
    wait_for(lambda: status(redis_server.url)["outlets"].get(fx.name, {}).get("waiting"), 60,
             "documents waiting in Redis")
    crew[0].stop(signal.SIGKILL)
    fx.set_down(down=False)
    wait_for(lambda: store_count(store) >= len(fx.expected_articles()), 180,
             "every article stored")
    settle(redis_server.url, fx.name)
    assert crew[1].stop(signal.SIGTERM) < 30
    assert_every_article_once(fx, stored_records(store), failing=())
