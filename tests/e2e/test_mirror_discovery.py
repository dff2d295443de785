"""End to end, through nginx on loopback (gzip on): the outlet's article pages carry a notice
naming a mirror its file does not list. When the file's mirrors fail mid-crawl, the crawl
finishes from the named one once it served the stored articles alike (``adopt``), or once a
person adopts it (``propose``); a lookalike is rejected, and an undeclared loopback host is
never asked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime

import yaml
from conftest import FAST, REPO, crawler_env, run_crawler, store_count, stored_records, wait_for

SEIZED_TEXT = "This domain has been seized"


def _outlet_file(fx, mirrors, policy: str) -> None:
    """The outlet file lists ``mirrors`` only; every page still names all of fx's mirrors."""
    document = yaml.safe_load(fx.outlet_file.read_text())
    document["mirrors"] = list(mirrors)
    document["mirror_discovery"] = policy
    fx.outlet_file.write_text(yaml.safe_dump(document, sort_keys=False))


def _start(fx, store, log, *settings):
    return subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", fx.name, "--outlets-dir",
         str(fx.outlet_dir), "--store", store, "--max-wait", "5m", *FAST,
         "-s", "MIRROR_COOLDOWN=600", *settings],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env())


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def _netloc(base: str) -> str:
    return base.split("://", 1)[1]


def _seize_a_and_kill_b(fx, log):
    wait_for(lambda: len(fx.mirror(0).requests()) >= 20, 120, "the crawl under way")
    fx.set_behaviour(0, "seized")
    seized_at = datetime.now().timestamp()
    fx.set_behaviour(1, "dead")
    return seized_at


def _check_complete(fx, store, c):
    records = stored_records(store)
    urls = [r["canonical_url"] for r in records]
    # every article once, named on the canonical mirror A whichever mirror served it
    assert len(urls) == len(set(urls)) and set(urls) == fx.expected_articles()
    assert all(SEIZED_TEXT not in r["text"] for r in records)
    from_c = [r for r in records if r["mirror"] == c]
    assert from_c and all(r["url"].startswith(c) for r in from_c)
    return records, from_c


def test_adopt_a_mirror_the_notice_names_and_finish_from_it(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", "healthy", pages="demo", articles=40,
                      politeness={"requests_per_second": 8, "concurrency": 2})
    a, b, c = fx.mirrors
    _outlet_file(fx, [a, b], "adopt")
    store = f"sqlite:///{tmp_path}/crawl.db"
    log = (tmp_path / "crawl.log").open("w+")
    crawl = _start(fx, store, log, "-s", f"MIRROR_DISCOVERY_PRIVATE_HOSTS={_netloc(c)}")
    try:
        seized_at = _seize_a_and_kill_b(fx, log)
        assert crawl.wait(240) == 0, _read(log)[-4000:]
    finally:
        if crawl.poll() is None:
            crawl.kill()
    output = _read(log)
    assert f"Mirror {c} of {fx.name} adopted" in output, output[-4000:]
    records, from_c = _check_complete(fx, store, c)
    # verification: a handful of requests to C (and its robots.txt) before it is adopted
    ((seconds, requests),) = re.findall(r"verified in ([\d.]+) s, (\d+) requests", output)
    assert int(requests) + 1 <= 12
    assert fx.mirror(2).requests()[0].path == "/robots.txt"
    first_from_c = min(datetime.fromisoformat(r["fetched_at"]).timestamp() for r in from_c
                       if datetime.fromisoformat(r["fetched_at"]).timestamp() >= seized_at - 1)
    print(f"verification: {requests} requests + robots.txt to C in {seconds} s; seizure to "
          f"first article from C: {first_from_c - seized_at:.1f} s; {len(from_c)} of "
          f"{len(records)} from C")
    # `crawler mirrors` shows it adopted, with its evidence; identity unchanged
    shown = run_crawler("mirrors", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                        store, "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert [m["mirror"] for m in listed["mirrors"]] == [a, b]
    (candidate,) = [m for m in listed["candidates"] if m["base"] == c]
    assert candidate["state"] == "adopted" and "served alike" in candidate["evidence"]
    assert all(r["canonical_url"].startswith(a) for r in records)


def test_propose_lists_the_verified_mirror_and_a_person_adopts_it(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", "healthy", pages="demo", articles=40,
                      politeness={"requests_per_second": 8, "concurrency": 2})
    a, b, c = fx.mirrors
    _outlet_file(fx, [a, b], "propose")
    store = f"sqlite:///{tmp_path}/crawl.db"
    log = (tmp_path / "crawl.log").open("w+")
    crawl = _start(fx, store, log, "-s", f"MIRROR_DISCOVERY_PRIVATE_HOSTS={_netloc(c)}")
    try:
        _seize_a_and_kill_b(fx, log)
        wait_for(lambda: "is verified and proposed" in _read(log), 120, "C proposed")
        wait_for(lambda: "documents waiting" in _read(log), 60, "documents waiting")
        served_before = len(fx.mirror(2).requests())
        shown = run_crawler("mirrors", fx.name, "--outlets-dir", str(fx.outlet_dir),
                            "--store", store, "--json")
        assert shown.returncode == 0, shown.stderr
        (candidate,) = json.loads(shown.stdout)["candidates"]
        assert candidate["base"] == c and candidate["state"] == "verified"
        assert candidate["source"] == "notice" and "served alike" in candidate["evidence"]
        assert crawl.poll() is None  # the documents wait: nothing goes to C on its own
        assert len(fx.mirror(2).requests()) == served_before
        table = run_crawler("mirrors", fx.name, "--outlets-dir", str(fx.outlet_dir),
                            "--store", store)
        assert table.returncode == 0 and "verified" in table.stdout, table.stderr
        adopted = run_crawler("mirrors", "adopt", fx.name, c, "--outlets-dir",
                              str(fx.outlet_dir), "--store", store)
        assert adopted.returncode == 0, adopted.stderr
        assert crawl.wait(240) == 0, _read(log)[-4000:]
    finally:
        if crawl.poll() is None:
            crawl.kill()
    _check_complete(fx, store, c)


def test_a_lookalike_is_rejected_and_an_undeclared_loopback_host_never_asked(nginx_outlet,
                                                                             tmp_path):
    fx = nginx_outlet("healthy", "garbage", "healthy", pages="demo", articles=30)
    a, lookalike, undeclared = fx.mirrors
    _outlet_file(fx, [a], "adopt")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                         store, *FAST, "-s", f"MIRROR_DISCOVERY_PRIVATE_HOSTS={_netloc(lookalike)}")
    assert result.returncode == 0, result.stderr[-3000:]
    shown = json.loads(run_crawler("mirrors", fx.name, "--outlets-dir", str(fx.outlet_dir),
                                   "--store", store, "--json").stdout)
    candidates = {m["base"]: m for m in shown["candidates"]}
    assert candidates[lookalike]["state"] == "rejected"
    assert "served alike" in candidates[lookalike]["evidence"]  # "0 of 4 ..."
    assert 1 <= len(fx.mirror(1).requests()) <= 12
    assert candidates[undeclared]["state"] == "rejected"
    assert "MIRROR_DISCOVERY_PRIVATE_HOSTS" in candidates[undeclared]["evidence"]
    assert fx.mirror(2).requests() == []  # never fetched
    records = stored_records(store)
    assert {r["canonical_url"] for r in records} == fx.expected_articles()
    assert {r["mirror"] for r in records} == {a}
    print(f"lookalike: {len(fx.mirror(1).requests())} requests, "
          f"{candidates[lookalike]['evidence']}")


def test_two_workers_one_killed_while_verifying_adopt_it_for_all(nginx_outlet, redis_server,
                                                                 workers, tmp_path):
    import signal
    import time

    import redis

    from crawler.distributed.candidates import lease_key
    from crawler.distributed.keys import RedisKeys

    fx = nginx_outlet("healthy", "healthy", "healthy", pages="demo", articles=40,
                      politeness={"requests_per_second": 4, "concurrency": 2})
    a, b, c = fx.mirrors
    _outlet_file(fx, [a, b], "adopt")
    store = f"sqlite:///{tmp_path}/crawl.db"
    url = redis_server.url
    settings = ("-s", f"MIRROR_DISCOVERY_PRIVATE_HOSTS={_netloc(c)}",
                "-s", "MIRROR_DISCOVERY_LEASE=4", "-s", "MIRROR_COOLDOWN=600")
    crew = {f"w{i}": workers(url, store, fx.outlet_dir, *settings, "-s", f"WORKER_ID=w{i}")
            for i in range(2)}
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", url)
    assert result.returncode == 0, result.stderr
    client = redis.Redis.from_url(url)
    lease = lease_key(RedisKeys(), fx.name, c)
    holder = wait_for(lambda: client.get(lease), 120, "a worker verifying C", interval=0.02)
    killed = holder.decode()
    crew[killed].stop(signal.SIGKILL)
    survivor = next(w for name, w in crew.items() if name != killed)
    fx.set_behaviour(0, "seized")
    seized_at = time.time()
    fx.set_behaviour(1, "dead")
    wait_for(lambda: store_count(store) >= len(fx.expected_articles()), 180,
             "every article stored", interval=0.5)
    records, from_c = _check_complete(fx, store, c)
    shown = run_crawler("mirrors", fx.name, "--outlets-dir", str(fx.outlet_dir), "--redis",
                        url, "--json")
    assert shown.returncode == 0, shown.stderr
    (candidate,) = [m for m in json.loads(shown.stdout)["candidates"] if m["base"] == c]
    assert candidate["state"] == "adopted", candidate
    output = survivor.output()
    assert f"Mirror candidate {c} of {fx.name} verified" in output, output[-3000:]
    first_from_c = min(datetime.fromisoformat(r["fetched_at"]).timestamp() for r in from_c)
    # the killed worker's part of a verification, then the survivor's whole one
    verification = [e for e in fx.mirror(2).requests() if e.time < first_from_c]
    assert len(verification) <= 12, [e.target for e in verification]
    (survivors,) = re.findall(r"verified in ([\d.]+) s, (\d+) requests", output)
    print(f"distributed: worker {killed} killed while verifying; {len(verification)} "
          f"requests to C before its first article ({survivors[1]} + robots.txt by the "
          f"survivor, in {survivors[0]} s); seizure to first article from C: "
          f"{first_from_c - seized_at:.1f} s; {len(from_c)} of {len(records)} from C")
