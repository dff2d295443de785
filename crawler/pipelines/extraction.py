"""Item pipeline: a fetched article page turned into clean text and metadata."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any

from crawler.context import crawl_context
from crawler.core import signals
from crawler.core.judging import TEXT_PREFIX, document_answer, judge_text, text_answer
from crawler.core.steps import Attempts, Ended, Parked
from crawler.extraction import ExtractionError, ExtractionTimeout
from crawler.items import ArticleItem
from crawler.ledger import ItemContinues, ItemEnded

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ExtractionPipeline:
    """Turns a fetched article page into clean text and metadata.

    Extraction runs in worker processes under ``EXTRACTION_TIMEOUT``. A page with no text, or
    text shorter than the outlet's ``min_text_length``, is a mirror's answer about the
    document: failover asks another mirror, and the text is stored once mirrors agree. A page
    over the time limit or crashing the extractor is counted and not stored.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        context = crawl_context(crawler)
        self.catalog = context.catalog
        self.failover = context.failover
        self.pool = context.extractor

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ExtractionPipeline:
        return cls(crawler)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticleItem):
            return item
        outlet = self.catalog.get(item.outlet)
        started = time.perf_counter()
        reason = None
        try:
            extracted = await self.pool.extract(
                item.body, item.url, outlet.boilerplate, item.encoding, outlet.selectors
            )
        except ExtractionTimeout:
            extracted, reason = None, "timeout"
        except ExtractionError as exc:
            logger.warning("Extraction failed on %s: %s", item.url, exc)
            extracted, reason = None, "error"
        if extracted is None and reason is None:
            reason = "empty"
        if extracted is not None and extracted.selector_fallback:
            # the outlet's body selector found nothing: its markup may have changed
            self.crawler.stats.inc_value("extraction/selector_fallback")
        self.crawler.signals.send_catch_log(
            signals.extraction_finished, outlet=item.outlet,
            seconds=time.perf_counter() - started, ok=reason is None, reason=reason,
        )
        if reason in ("timeout", "error"):
            self.crawler.stats.inc_value(f"extraction/failed/{reason}")
            raise ItemEnded("extraction_failed", f"extraction {reason}: {item.url}", "INFO")
        verdict = (judge_text(extracted.text, outlet, extracted.error_page) if extracted
                   else judge_text(None, outlet))
        if verdict is None and self.failover.may_be_notice(item.request, item.body):
            # a small page that links nowhere into the outlet: a notice long enough to pass
            # for an article, perhaps; taken once another look agrees
            verdict = document_answer(text_answer(extracted.text),
                                      "a page that links nowhere into the outlet")
        if verdict is not None and not _accepted(item, verdict.answer):
            if extracted is None:
                self.crawler.stats.inc_value("extraction/failed/empty")
            self._ask_another_mirror(item, verdict)
        if verdict is None and item.in_rotation:
            self.crawler.signals.send_catch_log(
                signals.article_page_accepted, outlet=item.outlet, mirror=item.mirror,
                url=item.url, body=item.body,
                headers={"Onion-Location": item.onion_location} if item.onion_location else {})
        item.body = b""  # the page is not needed any more; don't hold it while batching
        # the feed's title and date stand in only where the page gives none
        item.title = extracted.title or item.hints.get("title")
        item.author = extracted.author
        item.published = extracted.published or item.hints.get("published")
        item.language = extracted.language
        item.text = extracted.text
        item.content_hash = content_hash(extracted.text)
        return item

    def _ask_another_mirror(self, item: ArticleItem, verdict) -> None:
        """Hands the page's answer to the failover; returns only when the answer settled on
        this page's own text (then it is stored)."""
        decision = self.failover.document_answered(item.request, verdict, body=item.body)
        if isinstance(decision, Ended):
            raise ItemEnded(decision.outcome, f"{decision.outcome}: {item.url}", "INFO")
        if isinstance(decision, Parked):
            raise ItemContinues(f"waiting for a mirror: {item.url}")
        if Attempts.of(decision).accept_from == item.mirror:
            # settled on what this very fetch served: stored as it is, not fetched again
            return
        # a pipeline has no output for requests: the engine takes the next one directly
        self.crawler.engine.crawl(decision)
        raise ItemContinues(f"{verdict.reason} at {item.url}: asking {decision.url}")


def _accepted(item: ArticleItem, answer: str | None) -> bool:
    """A short text settled by agreement is fetched once more to be stored: take it."""
    return bool(answer and answer.startswith(TEXT_PREFIX)
                and Attempts.of(item.request).accept_from == item.mirror)
