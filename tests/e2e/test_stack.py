"""What the containers run, as separate processes: two beats and several workers against one
Redis and one PostgreSQL, a recurring schedule, workers removed and added mid-crawl."""

from __future__ import annotations

import signal
import subprocess
import sys

from conftest import REPO, crawler_env, run_crawler, stored_records, wait_for

from crawler.distributed.keys import RedisKeys
from crawler.distributed.schedules import Schedules

KEYS = RedisKeys()


def test_stack_with_beats_and_changing_workers(
    demo_outlet, redis_server_factory, workers, pg_uri, tmp_path
):
    redis = redis_server_factory(appendonly=True)
    fx = demo_outlet("dead", "seized", "flaky", "healthy", articles=120,
                     politeness={"requests_per_second": 15})
    url = redis.url
    beats = [
        subprocess.Popen(
            [sys.executable, "-m", "crawler.cli", "beat", "--redis", url, "--outlets-dir",
             str(fx.outlet_dir), "--tick", "0.2"],
            stdout=(tmp_path / f"beat{i}.log").open("w"), stderr=subprocess.STDOUT, cwd=REPO,
            env=crawler_env(),
        )
        for i in range(2)
    ]
    crew = [workers(url, pg_uri, fx.outlet_dir) for _ in range(2)]
    try:
        result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                             "--redis", url, "--every", "4s")
        assert result.returncode == 0, result.stderr
        expected = fx.expected_articles()

        def stored():
            return len(stored_records(pg_uri))

        wait_for(lambda: stored() >= len(expected) // 4, 120, "a quarter of the articles")
        crew.append(workers(url, pg_uri, fx.outlet_dir))  # scale up
        wait_for(lambda: stored() >= len(expected) // 2, 120, "half of the articles")
        crew[0].stop(signal.SIGKILL)  # a worker lost without warning
        assert crew[1].stop(signal.SIGTERM) < 30  # and one scaled down
        crew.append(workers(url, pg_uri, fx.outlet_dir))
        wait_for(lambda: stored() >= len(expected), 180, "every article stored")

        client = redis.client()

        def runs():
            return [s.runs for s in Schedules(client, KEYS).all()]

        # the schedule fired at least twice for every section while the crawl went on
        wait_for(lambda: min(runs()) >= 2, 30, "a second run of every section")
        listings = fx.server("healthy").paths()
        first_pages = [p for p in listings if p.split("?")[0] in {
            f"/section/{s}" for s in fx.outlet().sections}]
        assert len(first_pages) <= sum(runs()) + 4
    finally:
        for beat in beats:
            beat.send_signal(signal.SIGTERM)
        for beat in beats:
            beat.wait(30)
    for worker in crew[2:]:
        assert worker.stop(signal.SIGTERM) < 30
    records = stored_records(pg_uri)
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls))
    assert set(urls) == expected
    for record in records:
        assert record["text"] == fx.truth(record["canonical_url"]).text
    import psycopg

    with psycopg.connect(pg_uri) as db:
        # re-delivered articles were identical: no revision was recorded
        assert db.execute("select count(*) from article_revisions").fetchone()[0] == 0
