"""How a page is extracted: trafilatura's options and the crawler's choices, as one object
(:class:`ExtractionOptions`) that a worker process is sent with each page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# trafilatura's options, chosen by benchmarks/extraction.py on wcxb-dev and fundus-news
# (cross-validated by site) and confirmed on aeb-dev. Its defaults, but comments are not the
# article; tables are kept: in news they are data the article reports. favor_precision and
# include_links (keeping links so that it judges link density on them, the markup dropped
# after) won on the AEB pages they were tuned on, and lost on the others.
TRAFILATURA_OPTIONS = dict(
    favor_precision=False,
    include_comments=False,
    include_tables=True,
    include_images=False,
    include_links=False,
    include_formatting=False,
    with_metadata=True,
)
#: what the second opinion runs trafilatura with: its thresholds were chosen with these, on
#: the AEB pages
SECOND_OPINION_OPTIONS = dict(TRAFILATURA_OPTIONS, favor_precision=True, include_links=True)

# htmldate keeps the time of day and the offset when the page states them (meta tags, JSON-LD,
# <time datetime>); a date-only source comes out at midnight without an offset.
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

# How the metadata is chosen, each chosen by benchmarks/extraction.py as the body options:
#: the date a news URL holds (/2024/03/14/) before the one htmldate finds in the page
DATE_URL_FIRST = True
#: the page's declared publication date (JSON-LD, article:published_time) before htmldate's:
#: chosen on the tuning corpora (0.912 against 0.909), but worse than trafilatura alone on
#: htmldate-dev (0.891 against 0.905), so not adopted; the declared date still gives the
#: time of day to a date alone of the same day
DATE_DECLARED_FIRST = False
#: the authors the page declares (JSON-LD, meta) before those trafilatura finds in the text
AUTHORS_DECLARED_FIRST = True
#: the visible <h1> as the headline where there is one, before the declared ones: the
#: declared first did better on the tuning corpora, 0.796 against 0.792
HEADLINE_SHOWN_FIRST = False


@dataclass(frozen=True)
class ExtractionOptions:
    """Everything :func:`~crawler.extraction.article.extract_article` may be told, plain data
    (it crosses into the worker processes)."""

    #: trafilatura in precision mode judging links, with readability's opinion and jusText's
    #: on the lines only readability has (:mod:`crawler.extraction.second_opinion`): better
    #: on the AEB pages it was tuned on, not on others, so off by default
    second_opinion: bool = False
    date_url_first: bool = DATE_URL_FIRST
    date_declared_first: bool = DATE_DECLARED_FIRST
    authors_declared_first: bool = AUTHORS_DECLARED_FIRST
    headline_shown_first: bool = HEADLINE_SHOWN_FIRST

    @property
    def trafilatura(self) -> dict:
        return SECOND_OPINION_OPTIONS if self.second_opinion else TRAFILATURA_OPTIONS


DEFAULT_OPTIONS = ExtractionOptions()


def date_params(url_first: bool = DATE_URL_FIRST) -> dict:
    """htmldate's parameters: the original (first) publication, searching the whole page."""
    return {
        "original_date": True,
        "extensive_search": True,
        "deferred_url_extractor": not url_first,
        "max_date": datetime.now().astimezone().strftime("%Y-%m-%d"),
        "outputformat": DATE_FORMAT,
    }
