"""The one component that moves a document between mirrors (:class:`Failover`), shaped the
way Scrapy's ``RetryMiddleware`` sits over ``get_retry_request``: the middlewares, the spider
and the pipelines report verdicts to it, it asks :func:`crawler.core.steps.next_step` (pure)
what happens next and carries that out (another mirror, the waiting room, an end).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from scrapy import Request

from crawler.core import meta, signals
from crawler.core.judging import (
    NO_ARTICLES,
    TEXT_PREFIX,
    SamePageDetector,
    Verdict,
    judge_check,
    links_into_outlet,
    mirror_failure,
    page_fingerprint,
)
from crawler.core.steps import (
    Attempts,
    Ended,
    GiveUp,
    Parked,
    Retry,
    Settled,
    Wait,
    agreed_answer,
    keeps_last_mirror,
    next_step,
    past_horizon,
    wait_delay,
)

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.core.outlets import Outlet, OutletCatalog
    from crawler.mirrors import MirrorHealth
    from crawler.waiting import WaitingRoom

logger = logging.getLogger(__name__)


#: what a page says of its mirror (Failover.page_suspicion): it served it for every document,
#: or it may
SAME_PAGE = "same_page"
SUSPECT = "suspect"


#: what the failover says happens next: the request to send (on the mirror to ask next),
#: the request parked in the waiting room, or the document's end
Decision = Request | Parked | Ended


class Failover:
    """The crawler's one owner of mirror failover. Callers report a verdict on a request and
    get back a :data:`Decision`: the request for the mirror to ask next, :class:`Parked`
    when the request waits in the waiting room, :class:`Ended` when the document has its
    final outcome. Nothing is raised: the caller answers Scrapy."""

    def __init__(self, crawler: Crawler, catalog: OutletCatalog, health: MirrorHealth,
                 waiting: WaitingRoom) -> None:
        self.crawler = crawler
        self.catalog = catalog
        self.health = health
        self.waiting = waiting
        settings = crawler.settings
        self.give_up_after = settings.getfloat("DOCUMENT_GIVE_UP_AFTER")
        self.longest_wait = settings.getfloat("MIRROR_COOLDOWN")
        self.silent_after = settings.getfloat("MIRROR_SILENT_AFTER")
        self.same_pages = SamePageDetector(settings.getint("MIRROR_SAME_PAGE_DOCUMENTS"))
        self.notice_max_bytes = settings.getint("MIRROR_NOTICE_MAX_BYTES")
        self._empty_sections: set[tuple[str, str]] = set()
        #: (outlet, mirror) -> when the last listing it served listed articles (monotonic;
        #: gone once one listed none)
        self._listed_at: dict[tuple[str, str], float] = {}
        #: outlet -> a listing that listed articles (canonical URL, section): a mirror
        #: check's document
        self._known_good: dict[str, tuple[str, str]] = {}
        #: (outlet, mirror) kept in rotation against content evidence: said once
        self._kept: set[tuple[str, str]] = set()

    def outlet_of(self, request: Request) -> Outlet | None:
        name = request.meta.get(meta.OUTLET)
        return self.catalog.get(name) if name else None

    # -- what callers report ---------------------------------------------------------------------

    def mirror_failed(self, request: Request, verdict: Verdict, kept: bool = False) -> Decision:
        """The request's mirror failed it (mirror evidence): the next mirror, or an end.
        ``kept``: the mirror stays in rotation all the same (:meth:`spares_last_mirror`); the
        document is not taken from this page, and waits for a better answer."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        attempts = Attempts.of(request)
        # the same notice for the same document again is no news about the mirror: counted
        # again, a document waiting for a mirror would take the others out at every round
        repeated = verdict.strong and mirror in attempts.notices
        if mirror is not None and not kept and not repeated:
            self.health.record_failure(outlet.name, mirror, verdict.reason, strong=verdict.strong)
        if request.meta.get(meta.CHECK):
            return self.check_failed(request, verdict.reason)
        if verdict.strong and mirror is not None and not repeated:
            attempts.notices.append(mirror)
        if mirror is not None and mirror not in attempts.failed_on:
            attempts.failed_on.append(mirror)
            if verdict.passing:
                attempts.unavailable.append(mirror)
        if kept:
            attempts.answers.pop(mirror, None)  # what it served is no answer to stand
        return self._act(request, outlet, mirror, attempts, verdict.reason)

    def document_answered(self, request: Request, verdict: Verdict,
                          body: bytes = b"") -> Decision:
        """The request's mirror said something about the document (document evidence).

        ``body``, the page it served, lets a mirror that answers every document with the same
        page (a seizure notice, a bot check) be recognised and taken out.
        """
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if request.meta.get(meta.CHECK):
            if mirror is not None:
                self.health.record_failure(outlet.name, mirror, verdict.reason, strong=True)
            return self.check_failed(request, verdict.reason)
        suspicion = self.page_suspicion(request, body) if body else None
        if suspicion == SAME_PAGE:
            same_page = mirror_failure(f"the same page for different documents "
                                       f"({verdict.reason})", "blocked", strong=True)
            return self.mirror_failed(request, same_page,
                                      kept=self.spares_last_mirror(request, same_page))
        attempts = Attempts.of(request)
        if mirror is not None:
            attempts.answers[mirror] = verdict.answer or verdict.reason
            if suspicion is not None and mirror not in attempts.doubted:
                attempts.doubted.append(mirror)
        return self._act(request, outlet, mirror, attempts, verdict.reason)

    def may_be_notice(self, request: Request, body: bytes) -> bool:
        """Whether a page that passed the document checks may still be a notice served for
        every document: small, linking nowhere into the outlet, and not a page two mirrors
        agreed on."""
        outlet = self.outlet_of(request)
        if len(body) > self.notice_max_bytes or links_into_outlet(body, request.url, outlet):
            return False
        path = "/" + request.url.split("://", 1)[-1].partition("/")[2]
        return not self.same_pages.acquitted(outlet.name, page_fingerprint(body, path))

    def serves_one_page(self, request: Request, body: bytes) -> bool:
        """Whether the request's mirror served this page, which passed the document checks,
        for documents whose checks it failed: a notice long enough to pass for an article."""
        return self.page_suspicion(request, body, passed=True) == SAME_PAGE

    def page_suspicion(self, request: Request, body: bytes, passed: bool = False) -> str | None:
        """SAME_PAGE when the request's mirror answered other documents with this page (a
        notice it serves for every path), SUSPECT when it may be one, None when it is not.
        Only a small page that links nowhere into the outlet can be one; one that ``passed``
        the document checks only joins a suspect
        (:class:`~crawler.core.judging.SamePageDetector`)."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if (mirror is None or len(body) > self.notice_max_bytes
                or (passed and not self.same_pages.has_suspects(outlet.name, mirror))
                or links_into_outlet(body, request.url, outlet)):
            return None
        path = "/" + request.url.split("://", 1)[-1].partition("/")[2]
        judge = self.same_pages.join if passed else self.same_pages.suspect
        same = judge(outlet.name, mirror, outlet.canonical_url(request.url),
                     page_fingerprint(body, path))
        return SAME_PAGE if same else None if passed else SUSPECT

    def spares_last_mirror(self, request: Request, verdict: Verdict, body: bytes = b"") -> bool:
        """Whether the request's mirror stays in rotation against this content evidence
        (:func:`keeps_last_mirror`): it is the last one in rotation, and the page links into
        the outlet or the last listing it served, within a cool-down, listed articles. Says
        so once."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        # a page with the outlet's own blocked markers is no guess; and a mirror already out
        # is no last one to keep: either way its page must not be stored as an article
        if (mirror is None or request.meta.get(meta.CHECK) or verdict.declared
                or not self.health.is_up(outlet, mirror)):
            return False
        others = sum(up for m, up in self.health.states(outlet).items() if m != mirror)
        # what it listed a cool-down ago says little of what it serves now
        listed_at = self._listed_at.get((outlet.name, mirror))
        serves = ((listed_at is not None and time.monotonic() - listed_at < self.longest_wait)
                  or (bool(body) and links_into_outlet(body, request.url, outlet)))
        if not keeps_last_mirror(others, serves):
            return False
        self.crawler.stats.inc_value("mirror/kept_in_rotation")
        if (outlet.name, mirror) not in self._kept:
            self._kept.add((outlet.name, mirror))
            logger.warning(
                "Mirror %s of %s kept in rotation, though %s at %s: it is the last one in "
                "rotation and still serves pages that link into the outlet", mirror,
                outlet.name, verdict.reason, request.url)
        return True

    # -- listings and mirror checks ------------------------------------------------------------

    def listing_answered(self, request: Request, articles: int) -> None:
        """A listing page's answer: whether its mirror still serves the outlet, and (when it
        lists articles) a document a mirror check can ask."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if mirror is not None:
            if articles:
                self._listed_at[(outlet.name, mirror)] = time.monotonic()
            else:
                self._listed_at.pop((outlet.name, mirror), None)
        if articles and (outlet.name not in self._known_good or request.meta.get(meta.PAGE) == 1):
            self._known_good[outlet.name] = (outlet.canonical_url(request.url),
                                             request.meta.get(meta.SECTION) or "")

    def known_good_listing(self, outlet: Outlet) -> tuple[str, str] | None:
        """(URL, section) of a listing that listed articles; before one did, the first page
        of the outlet's first section with a listing."""
        if outlet.name in self._known_good:
            return self._known_good[outlet.name]
        for name, section in outlet.sections.items():
            if section.path is not None:
                return outlet.section_page_url(name, 1), name
        return None

    def check_answered(self, request: Request, articles: int) -> None:
        """A mirror check's listing passed the page checks and lists ``articles``."""
        outlet = self.outlet_of(request)
        mirror = request.meta[meta.MIRROR]
        if not judge_check(None, articles):
            reason = "the listing of a mirror check lists no articles"
            self.health.record_failure(outlet.name, mirror, reason, strong=True)
            self.check_failed(request, reason)
            return
        logger.info("Mirror check of %s at %s: it serves %s again", mirror, request.url,
                    outlet.name)
        self.crawler.stats.inc_value("mirror/checks/passed")
        self._listed_at[(outlet.name, mirror)] = time.monotonic()
        self.health.record_success(outlet.name, mirror, serves_outlet=True)

    def check_failed(self, request: Request, reason: str) -> Ended:
        """A mirror check's answer says the mirror still serves something else (its failure
        is recorded already): the check ends here."""
        logger.info("Mirror check of %s at %s failed: %s", request.meta.get(meta.MIRROR),
                    request.url, reason)
        self.crawler.stats.inc_value("mirror/checks/failed")
        return Ended(meta.CHECK, f"mirror check failed: {reason}")

    def mirror_held(self, request: Request, verdict: Verdict, seconds: float) -> Decision:
        """The request's mirror answered "retry after ``seconds``" (bounded): no request
        goes to it before then, and the answer is no failure of it; the document goes to
        another mirror, or waits. A mirror check's answer ends the check as any failure."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if mirror is None:
            return self.mirror_failed(request, verdict)
        self.health.hold(outlet.name, mirror, seconds)
        if request.meta.get(meta.CHECK):
            return self.check_failed(request, verdict.reason)
        attempts = Attempts.of(request)
        if mirror not in attempts.failed_on:
            attempts.failed_on.append(mirror)
            attempts.unavailable.append(mirror)
        return self._act(request, outlet, mirror, attempts, verdict.reason)

    def reroute(self, request: Request) -> Decision | None:
        """A request whose mirror may not be asked now (:meth:`MirrorHealth.may_send`: out
        of rotation, or held, since it was routed): the best mirror now (None: keep it as it
        is), or parked until one can take it."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if mirror is not None and self.health.may_send(outlet, mirror,
                                                       bool(request.meta.get(meta.PROBE))):
            return None
        attempts = Attempts.of(request)
        better = self.health.choose(outlet, exclude=attempts.asked)
        if better is not None:
            return None if better == mirror else self.on_mirror(request, outlet, better,
                                                                 attempts)
        return self._act(request, outlet, mirror, attempts, "every mirror out of rotation")

    def held_back(self, request: Request) -> Decision:
        """A request stopped as it was leaving (:class:`~crawler.mirrors.MirrorUnavailable`):
        rerouted or parked as a queued one is; nothing against its mirror. A mirror check
        goes to no other mirror: it is put off, and the next is due a cool-down later."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        if request.meta.get(meta.CHECK):
            logger.info("Mirror check of %s put off: it asked not to be asked yet", mirror)
            return Ended(meta.CHECK, f"mirror check put off: {request.url}")
        self.crawler.stats.inc_value("mirror/held_back")
        # it may have become free since: then it leaves again, for the same mirror
        return self.reroute(request) or self.on_mirror(request, outlet, mirror,
                                                       Attempts.of(request))

    def downloaded(self, request: Request, outcome: str, served: bool) -> None:
        """Count a download by outcome (once per download); ``served``: the mirror answered
        as a working server does (it may still fail the document later)."""
        outlet = self.outlet_of(request)
        mirror = outlet.mirror_asked(request)
        self.crawler.stats.inc_value(f"mirror/outcome/{outcome}")
        self.crawler.signals.send_catch_log(
            signals.request_outcome, outlet=outlet.name, mirror=mirror, outcome=outcome,
            seconds=request.meta.get("download_latency"),
        )
        if served and mirror is not None:
            self.health.record_served(outlet.name, mirror, request.meta.get(meta.KIND, ""))
            self.health.record_success(outlet.name, mirror)

    def serving(self, outlet: Outlet, kind: str, now: float) -> set[str]:
        """The mirrors of ``outlet`` whose failure of a document of ``kind`` may pass (a 503,
        a timeout), so that it is waited for: those that served a page of that kind within
        ``MIRROR_SILENT_AFTER``, and those out of rotation for failing to answer (an outage)
        that served any page within it. Not one that serves listings but answers every
        article 429, nor one dead from the start. Workers share it through the mirror
        health."""
        def lately(mirror: str, of_kind: str | None) -> bool:
            served = self.health.served_at(outlet, mirror, of_kind)
            return served is not None and now - served < self.silent_after

        checked, states = self.health.checked_only(outlet), self.health.states(outlet)
        return {m for m in outlet.mirrors if lately(m, kind) or (
            not states.get(m, True) and m not in checked and lately(m, None))}

    # -- the decision, carried out -----------------------------------------------------------------

    def _act(self, request: Request, outlet: Outlet, mirror: str | None, attempts: Attempts,
             reason: str) -> Decision:
        if attempts.since is None:
            attempts.since = time.time()
        # a held mirror cannot answer now: the document waits for it, unless others agree
        holds = self.health.held(outlet)
        states = {m: up for m, up in self.health.states(outlet).items() if m not in holds}
        now = time.time()
        step = next_step(
            attempts, [m for m, up in states.items() if up],
            lambda exclude: self.health.choose(outlet, exclude=exclude),
            now, self.give_up_after, self.longest_wait,
            out_of_rotation=[m for m, up in states.items() if not up], held=holds,
            serving=self.serving(outlet, request.meta.get(meta.KIND, ""), now),
        )
        if isinstance(step, Retry):
            logger.info("Failover %s -> %s for %s (%s)", mirror, step.mirror, request.url, reason)
            self.crawler.stats.inc_value("mirror/failovers")
            retry = self.on_mirror(request, outlet, step.mirror, attempts)
            self.crawler.signals.send_catch_log(
                signals.mirror_failover, outlet=outlet.name, from_mirror=mirror,
                to_mirror=step.mirror, reason=reason, request=retry,
            )
            return retry
        if isinstance(step, Wait):
            return self._park(request, outlet, attempts, step.delay)
        if isinstance(step, GiveUp):
            logger.warning("Giving up on %s: %s (last: %s)", request.url, step.reason, reason)
            return Ended("given_up", f"gave up on {request.url}: {step.reason}")
        return self._settled(request, outlet, attempts, step)

    def wait(self, request: Request, reason: str) -> Parked | Ended:
        """Park ``request`` until a mirror of its outlet can take it; past the give-up
        horizon, its end."""
        outlet = self.outlet_of(request)
        attempts = Attempts.of(request)
        if attempts.since is None:
            attempts.since = time.time()
        elif past_horizon(attempts, time.time(), self.give_up_after):
            logger.warning("Giving up on %s: %s", request.url, reason)
            return Ended("given_up", f"gave up on {request.url}: {reason}")
        return self._park(request, outlet, attempts, wait_delay(attempts.waits, self.longest_wait))

    def _park(self, request: Request, outlet: Outlet, attempts: Attempts,
              delay: float) -> Parked:
        attempts.failed_on.clear()  # a new round once a mirror is back
        attempts.unavailable.clear()
        attempts.waits += 1
        self.waiting.add(self.on_mirror(request, outlet, None, attempts), delay)
        return Parked(f"waiting for a mirror of {outlet.name}: {request.url}")

    def _settled(self, request: Request, outlet: Outlet, attempts: Attempts,
                 step: Settled) -> Request | Ended:
        if agreed_answer(attempts.answers) is not None:
            # two mirrors served it alike: whatever its page is, it is the outlet's own
            self.same_pages.acquit(outlet.name, outlet.canonical_url(request.url))
        if step.answer.startswith(TEXT_PREFIX):
            if attempts.accept_from is None and step.mirror is not None:
                # the text is stored from a fetch that accepts it: fetch it once more there
                attempts.accept_from = step.mirror
                return self.on_mirror(request, outlet, step.mirror, attempts)
            return Ended("short_text", f"no text from {step.mirror}: {request.url}")
        if step.answer == NO_ARTICLES and request.meta.get(meta.PAGE) == 1:
            section = request.meta.get(meta.SECTION, "")
            if (outlet.name, section) not in self._empty_sections:
                self._empty_sections.add((outlet.name, section))
                logger.error(
                    "Section %r of %s lists no articles on any mirror (%s): check its path and "
                    "article_url in the outlet file", section, outlet.name, request.url)
        return Ended(step.answer, f"{step.answer}: {request.url}")

    def on_mirror(self, request: Request, outlet: Outlet, mirror: str | None,
                  attempts: Attempts) -> Request:
        """The same document as ``request`` on ``mirror`` (None: leave the URL as it is),
        with the same fingerprint, to pass the dupefilter again."""
        new_meta = {k: v for k, v in request.meta.items() if k not in meta.DOWNLOAD_ONLY}
        new_meta[meta.ATTEMPTS] = attempts.to_meta()
        url = request.url
        if mirror is not None:
            new_meta[meta.MIRROR] = mirror
            new_meta[meta.PROBE] = not self.health.is_up(outlet, mirror)
            url = outlet.on_mirror(request.url, mirror)
        else:
            new_meta.pop(meta.MIRROR, None)
            new_meta.pop(meta.PROBE, None)
        return request.replace(url=url, meta=new_meta, dont_filter=True)
