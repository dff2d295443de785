"""`crawler crawl` end to end: a real crawl of the demo outlet served on loopback."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import FAST, export_records, run_crawler, stored_records

from crawler.demo.site import DISALLOWED_PREFIX, REL_NEXT_SECTIONS, SECTIONS, VIDEO
from crawler.items import EXPORT_FIELDS


def crawl(fx, store: str, *extra: str):
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir),
                       "--store", store, *FAST, *extra)


def ended(stderr: str) -> dict[str, int]:
    """The crawl's requests by final outcome, from Scrapy's stats dump."""
    return {m[1]: int(m[2]) for m in re.finditer(r"'requests/ended/([a-z_0-9]+)': (\d+)", stderr)}


def assert_exactly_the_listed_articles(fx, records, bad_mirrors=()):
    expected = fx.expected_articles()
    urls = [r["canonical_url"] for r in records]
    assert len(urls) == len(set(urls)), "an article was stored twice"
    assert set(urls) == expected
    bad = {fx.server(b).base_url for b in bad_mirrors}
    for record in records:
        assert record["canonical_url"].startswith(fx.canonical + "/")
        assert record["mirror"] not in bad, f"{record['url']} came from a failing mirror"
        assert record["url"] == record["mirror"] + record["canonical_url"][len(fx.canonical):]
        truth = fx.truth(record["canonical_url"])
        assert record["title"] == truth.title
        assert record["author"] == truth.author
        assert record["published"][:10] == truth.published[:10]
        assert record["language"] == "en"
        assert record["text"] == truth.text
        assert "SHARE THIS ARTICLE" not in record["text"]
        assert "alternate addresses" not in record["text"]
        assert "Roku" not in record["text"]


@pytest.mark.parametrize(
    "behaviours, failing",
    [
        (("dead", "seized", "healthy"), ("dead", "seized")),
        (("hanging", "healthy"), ("hanging",)),
        (("forbidden", "redirect_off", "garbage", "healthy"),
         ("forbidden", "redirect_off", "garbage")),
        (("flaky", "healthy"), ()),  # two thirds of what it serves is good
    ],
    ids=["dead-seized", "hanging", "forbidden-redirect-garbage", "flaky-503"],
)
def test_crawl_stores_every_article_once_across_failing_mirrors(
    demo_outlet, tmp_path, behaviours, failing
):
    fx = demo_outlet(*behaviours, articles=60)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_exactly_the_listed_articles(fx, stored_records(store), bad_mirrors=failing)
    # the bad mirrors were dropped from rotation rather than tried for every document: a
    # parked page counts once three documents got it (MIRROR_SAME_PAGE_DOCUMENTS), while
    # up to CONCURRENT_REQUESTS_PER_DOMAIN (16) more are on their way; and each is asked once
    # more, as a probe, for each document the healthy mirror said is not there
    not_there = sum(n for outcome, n in ended(result.stderr).items()
                    if outcome in ("not_found", "no_text", "not_html"))
    for behaviour in failing:
        assert fx.server(behaviour).hits() < 20 + not_there, behaviour


def test_flaky_mirror_answers_never_reach_the_store(demo_outlet, tmp_path):
    fx = demo_outlet("flaky", "healthy", articles=60)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store).returncode == 0
    flaky = fx.server("flaky")
    assert any(r.status == 503 for r in flaky.requests)
    assert_exactly_the_listed_articles(fx, stored_records(store))


def test_pagination_by_rel_next_and_by_page_path(demo_outlet, tmp_path):
    fx = demo_outlet("healthy", articles=120, max_section_pages=3)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store).returncode == 0
    paths = fx.server("healthy").paths()
    for section in SECTIONS:
        if section in REL_NEXT_SECTIONS:
            assert f"/section/{section}?page=2" in paths
            assert f"/section/{section}/page/2" not in paths
        else:
            assert f"/section/{section}/page/2" in paths
        # bounded by max_section_pages
        assert not any(re.search(rf"/section/{section}(\?page=|/page/)4$", p) for p in paths)
    assert {r["canonical_url"] for r in stored_records(store)} == fx.expected_articles()
    assert len(fx.expected_articles(3)) > len(fx.expected_articles(1))


def test_stays_inside_the_outlet_and_fetches_each_article_once(demo_outlet, tmp_path):
    fx = demo_outlet("healthy", "healthy", articles=60)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store).returncode == 0
    second = fx.servers[1]
    # the video page has no text on either mirror: asked of the second mirror once, the two
    # answers agree, and that settles it
    video = {a.path for a in fx.site.articles if a.kind == VIDEO}
    first_hits = Counter(p for p in fx.servers[0].paths() if p.startswith("/news/"))
    # listings link articles through both mirrors and from two sections: fetched once each
    assert {p: n for p, n in first_hits.items() if p not in video} == dict.fromkeys(
        set(first_hits) - video, 1
    )
    assert Counter(p for p in second.paths() if p.startswith("/news/")) == dict.fromkeys(video, 1)
    article_paths = list(first_hits)
    assert not [p for p in article_paths if p.startswith(DISALLOWED_PREFIX)]  # robots.txt
    assert "/about" not in fx.servers[0].paths()
    stored = stored_records(store)
    assert {r["canonical_url"] for r in stored} == fx.expected_articles()


def test_a_second_crawl_fetches_only_listings(demo_outlet, tmp_path):
    fx = demo_outlet("healthy", articles=60)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store).returncode == 0
    first = stored_records(store)
    server = fx.server("healthy")
    server.clear_log()
    # listings asked for in full (an unchanged one answers 304: tests/test_discovery.py)
    assert crawl(fx, store, "-s", "CONDITIONAL_REQUESTS=False").returncode == 0
    refetched = {p for p in server.paths() if p.startswith("/news/")}
    # only the page that never gives text (the video page) is tried again
    assert refetched == {a.path for a in fx.site.articles if a.kind == VIDEO}
    assert stored_records(store) == first


def test_extraction_over_its_time_limit_is_counted_and_the_crawl_goes_on(demo_outlet, tmp_path):
    fx = demo_outlet("healthy", articles=20)
    store = f"sqlite:///{tmp_path}/crawl.db"
    result = crawl(fx, store, "-s", "EXTRACTION_TIMEOUT=0.000001")
    assert stored_records(store) == []
    assert "'extraction/failed/timeout'" in result.stderr
    # every article was tried, and the crawl says it did not get them
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(r"error: \d+ documents not stored: http://", last), last


def test_jsonl_store_and_export_formats(demo_outlet, tmp_path):
    fx = demo_outlet("dead", "healthy", articles=20)
    store = f"jsonl:///{tmp_path}/articles.jsonl"
    assert crawl(fx, store).returncode == 0
    assert crawl(fx, store).returncode == 0  # idempotent: nothing appended twice
    lines = (tmp_path / "articles.jsonl").read_text().splitlines()
    assert len(lines) == len(fx.expected_articles())
    records = export_records(store)
    assert {r["canonical_url"] for r in records} == fx.expected_articles()
    assert all(list(r) == list(EXPORT_FIELDS) for r in records)

    sqlite = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, sqlite).returncode == 0
    csv_out = run_crawler("export", "--store", sqlite, "--format", "csv", "--outlet", fx.name)
    assert csv_out.returncode == 0
    header, *rows = csv_out.stdout.splitlines()
    assert header.split(",") == list(EXPORT_FIELDS)
    assert rows
    other = run_crawler("export", "--store", sqlite, "--outlet", "no-such-outlet")
    assert other.returncode == 0 and other.stdout == ""


def test_scrapy_crawl_runs_the_same_spider(demo_outlet, tmp_path):
    fx = demo_outlet("dead", "healthy", articles=20)
    store = f"sqlite:///{tmp_path}/crawl.db"
    import subprocess
    import sys

    from conftest import REPO, crawler_env

    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "outlet", "-a", f"outlet={fx.name}",
         "-s", f"OUTLETS_DIR={fx.outlet_dir}", "-s", f"STORE_URI={store}", *FAST],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=crawler_env(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["canonical_url"] for r in stored_records(store)} == fx.expected_articles()


def test_crawl_of_one_section(demo_outlet, tmp_path):
    fx = demo_outlet("healthy", articles=60)
    store = f"sqlite:///{tmp_path}/crawl.db"
    assert crawl(fx, store, "--section", "economy").returncode == 0
    records = stored_records(store)
    assert records and all(r["section"] == "economy" for r in records)
    assert not [p for p in fx.server("healthy").paths() if p.startswith("/section/politics")]


# -- what cannot run: one clear line, non-zero exit ------------------------------------------


def one_line_error(result) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "content, field",
    [
        ("name: bad\nmirrors: [https://a.example]\nsections: {x: /x}\narticle_url: '^/a'\n"
         "colour: blue\n", "colour"),
        ("name: bad\nmirrors: [https://a.example]\nsections: {x: /x}\narticle_url: '^/a'\n"
         "max_section_pages: many\n", "max_section_pages"),
        ("name: bad\nmirrors: [ftp://a.example]\nsections: {x: /x}\narticle_url: '^/a'\n",
         "mirrors"),
        ("name: bad\nmirrors: [https://a.example]\nsections: {x: /x}\narticle_url: '(['\n",
         "article_url"),
        ("name: bad\nmirrors: [https://a.example]\nsections: {x: no-slash}\narticle_url: '^/a'\n",
         "sections"),
        ("name: bad\nmirrors: [https://a.example\n", "line"),
    ],
    ids=["unknown-field", "wrong-type", "bad-mirror", "bad-regex", "bad-section", "bad-yaml"],
)
def test_a_malformed_outlet_file_is_named_with_its_field(tmp_path, content, field):
    (tmp_path / "bad.yaml").write_text(content)
    listed = run_crawler("outlets", "--outlets-dir", str(tmp_path))
    assert listed.returncode == 1
    assert "bad.yaml" in listed.stderr and field in listed.stderr
    crawled = run_crawler("crawl", "bad", "--outlets-dir", str(tmp_path),
                          "--store", f"sqlite:///{tmp_path}/x.db")
    line = one_line_error(crawled)
    assert "bad.yaml" in line and field in line


def test_the_bundled_outlets_are_valid():
    result = run_crawler("outlets")
    assert result.returncode == 0, result.stderr
    assert "presstv" in result.stdout


def test_an_unknown_outlet_or_section(tmp_path):
    line = one_line_error(run_crawler("crawl", "nosuchoutlet"))
    assert "unknown outlet 'nosuchoutlet'" in line and "presstv" in line
    line = one_line_error(run_crawler("crawl", "presstv", "--section", "sport"))
    assert "no section 'sport'" in line


@pytest.mark.parametrize(
    "make_uri",
    [lambda d: f"sqlite:///{d}/missing/dir/x.db", lambda d: f"sqlite:///{d}",
     lambda d: f"jsonl:///{d}", lambda d: "mongodb://localhost/x"],
    ids=["missing-dir", "a-directory", "jsonl-directory", "unknown-scheme"],
)
def test_an_unwritable_store(tmp_path, make_uri):
    line = one_line_error(run_crawler("crawl", "presstv", "--store", make_uri(tmp_path)))
    assert "store" in line.lower()


def test_export_of_a_missing_store_is_one_line(tmp_path):
    line = one_line_error(run_crawler("export", "--store", "mongodb://x"))
    assert "unsupported store" in line
    result = run_crawler("export", "--format", "xml", "--store", f"sqlite:///{tmp_path}/x.db")
    assert "unknown format" in one_line_error(result)


def test_demo_command(tmp_path):
    result = run_crawler("demo", "--store", f"sqlite:///{tmp_path}/demo.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stored 58 of the 58 articles" in result.stderr.replace("\n", " ")
    records = export_records(f"sqlite:///{tmp_path}/demo.db")
    assert len(records) == 58
    assert len({r["mirror"] for r in records}) == 1  # only the healthy mirror served
    json.dumps(records)
