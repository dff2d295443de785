"""End to end, through nginx on loopback: a mirror that answers 429 with a Retry-After gets
no request until that time has passed, not even the requests already waiting in the outlet's
download slot when it answered, while the crawl goes on through the other mirror."""

from __future__ import annotations

import signal

from conftest import FAST, run_crawler, store_count, stored_records, wait_for

#: long against the crawl, which ends well within it through the other mirror
RETRY_AFTER = 30


def pausing_outlet(nginx_outlet):
    """Two mirrors, the first answering every article 429 with a Retry-After. One request
    of the outlet at a time (its politeness, shared by workers): the others wait, their
    mirror chosen, and none is on its way when a 429 comes back."""
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=40,
                      politeness={"concurrency": 1})
    fx.mirror(0).extra.append(
        f"location ~ ^/news/ {{ add_header Retry-After {RETRY_AFTER} always; return 429; }}")
    fx.reload()
    return fx


def assert_nothing_asked_within_the_pause(fx):
    """No request reached the pausing mirror within RETRY_AFTER of its first 429; it was
    asked again only once the pause was over (by a document it had not been heard on).
    Returns its first 429."""
    asked = fx.mirror(0).requests()
    first = next(e for e in asked if e.status == 429)
    within = [e.target for e in asked if first.time < e.time < first.time + RETRY_AFTER]
    assert within == [], within
    again = [e.time for e in asked if e.status == 429][1:]
    assert all(t >= first.time + RETRY_AFTER for t in again), again
    return first


def assert_each_article_stored_once_from_the_other_mirror(fx, store):
    records = stored_records(store)
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls)), "an article was stored twice"
    assert set(urls) == fx.expected_articles()
    assert {r["mirror"] for r in records} == {fx.mirrors[1]}


def test_no_request_reaches_a_mirror_within_its_retry_after(nginx_outlet, tmp_path):
    fx = pausing_outlet(nginx_outlet)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                         store, *FAST)
    assert result.returncode == 0, result.stderr[-3000:]

    first = assert_nothing_asked_within_the_pause(fx)
    assert f"asked not to be asked for {RETRY_AFTER} s" in result.stderr
    # the crawl went on meanwhile, through the other mirror
    assert any(e.time > first.time for e in fx.mirror(1).requests())

    assert_each_article_stored_once_from_the_other_mirror(fx, store)


def test_workers_share_a_mirrors_retry_after(nginx_outlet, redis_server, workers, tmp_path):
    fx = pausing_outlet(nginx_outlet)
    store = f"sqlite:///{tmp_path}/crawl.db"
    # each worker reads the shared mirror health afresh: what is tested is the hold in Redis,
    # not the lag of a worker's copy (MIRROR_HEALTH_REFRESH, 1 s by default)
    crew = [workers(redis_server.url, store, fx.outlet_dir, "-s", "MIRROR_HEALTH_REFRESH=0")
            for _ in range(2)]
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_server.url)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: store_count(store) >= len(fx.expected_articles()), 120,
             "every article stored")
    client = redis_server.client()
    wait_for(lambda: not any(client.hlen(k) for k in client.scan_iter("crawler:inflight:*")),
             60, "no request left in flight")
    for worker in crew:
        assert worker.stop(signal.SIGTERM) < 30

    assert_nothing_asked_within_the_pause(fx)
    assert_each_article_stored_once_from_the_other_mirror(fx, store)
