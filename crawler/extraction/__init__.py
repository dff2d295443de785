"""Article text and metadata from a fetched page: the outlet's CSS selectors where it has them,
else trafilatura; then the outlet's boilerplate rules.

- :mod:`~crawler.extraction.article`: one page, parsed once (:func:`extract_article`);
- :mod:`~crawler.extraction.options`: how, as one object (:class:`ExtractionOptions`);
- :mod:`~crawler.extraction.selectors` and :mod:`~crawler.extraction.boilerplate`: the
  outlet's rules;
- :mod:`~crawler.extraction.second_opinion`: readability and jusText, opt-in;
- :mod:`~crawler.extraction.pool`: worker processes with a time limit per page
  (:class:`ExtractorPool`).
"""

from crawler.extraction.article import Extracted, extract_article, published_date
from crawler.extraction.boilerplate import BoilerplateRules, PlainBoilerplate, apply_boilerplate
from crawler.extraction.options import DEFAULT_OPTIONS, ExtractionOptions
from crawler.extraction.pool import ExtractionError, ExtractionTimeout, ExtractorPool
from crawler.extraction.selectors import PlainSelectors, SelectorRules

__all__ = [
    "DEFAULT_OPTIONS",
    "BoilerplateRules",
    "ExtractionError",
    "ExtractionOptions",
    "ExtractionTimeout",
    "Extracted",
    "ExtractorPool",
    "PlainBoilerplate",
    "PlainSelectors",
    "SelectorRules",
    "apply_boilerplate",
    "extract_article",
    "published_date",
]
