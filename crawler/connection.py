"""Redis clients from the settings (through ``scrapy_redis.connection``, which reads
``REDIS_URL`` and ``REDIS_PARAMS``), and the check of a Redis URL before it is used."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import RedisError
from redis.retry import Retry
from scrapy.settings import BaseSettings
from scrapy_redis import connection

from crawler.core.redact import redact_text, redact_url

# redis-py reads the database from the path; it silently takes 0 for anything not a number
_DB_PATH = re.compile(r"/?\d*/?")


class RedisURLError(ValueError):
    """A Redis URL that cannot be used; the message is one line, without the password."""


def check_redis_url(url: str) -> str:
    """``url`` if redis-py can use it, else :class:`RedisURLError`. Connects to nothing."""
    if not url or not url.strip():
        raise RedisURLError("the Redis URL is empty (--redis, CRAWLER_REDIS_URL or REDIS_URL)")
    try:
        parse_url(url)
        path = urlsplit(url).path
        if not url.startswith("unix://") and not _DB_PATH.fullmatch(path):
            raise ValueError(f"the path must be the database number, not {path!r}")
        # builds the connection object without connecting: unknown query options fail here
        Redis.from_url(url).connection_pool.make_connection()
    except (ValueError, TypeError, RedisError) as exc:
        reason = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else
                             type(exc).__name__)
        raise RedisURLError(f"bad Redis URL {redact_url(url)!r}: {reason}") from None
    return url


def redis_client(settings: BaseSettings, *, retry: bool = True) -> Redis:
    """The client the crawler's components use; ``retry=False`` gives up on the first error
    (a one-shot command reports it at once rather than retrying a silent server)."""
    client = connection.from_settings(settings)
    if not retry:
        client.set_retry(Retry(NoBackoff(), 0))
    return client
