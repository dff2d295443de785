"""Raw article pages as WARC (crawler/warc.py): the writer on its own, then crawls and workers
against nginx mirrors that gzip as real servers do, read back with warcio."""

from __future__ import annotations

import asyncio
import gc
import gzip
import http.client
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import FAST, project_crawler, run_crawler, store_count, stored_records, wait_for
from nginx_outlet import CORPUS_PAGES, has_corpus
from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse
from warcio.archiveiterator import ArchiveIterator

from crawler.context import crawl_context
from crawler.core import signals
from crawler.demo.site import DemoSite
from crawler.downloadermiddlewares.warc import RawResponseMiddleware
from crawler.items import ARTICLE_FIELDS, ArticleItem
from crawler.pipelines.warc import WarcPipeline
from crawler.warc import OPEN_SUFFIX, capture, file_name

WARCIO = str(Path(sys.executable).parent / "warcio")
#: the AEB corpus's real pages where they are there, the demo site's otherwise
PAGES = CORPUS_PAGES if has_corpus() else "demo"


def outlet_options() -> dict:
    return {"pages": PAGES, "copies": 1} if PAGES == CORPUS_PAGES else {"pages": "demo",
                                                                           "articles": 30}


@dataclass
class Record:
    type: str
    id: str
    uri: str | None
    concurrent_to: str | None
    http_headers: object
    raw: bytes
    content: bytes


def read_warc(path: Path, *, to_the_end: bool = True) -> list[Record]:
    """Every record of a WARC file, whole and its digests checked; ``to_the_end=False``: the
    records before the first one that cannot be read (a killed writer's last)."""
    records = []
    with path.open("rb") as stream:
        try:
            for record in ArchiveIterator(stream, check_digests="raise"):
                headers = record.rec_headers
                raw = record.raw_stream.read()
                if record.raw_stream.limit != 0:
                    # the file ends inside this record: its digests were never checked
                    raise EOFError(f"{path} ends inside {headers.get_header('WARC-Record-ID')}")
                records.append(Record(
                    headers.get_header("WARC-Type"), headers.get_header("WARC-Record-ID"),
                    headers.get_header("WARC-Target-URI"),
                    headers.get_header("WARC-Concurrent-To"), record.http_headers, raw, b""))
        except Exception:
            if to_the_end:
                raise
    return records


def response_content(path: Path, record_id: str) -> bytes:
    """The payload of one response record, its Content-Encoding decoded by warcio."""
    with path.open("rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_headers.get_header("WARC-Record-ID") == record_id:
                return record.content_stream().read()
    raise AssertionError(f"{record_id} not in {path}")


def warcio_check(path: Path) -> None:
    result = subprocess.run([WARCIO, "check", "-v", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def served(url: str, encoding: str | None) -> tuple[http.client.HTTPResponse, bytes]:
    """What the mirror sends for ``url``, asked with ``Accept-Encoding: encoding``."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        headers = {"Accept-Encoding": encoding} if encoding else {}
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                           headers=headers)
        answer = connection.getresponse()
        return answer, answer.read()
    finally:
        connection.close()


def assert_pairs(records: list[Record]) -> dict[str, Record]:
    """Each response has exactly one request, concurrent to it, for the same URI; returns
    the responses by record id."""
    assert records[0].type == "warcinfo"
    assert all(r.type != "warcinfo" for r in records[1:])
    responses = {r.id: r for r in records if r.type == "response"}
    requests = [r for r in records if r.type == "request"]
    assert sorted(r.concurrent_to for r in requests) == sorted(responses)
    for request in requests:
        assert request.uri == responses[request.concurrent_to].uri
        assert request.http_headers.protocol == "GET"  # warcio: the method, for requests
    return responses


# -- the writer -------------------------------------------------------------------------------


def page_answers(count: int) -> list[tuple[Request, HtmlResponse]]:
    """Real article pages of the demo site, gzipped as a server sends them."""
    site = DemoSite()
    answers = []
    for article in site.articles[:count]:
        url = f"http://127.0.0.1:8080{article.path}"
        body = gzip.compress(site.page(article.path, "http://127.0.0.1:8080").body)
        request = Request(url, headers={"Accept-Encoding": "gzip"},
                          meta={"kind": "article", "outlet": "demo"})
        response = HtmlResponse(url, status=200, body=body, request=request,
                                headers={"Content-Type": "text/html; charset=utf-8",
                                         "Content-Encoding": "gzip"})
        answers.append((request, response))
    return answers


def test_the_writer_is_off_without_warc_dir():
    crawler = project_crawler()
    assert crawl_context(crawler).warc is None
    with pytest.raises(NotConfigured):
        RawResponseMiddleware.from_crawler(crawler)
    with pytest.raises(NotConfigured):
        WarcPipeline.from_crawler(crawler)


def test_the_writer_rotates_files_each_opened_by_warcinfo_and_closed_by_name(tmp_path):
    crawler = project_crawler(WARC_DIR=str(tmp_path), WARC_MAX_SIZE=30_000,
                              WORKER_ID="host one/42", WARC_INFO={"operator": "Archive desk"})
    writer = crawl_context(crawler).warc
    written = []
    for request, response in page_answers(8):
        raw = capture(request, response, datetime.now(UTC))
        written.append((writer.write(raw), response))
        # the file being written is named <name>.open until it is closed
        if writer.current is not None:
            assert (tmp_path / (writer.current + OPEN_SUFFIX)).exists()
    writer.close()
    assert writer.closed and len(writer.closed) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(writer.closed)
    for name in writer.closed:
        assert re.fullmatch(r"crawler-host_one_42-\d{17}-\d{5}\.warc\.gz", name), name
        warcio_check(tmp_path / name)
        records = read_warc(tmp_path / name)
        assert b"operator: Archive desk" in records[0].raw
        assert_pairs(records)
    # serials count up within the process
    assert [n.rsplit("-", 1)[1] for n in writer.closed] == [
        f"{i:05d}.warc.gz" for i in range(len(writer.closed))]
    for name in writer.closed:
        # what each write reported it took is the file, beside the warcinfo record opening it
        with (tmp_path / name).open("rb") as stream:
            records = ArchiveIterator(stream)
            next(records)
            warcinfo = records.get_record_offset() + records.get_record_length()
        sizes = [write.size for write, _ in written if write.file == name]
        assert warcinfo + sum(sizes) == (tmp_path / name).stat().st_size
    for (name, record_id, _), response in written:
        records = {r.id: r for r in read_warc(tmp_path / name)}
        assert records[record_id].raw == response.body  # as sent: still gzipped
        assert records[record_id].http_headers.get_header("Content-Encoding") == "gzip"
        assert response_content(tmp_path / name, record_id) == gzip.decompress(response.body)


def test_file_names_are_safe_and_sort_by_time():
    early = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    assert file_name("crawler", "../h/x", early, 3) == \
        "crawler-h_x-20260102030405678-00003.warc.gz"
    later = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert file_name("crawler", "w", early, 9) < file_name("crawler", "w", later, 0)


def test_the_pipeline_names_the_record_on_the_item_and_forgets_ended_requests(tmp_path):
    crawler = project_crawler(WARC_DIR=str(tmp_path))
    middleware = RawResponseMiddleware.from_crawler(crawler)
    pipeline = WarcPipeline.from_crawler(crawler)
    writer = crawl_context(crawler).warc
    (stored, stored_response), (ended, ended_response), (dropped, dropped_response) = \
        page_answers(3)
    assert middleware.process_response(stored, stored_response) is stored_response
    assert middleware.process_response(ended, ended_response) is ended_response
    assert middleware.process_response(dropped, dropped_response) is dropped_response
    # a listing's answer is never kept
    listing = Request("http://127.0.0.1:8080/section/world", meta={"kind": "listing"})
    middleware.process_response(listing, HtmlResponse(listing.url, body=b"<html></html>"))
    assert writer.held == 3
    # a request that ended without its article (its text was too short, say)
    crawler.signals.send_catch_log(signals.request_finished, request=ended, outcome="no_text")
    # a request dropped for a retry on another mirror: the capture goes with it
    del dropped, dropped_response
    gc.collect()
    assert writer.held == 1
    item = ArticleItem(canonical_url=stored.url, url=stored.url, mirror="http://127.0.0.1:8080",
                       outlet="demo", section="world", request=stored)
    assert asyncio.run(pipeline.process_item(item)) is item
    assert writer.held == 0
    pipeline.close_spider()
    path = tmp_path / item.warc_file
    assert path.exists() and not list(tmp_path.glob(f"*{OPEN_SUFFIX}"))
    responses = assert_pairs(read_warc(path))
    assert list(responses) == [item.warc_record_id]
    assert responses[item.warc_record_id].raw == stored_response.body
    # the store writes them with the article
    assert {"warc_file", "warc_record_id"} <= set(ARTICLE_FIELDS)
    assert item.record()["warc_file"] == item.warc_file
    assert item.record()["warc_record_id"] == item.warc_record_id


# -- crawls -----------------------------------------------------------------------------------


def warc_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.warc.gz"))


def test_a_crawl_writes_every_stored_article_as_the_mirror_sent_it(nginx_outlet, tmp_path):
    fx = nginx_outlet("dead", "seized", "healthy", **outlet_options())
    store, warc = f"sqlite:///{tmp_path}/crawl.db", tmp_path / "warc"
    result = run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                         store, "--warc", str(warc), *FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    stored = {r["url"]: r for r in stored_records(store)}
    assert set(r["canonical_url"] for r in stored.values()) == fx.expected_articles()
    files = warc_files(warc)
    assert files and not list(warc.glob(f"*{OPEN_SUFFIX}")), list(warc.iterdir())
    responses: dict[str, tuple[Path, Record]] = {}
    for path in files:
        warcio_check(path)
        for record in assert_pairs(read_warc(path)).values():
            assert record.uri not in responses, f"{record.uri} recorded twice"
            responses[record.uri] = (path, record)
    # the stored articles' answers, and nothing else: no listing, robots.txt or seizure page
    assert set(responses) == set(stored)
    # each stored article names its file and record
    for url, record in stored.items():
        path, response = responses[url]
        assert (record["warc_file"], record["warc_record_id"]) == (path.name, response.id)
    healthy = fx.mirror("healthy").base_url
    for url, (path, record) in responses.items():
        assert url.startswith(healthy + "/")
        sent, sent_body = served(url, "gzip")
        assert sent.getheader("Content-Encoding") == "gzip"
        # the body as the mirror sends it, byte for byte, and what it decodes to
        assert record.raw == sent_body
        assert record.http_headers.get_statuscode() == "200"
        assert record.http_headers.get_header("Content-Encoding") == "gzip"
        assert record.http_headers.get_header("Content-Type") == sent.getheader("Content-Type")
        _, plain = served(url, None)
        assert response_content(path, record.id) == plain == gzip.decompress(record.raw)
    assert re.search(rf"'warc/records': {len(stored)}\b", result.stderr)


def test_an_edit_found_by_a_revisit_is_written_and_the_revision_keeps_the_old_record(
    nginx_outlet, tmp_path
):
    from datetime import timedelta

    from crawler.storage import open_store

    fx = nginx_outlet("healthy", pages="demo", articles=10,
                      newest=datetime.now(UTC) - timedelta(hours=1))
    document = yaml.safe_load(fx.outlet_file.read_text())
    document["revisit"] = {"window": "30d", "interval": "1s", "backoff": 0}
    fx.outlet_file.write_text(yaml.safe_dump(document, sort_keys=False))
    store, warc = f"sqlite:///{tmp_path}/crawl.db", tmp_path / "warc"
    crawl = ("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store", store,
             "--warc", str(warc), *FAST)
    first = run_crawler(*crawl)
    assert first.returncode == 0, first.stderr[-3000:]
    first_files = set(warc_files(warc))
    target = sorted(fx.expected_articles())[0]
    path = urlsplit(target).path
    original = served(target, None)[1]
    # the article's text, not a banner: its longest paragraph
    longest = max(re.finditer(rb"<p>([^<]+)</p>", original), key=lambda m: len(m.group(1)))
    edited = (original[: longest.end(1)] + b" The ministry corrected the figures."
              + original[longest.end(1):])
    fx.serve_page(0, path, edited)
    # another is served again as it was, but as a new file: its validators no longer match,
    # so the revisit is answered 200 with the same page
    same = sorted(fx.expected_articles())[1]
    same_path = urlsplit(same).path
    fx.serve_page(0, same_path, served(same, None)[1], modified=time.time() + 120)
    time.sleep(1.5)  # the revisit interval (1 s) is over
    second = run_crawler(*crawl, "--revisit")
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(r"'warc/unchanged': 1\b", second.stderr), second.stderr[-3000:]
    # the unchanged articles answered 304, or 200 with the stored version: only the edited
    # one was written again
    new_files = set(warc_files(warc)) - first_files
    assert len(new_files) == 1
    [(record_id, response)] = assert_pairs(read_warc(new_files.pop())).items()
    assert response.uri == target
    db = open_store(store)
    try:
        versions, [unchanged] = db.history(target), db.history(same)
    finally:
        db.close()
    assert [v["revision"] for v in versions] == [1, 2]
    for version, body in zip(versions, (original, edited), strict=True):
        assert response_content(warc / version["warc_file"], version["warc_record_id"]) == body
    assert versions[1]["warc_record_id"] == record_id
    # the one answered 200 unchanged still names the record of its only version
    assert unchanged["warc_file"] in {p.name for p in first_files}
    assert response_content(warc / unchanged["warc_file"], unchanged["warc_record_id"]) == \
        served(same, None)[1]


# -- workers ----------------------------------------------------------------------------------


def schedule(fx, redis_url: str) -> None:
    result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                         "--redis", redis_url)
    assert result.returncode == 0, result.stderr


def test_a_worker_stopped_with_sigterm_leaves_closed_valid_files(
    nginx_outlet, redis_server, workers, tmp_path
):
    fx = nginx_outlet("healthy", "healthy", pages="demo", articles=30)
    store, warc = f"sqlite:///{tmp_path}/crawl.db", tmp_path / "warc"
    worker = workers(redis_server.url, store, fx.outlet_dir, "--warc", str(warc))
    schedule(fx, redis_server.url)
    expected = len(fx.expected_articles())
    wait_for(lambda: store_count(store) >= expected, 120, "every article stored")
    assert worker.stop(signal.SIGTERM) < 30
    assert worker.process.returncode == 0, worker.output()[-3000:]
    files = warc_files(warc)
    assert files and not list(warc.glob(f"*{OPEN_SUFFIX}"))
    recorded = {}
    for path in files:
        warcio_check(path)
        recorded |= {(path.name, r.id): r.uri for r in assert_pairs(read_warc(path)).values()}
    stored = stored_records(store)
    assert sorted(recorded.values()) == sorted(r["url"] for r in stored)
    for record in stored:
        assert recorded[record["warc_file"], record["warc_record_id"]] == record["url"]


def test_a_killed_worker_leaves_every_record_but_the_last_readable(
    nginx_outlet, redis_server, workers, tmp_path
):
    fx = nginx_outlet("healthy", pages="demo", articles=60)
    store, warc = f"sqlite:///{tmp_path}/crawl.db", tmp_path / "warc"
    # small files: the kill finds closed files and an open one
    worker = workers(redis_server.url, store, fx.outlet_dir, "--warc", str(warc),
                     "-s", "WARC_MAX_SIZE=100000", "-s", "STORE_BATCH_SIZE=5")
    schedule(fx, redis_server.url)
    # a file is opened at its first record, so right after a rotation there is none open
    wait_for(lambda: store_count(store) >= 20 and any(warc.glob(f"*{OPEN_SUFFIX}")), 120,
             "20 articles stored and a file open")
    worker.stop(signal.SIGKILL)
    open_files = list(warc.glob(f"*{OPEN_SUFFIX}"))
    assert len(open_files) <= 1 and warc_files(warc), list(warc.iterdir())
    for path in warc_files(warc):
        warcio_check(path)
    recorded = {}
    for path in [*warc_files(warc), *open_files]:
        records = read_warc(path, to_the_end=path not in open_files)
        # every record read back whole (digests checked); a request never without its response
        responses = {r.id: r for r in records if r.type == "response"}
        assert {r.concurrent_to for r in records if r.type == "request"} <= set(responses)
        name = path.name.removesuffix(OPEN_SUFFIX)  # the name it has once closed
        recorded |= {(name, r.id): r.uri for r in responses.values()}
    # an article reaches the store only once its record is written and flushed
    for record in stored_records(store):
        assert recorded[record["warc_file"], record["warc_record_id"]] == record["url"]


def test_a_file_cut_short_in_its_last_record_reads_back_every_earlier_one(tmp_path):
    crawler = project_crawler(WARC_DIR=str(tmp_path / "warc"))
    writer = crawl_context(crawler).warc
    ids = [writer.write(capture(request, response, datetime.now(UTC)))[1]
           for request, response in page_answers(4)]
    # what a process killed while writing its last record leaves: a cut gzip member
    written = (tmp_path / "warc" / (writer.current + OPEN_SUFFIX)).read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(written[: len(written) - 2000])
    writer.close()
    records = read_warc(cut, to_the_end=False)
    assert [r.id for r in records if r.type == "response"] == ids[:3]
    assert len([r for r in records if r.type == "request"]) == 3


def test_a_warc_dir_that_cannot_be_written_or_an_empty_variable_is_one_line(tmp_path):
    store = f"sqlite:///{tmp_path}/crawl.db"
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    for result, message in [
        (run_crawler("crawl", "presstv", "--store", store, "--warc", str(blocked / "warc")),
         f"error: cannot write WARC files to {blocked / 'warc'}: Not a directory"),
        (run_crawler("crawl", "presstv", "--store", store, CRAWLER_WARC_DIR=""),
         "error: CRAWLER_WARC_DIR is set but empty"),
        (run_crawler("worker", "--store", store, "--redis", "redis://127.0.0.1:1/0",
                     CRAWLER_WARC_DIR=" "),
         "error: CRAWLER_WARC_DIR is set but empty"),
    ]:
        assert result.returncode == 2
        assert result.stderr.strip() == message


def test_files_close_at_max_age_also_when_nothing_more_is_written(tmp_path):
    # an age limit of 0: every file is due as soon as it is open
    crawler = project_crawler(WARC_DIR=str(tmp_path), WARC_MAX_AGE="0")
    writer = crawl_context(crawler).warc
    answers = page_answers(3)
    names = [writer.write(capture(request, response, datetime.now(UTC)))[0]
             for request, response in answers[:2]]
    # the first file was closed before the second record pair: one pair per file
    assert writer.closed == names[:1] and names[0] != names[1]
    writer.close_if_old()  # what the pipeline's timer does while nothing is written
    assert writer.closed == names and not list(tmp_path.glob(f"*{OPEN_SUFFIX}"))
    for name in names:
        warcio_check(tmp_path / name)
        assert len(assert_pairs(read_warc(tmp_path / name))) == 1
    # off: files close by size and at the end only
    assert crawl_context(project_crawler(WARC_DIR=str(tmp_path), WARC_MAX_AGE="None")) \
        .warc.max_age is None


def test_a_quiet_worker_closes_its_file_at_max_age(nginx_outlet, redis_server, workers,
                                                    tmp_path):
    fx = nginx_outlet("healthy", pages="demo", articles=10)
    store, warc = f"sqlite:///{tmp_path}/crawl.db", tmp_path / "warc"
    worker = workers(redis_server.url, store, fx.outlet_dir, "--warc", str(warc),
                     "-s", "WARC_MAX_AGE=2")
    schedule(fx, redis_server.url)
    expected = len(fx.expected_articles())
    wait_for(lambda: store_count(store) >= expected, 120, "every article stored")
    # nothing more to write: the file closes on the worker's timer, not at its exit
    wait_for(lambda: not list(warc.glob(f"*{OPEN_SUFFIX}")), 60, "the .open file closed")
    assert worker.process.poll() is None
    uris = [r.uri for path in warc_files(warc) for r in assert_pairs(read_warc(path)).values()]
    assert sorted(uris) == sorted(r["url"] for r in stored_records(store))
    assert worker.stop(signal.SIGTERM) < 30
