"""Item pipeline: ends the requests the spider is finished with."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from crawler.items import FinishedRequest
from crawler.ledger import ItemEnded

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class FinishedRequestPipeline:
    """Ends the requests the spider is finished with (:class:`FinishedRequest`).

    Scrapy hands a callback's output to the scheduler and the pipelines in order, so by the
    time the marker arrives here every request the listing produced is scheduled: in
    distributed mode its lease may go. The ledger hears of it through ``item_dropped``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FinishedRequestPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, FinishedRequest):
            return item
        raise ItemEnded(item.outcome, "not an article")
