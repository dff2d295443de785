"""Scrapy settings for the crawler. Every crawler-specific setting has its default here.

Standalone and distributed mode differ in one setting, ``CRAWL_MODE``: see
``crawler/mode.py`` for what it chooses.
"""

BOT_NAME = "crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

USER_AGENT = "news-crawler/0.1 (+https://github.com/; research archive of public news)"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
REQUEST_FINGERPRINTER_CLASS = "crawler.fingerprinter.MirrorAwareFingerprinter"
LOG_LEVEL = "INFO"

# -- politeness ---------------------------------------------------------------------------
ROBOTSTXT_OBEY = True
#: seconds an outlet's robots.txt is kept before it is fetched again
ROBOTSTXT_TTL = 24 * 3600
CONCURRENT_REQUESTS = 16
# An article response yields one item; Scrapy starts a task per allowed concurrent item for
# every response, so the default (100) costs CPU on every page for nothing.
CONCURRENT_ITEMS = 16
# All mirrors of an outlet share one download slot named after the outlet (the spider sets
# meta["download_slot"]), so these limits hold per outlet, not per mirror host.
CONCURRENT_REQUESTS_PER_DOMAIN = 8
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_TARGET_CONCURRENCY = 4.0
DOWNLOAD_TIMEOUT = 20
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024

# Failing over to the next mirror replaces retrying the same one.
RETRY_ENABLED = False
# Cookie gates (a redirect to a page that sets a cookie and redirects back) pass; each mirror
# has its own jar (crawler/downloadermiddlewares/cookiejar.py)
COOKIES_ENABLED = True
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

#: "standalone" (state in this process, beside a SQLite store) or "distributed" (state in
#: Redis, shared by the workers; `crawler worker` sets it): chooses every backend at once
CRAWL_MODE = "standalone"
ADDONS = {"crawler.mode.CrawlMode": 0}

# -- outlets and mirrors -------------------------------------------------------------------
#: directory of outlet YAML files; None means the outlets bundled with the package
OUTLETS_DIR = None
#: consecutive failures that take a mirror out of rotation
MIRROR_FAILURE_THRESHOLD = 3
#: seconds a failing mirror stays out before one request probes it
MIRROR_COOLDOWN = 60.0
#: seconds without serving a page (of a kind: articles, listings) after which a mirror is
#: *silent*: until then, a mirror that could not answer for a document (an outage, a 503 for
#: one page) is asked again before the other mirrors' "not found" stands, as it may be the
#: only one that has it; a silent one (down for good, never up) is not waited for
MIRROR_SILENT_AFTER = 300.0
#: HTTP statuses that mean "this mirror cannot serve it now": try the next one
MIRROR_FAILOVER_HTTP_CODES = [403, 408, 429, 451, 500, 502, 503, 504, 520, 521, 522, 523, 524]
#: a 429 or 503 with a Retry-After holds its mirror (no request to it) that long, at most
#: this many seconds: a longer one, or a date further ahead, is cut to it, so that a header
#: cannot silence a mirror for long; it is asked again then, and may say so again
MIRROR_RETRY_AFTER_MAX = 300.0
#: a mirror answering this many different documents with the same suspect page (one that
#: failed a document check and links nowhere into the outlet) serves a notice for everything
#: (a seizure, a bot check): it leaves rotation, and comes back through a mirror check. Three:
#: outlets commonly serve one story at two paths (with and without its slug), byte for byte
MIRROR_SAME_PAGE_DOCUMENTS = 3
#: only pages up to this size (bytes, decoded) can be such a notice: notices are small, and
#: an outlet's real page that failed a check is not evidence against its mirror
MIRROR_NOTICE_MAX_BYTES = 24 * 1024

# -- mirrors the outlets name (extensions/mirror_discovery.py; outlet field mirror_discovery) --
#: host[:port] of candidates that may be fetched though they resolve to a private, loopback
#: or link-local address; none by default, so a page never points the crawler inward
MIRROR_DISCOVERY_PRIVATE_HOSTS: list[str] = []
#: stored articles a candidate is asked for (at least 3 must be served alike)
MIRROR_DISCOVERY_ARTICLES = 4
#: seconds before a verified or rejected candidate is verified again
MIRROR_DISCOVERY_RECHECK = 6 * 3600.0
#: candidates kept per outlet; hosts named beyond it are not looked at
MIRROR_DISCOVERY_MAX_CANDIDATES = 20
#: seconds between looks at adoptions made elsewhere (`crawler mirrors adopt`)
MIRROR_DISCOVERY_REFRESH = 2.0
#: workers: seconds a worker holds the right to verify a candidate; a worker killed while
#: verifying is replaced once it runs out
MIRROR_DISCOVERY_LEASE = 30.0
#: seconds after its first failure that a document no mirror could serve is given up; until
#: then it waits for a mirror (`crawler crawl --max-wait` sets it for a standalone crawl)
DOCUMENT_GIVE_UP_AFTER = 6 * 3600.0
#: article links taken from one listing page, in page order; the rest are dropped (counted in
#: ``listing/links_capped``, one warning per listing): a broken or hostile page listing
#: millions of links must not flood the queue
LISTING_MAX_LINKS = 1000
#: workers: new requests are checked against the dupefilter and queued in Redis in batches of
#: this many, one round trip each (a listing's links would otherwise cost one each); a batch
#: is also sent at the engine's next tick and before any lease is acknowledged
SCHEDULER_PUSH_BATCH = 100
#: workers: requests leased per take from Redis (at most CONCURRENT_REQUESTS); those the
#: engine cannot start yet wait in the worker, leased, and go back to the queue when it stops
#: or dies
SCHEDULER_TAKE_BATCH = 8
#: workers: seconds an acknowledgement may wait to go with the next take rather than alone
#: (0: at once); a worker killed meanwhile has those requests run again, which stores nothing
#: twice
SCHEDULER_ACK_DELAY = 1.0
#: distributed mode: how often a worker re-reads the shared mirror health (seconds)
MIRROR_HEALTH_REFRESH = 1.0

# -- politeness per outlet (the outlet file's `politeness`) ---------------------------------
#: distributed mode: how far ahead a worker may book a start time (seconds)
POLITENESS_BOOK_AHEAD = 5.0

# -- discovery -------------------------------------------------------------------------------
#: ask for listings, feeds and sitemaps with the validators of their last answer
#: (If-None-Match, If-Modified-Since); a 304 ends the request as "not_modified"
CONDITIONAL_REQUESTS = True
#: True (`crawler crawl --full`): page every section to max_section_pages and ask for every
#: listing, feed and sitemap in full, instead of stopping where nothing is new
DISCOVERY_FULL = False

# -- revisits (outlet files set the window, interval and removal checks) ---------------------
#: True (`crawler crawl --revisit`): also fetch again the stored articles due for a revisit
REVISIT = False
#: at most this many due articles are queued at once (per crawl; per outlet and beat check)
REVISIT_BATCH = 1000
#: how often the beat looks for articles due (distributed mode; needs the beat's --store)
REVISIT_CHECK_SECONDS = 60.0

# -- extraction ------------------------------------------------------------------------------
#: seconds one page may take to extract (trafilatura has no limit of its own)
EXTRACTION_TIMEOUT = 20.0
#: trafilatura in precision mode judging links, with readability's opinion and jusText's
#: (crawler/extraction/second_opinion.py): better on the AEB pages it was tuned on (F1 0.979
#: against 0.957), worse on pages it was not (wcxb-dev, fundus-news:
#: benchmarks/extraction.py), so not the default
EXTRACTION_SECOND_OPINION = False
#: worker processes for extraction; 0 extracts in the crawling process, without a time limit
EXTRACTION_PROCESSES = 1

# -- storage ---------------------------------------------------------------------------------
STORE_URI = "sqlite:///crawl.db"
#: PostgreSQL connections per crawler process at most: one thread checks what is stored, one
#: writes, so two never wait on each other (N workers hold at most 2 N connections)
STORE_POOL_SIZE = 2
#: records per write; a batch is also written once it is STORE_FLUSH_SECONDS old
STORE_BATCH_SIZE = 100
STORE_FLUSH_SECONDS = 1.0
#: back-off bounds while the store is unavailable (seconds)
STORE_RETRY_MIN = 0.5
STORE_RETRY_MAX = 30.0
#: when stopping, how long the last batch may wait for an unavailable store; a worker's
#: unstored articles then go back to the queue with their requests (seconds)
STORE_CLOSE_TIMEOUT = 15.0

# -- raw pages as WARC (crawler/warc.py) ------------------------------------------------------
#: write each stored article's answer as it came (and its request) to WARC files in this
#: directory (`--warc DIR`); None: no WARC
WARC_DIR = None
#: a WARC file is closed and the next one begun once it is this large (bytes, compressed)
WARC_MAX_SIZE = 1_000_000_000
#: ... or once it is this old (seconds), even when nothing more is written to it, so that a
#: long-running worker's records reach a closed file; None: only by size and at the end
WARC_MAX_AGE = 3600.0
#: file names: <WARC_PREFIX>-<worker>-<UTC time>-<serial>.warc.gz
WARC_PREFIX = "crawler"
#: extra fields of each file's warcinfo record, e.g. {"operator": "...", "isPartOf": "..."}
WARC_INFO = {}

# -- distributed mode (crawler worker / schedule / status) --------------------------------------
REDIS_URL = "redis://localhost:6379/0"
#: redis-py client options (scrapy_redis.connection passes them on): a silent Redis must be
#: noticed well inside WORKER_TIMEOUT, and a one-shot command must give up in seconds
REDIS_PARAMS = {
    "socket_timeout": 5,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
    "retry_on_timeout": True,
}
#: every key the crawler keeps in Redis starts with this
REDIS_KEY_PREFIX = "crawler"
#: this worker's name in Redis (heartbeats, leases); None: host name, process id and a nonce
WORKER_ID = None
#: seconds between a worker's heartbeats, and of silence after which it counts as dead and its
#: leased requests go back to the queue
WORKER_HEARTBEAT = 5.0
WORKER_TIMEOUT = 20.0
#: seconds a document may stay open in a worker (taken, not yet ended or handed back to
#: Redis) before `crawler status` lists it: a download, an extraction or a store write that
#: long is stuck
DOCUMENT_OPEN_WARN = 300.0
#: how often an idle worker looks for work queued by others (seconds)
SCHEDULER_IDLE_POLL = 0.2
#: back-off bound while Redis is unreachable (seconds)
REDIS_RETRY_MAX = 10.0
#: the workers' shared dupefilter (crawler/distributed/dupefilter.py; DUPEFILTER_DEBUG is
#: Scrapy's). Its keys start with DUPEFILTER_KEY; None: "<REDIS_KEY_PREFIX>:dupefilter", so
#: deployments with their own prefix on one Redis never share one
DUPEFILTER_KEY = None
#: a power of two, >= the URLs one period (or all time) receives / 400
DUPEFILTER_BUCKETS = 4096
#: days a URL stays seen (None: for ever), and the length of the periods that expire
DUPEFILTER_RETENTION_DAYS = None
DUPEFILTER_PERIOD_DAYS = 30.0

# -- metrics ---------------------------------------------------------------------------------
#: False: no metrics extension at all (nothing counted, nothing served)
METRICS_ENABLED = True
#: serve Prometheus metrics on this port (None: do not serve)
METRICS_PORT = None
METRICS_HOST = "0.0.0.0"
#: extra Prometheus collectors, each built from_crawler (the distributed mode adds its own)
METRICS_COLLECTORS = []

# -- components ------------------------------------------------------------------------------
# the mirror is confirmed as a request leaves its download slot, not when it was queued
# (crawler/downloadhandlers/mirror_gate.py); Scrapy's HTTP/1.1 handler sends it
DOWNLOAD_HANDLERS = {
    "http": "crawler.downloadhandlers.mirror_gate.MirrorGateHandler",
    "https": "crawler.downloadhandlers.mirror_gate.MirrorGateHandler",
}
SPIDER_MIDDLEWARES = {
    # a callback's output meets the higher number first: stored articles are dropped before
    # routing, so no mirror's probe is spent on a request that is then dropped
    "crawler.spidermiddlewares.stored_articles.StoredArticleFilter": 560,
    "crawler.spidermiddlewares.mirror_routing.MirrorRoutingMiddleware": 550,
}
DOWNLOADER_MIDDLEWARES = {
    # robots.txt per outlet, not per mirror host (crawler/downloadermiddlewares/robots.py)
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.downloadermiddlewares.robots.OutletRobotsTxtMiddleware": 100,
    # before any other: an article the store cannot take is not fetched (robots.txt neither)
    "crawler.downloadermiddlewares.unstorable.UnstorableArticles": 50,
    # sees responses before RedirectMiddleware (600), to catch redirects off the outlet
    "crawler.downloadermiddlewares.mirror_failover.MirrorFailoverMiddleware": 610,
    # sees pages after HttpCompressionMiddleware (590) decoded them, before MetaRefresh (580)
    "crawler.downloadermiddlewares.page_judge.PageJudgeMiddleware": 585,
    # WARC: keeps an article's answer as sent, after redirects (600), before it is
    # decompressed (590); does nothing unless WARC_DIR is set
    "crawler.downloadermiddlewares.warc.RawResponseMiddleware": 595,
    # Scrapy's own, in their places, with the requests they drop given a named end
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "crawler.downloadermiddlewares.redirect.OutletRedirectMiddleware": 600,
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.downloadermiddlewares.redirect.OutletMetaRefreshMiddleware": 580,
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "crawler.downloadermiddlewares.httpcompression.OutletHttpCompressionMiddleware": 590,
    # after the failover middleware has settled which mirror a request goes to
    "crawler.downloadermiddlewares.politeness.PolitenessMiddleware": 620,
    # If-None-Match / If-Modified-Since for listings, feeds and sitemaps
    "crawler.downloadermiddlewares.conditional.ConditionalRequestMiddleware": 630,
    # a cookie jar per mirror, named before Scrapy's CookiesMiddleware (700) reads it
    "crawler.downloadermiddlewares.cookiejar.MirrorCookieJarMiddleware": 690,
}
ITEM_PIPELINES = {
    "crawler.pipelines.finished.FinishedRequestPipeline": 100,
    "crawler.pipelines.extraction.ExtractionPipeline": 300,
    # before the store, so that the item names its record (unless WARC_DIR: not built)
    "crawler.pipelines.warc.WarcPipeline": 700,
    "crawler.pipelines.store.StorePipeline": 800,
}
EXTENSIONS = {
    "crawler.extensions.metrics.PrometheusMetrics": 500,
    "crawler.extensions.revisits.RevisitRecorder": 510,
    # a known-good listing asked of each mirror out on content evidence, to bring it back
    "crawler.extensions.mirror_checks.MirrorChecks": 520,
    # hosts the outlets name, verified by content, proposed or adopted
    "crawler.extensions.mirror_discovery.MirrorDiscovery": 530,
}
