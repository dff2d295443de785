"""Signals the crawler's components send; metrics and the distributed scheduler listen.

Each is sent with ``crawler.signals.send_catch_log(signal, **kwargs)``; the keyword
arguments are documented beside each one.
"""

#: a download finished, one way or another.
#: kwargs: outlet, mirror, outcome ("ok", "http_error", "timeout", "connection_error",
#: "blocked"), seconds (float | None: download latency when there was a response)
request_outcome = object()

#: a mirror entered (up=True) or left (up=False) rotation.  kwargs: outlet, mirror, up
mirror_state_changed = object()

#: a document moved from one mirror to the next. kwargs: outlet, from_mirror, to_mirror,
#: reason, request (the new request)
mirror_failover = object()

#: a request has its final outcome (crawler.ledger sends it, once per request).
#: kwargs: request, outcome ("stored", "listing_handled", "no_text", "not_html", "not_found",
#: "no_articles", "short_text", "given_up", "robots", "too_large", "redirect_loop",
#: "off_outlet", "extraction_failed", "http_<status>", "error", ...)
request_finished = object()

#: extraction ran. kwargs: outlet, seconds, ok (bool), reason (str | None: "empty", "timeout",
#: "error")
extraction_finished = object()

#: an article page that a mirror in rotation served passed the text checks
#: (crawler.pipelines.extraction.ExtractionPipeline): what it
#: names may be the outlet's mirrors. kwargs: outlet, mirror, url, body (bytes, decoded),
#: headers (dict: Onion-Location when the page had one)
article_page_accepted = object()

#: a feed that a mirror in rotation served was read (crawler.spiders.outlet): links to
#: article paths on hosts the outlet does not list may be its new mirrors. kwargs: outlet,
#: mirror, url, links (list[str], as the feed gives them)
feed_links_read = object()

#: a mirror in rotation redirected a request off the outlet (MirrorFailoverMiddleware): the
#: target's host may be its new address. kwargs: outlet, mirror, url, target (absolute)
redirect_off_outlet = object()

#: the mirrors an outlet named changed (crawler.extensions.mirror_discovery).
#: kwargs: outlet, counts (dict: state -> candidates in it, crawler.mirror_verification.STATES)
mirror_candidates_changed = object()

#: a batch of articles is durable in the store.  kwargs: articles (list[dict], the stored
#: records), requests (the requests that produced them, same order), revised (the canonical
#: URLs of those that were new versions of stored articles)
articles_stored = object()

#: the store cannot be written for good (read-only, full, corrupt: not a passing outage);
#: a standalone crawl stores nothing more (a worker stops). kwargs: error (str, one line)
store_failed = object()

#: a revisit found an article gone from every mirror, for the first time.
#: kwargs: outlet, removal (crawler.storage.Removal)
article_removed = object()

#: a stored article's answer and request were written to a WARC file.
#: kwargs: outlet, size (bytes of file the two records took, compressed)
warc_written = object()
