"""End to end, through nginx on loopback (gzip on): a mirror taken out because it served
something other than the outlet comes back through a mirror check once it serves the outlet
again, and a notice that echoes the path it was asked for, with a token of its own, is still
recognised as one page served for every document."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from conftest import FAST, REPO, crawler_env, run_crawler, stored_records, wait_for

#: a seizure notice that names the path it was asked for and carries a per-answer token (SSI),
#: long enough to pass for an article's text, with none of the outlet's blocked markers
ECHOING_NOTICE = (
    '<html><head><title>Notice</title></head><body><h1>Notice</h1>'
    '<p>The page <!--# echo var="request_uri" --> on <!--# echo var="host" --> is no longer '
    'available. Access to this website was restricted under a court order that covers the '
    'domain and every address under it. Visitors who believe this is in error may contact the '
    'registry of this domain, quoting the reference below, during office hours.</p>'
    '<p>Reference <!--# echo var="request_id" --></p>'
    '<p><a href="https://registry.example.invalid/help">Help</a></p></body></html>'
)


def test_a_mirror_out_on_a_bot_check_comes_back_through_a_check(nginx_outlet, tmp_path):
    # one mirror, polite enough that the crawl is still running when it starts a bot check
    fx = nginx_outlet("healthy", pages="demo", articles=40,
                      politeness={"requests_per_second": 4, "concurrency": 2})
    store = f"sqlite:///{tmp_path}/crawl.db"
    log = (tmp_path / "crawl.log").open("w+")
    crawl = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "crawl", fx.name, "--outlets-dir",
         str(fx.outlet_dir), "--store", store, "--max-wait", "5m", *FAST,
         "-s", "MIRROR_COOLDOWN=2"],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=crawler_env())
    try:
        wait_for(lambda: fx.mirror(0).hits() >= 12, 120, "the crawl under way")
        fx.set_behaviour(0, "botcheck")
        wait_for(lambda: "out of rotation" in _read(log), 60, "the mirror to go out")
        wait_for(lambda: "Checking whether mirror" in _read(log), 30, "a mirror check")
        # what was sent before it went out has been answered: from now on only checks
        # ask it, one per cool-down, and the documents wait
        seen = len(fx.mirror(0).requests())
        time.sleep(4.5)
        while_out = [e.target for e in fx.mirror(0).requests()[seen:]]
        fx.set_behaviour(0, "healthy")
        assert crawl.wait(240) == 0, _read(log)[-4000:]
    finally:
        if crawl.poll() is None:
            crawl.kill()
    output = _read(log)
    assert "serves demonews again" in output
    records = stored_records(store)
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls))
    assert set(urls) ^ fx.expected_articles() == set()
    for record in records:
        assert "Just a moment" not in record["text"] and "your browser" not in record["text"]
    # a listing that listed articles: a section's first page
    assert 1 <= len(while_out) <= 3, while_out
    assert all(re.fullmatch(r"/section/[a-z]+", target) for target in while_out), while_out


def test_a_notice_echoing_the_path_and_a_token_is_one_page(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=30)
    fx.mirror(0).extra.append(
        "location ~ ^/(news|section)/ { ssi on; default_type text/html; "
        f"return 200 '{ECHOING_NOTICE}'; }}")
    fx.reload()
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                         store, *FAST, "-s", "MIRROR_COOLDOWN=600")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "out of rotation: the same page for different documents" in result.stderr
    records = stored_records(store)
    assert {r["canonical_url"] for r in records} == fx.expected_articles()
    assert all(r["mirror"] == fx.mirrors[1] for r in records)
    # recognised within a few documents: robots.txt, a few listings, what was in flight
    assert fx.mirror(0).hits() <= 10


def _read(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()
