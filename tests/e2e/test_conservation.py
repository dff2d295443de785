"""Every document ends exactly once, whatever path it takes: crawls of nginx mirrors whose
answers send requests down the paths that used to lose documents silently (a cookie gate, a
redirect back to the same document), read for what the crawler says of each document."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from conftest import FAST, REPO, crawler_env, run_crawler, stored_records, wait_for
from nginx_outlet import overlap

#: the cookie a gate sets, and its check page
GATE_COOKIE = "gate_passed"
CHECK_PATH = "/gate-check"


def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
                       *FAST, *extra)


def ended(stderr: str) -> dict[str, int]:
    """The crawl's requests by final outcome, from Scrapy's stats dump."""
    return {m[1]: int(m[2]) for m in re.finditer(r"'requests/ended/([a-z_0-9]+)': (\d+)", stderr)}


def checks(mirror) -> int:
    """Requests for the gate's check page (whatever their query)."""
    return sum(1 for entry in mirror.requests() if entry.path == CHECK_PATH)


def gate(fx, mirror: int, path: str) -> None:
    """Put ``path`` of ``mirror`` behind a cookie gate, as anti-bot services do: without the
    cookie, a 302 to a check page that sets it and sends the reader back."""
    fx.answer(mirror, path, f'if ($cookie_{GATE_COOKIE} = "") '
                            f'{{ return 302 {CHECK_PATH}?back=$uri; }} '
                            "try_files $uri/index.html $uri =404")


def open_gate(fx, mirror: int) -> None:
    fx.answer(mirror, CHECK_PATH, f'add_header Set-Cookie "{GATE_COOKIE}=1; Path=/"; '
                                  "return 302 $arg_back")


def test_articles_behind_a_cookie_gate_are_stored(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=12)
    gated = sorted(fx.expected_articles())[:4]
    for mirror in (0, 1):
        open_gate(fx, mirror)
        for url in gated:
            gate(fx, mirror, urlsplit(url).path)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {r["canonical_url"]: r for r in stored_records(store)}
    assert set(records) == fx.expected_articles()
    for url in gated:
        assert overlap(fx.truth(url).text, records[url]["text"]) > 0.8, url
    assert checks(fx.mirror(0)) + checks(fx.mirror(1)) >= 1  # the gate was met, and passed
    assert "unaccounted" not in ended(result.stderr)


def test_a_gate_cookie_stays_with_the_mirror_that_set_it(nginx_outlet, tmp_path):
    """Mirrors on one host name (here one address) share no cookies: each passes its own
    gate. With one jar, the second mirror would never see its check page asked."""
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=12)
    gated = sorted(fx.expected_articles())
    for mirror in (0, 1):
        open_gate(fx, mirror)
    for url in gated:
        gate(fx, 1, urlsplit(url).path)
    # the first mirror serves nothing of the articles: each goes on to the gated one
    fx.set_behaviour(0, "dead")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store, "-s", "MIRROR_COOLDOWN=300")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["canonical_url"] for r in stored_records(store)} == fx.expected_articles()
    assert checks(fx.mirror(1)) >= 1


def test_a_redirect_back_to_the_same_document_is_followed(nginx_outlet, tmp_path):
    """A mirror that redirects an article to its own URL with a tracking parameter (the same
    document's identity): the redirect is the document's next attempt, not a duplicate."""
    fx = nginx_outlet("healthy", pages="demo", articles=10)
    bounced = sorted(fx.expected_articles())[:3]
    for url in bounced:
        fx.answer(0, urlsplit(url).path, 'if ($arg_utm_source = "") '
                                         "{ return 302 $uri?utm_source=newsletter; } "
                                         "try_files $uri/index.html $uri =404")
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["canonical_url"] for r in stored_records(store)} == fx.expected_articles()
    assert ended(result.stderr)["stored"] == len(fx.expected_articles())


def test_a_crawl_frozen_past_its_download_timeout_loses_no_mirror(nginx_outlet, tmp_path):
    """A crawl stopped (SIGSTOP, a paused container) while its downloads are under way, past
    DOWNLOAD_TIMEOUT: resumed, those downloads never had their time. They go again, and no
    timeout is held against a mirror that served them all."""
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=40, limit_rate="16k")
    store = f"sqlite:///{tmp_path}/crawl.db"
    crawl = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", fx.name, "--outlets-dir",
         str(fx.outlet_dir), "--store", store, "-s", "DOWNLOAD_TIMEOUT=3",
         "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO"],
        cwd=REPO, env=crawler_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(m.hits() >= 10 for m in fx.mirrors_), 60, "downloads under way")
        crawl.send_signal(signal.SIGSTOP)
        time.sleep(8)  # past DOWNLOAD_TIMEOUT, with answers on their way
        crawl.send_signal(signal.SIGCONT)
        _, stderr = crawl.communicate(timeout=240)
    finally:
        crawl.kill()
    assert crawl.returncode == 0, stderr[-3000:]
    assert {r["canonical_url"] for r in stored_records(store)} == fx.expected_articles()
    outcomes = re.findall(r"'mirror/outcome/([a-z_]+)': \d+", stderr)
    assert "timeout" not in outcomes, stderr[-3000:]
    assert "out of rotation:" not in stderr and "mirror/went_out" not in stderr


#: a brief that links nowhere into the outlet, small enough to be a notice served in its place
LINKLESS_BRIEF = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Port strike ends after talks</title></head>
<body><article><h1>Port strike ends after talks</h1>
<p>Dock workers returned to the country's main port on Tuesday after a four-day strike over
pay ended with an agreement reached late on Monday night, the union said.</p>
<p>The deal raises wages by six percent over two years and adds a night-shift allowance,
according to a statement read outside the port gates by the union's regional secretary.</p>
<p>Shipping agents said the backlog of containers would take about a week to clear.</p>
</article></body></html>
"""


def test_a_page_that_may_be_a_notice_is_fetched_twice_at_most(nginx_outlet, tmp_path):
    """On the only mirror, a small page that links nowhere into the outlet is asked once more
    a little later (the documents after it may show it for a notice), then stored from that
    second look: never fetched a third time to be stored."""
    fx = nginx_outlet("healthy", pages="demo", articles=8)
    target = sorted(fx.expected_articles())[0]
    path = urlsplit(target).path
    fx.serve_page(0, path, LINKLESS_BRIEF)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {r["canonical_url"]: r for r in stored_records(store)}
    assert "six percent" in records[target]["text"]
    assert fx.mirror(0).hits(path) == 2
