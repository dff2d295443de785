"""Judging a mirror by what it serves: which pages are evidence that it serves something
other than the outlet, how a mirror out on such evidence comes back, and when the last mirror
is kept. Pure functions first, then the failover component and the page-judging middleware on
plain Scrapy responses (``get_crawler``)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import unquote

import pytest
from conftest import NEWS_MIRRORS, NEWS_OUTLET_FILE, outlet_crawler
from nginx_outlet import BOTCHECK_PAGE
from scrapy import Request
from scrapy.http import HtmlResponse, TextResponse

from crawler.context import crawl_context
from crawler.core import meta
from crawler.core.judging import (
    CONTENT,
    SERVICE,
    SamePageDetector,
    document_answer,
    judge_check,
    judge_page,
    judge_refresh,
    links_into_outlet,
    may_probe,
    mirror_failure,
    page_fingerprint,
    text_answer,
)
from crawler.core.mirror_state import mirror_candidates
from crawler.core.outlets import Outlet
from crawler.core.steps import Attempts, Ended, Parked, keeps_last_mirror
from crawler.demo.server import PARKED_PAGE, SEIZED_PAGE
from crawler.downloadermiddlewares.page_judge import PageJudgeMiddleware
from crawler.extensions.mirror_checks import MirrorChecks
from crawler.ledger import RequestHandled
from crawler.mirrors import MirrorHealth

A, B = NEWS_MIRRORS
OUTLET_FILE = NEWS_OUTLET_FILE + "min_text_length: 50\n"
BOTCHECK = (b'<html><head><title>Just a moment...</title></head><body><h1>news.example</h1>'
            b'<form action="/?__cf_chl_f_tk={token}" method="POST"></form>'
            b'<p><a href="/?__cf_chl_rt_tk={token}">Retry</a></p>'
            b'<p>Ray ID: <code>{ray}</code> at {clock}</p>'
            b'<a href="https://cloudflare.example/">Cloudflare</a></body></html>')
#: an outlet's own short page: its navigation links to its sections and articles
OWN_SHORT_PAGE = (b'<html><body><nav><a href="/">Home</a> <a href="/world">World</a></nav>'
                  b'<main><p>Page not found.</p></main>'
                  b'<aside><a href="/a/99/latest">Latest story</a></aside></body></html>')


def botcheck(token: str, ray: str, clock: str) -> bytes:
    return (BOTCHECK.replace(b"{token}", token.encode()).replace(b"{ray}", ray.encode())
            .replace(b"{clock}", clock.encode()))


@pytest.fixture
def outlet() -> Outlet:
    import yaml

    return Outlet.model_validate(yaml.safe_load(OUTLET_FILE))


@pytest.fixture
def crawler(tmp_path: Path):
    # the rules at their simplest: a page served for two documents
    return outlet_crawler(tmp_path, OUTLET_FILE, "news", MIRROR_COOLDOWN=60,
                          MIRROR_SAME_PAGE_DOCUMENTS=2)


def html(url: str, body: bytes, request: Request) -> HtmlResponse:
    return HtmlResponse(url, body=body, request=request,
                        headers={"Content-Type": "text/html; charset=utf-8"})


def article(url: str, mirror: str = A) -> Request:
    return Request(url, meta={meta.OUTLET: "news", meta.KIND: "article", meta.MIRROR: mirror})


# -- the fingerprint: what varies between answers of one notice, and nothing else ---------------


def test_one_notice_has_one_fingerprint_whatever_it_echoes():
    # a bot check with a per-answer token, ray id and clock
    one = page_fingerprint(botcheck("9f8e7d6c5b4a39281706f5e4d3c2b1a0", "8f3a2b1c4d5e6f70",
                                    "13:59:41"), "/a/1")
    two = page_fingerprint(botcheck("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "1234abcd5678ef90",
                                    "14:02:07"), "/a/2")
    assert one == two
    # a seizure notice naming the path it was asked for: as sent, decoded and escaped
    notice = "<html><body><p>{} has been seized.</p><p>Case {}</p></body></html>"
    paths = ["/a/1/caf%C3%A9", "/a/2/tea&cake"]
    for form in (lambda p: p, unquote, lambda p: escape(unquote(p))):
        fingerprints = {page_fingerprint(notice.format(form(p), "ref 20240611093000123").encode(),
                                         p) for p in paths}
        assert len(fingerprints) == 1


def test_pages_that_differ_in_their_text_never_share_a_fingerprint():
    brief = "<html><body><p>Oil rose to {} dollars a barrel in {}.</p></body></html>"
    assert (page_fingerprint(brief.format(83, 2024).encode(), "/a/1")
            != page_fingerprint(brief.format(85, 2024).encode(), "/a/2"))
    assert (page_fingerprint(brief.format(83, 2023).encode(), "/a/1")
            != page_fingerprint(brief.format(83, 2024).encode(), "/a/2"))


def test_links_into_the_outlet_tell_its_own_pages_from_a_notice(outlet):
    assert links_into_outlet(OWN_SHORT_PAGE, f"{B}/a/5", outlet)
    for notice in (SEIZED_PAGE, PARKED_PAGE, botcheck("ab" * 16, "cd" * 8, "10:00")):
        assert not links_into_outlet(notice, f"{A}/a/5", outlet)
    # a link to the page itself, or to the home page with a token, is no link into the outlet
    assert not links_into_outlet(b'<a href="/a/5">here</a><a href="/?t=1">home</a>',
                                 f"{A}/a/5", outlet)


# -- the detector ------------------------------------------------------------------------------


def test_a_page_that_passed_may_join_a_suspect_but_never_start_one():
    detector = SamePageDetector(documents=2)
    assert not detector.join("news", A, "d1", "F")
    assert not detector.join("news", A, "d2", "F")  # two passing pages: nothing
    assert not detector.has_suspects("news", A)
    assert not detector.suspect("news", A, "d1", "F")
    assert detector.has_suspects("news", A) and not detector.has_suspects("news", B)
    assert detector.join("news", A, "d2", "F")


def test_a_page_two_mirrors_agreed_on_is_acquitted():
    detector = SamePageDetector(documents=2)
    assert not detector.suspect("news", A, "d1", "F")
    assert not detector.suspect("news", B, "d1", "F")
    detector.acquit("news", "d1")
    assert not detector.suspect("news", A, "d2", "F")
    assert not detector.suspect("news", A, "d3", "F")
    assert not detector.has_suspects("news", A)


# -- recovery: who may probe, what a check proves, when the last mirror stays ------------------


def test_only_a_known_good_document_may_probe_a_mirror_out_on_content_evidence():
    assert may_probe(SERVICE, known_good=False) and may_probe(None, known_good=False)
    assert not may_probe(CONTENT, known_good=False)
    assert may_probe(CONTENT, known_good=True)
    assert judge_check(None, articles_listed=3)
    assert not judge_check(None, articles_listed=0)
    assert not judge_check(mirror_failure("block page", "blocked", strong=True), 3)
    downs = {A: 100.0, B: None}
    assert list(mirror_candidates([A, B], downs, now=200.0)) == [(A, True), (B, False)]
    assert list(mirror_candidates([A, B], downs, now=200.0, checked_only={A})) == [(B, False)]


def test_the_last_mirror_is_kept_only_while_it_serves_the_outlet():
    assert keeps_last_mirror(others_in_rotation=0, serves_outlet=True)
    assert not keeps_last_mirror(others_in_rotation=0, serves_outlet=False)
    assert not keeps_last_mirror(others_in_rotation=1, serves_outlet=True)


def test_a_mirror_out_on_content_evidence_comes_back_through_a_check_alone(outlet):
    clock = [0.0]
    health = MirrorHealth(cooldown=10, clock=lambda: clock[0])
    health.record_failure("news", A, "block page", strong=True)
    health.record_failure("news", B, "connection refused", strong=False)
    health.record_failure("news", B, "connection refused", strong=False)
    health.record_failure("news", B, "connection refused", strong=False)
    assert health.checked_only(outlet) == {A}
    clock[0] = 11.0
    assert health.next_probe_in(outlet) == 0  # B may be probed by a document
    assert health.choose(outlet) == B  # the probe; A waits for a check
    assert health.due_checks(outlet) == [A]
    health.record_success("news", A)  # a page served to a request still in flight
    assert health.states(outlet)[A] is False
    health.record_failure("news", A, "connection refused")  # a check that failed to connect
    assert health.checked_only(outlet) == {A}  # still out on content evidence
    health.record_success("news", A, serves_outlet=True)
    assert health.states(outlet)[A] is True and health.checked_only(outlet) == frozenset()


# -- the failover component and the middleware ----------------------------------------------------


def test_a_real_article_served_under_many_paths_is_never_evidence(crawler):
    judge = PageJudgeMiddleware.from_crawler(crawler)
    health = crawl_context(crawler).health
    page = (b"<html><body><article><p>" + b"The same story, told once. " * 20
            + b"</p></article></body></html>")
    for n in range(1, 6):
        request = article(f"{A}/a/{n}")
        assert judge.process_response(request, html(request.url, page, request)).body == page
    assert all(health.states(crawl_context(crawler).catalog.get("news")).values())


def test_a_notice_long_enough_to_pass_joins_the_suspect_a_failed_listing_started(crawler):
    context = crawl_context(crawler)
    failover, outlet = context.failover, context.catalog.get("news")
    judge = PageJudgeMiddleware.from_crawler(crawler)
    listing = Request(f"{A}/world", meta={meta.OUTLET: "news", meta.KIND: "listing",
                                          meta.MIRROR: A, meta.PAGE: 1, meta.SECTION: "world"})
    retry = failover.document_answered(listing, document_answer("no_articles", "none"),
                                       body=SEIZED_PAGE)
    assert retry.url == f"{B}/world"  # one page for one document: asked elsewhere
    request = article(f"{A}/a/1")
    retry = judge.process_response(request, html(request.url, SEIZED_PAGE, request))
    assert retry.url == f"{B}/a/1"
    assert context.health.states(outlet) == {A: False, B: True}
    assert context.health.checked_only(outlet) == {A}


def test_the_last_mirror_serving_the_outlet_stays_and_says_so(crawler, caplog):
    context = crawl_context(crawler)
    failover, outlet = context.failover, context.catalog.get("news")
    for _ in range(3):
        context.health.record_failure("news", B, "connection refused")
    listing = Request(f"{A}/world", meta={meta.OUTLET: "news", meta.KIND: "listing",
                                          meta.MIRROR: A, meta.PAGE: 1})
    failover.listing_answered(listing, articles=12)
    short = b"<html><body><p>A brief.</p></body></html>"
    verdict = document_answer(text_answer("A brief."), "text of 8 characters only")
    def heard_from_b(request: Request) -> Request:
        # B, out of rotation, was asked too (a mirror out is heard before one word stands)
        # and refused the connection: A's is the only word
        request.meta[meta.ATTEMPTS] = Attempts(failed_on=[B]).to_meta()
        return request

    for n in (1, 2, 3):
        # the only mirror's word on a page that may be a notice: asked again later
        assert isinstance(failover.document_answered(heard_from_b(article(f"{A}/a/{n}")),
                                                     verdict, body=short), Parked)
    assert context.health.states(outlet)[A] is True
    # asked again, it is still the page served for every document: it waits on, and the
    # mirror stays
    again = article(f"{A}/a/1")
    again.meta[meta.ATTEMPTS] = Attempts(answers={A: verdict.answer}, waits=1,
                                         doubted=[A], failed_on=[B]).to_meta()
    assert isinstance(failover.document_answered(again, verdict, body=short), Parked)
    assert context.health.states(outlet)[A] is True
    # a page the mirror served for this document alone stands, once asked again
    alone = article(f"{A}/a/9")
    alone.meta[meta.ATTEMPTS] = Attempts(answers={A: verdict.answer}, waits=1,
                                         doubted=[A], failed_on=[B]).to_meta()
    other = b"<html><body><p>Another brief.</p></body></html>"
    assert failover.document_answered(alone, verdict, body=other).url == f"{A}/a/9"
    kept = [r for r in caplog.records if "kept in rotation" in r.getMessage()]
    assert len(kept) == 1 and A in kept[0].getMessage()
    assert crawler.stats.get_value("mirror/kept_in_rotation") == 3  # 2, 3, 1 again


def test_a_check_asks_a_known_good_listing_of_that_mirror_alone(crawler):
    context = crawl_context(crawler)
    outlet = context.catalog.get("news")
    failover, health = context.failover, context.health
    listing = Request(f"{B}/world?page=1", meta={meta.OUTLET: "news", meta.KIND: "listing",
                                                 meta.MIRROR: B, meta.PAGE: 1,
                                                 meta.SECTION: "world"})
    failover.listing_answered(listing, articles=5)
    assert failover.known_good_listing(outlet) == (f"{A}/world?page=1", "world")
    check = crawler.spider.check_request(outlet, B, *failover.known_good_listing(outlet))
    assert check.url == f"{B}/world?page=1"
    assert check.meta[meta.CHECK] and check.meta[meta.PROBE] and check.dont_filter
    health.record_failure("news", B, "block page", strong=True)
    # a block page again: the check ends there, on no other mirror
    ended = failover.mirror_failed(check, mirror_failure("block page", "blocked", strong=True))
    assert isinstance(ended, Ended) and ended.outcome == meta.CHECK
    failover.check_answered(check, articles=0)
    assert health.states(outlet)[B] is False
    failover.check_answered(check, articles=5)
    assert health.states(outlet)[B] is True
    assert crawler.stats.get_value("mirror/checks/passed") == 1


def test_the_checks_extension_sends_one_check_per_cool_down(crawler):
    context = crawl_context(crawler)
    checks = MirrorChecks.from_crawler(crawler)
    context.health.record_failure("news", A, "block page", strong=True)
    checks.watch("news", A, up=False)
    assert checks.due_checks() == []  # cooling down
    context.health.clock = lambda: 10 ** 9
    sent = checks.due_checks() + checks.due_checks()
    assert [r.url for r in sent] == [f"{A}/world"] and sent[0].meta[meta.CHECK]
    context.health.record_success("news", A, serves_outlet=True)
    assert checks.due_checks() == []


def test_a_meta_refresh_is_judged_as_a_redirect(outlet):
    request = article(f"{A}/a/1")
    away = html(request.url, b'<meta http-equiv="refresh" content="0; url=http://127.0.0.2/x">',
                request)
    verdict = judge_refresh(away, outlet, True, [], 100)
    assert verdict.about == "mirror" and "off the outlet" in verdict.reason
    home = html(request.url, b'<meta http-equiv="refresh" content="0; url=/world">', request)
    assert judge_refresh(home, outlet, True, [], 100).answer == "not_found"
    later = html(request.url, b'<meta http-equiv="refresh" content="300; url=/world">', request)
    assert judge_refresh(later, outlet, True, [], 100) is None


def test_a_block_page_is_never_kept_as_the_last_mirrors_article(tmp_path: Path):
    # the outlet's own blocked markers are no guess: the last mirror serving them goes out,
    # and a mirror already out is no last one to keep, so the notice is never stored
    crawler = outlet_crawler(
        tmp_path, OUTLET_FILE + "blocked_markers: [This domain has been seized]\n", "news")
    context = crawl_context(crawler)
    outlet = context.catalog.get("news")
    listing = Request(f"{A}/world", meta={meta.OUTLET: "news", meta.KIND: "listing",
                                          meta.MIRROR: A, meta.PAGE: 1})
    context.failover.listing_answered(listing, articles=12)  # A "serves the outlet"
    for _ in range(3):
        context.health.record_failure("news", B, "connection refused")
    judge = PageJudgeMiddleware.from_crawler(crawler)
    request = article(f"{A}/a/1")
    with pytest.raises(RequestHandled):
        judge.process_response(request, html(request.url, SEIZED_PAGE, request))
    assert meta.ENDED not in request.meta  # parked: it waits for a mirror
    assert context.health.states(outlet) == {A: False, B: False}
    assert not crawler.stats.get_value("mirror/kept_in_rotation")


def test_a_bot_check_for_one_document_takes_the_mirror_out_at_once(crawler, outlet):
    # strong, as the outlet's own block markers, but a guess of ours: not declared
    request = article(f"{A}/a/1")
    verdict = judge_page(html(request.url, BOTCHECK_PAGE, request), outlet)
    assert (verdict.about, verdict.outcome, verdict.strong) == ("mirror", "blocked", True)
    assert not verdict.declared and verdict.reason == "a bot check (Cloudflare)"
    # served where a feed was asked, as HTML: the mirror's all the same; as text: not read
    feed = Request(f"{A}/feed", meta={meta.OUTLET: "news", meta.KIND: "feed"})
    assert judge_page(html(feed.url, BOTCHECK_PAGE, feed), outlet, html=False).strong
    assert judge_page(TextResponse(feed.url, body=BOTCHECK_PAGE, request=feed,
                                   headers={"Content-Type": "text/plain"}), outlet,
                      html=False) is None
    # the first document it was served for goes to the other mirror, and the mirror goes out
    context = crawl_context(crawler)
    judge = PageJudgeMiddleware.from_crawler(crawler)
    retry = judge.process_response(request, html(request.url, BOTCHECK_PAGE, request))
    assert retry.url == f"{B}/a/1"
    assert context.health.states(context.catalog.get("news")) == {A: False, B: True}
