"""Judging answers and failing over, unit by unit: the pure functions of crawler.core.judging and
crawler.failover, and the middlewares over them, on plain Scrapy responses."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from email.utils import formatdate
from pathlib import Path

import brotli
import pytest
from conftest import outlet_crawler, project_crawler
from nginx_outlet import CORPUS, has_corpus
from scrapy import Request
from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
from scrapy.exceptions import DownloadConnectionRefusedError, IgnoreRequest, ResponseDataLossError
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.utils.test import get_crawler

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.compression import incomplete_body, zstd
from crawler.core.judging import (
    DOCUMENT,
    MIRROR,
    NO_TEXT,
    NOT_FOUND,
    NOT_HTML,
    SamePageDetector,
    judge_body,
    judge_exception,
    judge_page,
    judge_redirect,
    judge_status,
    judge_text,
    mirror_failure,
    page_fingerprint,
    retry_after_seconds,
    text_answer,
)
from crawler.core.mirror_state import mirror_candidates
from crawler.core.outlets import Outlet
from crawler.core.steps import Attempts, GiveUp, Retry, Settled, Wait, agreed_answer, next_step
from crawler.demo.corpus import load_pages
from crawler.downloadermiddlewares.httpcompression import OutletHttpCompressionMiddleware
from crawler.downloadermiddlewares.mirror_failover import MirrorFailoverMiddleware
from crawler.downloadermiddlewares.page_judge import PageJudgeMiddleware
from crawler.downloadermiddlewares.redirect import OutletRedirectMiddleware
from crawler.downloadermiddlewares.robots import OutletRobotsTxtMiddleware
from crawler.downloadhandlers.mirror_gate import MirrorGateHandler
from crawler.ledger import RequestHandled, outcome_of
from crawler.mirrors import MirrorHealth, MirrorUnavailable
from crawler.spiders.outlet import _outlet_links

A, B, C = "https://www.news.example", "https://news-mirror.example", "http://127.0.0.1:8081"
OUTLET_FILE = f"""
name: news
mirrors: [{A}, {B}, {C}]
aliases: [news.example]
sections: {{world: /world}}
article_url: '^/a/\\d+'
blocked_markers: [This domain has been seized]
min_text_length: 50
"""
ARTICLE = "<html><head><title>T</title></head><body><p>{}</p></body></html>"


@pytest.fixture
def outlet(tmp_path: Path) -> Outlet:
    (tmp_path / "news.yaml").write_text(OUTLET_FILE)
    return crawl_context(get_crawler(settings_dict={"OUTLETS_DIR": str(tmp_path)})).catalog.get(
        "news")


@pytest.fixture
def crawler(tmp_path: Path):
    return outlet_crawler(tmp_path, OUTLET_FILE, "news", MIRROR_FAILURE_THRESHOLD=3,
                          MIRROR_COOLDOWN=60)


def article_request(url: str, **extra) -> Request:
    return Request(url, meta={meta.OUTLET: "news", meta.KIND: "article", **extra})


def html(url: str, body: bytes, status: int = 200, request: Request | None = None):
    return HtmlResponse(url, status=status, body=body, request=request,
                        headers={"Content-Type": "text/html; charset=utf-8"})


# -- the outlet: mirrors, aliases, either scheme ---------------------------------------------------


def test_links_into_the_outlet_in_every_form(outlet):
    page = b"""<html><body>
      <a href="/a/1">root-relative</a> <a href="a/2">relative</a>
      <a href="//www.news.example/a/3">protocol-relative</a>
      <a href="http://www.news.example/a/4">http of an https mirror</a>
      <a href="https://news.example/a/5">alias</a> <a href="https://elsewhere.example/a/6">off</a>
      <a href="mailto:x@news.example">mail</a></body></html>"""
    links = {url for url, _, _ in _outlet_links(outlet, html(f"{B}/world", page))}
    assert links == {f"{A}/a/1", f"{A}/a/2", f"{A}/a/3", f"{A}/a/4", f"{A}/a/5"}


def test_identity_and_ownership(outlet):
    assert outlet.mirror_of("http://www.news.example/x") == A
    assert outlet.mirror_of("https://news.example/x") is None  # an alias is no mirror
    assert outlet.owns("https://news.example/x") and outlet.owns(f"{C}/x")
    assert not outlet.owns("https://elsewhere.example/") and not outlet.owns("ftp://news.example/")
    # an article is its path (no identity_params declared); what is fetched keeps the query
    assert outlet.canonical_url("https://news.example/a/1?x=1") == f"{A}/a/1"
    assert outlet.fetch_url("https://news.example/a/1?x=1&utm_source=y") == f"{A}/a/1?x=1"


# -- verdicts --------------------------------------------------------------------------------------


def test_status_verdicts():
    codes = frozenset({403, 503})
    assert judge_status(503, codes).about == MIRROR
    assert not judge_status(503, codes).strong
    assert judge_status(404, codes).about == DOCUMENT
    assert judge_status(410, codes).answer == NOT_FOUND
    assert judge_status(200, codes) is None and judge_status(301, codes) is None


def test_retry_after_in_seconds_or_as_a_date_bounded():
    now = 1_700_000_000.0
    assert retry_after_seconds(429, b"30", now, 300) == 30
    assert retry_after_seconds(503, formatdate(now + 90, usegmt=True), now, 300) == 90
    assert retry_after_seconds(503, "Tue, 14 Nov 2023 22:14:20 -0000", now, 300) == 60
    assert retry_after_seconds(429, b"86400", now, 300) == 300  # cut to the bound
    for nothing_ahead in (b"0", formatdate(now - 5, usegmt=True)):
        assert retry_after_seconds(429, nothing_ahead, now, 300) is None
    for unreadable in (b"soon", b"-5", b"1.5", b"", None):
        assert retry_after_seconds(429, unreadable, now, 300) is None
    assert retry_after_seconds(403, b"30", now, 300) is None  # only 429 and 503 say it


def test_redirects_inside_the_outlet_are_not_failures(outlet):
    url = f"{A}/a/1"
    for location in (b"/a/1/", b"//www.news.example/a/1", b"http://www.news.example/a/1",
                     b"https://news.example/a/1", f"{B}/a/1".encode()):
        assert judge_redirect(url, 301, location, outlet) is None, location
    off = judge_redirect(url, 302, b"https://elsewhere.example/", outlet)
    assert off.about == MIRROR and not off.strong  # one redirect is no verdict on the mirror
    assert judge_redirect(url, 200, b"https://elsewhere.example/", outlet) is None


def test_pages_are_judged_decoded(outlet):
    notice = "<html><body><h1>This domain has been seized</h1></body></html>"
    compressed = Response(f"{A}/a/1", body=gzip.compress(notice.encode()),
                          headers={"Content-Encoding": "gzip", "Content-Type": "text/html"},
                          request=Request(f"{A}/a/1"))
    decoded = HttpCompressionMiddleware.from_crawler(get_crawler()).process_response(
        compressed.request, compressed)
    verdict = judge_page(decoded, outlet)
    assert verdict.about == MIRROR and verdict.strong


def test_a_pdf_is_the_documents_answer_not_the_mirrors(outlet):
    pdf = Response(f"{A}/a/1", body=b"%PDF-1.7", headers={"Content-Type": "application/pdf"})
    verdict = judge_page(pdf, outlet)
    assert verdict.about == DOCUMENT and verdict.answer == NOT_HTML
    text = TextResponse(f"{A}/a/1", body=b"plain", headers={"Content-Type": "text/plain"})
    assert judge_page(text, outlet).answer == NOT_HTML
    assert judge_page(html(f"{A}/a/1", b"<html><body>x</body></html>"), outlet) is None


def test_text_verdicts(outlet):
    assert judge_text(None, outlet).answer == NO_TEXT
    short = judge_text("Sorry, this page is temporarily unavailable.", outlet)
    assert short.about == DOCUMENT and short.answer == text_answer("Sorry, this page is "
                                                                    "temporarily  unavailable.")
    assert judge_text("x" * 50, outlet) is None
    # an error page's apology is no article text, however long
    assert judge_text("x" * 500, outlet, error_page="Sorry").answer == NO_TEXT


def test_exception_verdicts():
    assert judge_exception(DownloadConnectionRefusedError()).outcome == "connection_error"
    assert judge_exception(TimeoutError()).outcome == "timeout"
    assert judge_exception(ValueError()) is None


def test_a_body_shorter_than_its_content_length_fails_the_mirror():
    # Scrapy raises ResponseDataLossError for it only while DOWNLOAD_FAIL_ON_DATALOSS is on
    assert project_crawler().settings.getbool("DOWNLOAD_FAIL_ON_DATALOSS")
    verdict = judge_exception(ResponseDataLossError())
    assert verdict.about == MIRROR and verdict.outcome == "connection_error"


@pytest.mark.skipif(not has_corpus(), reason=f"corpus not found at {CORPUS}")
def test_a_compressed_real_page_cut_anywhere_is_not_whole():
    page = load_pages(CORPUS)[0].html
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    encoded = {b"gzip": gzip.compress(page), b"deflate": zlib.compress(page),
               b"br": brotli.compress(page), b"zstd": zstd.compress(page)}
    for encoding, body in [*encoded.items(), (b"deflate", raw.compress(page) + raw.flush())]:
        assert incomplete_body(body, [encoding]) is None, encoding
        # in the header, early in the text, half way, in the last block, in the trailer
        for cut in (5, 300, len(body) // 2, len(body) - 9, len(body) - 1):
            reason = incomplete_body(body[:cut], [encoding])
            assert reason == f"{encoding.decode()} body cut short ({cut} bytes)"
    whole = encoded[b"gzip"]
    # gzip members one after the other are one body; the last may be cut too
    assert incomplete_body(whole + whole, [b"x-gzip"]) is None
    assert incomplete_body(whole + whole[:100], [b"gzip"]) is not None
    # zero padding or bytes that are not gzip after the member: the page came whole
    assert incomplete_body(whole + b"\0\0\0", [b"gzip"]) is None
    assert incomplete_body(whole + b"<!-- -->", [b"gzip"]) is None
    # only the outermost encoding is cut; one Scrapy does not decode is not judged
    assert incomplete_body(whole[:-1], [b"br, gzip"]) is not None
    assert incomplete_body(whole[:-1], [b"compress"]) is None
    # nothing came at all (a 304, a HEAD): nothing to judge
    assert incomplete_body(b"", [b"gzip"]) is None
    assert judge_body(200, whole[:-1], [b"gzip"]).about == MIRROR
    assert judge_body(304, whole[:-1], [b"gzip"]) is None


def test_a_body_cut_short_moves_the_document_to_another_mirror(crawler):
    compression = OutletHttpCompressionMiddleware.from_crawler(crawler)
    body = gzip.compress(ARTICLE.format("A whole article. " * 200).encode())
    request = article_request(f"{A}/a/5", **{meta.MIRROR: A})
    retry = compression.process_response(request, Response(
        request.url, body=body[:len(body) // 2], request=request,
        headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}))
    assert retry.url == f"{B}/a/5" and Attempts.of(retry).failed_on == [A]
    assert crawler.stats.get_value("mirror/outcome/connection_error") == 1
    # the whole body is decoded as Scrapy decodes it
    whole = compression.process_response(retry, Response(
        retry.url, body=body, request=retry,
        headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}))
    assert isinstance(whole, HtmlResponse) and b"A whole article." in whole.body


def test_the_same_page_for_every_document_is_recognised_without_wording():
    def challenge(path: str, token: str) -> bytes:
        return (f'<html><body><form action="{path}?__chl_tk={token}">Just a moment... '
                f'Ray ID: {token[:16]}</form></body></html>').encode()

    one = page_fingerprint(challenge("/a/1", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"), "/a/1")
    two = page_fingerprint(challenge("/a/2", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"), "/a/2")
    assert one == two
    article = page_fingerprint(ARTICLE.format("One story.").encode(), "/a/1")
    other = page_fingerprint(ARTICLE.format("Another story.").encode(), "/a/2")
    assert article != other

    detector = SamePageDetector(documents=2)
    assert not detector.suspect("news", A, f"{A}/a/1", one)
    assert not detector.suspect("news", A, f"{A}/a/1", one)  # same document
    assert not detector.suspect("news", B, f"{A}/a/2", one)  # other mirror
    assert detector.suspect("news", A, f"{A}/a/2", one)


# -- the decision ----------------------------------------------------------------------------------


def choose_from(*mirrors):
    return lambda exclude: next((m for m in mirrors if m not in exclude), None)


def test_next_step():
    now = time.time()
    step = lambda attempts, rotation=(A, B, C), choose=choose_from(A, B, C): next_step(  # noqa: E731
        attempts, rotation, choose, now, give_up_after=3600, longest_wait=60)

    assert step(Attempts(failed_on=[A])) == Retry(B)
    assert step(Attempts(answers={A: NOT_HTML})) == Retry(B)
    # two mirrors with the same text settle it at once; with the same "not there", once the
    # rest were heard (a mirror may still serve what two took down)
    assert step(Attempts(answers={A: text_answer("brief"), B: text_answer("brief")})) == \
        Settled(text_answer("brief"), A)
    assert step(Attempts(answers={A: NOT_HTML, B: NOT_HTML})) == Retry(C)
    assert step(Attempts(answers={A: NOT_HTML, B: NOT_HTML}, failed_on=[C]),
                choose=choose_from()) == Settled(NOT_HTML, A)
    # every mirror in rotation answered: the best answer stands, a text over no text
    short = text_answer("short")
    assert step(Attempts(answers={A: NO_TEXT, B: short}), rotation=(A, B),
                choose=choose_from()) == Settled(short, B)
    # nothing can take it now: wait, longer each time, then give up after the horizon
    assert step(Attempts(failed_on=[A, B, C], since=now), choose=choose_from()) == Wait(1.0)
    assert step(Attempts(failed_on=[A], since=now, waits=3), rotation=(),
                choose=choose_from()) == Wait(8.0)
    assert isinstance(step(Attempts(failed_on=[A], since=now - 3601), rotation=(),
                           choose=choose_from()), GiveUp)
    # past the horizon, a "not there" from one mirror while the others never answered is no
    # end of the document's own: given up (lost); a text is kept
    assert isinstance(step(Attempts(answers={A: NOT_FOUND}, failed_on=[B], since=now - 3601),
                           choose=choose_from()), GiveUp)
    assert step(Attempts(answers={A: short}, failed_on=[B], since=now - 3601),
                choose=choose_from()) == Settled(short, A)
    assert agreed_answer({A: NO_TEXT, B: NOT_HTML}) is None


def test_one_mirrors_word_stands_only_once_the_mirrors_out_were_heard():
    now = time.time()

    def step(attempts):
        return next_step(attempts, [A], choose_from(), now, give_up_after=3600,
                         longest_wait=60, out_of_rotation=[B, C])

    # A alone in rotation says "not found": B and C, out for other documents' sake, may
    # serve it; each is asked once, as a probe
    assert step(Attempts(answers={A: NOT_FOUND})) == Retry(B)
    assert step(Attempts(answers={A: NOT_FOUND}, failed_on=[B])) == Retry(C)
    # all heard: the best answer stands
    assert step(Attempts(answers={A: NOT_FOUND, C: NO_TEXT}, failed_on=[B])) == \
        Settled(NOT_FOUND, A)
    # a page that may be a notice: the mirrors out are heard before the second look
    assert step(Attempts(answers={A: text_answer("x")}, doubted=[A])) == Retry(B)
    # a mirror under a Retry-After is waited for, then heard
    held = next_step(Attempts(answers={A: NOT_FOUND}), [A], choose_from(), now,
                     give_up_after=3600, longest_wait=60, held={B: 12.5})
    assert held == Wait(12.5)
    # even when two others agree it is not there
    assert next_step(Attempts(answers={A: NOT_FOUND, C: NOT_FOUND}), [A, C], choose_from(),
                     now, give_up_after=3600, longest_wait=60, held={B: 12.5}) == Wait(12.5)


def test_a_not_there_waits_for_a_mirror_that_could_not_answer_while_serving():
    now = time.time()

    def step(attempts, serving=(A,), rotation=(B, C), out=(A,)):
        return next_step(attempts, rotation, choose_from(), now, give_up_after=3600,
                         longest_wait=60, out_of_rotation=out, serving=serving)

    gone = {B: NOT_FOUND, C: NOT_FOUND}
    # A (a 503, a timeout) may be the only mirror that has it: asked again after a wait
    assert step(Attempts(answers=gone, failed_on=[A], unavailable=[A], since=now)) == Wait(1.0)
    assert step(Attempts(answers=gone, failed_on=[A], unavailable=[A], since=now,
                         waits=2)) == Wait(4.0)
    # in rotation, failing this one page while it serves the rest: the same
    assert step(Attempts(answers=gone, failed_on=[A], unavailable=[A], since=now),
                rotation=(A, B, C), out=()) == Wait(1.0)
    # a silent mirror (down for long, or never up) is heard by its failure
    assert step(Attempts(answers=gone, failed_on=[A], unavailable=[A], since=now),
                serving=()) == Settled(NOT_FOUND, B)
    # so is one whose failure was its answer (a redirect off the outlet, a 403)
    assert step(Attempts(answers=gone, failed_on=[A], since=now)) == Settled(NOT_FOUND, B)
    # a text stands over a failure, as before
    short = text_answer("short")
    assert step(Attempts(answers={B: short, C: NOT_FOUND}, failed_on=[A], unavailable=[A],
                         since=now)) == Settled(short, B)
    # past the horizon nobody can say it is gone: given up (lost), not "not found"
    assert isinstance(step(Attempts(answers=gone, failed_on=[A], unavailable=[A],
                                    since=now - 3601)), GiveUp)


def test_which_failures_may_pass():
    codes = frozenset({403, 408, 429, 451, 500, 503, 504})
    assert [code for code in sorted(codes) if judge_status(code, codes).passing] == \
        [408, 429, 500, 503, 504]
    assert judge_exception(TimeoutError()).passing


def test_mirror_candidates_prefer_a_cooled_down_preferred_mirror():
    downs = {A: 100.0, B: None, C: 500.0}
    assert list(mirror_candidates([A, B, C], downs, now=200.0)) == [(A, True), (B, False)]
    assert list(mirror_candidates([A, B, C], downs, now=50.0)) == [(B, False)]
    assert list(mirror_candidates([A, B, C], downs, now=50.0, exclude={B})) == []


def test_one_probe_per_cooldown():
    clock = [0.0]
    health = MirrorHealth(failure_threshold=1, cooldown=10, clock=lambda: clock[0])
    outlet = Outlet(name="n", mirrors=[A, B], sections={"s": "/s"}, article_url="^/a")
    health.record_failure("n", A, "down")
    health.record_failure("n", B, "down")
    assert health.choose(outlet) is None
    clock[0] = 11.0
    assert health.choose(outlet) == A  # the probe
    assert health.choose(outlet) == B  # A's probe is taken; B's cool-down is over too
    assert health.choose(outlet) is None
    health.record_success("n", A)
    assert health.choose(outlet) == A and health.states(outlet) == {A: True, B: False}


# -- the middlewares and the failover component ----------------------------------------------------


def test_a_failing_mirror_moves_the_document_on(crawler):
    mw = MirrorFailoverMiddleware.from_crawler(crawler)
    request = article_request(f"{A}/a/1", **{meta.MIRROR: A})
    retry = mw.process_exception(request, DownloadConnectionRefusedError())
    assert retry.url == f"{B}/a/1" and retry.dont_filter
    assert Attempts.of(retry).failed_on == [A]
    retry = mw.process_response(retry, html(retry.url, b"", status=503, request=retry))
    assert retry.url == f"{C}/a/1" and Attempts.of(retry).failed_on == [A, B]
    stats = crawler.stats.get_stats()
    assert stats["mirror/outcome/connection_error"] == 1 and stats["mirror/outcome/http_error"] == 1


def test_the_same_notice_for_the_same_document_again_takes_no_mirror_out(crawler):
    context = crawl_context(crawler)
    failover, health = context.failover, context.health
    outlet = context.catalog.get("news")
    seized = mirror_failure("block page ('This domain has been seized')", "blocked", strong=True)
    request = article_request(f"{A}/a/1", **{meta.MIRROR: A})
    failover.mirror_failed(request, seized)
    assert not health.is_up(outlet, A)
    # a mirror check brought A back; the document, after waiting, is served the notice again
    health.record_success("news", A, serves_outlet=True)
    again = article_request(f"{A}/a/1", **{meta.MIRROR: A, meta.ATTEMPTS: Attempts(
        notices=[A], waits=1, since=time.time()).to_meta()})
    decision = failover.mirror_failed(again, seized)
    assert health.is_up(outlet, A)
    assert Attempts.of(decision).failed_on == [A]
    # another document's notice is news
    failover.mirror_failed(article_request(f"{A}/a/2", **{meta.MIRROR: A}), seized)
    assert not health.is_up(outlet, A)


def test_a_mirror_in_an_outage_is_waited_for_once_it_served_anything(crawler):
    context = crawl_context(crawler)
    failover, health = context.failover, context.health
    outlet = context.catalog.get("news")
    listing = Request(f"{A}/world", meta={meta.OUTLET: "news", meta.KIND: "listing",
                                          meta.MIRROR: A})
    now = time.time()
    assert failover.serving(outlet, "article", now) == set()
    failover.downloaded(listing, "ok", served=True)
    # A served a listing, no article yet: in rotation, its 503 for an article is its word
    assert failover.serving(outlet, "article", now) == set()
    # out of rotation on 503s, an outage: waited for
    for _ in range(3):
        health.record_failure("news", A, "HTTP 503")
    assert failover.serving(outlet, "article", now) == {A}
    # silent for long: not any more
    assert failover.serving(outlet, "article", now + 301) == set()


def test_a_pdf_or_a_redirect_off_the_outlet_leaves_healthy_mirrors_in_rotation(crawler):
    health = crawl_context(crawler).health
    outlet = crawl_context(crawler).catalog.get("news")
    judge = PageJudgeMiddleware.from_crawler(crawler)
    raw = MirrorFailoverMiddleware.from_crawler(crawler)
    request = article_request(f"{A}/a/1", **{meta.MIRROR: A})
    pdf = Response(request.url, body=b"%PDF", request=request,
                   headers={"Content-Type": "application/pdf"})
    retry = judge.process_response(request, pdf)
    assert retry.url == f"{B}/a/1" and Attempts.of(retry).answers == {A: NOT_HTML}
    pdf = Response(retry.url, body=b"%PDF", request=retry,
                   headers={"Content-Type": "application/pdf"})
    retry = judge.process_response(retry, pdf)  # two agree: the third is heard all the same
    assert retry.url == f"{C}/a/1"
    pdf = Response(retry.url, body=b"%PDF", request=retry,
                   headers={"Content-Type": "application/pdf"})
    with pytest.raises(RequestHandled):
        judge.process_response(retry, pdf)
    assert retry.meta[meta.ENDED] == NOT_HTML  # every mirror agrees: that is the document

    redirected = article_request(f"{A}/a/2", **{meta.MIRROR: A})
    response = Response(redirected.url, status=302, request=redirected,
                        headers={"Location": "https://elsewhere.example/"})
    assert raw.process_response(redirected, response).url == f"{B}/a/2"
    assert health.states(outlet) == {A: True, B: True, C: True}


def test_a_retry_after_holds_its_mirror_and_is_no_failure_of_it(crawler):
    context = crawl_context(crawler)
    outlet = context.catalog.get("news")
    mw = MirrorFailoverMiddleware.from_crawler(crawler)
    for n in range(3):  # as many as take a mirror out when they are failures
        request = article_request(f"{A}/a/{n}", **{meta.MIRROR: A})
        response = html(request.url, b"", status=429, request=request)
        response.headers[b"Retry-After"] = b"30" if n else b"86400"
        retry = mw.process_response(request, response)
        assert retry.url == f"{B}/a/{n}" and Attempts.of(retry).failed_on == [A]
    assert context.health.states(outlet) == {A: True, B: True, C: True}
    # the longest asked for, cut to MIRROR_RETRY_AFTER_MAX
    assert 299 < context.health.held(outlet)[A] <= 300
    assert context.health.choose(outlet) == B
    assert crawler.stats.get_value("mirror/outcome/http_error") == 3
    # without one, a 429 is a failure like any other
    request = article_request(f"{A}/a/9", **{meta.MIRROR: A})
    for _ in range(3):
        mw.process_response(request, html(request.url, b"", status=429, request=request))
    assert not context.health.states(outlet)[A]


def test_a_request_leaving_for_a_mirror_that_cannot_take_it_goes_elsewhere(crawler):
    context = crawl_context(crawler)
    gate = MirrorGateHandler.from_crawler(crawler)
    mw = MirrorFailoverMiddleware.from_crawler(crawler)

    def leave(request: Request) -> MirrorUnavailable:
        with pytest.raises(MirrorUnavailable) as held_back:
            asyncio.run(gate.download_request(request))
        return held_back.value

    queued = article_request(f"{A}/a/1", **{meta.MIRROR: A})
    assert mw.process_request(queued) is None  # A could take it when it was queued
    context.health.hold("news", A, 30)  # then, while it waited in the slot, A asked a pause
    retry = mw.process_exception(queued, leave(queued))
    assert retry.url == f"{B}/a/1" and retry.dont_filter and not retry.meta[meta.PROBE]
    for _ in range(3):
        context.health.record_failure("news", B, "timeout")  # B left rotation meanwhile
    retry = mw.process_exception(retry, leave(retry))
    assert retry.url == f"{C}/a/1"
    # nothing of it counts against a mirror, nor ends the document
    assert Attempts.of(retry).failed_on == [] and meta.ENDED not in retry.meta
    assert not [k for k in crawler.stats.get_stats() if k.startswith("mirror/outcome/")]
    assert crawler.stats.get_value("mirror/held_back") == 2
    # a check of a held mirror is put off, and ends as a check
    check = article_request(f"{A}/world", **{meta.MIRROR: A, meta.PROBE: True,
                                             meta.CHECK: True})
    with pytest.raises(RequestHandled):
        mw.process_exception(check, leave(check))
    assert check.meta[meta.ENDED] == meta.CHECK
    # no mirror can take it: it waits, and has not ended
    context.health.hold("news", C, 30)
    with pytest.raises(RequestHandled):
        mw.process_exception(retry, leave(retry))
    assert context.waiting.count("news") == 1 and meta.ENDED not in retry.meta


def test_every_mirror_out_parks_the_document(crawler):
    context = crawl_context(crawler)
    outlet = context.catalog.get("news")
    for mirror in outlet.mirrors:
        context.health.record_failure("news", mirror, "down", strong=True)
    mw = MirrorFailoverMiddleware.from_crawler(crawler)
    request = article_request(f"{A}/a/1")
    with pytest.raises(RequestHandled) as handled:
        mw.process_request(request)
    assert context.waiting.count("news") == 1
    assert outcome_of(handled.value) is None and meta.ENDED not in request.meta


def test_requests_never_leave_the_outlet(crawler):
    mw = MirrorFailoverMiddleware.from_crawler(crawler)
    # a meta refresh or a redirect that Scrapy followed, even on a probe
    request = article_request("http://169.254.169.254/latest/", **{meta.PROBE: True})
    with pytest.raises(RequestHandled):
        mw.process_request(request)
    assert request.meta[meta.ENDED] == "off_outlet"


def test_scrapys_own_drops_end_requests_with_named_outcomes(crawler):
    # robots.txt forbids it
    robots = OutletRobotsTxtMiddleware.from_crawler(crawler)
    rules = robots._parserimpl.from_crawler(crawler, b"User-agent: *\nDisallow: /a/\n")
    forbidden = article_request(f"{A}/a/1")
    with pytest.raises(RequestHandled):
        robots.process_request_2(rules, forbidden)
    assert forbidden.meta[meta.ENDED] == "robots"
    # one redirect too many: that mirror's answer; once every mirror agrees, the end
    redirect = OutletRedirectMiddleware.from_crawler(crawler)
    most = crawler.settings.getint("REDIRECT_MAX_TIMES")
    looping = article_request(f"{A}/a/2", redirect_times=most,
                              redirect_urls=[f"{A}/a/2", f"{A}/a/3"])
    elsewhere = redirect.process_response(looping, Response(
        f"{A}/a/3", status=302, request=looping, headers={"Location": f"{A}/a/2"}))
    assert elsewhere.url == f"{B}/a/2"
    assert Attempts.of(elsewhere).answers == {A: "redirect_loop"}
    elsewhere.meta["redirect_times"] = most
    last = redirect.process_response(elsewhere, Response(
        elsewhere.url, status=302, request=elsewhere, headers={"Location": f"{B}/a/3"}))
    assert last.url == f"{C}/a/2"
    last.meta["redirect_times"] = most
    with pytest.raises(RequestHandled):
        redirect.process_response(last, Response(
            last.url, status=302, request=last, headers={"Location": f"{C}/a/3"}))
    assert last.meta[meta.ENDED] == "redirect_loop"
    # a body that grows past DOWNLOAD_MAXSIZE once decompressed
    compression = OutletHttpCompressionMiddleware.from_crawler(crawler)
    bomb = article_request(f"{A}/a/4", download_maxsize=10_000)
    with pytest.raises(RequestHandled):
        compression.process_response(bomb, Response(
            bomb.url, body=gzip.compress(b" " * 1_000_000), request=bomb,
            headers={"Content-Encoding": "gzip"}))
    assert bomb.meta[meta.ENDED] == "too_large"
    # what no middleware named
    assert outcome_of(IgnoreRequest("dropped")) == "ignored"
    assert outcome_of(KeyError("bug")) == "error"


def test_a_redirect_or_refresh_off_the_outlet_fails_over_with_the_original_document(crawler):
    mw = MirrorFailoverMiddleware.from_crawler(crawler)
    # what MetaRefreshMiddleware makes of a refresh to another host, on a probe
    followed = article_request("http://127.0.0.2:9/planted", **{
        meta.MIRROR: A, meta.PROBE: True, "redirect_urls": [f"{A}/a/7"], "redirect_times": 1})
    retry = mw.process_request(followed)
    assert retry.url == f"{B}/a/7"
    assert Attempts.of(retry).failed_on == [A]
    assert "redirect_urls" not in retry.meta
