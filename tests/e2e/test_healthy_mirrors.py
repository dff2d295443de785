"""A healthy mirror is never taken out for good (#18): every page of the saved-page corpora,
served by nginx (gzip on) under 1 to 3 article URLs each (with and without a slug, copies
under other ids that differ only in a number), crawled from one healthy mirror and from two
listed in either order. Every article with text is stored once, no mirror leaves rotation
and the crawl exits 0.

One part per corpus (the whole would take too long in one crawl); the counts and the wall
time of each crawl are printed, with ``-s`` or not. Pages where the crawler's extractor finds
no text end as ``no_text`` (no loss: the crawl still exits 0); which articles are expected
stored is worked out here, page by page, with the crawler's own extractor.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import FAST, run_crawler, stored_records
from nginx_outlet import CORPORA, with_link_markup

from crawler.demo.corpus import COPY, VARIANTS, article_pages
from crawler.demo.corpus import CORPORA as CORPUS_NAMES
from crawler.extraction import extract_article

#: a whole part runs past the suite's 300 s: up to 5 min (one corpus, two cores), more where
#: the crawl waits for a mirror wrongly out
CRAWL_TIMEOUT = 1200
pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.timeout(CRAWL_TIMEOUT + 300)]

WENT_OUT = re.compile(r"Mirror (\S+) of (\S+) out of rotation: (.*)")
#: a mirror wrongly taken out makes documents wait: give up on them soon, not in 15 min
MAX_WAIT = "90s"


def ended(stderr: str) -> dict[str, int]:
    """The crawl's requests by final outcome, from Scrapy's stats dump."""
    return {m[1]: int(m[2]) for m in re.finditer(r"'requests/ended/([a-z_0-9]+)': (\d+)", stderr)}


def stat(stderr: str, name: str) -> int | None:
    match = re.search(rf"'{re.escape(name)}': (\d+)", stderr)
    return int(match[1]) if match else None


@functools.cache
def pages_with_text(corpus: Path) -> frozenset[str]:
    """Ids of the corpus's pages where the crawler's extractor finds text, as the crawler
    sees them (nginx says UTF-8). A copy's marker is a comment: the same text."""
    return frozenset(
        page.id for page in article_pages(corpus)
        if (found := extract_article(page.html, "http://127.0.0.1/news/2024/01/01/1",
                                     encoding="utf-8")) is not None and found.text
    )


def reorder_mirrors(fx, order: tuple[int, ...]) -> tuple[str, ...]:
    """List the outlet's mirrors in ``order`` (positions) in its file; the new order."""
    document = yaml.safe_load(fx.outlet_file.read_text(encoding="utf-8"))
    mirrors = tuple(fx.mirrors[i] for i in order)
    document["mirrors"] = list(mirrors)
    fx.outlet_file.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
                              encoding="utf-8")
    return mirrors


@pytest.mark.parametrize("name", CORPUS_NAMES)
@pytest.mark.parametrize(
    "order", [(0,), (0, 1), (1, 0)], ids=["one-mirror", "two-mirrors", "two-mirrors-reversed"],
)
def test_healthy_mirrors_stay_in_rotation_over_every_corpus_page(
    nginx_outlet, tmp_path, capsys, name, order
):
    corpus = CORPORA / name
    started = time.monotonic()
    fx = nginx_outlet(*("healthy",) * len(order), pages="corpus", corpus=corpus,
                      layout=VARIANTS)
    mirrors = reorder_mirrors(fx, order)
    canonical = mirrors[0]
    site = fx.site
    store = f"sqlite:///{tmp_path}/crawl.db"
    served = time.monotonic() - started

    # the crawl runs while the expectation is worked out here: two cores, both busy
    result: dict = {}

    def crawl() -> None:
        began = time.monotonic()
        result["run"] = run_crawler(
            "crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
            "--max-wait", MAX_WAIT, *FAST, timeout=CRAWL_TIMEOUT)
        result["seconds"] = time.monotonic() - began

    runner = threading.Thread(target=crawl)
    runner.start()
    try:
        with_text = {i for i, page in enumerate(site.pages)
                     if page.id in pages_with_text(corpus)}
    finally:
        runner.join()  # never leave a crawl running past its mirrors
    run, crawl_seconds = result["run"], result["seconds"]
    (tmp_path / "crawl.log").write_text(run.stderr, encoding="utf-8")  # for a failure's reader

    expected = {canonical + e.path for e in site.entries if e.page in with_text}
    without_text = {canonical + e.path for e in site.entries if e.page not in with_text}
    records = stored_records(store)
    urls = [r["canonical_url"] for r in records]
    outcomes = ended(run.stderr)
    went_out = WENT_OUT.findall(run.stderr)
    kinds = Counter(e.kind for e in site.entries)
    with capsys.disabled():
        print(
            f"\n[#18 {name} {'+'.join(f'm{i}' for i in order)}] pages {len(site.pages)} "
            f"(no text {len(site.pages) - len(with_text)}), article URLs {site.articles} "
            f"(slug {kinds['slug']}, bare {kinds['bare']}, copies {kinds[COPY]}), "
            f"expected stored {len(expected)}, stored {len(urls)} ({len(set(urls))} distinct); "
            f"exit {run.returncode}; ended {outcomes}; went out {len(went_out)}"
            f"{f' (first: {went_out[0]})' if went_out else ''}; "
            f"wall: serving {served:.1f} s, crawl {crawl_seconds:.1f} s, "
            f"test {time.monotonic() - started:.1f} s"
        )

    # the mirror(s) never left rotation, not even for a while
    assert not went_out, (f"{len(went_out)} times out of rotation, first: {went_out[0]}; "
                          f"the crawl's log: {tmp_path / 'crawl.log'}")
    assert stat(run.stderr, "mirror/went_out") is None
    assert run.returncode == 0, run.stderr[-3000:]
    # every article with text stored once, under its own URL
    duplicates = [u for u, n in Counter(urls).items() if n > 1]
    assert not duplicates, f"stored twice: {duplicates[:3]}"
    missing = expected - set(urls)
    assert not missing, f"{len(missing)} articles not stored, e.g. {sorted(missing)[:3]}"
    assert set(urls) == expected, sorted(set(urls) - expected)[:3]
    assert outcomes.get("stored") == len(expected)
    # the pages without text end as no_text (asked of every mirror), nothing is lost
    assert outcomes.get("no_text", 0) == len(without_text)
    assert not {"given_up", "error", "extraction_failed", "too_large"} & set(outcomes), outcomes
    # plain text, no markdown links
    marked = with_link_markup(records)
    assert not marked, f"{len(marked)} texts with link markup, e.g. {marked[:3]}"
    # served as nginx serves them: compressed, and the copies' markers only in copies
    entries = [e for m in fx.mirrors_ for e in m.requests() if e.path.startswith("/news/")]
    assert {e.content_encoding for e in entries} <= {"gzip"}
    assert all(urlsplit(u).path in {e.path for e in site.entries} for u in urls)
