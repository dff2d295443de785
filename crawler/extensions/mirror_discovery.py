"""Following an outlet to the addresses it announces, without trusting a page blindly.

Every article page a mirror *in rotation* served and whose text passed the checks is read for
the hosts it names (:func:`crawler.core.mirror_notices.named_mirrors`); a page from a mirror out
of rotation is never read, since a seized domain's page can name anything. A new host is a
candidate (:mod:`crawler.mirror_registry`). It is verified once, with a handful of requests
whose answers are known: stored articles asked on the new host, and a section's first page
(:mod:`crawler.mirror_verification`). Then the outlet's ``mirror_discovery`` decides:

- ``propose``: it is listed (``crawler mirrors``), counted and logged; a person adopts it;
- ``adopt``: it joins rotation after the file's mirrors, never as the canonical one.

The probes go out as the outlet's requests do (its politeness, the host's robots.txt), and
never to a host whose address is not public unless declared
(``MIRROR_DISCOVERY_PRIVATE_HOSTS``). A rejected or verified candidate is looked at again
only after ``MIRROR_DISCOVERY_RECHECK`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from contextlib import closing
from dataclasses import asdict
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from scrapy import Request
from scrapy import signals as scrapy_signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest
from scrapy.http import TextResponse
from scrapy.http.request import NO_CALLBACK

from crawler.context import crawl_context
from crawler.core import meta, signals
from crawler.core.judging import judge_page
from crawler.core.links import page_links
from crawler.core.mirror_notices import (
    FEED,
    MAX_PER_PAGE,
    REDIRECT,
    NamedMirror,
    base_of,
    named_mirrors,
)
from crawler.mirror_registry import Candidate, utc_now
from crawler.mirror_verification import (
    ADOPTED,
    BLOCKED,
    FAILED,
    MIN_SAME_ARTICLES,
    NEW,
    REJECTED,
    VERIFIED,
    VERIFYING,
    ArticleProbe,
    ListingProbe,
    address_refusal,
    choose_articles,
    compare_article,
    judge_candidate,
)
from crawler.ticker import Ticker

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.core.outlets import Outlet

logger = logging.getLogger(__name__)

#: stored rows looked through for articles to ask a candidate for
STORED_ROWS = 500


def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to; none when it does not."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


def due(candidate: Candidate, recheck: float, now: datetime) -> bool:
    """Whether a candidate is verified now: a new one, or one last checked ``recheck``
    seconds ago, or one left verifying (an adopted one stays; one a person rejected stays
    rejected)."""
    if candidate.state in (NEW, VERIFYING):
        return True  # one left verifying by a process that died: the lease decides
    if candidate.state not in (VERIFIED, REJECTED) or candidate.evidence.startswith("by "):
        return False
    checked = datetime.fromisoformat(candidate.checked_at) if candidate.checked_at else None
    return checked is None or (now - checked).total_seconds() >= recheck


def article_links(response: TextResponse, outlet: Outlet) -> int:
    """Distinct links of a page to articles of ``outlet`` (its mirrors, the candidate among
    them)."""
    paths = set()
    for link in page_links(response, response.url):
        path = urlsplit(link.url).path
        if outlet.owns(link.url) and outlet.article_pattern.search(path):
            paths.add(path)
    return len(paths)


def feed_hosts(outlet: Outlet, url: str, links: list[str],
               limit: int = MAX_PER_PAGE) -> list[NamedMirror]:
    """Hosts a feed names with an article path (``article_url``) that the outlet does not
    list: a feed that moved its links to a new domain."""
    found: dict[str, NamedMirror] = {}
    for link in links:
        target = urljoin(url, link.strip())
        base = base_of(target)
        if (base and not outlet.owns(target) and base not in found
                and outlet.article_pattern.search(urlsplit(target).path)):
            found[base] = NamedMirror(base, FEED)
    return list(found.values())[:limit]


class MirrorDiscovery:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = self.context = crawl_context(crawler)
        self.catalog = context.catalog
        self.health = context.health
        self.registry = context.mirror_registry
        settings = crawler.settings
        self.declared = [h.lower() for h in settings.getlist("MIRROR_DISCOVERY_PRIVATE_HOSTS")]
        self.articles = max(settings.getint("MIRROR_DISCOVERY_ARTICLES"), MIN_SAME_ARTICLES)
        self.recheck = settings.getfloat("MIRROR_DISCOVERY_RECHECK")
        self.max_candidates = settings.getint("MIRROR_DISCOVERY_MAX_CANDIDATES")
        self.refresh_every = settings.getfloat("MIRROR_DISCOVERY_REFRESH")
        #: (outlet, base) being verified by this process
        self._verifying: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Future] = set()
        #: candidates the crawl was kept open for once, to be asked once articles are stored
        self._held: set[tuple[str, str]] = set()
        self._ticker = Ticker(self.refresh, self.refresh_every, "Mirror discovery refresh")
        crawler.signals.connect(self.page_accepted, signal=signals.article_page_accepted)
        crawler.signals.connect(self.stored, signal=signals.articles_stored)
        crawler.signals.connect(self.feed_read, signal=signals.feed_links_read)
        crawler.signals.connect(self.redirected, signal=signals.redirect_off_outlet)
        crawler.signals.connect(self.open, signal=scrapy_signals.spider_opened)
        crawler.signals.connect(self.close, signal=scrapy_signals.spider_closed)
        crawler.signals.connect(self.keep_open, signal=scrapy_signals.spider_idle)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MirrorDiscovery:
        return cls(crawler)

    # -- life cycle ------------------------------------------------------------------------------

    def open(self) -> None:
        self.apply_adopted()
        self._ticker.start()

    def close(self) -> None:
        self._ticker.stop()
        for task in self._tasks:
            task.cancel()

    def keep_open(self) -> None:
        # a candidate named before enough articles were durable gets one more look: the
        # crawl's last batch may have been written since
        waiting = {(c.outlet, c.base) for c in self.registry.candidates()
                   if c.state in (NEW, VERIFYING)}
        if waiting - self._held:
            self._held |= waiting
            self.retry_new()
        if self._verifying:
            raise DontCloseSpider("a candidate mirror is being verified")

    def stored(self, articles: list[dict[str, Any]], **_: Any) -> None:
        """Articles are durable: candidates that waited for some can be asked now."""
        if any(c.state in (NEW, VERIFYING) for c in self.registry.candidates()):
            self.retry_new()

    def refresh(self) -> None:
        """Adoptions made elsewhere (``crawler mirrors adopt``, another worker)."""
        try:
            self.registry.refresh()
        except Exception as exc:  # a store that went away must not stop the crawl
            logger.warning("Cannot read the mirror candidates: %s", exc)
            return
        self.apply_adopted()
        self.retry_new()

    def retry_new(self) -> None:
        """Candidates named before enough articles were stored to ask them for."""
        for candidate in self.registry.candidates():
            if (candidate.state not in (NEW, VERIFYING)
                    or (candidate.outlet, candidate.base) in self._verifying):
                continue
            try:
                outlet = self.catalog.get(candidate.outlet)
            except Exception:  # noqa: S112 - an outlet of another deployment's store
                continue
            if outlet.mirror_discovery != "off":
                self.start(outlet, candidate)

    def apply_adopted(self) -> None:
        for name in {c.outlet for c in self.registry.candidates()}:
            self.counted(name)
            try:
                before = set(self.catalog.get(name).mirrors)
            except Exception:  # noqa: S112 - an outlet of another deployment's store
                continue
            if self.catalog.set_adopted(name, self.registry.adopted(name)):
                for mirror in set(self.catalog.get(name).mirrors) - before:
                    logger.warning("Mirror %s of %s adopted: in rotation after the outlet "
                                   "file's mirrors", mirror, name)
                    self.crawler.stats.inc_value("mirror/discovery/joined_rotation")
                    self.crawler.signals.send_catch_log(
                        signals.mirror_state_changed, outlet=name, mirror=mirror, up=True)

    # -- candidates ----------------------------------------------------------------------------

    def page_accepted(self, outlet: str, mirror: str | None, url: str, body: bytes,
                      headers: dict[str, str] | None = None) -> list[Candidate]:
        """An article page whose text passed the checks, served by a mirror in rotation
        (:attr:`ArticleItem.in_rotation`): the hosts it names, noted; the new ones
        verified."""
        found = self.catalog.get(outlet)
        if found.mirror_discovery == "off" or not mirror:
            return []
        return self.note(found, url, named_mirrors(body, url, headers, found.notice_phrases,
                                                   known=found.netlocs))

    def feed_read(self, outlet: str, mirror: str | None, url: str,
                  links: list[str]) -> list[Candidate]:
        """A feed that a mirror in rotation served: the hosts of its article links (an
        article path on a host the outlet does not list), noted; the new ones verified."""
        found = self.catalog.get(outlet)
        if found.mirror_discovery == "off" or not mirror:
            return []
        return self.note(found, url, feed_hosts(found, url, links))

    def redirected(self, outlet: str, mirror: str | None, url: str,
                   target: str) -> list[Candidate]:
        """A mirror in rotation redirected off the outlet: the target's host, noted."""
        found = self.catalog.get(outlet)
        base = base_of(target)
        if found.mirror_discovery == "off" or not mirror or base is None:
            return []
        return self.note(found, url, [NamedMirror(base, REDIRECT)])

    def note(self, found: Outlet, url: str, names: list[NamedMirror]) -> list[Candidate]:
        outlet = found.name
        noted = []
        for named in names:
            candidate = self.registry.get(outlet, named.base)
            if candidate is None:
                if len(self.registry.candidates(outlet)) >= self.max_candidates:
                    self.crawler.stats.inc_value("mirror/discovery/capped")
                    continue
                candidate = self.registry.note(outlet, named.base, named.source, url)
                logger.info("Mirror candidate %s of %s, named (%s) at %s", named.base,
                            outlet, named.source, url)
                self.crawler.stats.inc_value("mirror/discovery/candidates")
                self.counted(outlet)
            noted.append(candidate)
            if (outlet, candidate.base) not in self._verifying and due(
                    candidate, self.recheck, datetime.now(UTC)):
                self.start(found, candidate)
        return noted

    def start(self, outlet: Outlet, candidate: Candidate) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no crawl is running (a component built on its own): nothing fetches
        key = (outlet.name, candidate.base)
        self._verifying.add(key)
        task = loop.create_task(self._verify_and_act(outlet.name, candidate))
        self._tasks.add(task)

        def done(future: asyncio.Future) -> None:
            self._tasks.discard(future)
            self._verifying.discard(key)
            if not future.cancelled() and future.exception() is not None:
                logger.error("Verifying mirror candidate %s failed: %r", candidate.base,
                             future.exception())
        task.add_done_callback(done)

    async def _verify_and_act(self, name: str, candidate: Candidate) -> None:
        outlet = self.catalog.get(name)
        # the name is resolved off the reactor's thread: a slow DNS must not stall the crawl
        refusal = await asyncio.to_thread(address_refusal, candidate.base, resolve,
                                          self.declared)
        if refusal is not None:
            self._finish(candidate, REJECTED, f"not fetched: {refusal}", 0)
            return
        stored = await asyncio.to_thread(self._stored_articles, outlet)
        if len(stored) < MIN_SAME_ARTICLES:
            return  # asked again once more articles are stored
        if not self.registry.claim(name, candidate.base):
            return  # another worker verifies it
        try:
            # it may have been verified since this process last looked
            self.registry.refresh()
            latest = self.registry.get(name, candidate.base) or candidate
            if latest.state in (NEW, VERIFYING):
                await self._verify_claimed(outlet, latest, stored)
        finally:
            self.registry.release(name, candidate.base)

    def _stored_articles(self, outlet: Outlet) -> list[dict[str, Any]]:
        """Articles to ask a candidate for; read off the reactor's thread (a store query
        must not stall the crawl), and closed at once (an open read holds its snapshot)."""
        with closing(self.context.store.read(outlet.name)) as rows:
            return list(choose_articles(islice(rows, STORED_ROWS), self.articles,
                                        outlet.min_text_length))

    async def _verify_claimed(self, outlet: Outlet, candidate: Candidate,
                              stored: list[dict[str, Any]]) -> None:
        name = outlet.name
        candidate.state = VERIFYING
        self.registry.save(candidate)
        self.counted(name)
        started = time.monotonic()
        state, evidence, requests = await self.verify(outlet, candidate.base, stored)
        logger.log(logging.WARNING if state == VERIFIED else logging.INFO,
                   "Mirror candidate %s of %s %s in %.1f s, %d requests: %s", candidate.base,
                   name, state, time.monotonic() - started, requests, evidence)
        if state == VERIFIED and outlet.mirror_discovery == "adopt":
            state, evidence = ADOPTED, f"{evidence} (adopted: policy)"
        self._finish(candidate, state, evidence, requests)
        if state == VERIFIED:
            logger.warning("Mirror %s of %s is verified and proposed: `crawler mirrors adopt "
                           "%s %s` puts it in rotation", candidate.base, name, name,
                           candidate.base)
        self.apply_adopted()

    def counted(self, outlet: str) -> None:
        """Tell the metrics how many candidates of ``outlet`` are in each state."""
        counts: dict[str, int] = {}
        for candidate in self.registry.candidates(outlet):
            counts[candidate.state] = counts.get(candidate.state, 0) + 1
        self.crawler.signals.send_catch_log(signals.mirror_candidates_changed, outlet=outlet,
                                            counts=counts)

    def _finish(self, candidate: Candidate, state: str, evidence: str, requests: int) -> None:
        candidate.state, candidate.evidence = state, evidence
        candidate.checked_at, candidate.requests = utc_now(), requests
        self.registry.save(candidate)
        self.counted(candidate.outlet)
        self.crawler.stats.inc_value(f"mirror/discovery/{state}")
        self.crawler.stats.inc_value("mirror/discovery/requests", requests)

    async def verify(self, outlet: Outlet, base: str,
                     stored: list[dict[str, Any]]) -> tuple[str, str, int]:
        """(state, evidence, requests sent) of asking ``base`` for ``stored`` articles and
        the outlet's known-good listing."""
        with_candidate = outlet.with_mirrors([base])
        listing = self.context.failover.known_good_listing(outlet)
        listing_path = urlsplit(listing[0]).path if listing else None
        probes = [self._article(outlet, base, record) for record in stored]
        if listing_path is not None:
            probes.append(self._listing(with_candidate, base, listing_path))
        results = await asyncio.gather(*probes)
        articles = [r for r in results if isinstance(r, ArticleProbe)]
        listed = next((r for r in results if isinstance(r, ListingProbe)), None)
        judged = judge_candidate(articles, listed)
        return judged.state, judged.evidence, len(results)

    async def _get(self, outlet: Outlet, url: str) -> Response | str:
        request = Request(url, callback=NO_CALLBACK, dont_filter=True, meta={
            meta.CANDIDATE_OF: outlet.name, "download_slot": outlet.name,
            "dont_redirect": True, "dont_retry": True, "handle_httpstatus_all": True})
        try:
            return await self.crawler.engine.download_async(request)
        except IgnoreRequest as exc:
            return f"not asked: {exc}"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _article(self, outlet: Outlet, base: str, record: dict[str, Any]) -> ArticleProbe:
        path = outlet.on_mirror(record["canonical_url"], base)[len(base):]
        response = await self._get(outlet, base + path)
        if isinstance(response, str):
            return ArticleProbe(path, FAILED, response)
        if response.status != 200:
            return ArticleProbe(path, FAILED, f"HTTP {response.status}")
        verdict = judge_page(response, outlet)
        if verdict is not None:
            return ArticleProbe(path, BLOCKED if verdict.strong else FAILED, verdict.reason)
        try:
            extracted = await self.context.extractor.extract(
                response.body, response.url, outlet.boilerplate,
                getattr(response, "encoding", None), outlet.selectors)
        except Exception as exc:
            return ArticleProbe(path, FAILED, f"extraction failed: {exc}")
        found = compare_article(record, asdict(extracted) if extracted else None)
        return ArticleProbe(path, found, "" if extracted else "no article text")

    async def _listing(self, outlet: Outlet, base: str, path: str) -> ListingProbe:
        response = await self._get(outlet, base + path)
        if isinstance(response, str):
            return ListingProbe(path, 0, response)
        if response.status != 200:
            return ListingProbe(path, 0, f"HTTP {response.status}")
        verdict = judge_page(response, outlet)
        if verdict is not None or not isinstance(response, TextResponse):
            return ListingProbe(path, 0, verdict.reason if verdict else "not a page")
        return ListingProbe(path, article_links(response, outlet))
