"""Judging a candidate mirror by what it serves, and which hosts may be asked at all."""

from __future__ import annotations

from crawler.mirror_verification import (
    BLOCKED,
    FAILED,
    OTHER_TEXT,
    REJECTED,
    SAME,
    VERIFIED,
    ArticleProbe,
    ListingProbe,
    address_refusal,
    choose_articles,
    compare_article,
    judge_candidate,
)

STORED = {"title": "Talks go on", "published": "2024-06-28T10:00:00+00:00",
          "text": "Tehran said on Friday\nthat the talks would go on."}


def test_an_article_is_the_same_when_a_reader_would_see_no_edit():
    assert compare_article(STORED, {**STORED, "text": "Tehran  said on Friday\n\nthat the "
                                    "talks would go on. "}) == SAME
    assert compare_article(STORED, {**STORED, "published": "2024-06-28T12:00:00+02:00"}) == SAME
    assert compare_article(STORED, {**STORED, "text": "Buy cheap watches."}) == OTHER_TEXT
    assert compare_article(STORED, {**STORED, "title": "Casino"}) == OTHER_TEXT
    assert compare_article(STORED, None) == FAILED
    assert compare_article(STORED, {"text": ""}) == FAILED


def _probes(*found: str) -> list[ArticleProbe]:
    return [ArticleProbe(f"/news/{i}", f, "HTTP 404" if f == FAILED else "") for i, f in
            enumerate(found)]


def test_verified_with_three_alike_and_a_listing_of_articles():
    judged = judge_candidate(_probes(SAME, SAME, SAME, FAILED), ListingProbe("/section/a", 12))
    assert judged.state == VERIFIED
    assert judged.evidence == "3 of 4 stored articles served alike; /section/a lists 12 articles"


def test_rejected_with_the_reason_kept():
    other = judge_candidate(_probes(SAME, OTHER_TEXT, OTHER_TEXT, SAME), ListingProbe("/s", 9))
    assert other.state == REJECTED and other.evidence.startswith("other text than stored for")
    blocked = judge_candidate([ArticleProbe("/news/1", BLOCKED, "block page ('seized')")],
                              ListingProbe("/s", 3))
    assert blocked.state == REJECTED and "seized" in blocked.evidence
    failed = judge_candidate(_probes(FAILED, FAILED, FAILED), ListingProbe("/s", 3))
    assert failed.evidence == "/news/0: HTTP 404 (0 of 3 stored articles served alike)"
    no_listing = judge_candidate(_probes(SAME, SAME, SAME), ListingProbe("/s", 0, "HTTP 503"))
    assert no_listing.state == REJECTED and "/s: HTTP 503" in no_listing.evidence
    too_few = judge_candidate(_probes(SAME, SAME), ListingProbe("/s", 4))
    assert too_few.state == REJECTED and "too few" in too_few.evidence


def test_articles_asked_for_are_served_and_long_enough():
    rows = [{"canonical_url": "a", "text": "x" * 300, "removed_at": "2024-01-01"},
            {"canonical_url": "b", "text": "short"},
            {"canonical_url": "c", "text": "y" * 300},
            {"canonical_url": "d", "text": "z" * 300},
            {"canonical_url": "e", "text": "w" * 300}]
    assert [r["canonical_url"] for r in choose_articles(rows, 2, 200)] == ["c", "d"]


def test_private_loopback_and_link_local_hosts_are_never_fetched_unless_declared():
    def resolve(host: str) -> list[str]:
        return {"intranet.example": ["10.0.0.5"], "public.example": ["93.184.215.14"],
                "mixed.example": ["93.184.215.14", "127.0.0.1"],
                "v6.example": ["fe80::1"]}.get(host, [])

    assert address_refusal("https://public.example", resolve) is None
    for base in ("http://127.0.0.1:8080", "https://intranet.example", "https://mixed.example",
                 "https://v6.example", "http://169.254.169.254", "http://[::1]:80",
                 "http://100.64.0.1", "http://0.0.0.0"):
        refusal = address_refusal(base, resolve)
        assert refusal and "MIRROR_DISCOVERY_PRIVATE_HOSTS" in refusal, base
    assert address_refusal("http://127.0.0.1:8080", resolve, declared=["127.0.0.1:8080"]) is None
    # declared by host and port: another port of the same address is not
    assert address_refusal("http://127.0.0.1:8081", resolve, declared=["127.0.0.1:8080"])
    assert address_refusal("https://nowhere.example", resolve) == "nowhere.example does not resolve"
    assert "Tor" in address_refusal("http://abcdefghijklmnop.onion", resolve)
