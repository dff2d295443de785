"""Recurring schedules and `crawler beat`: on time, once per interval under several beats."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, crawler_env, run_crawler, wait_for

from crawler.core.durations import parse_interval
from crawler.core.outlets import OutletCatalog
from crawler.distributed.keys import RedisKeys
from crawler.distributed.schedules import Beat, Schedules

KEYS = RedisKeys()


def test_intervals():
    assert parse_interval("15m") == 900
    assert parse_interval("1h30m") == 5400
    assert parse_interval("45s") == 45
    assert parse_interval("2d") == 172800
    for bad in ("", "15", "m", "1x", "-5m", "0s", "5m junk"):
        with pytest.raises(ValueError):
            parse_interval(bad)


def start_beat(redis_url, outlet_dir, log):
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "beat", "--redis", redis_url,
         "--outlets-dir", str(outlet_dir), "--tick", "0.2"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env(),
    )


def schedules(redis_url):
    result = run_crawler("status", "--redis", redis_url, "--json")
    assert result.returncode == 0, result.stderr
    return {(s["outlet"], s["section"]): s for s in json.loads(result.stdout)["schedules"]}


def test_two_beats_queue_each_section_once_per_interval(demo_outlet, redis_server, tmp_path):
    fx = demo_outlet("healthy", articles=20)
    url = redis_server.url
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir), "--redis",
                         url, "--every", "2s", "--section", "economy", "--section", "world")
    assert result.returncode == 0, result.stderr
    assert "scheduled demonews economy every 2s" in result.stdout
    beats = [start_beat(url, fx.outlet_dir, tmp_path / f"beat{i}.log") for i in range(2)]
    try:
        started = time.monotonic()
        wait_for(lambda: all(s["runs"] >= 3 for s in schedules(url).values()), 30,
                 "three runs of each schedule")
        elapsed = time.monotonic() - started
        for schedule in schedules(url).values():
            # first run at once, then one per 2 s: a doubled schedule would run twice as often
            assert schedule["runs"] <= elapsed / 2 + 2, (schedule, elapsed)
            assert schedule["next_run"] > schedule["last_run"]
    finally:
        for beat in beats:
            beat.send_signal(signal.SIGTERM)
        for beat in beats:
            assert beat.wait(30) == 0
    logs = [(tmp_path / f"beat{i}.log").read_text() for i in range(2)]
    assert sum("is leading" in log for log in logs) == 1
    assert sum("standing by" in log for log in logs) == 1
    queued = [line for log in logs for line in log.splitlines() if "Queued demonews" in line]
    runs = sum(s["runs"] for s in schedules(url).values())
    assert len(queued) == runs
    assert redis_server.client().zcard(KEYS.queue(fx.name)) >= 1


def test_a_missed_run_runs_once_when_beat_returns(demo_outlet, redis_server):
    fx = demo_outlet("healthy", articles=20)
    client = redis_server.client()
    catalog = OutletCatalog.from_setting(fx.outlet_dir)
    store = Schedules(client, KEYS)
    store.add(fx.name, ["economy"], every=0.5)
    beat = Beat(client, KEYS, catalog, tick=0.1)
    assert len(beat.beat_once()) == 1
    time.sleep(1.8)  # beat "down" for three intervals
    ran = beat.beat_once()
    assert len(ran) == 1 and ran[0].runs == 2
    assert beat.beat_once() == []  # not once per missed interval
    assert ran[0].next_run > store.redis_now()


def test_a_standby_beat_takes_over_when_the_leader_dies(demo_outlet, redis_server):
    fx = demo_outlet("healthy", articles=20)
    client = redis_server.client()
    catalog = OutletCatalog.from_setting(fx.outlet_dir)
    Schedules(client, KEYS).add(fx.name, ["economy"], every=60)
    leader = Beat(client, KEYS, catalog, lease_seconds=0.5)
    standby = Beat(client, KEYS, catalog, lease_seconds=0.5)
    assert len(leader.beat_once()) == 1
    assert standby.beat_once() == []
    # the leader dies without releasing: its lease lapses and the standby leads
    wait_for(lambda: (standby.beat_once(), standby._leading)[1], 5, "a new leader")
    assert leader.beat_once() == [] and not leader._leading
    # nothing is due yet: the takeover did not run the schedule again
    assert Schedules(client, KEYS).all()[0].runs == 1


def test_unschedule_and_status(demo_outlet, redis_server):
    fx = demo_outlet("healthy", articles=20)
    url = redis_server.url
    assert run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir), "--redis", url,
                       "--every", "15m").returncode == 0
    assert set(schedules(url)) == {(fx.name, s) for s in ("politics", "economy", "world",
                                                          "culture")}
    table = run_crawler("status", "--redis", url)
    assert "Schedules" in table.stdout and "900s" in table.stdout
    result = run_crawler("unschedule", fx.name, "--section", "world", "--redis", url)
    assert result.returncode == 0 and "unscheduled demonews world" in result.stdout
    assert (fx.name, "world") not in schedules(url)
    assert run_crawler("unschedule", fx.name, "--redis", url).returncode == 0
    assert schedules(url) == {}
    missing = run_crawler("unschedule", fx.name, "--redis", url)
    assert missing.returncode != 0 and "no schedule" in missing.stderr
    bad = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir), "--redis", url,
                      "--every", "soon")
    assert bad.returncode != 0 and "not an interval" in bad.stderr
