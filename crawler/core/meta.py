"""The ``Request.meta`` keys the crawler's components share, named once.

Everything here survives serialization to Redis with the request (plain str, int, float,
list and dict values only).
"""

#: the outlet's name; requests without it are not the crawler's (robots.txt)
OUTLET = "outlet"
#: the section a document was found in
SECTION = "section"
#: "listing", "feed", "sitemap" or "article"
KIND = "kind"
#: an article request's source: "listing", "feed" or "sitemap"
FOUND_BY = "found_by"
#: set on a request that fetches a stored article again (crawler.revisits)
REVISIT = "revisit"
#: a revisit's: the revision hash (crawler.core.revisions) of the version stored when it was queued
STORED_VERSION = "stored_version"
#: an article request's title and publication date from a feed, for a page that lacks them
HINTS = "hints"
#: set on a section's next listing page: dropped when every article of the page that led
#: to it is stored already (incremental paging)
IF_NEW = "page_if_new"
#: a listing's page number within its section
PAGE = "page"
#: the mirror base URL the request was routed to
MIRROR = "mirror"
#: set when routing chose a mirror out of rotation whose cool-down is over: the request
#: probes it, so it goes there even though the mirror is not in rotation
PROBE = "mirror_probe"
#: set on a mirror check (crawler.extensions.mirror_checks): a listing known to list articles, asked
#: of a mirror out of rotation on content evidence; it ends there, on no other mirror
CHECK = "mirror_check"
#: set on a request that verifies a candidate mirror (crawler.extensions.mirror_discovery):
#: the outlet it may be a mirror of. Not an outlet's request: no failover, no document judging
CANDIDATE_OF = "mirror_candidate_of"
#: set once routing has chosen a mirror: a request passes the routing middleware once
ROUTED = "mirror_routed"
#: what mirrors said about the document so far (crawler.failover.Attempts.to_meta)
ATTEMPTS = "attempts"
#: distributed mode: the id of the request's lease in Redis
LEASE = "lease"
#: distributed mode: (key, field, value) of a document's validators, written to Redis with
#: the acknowledgement of its lease (crawler.distributed.validators)
VALIDATORS = "validators"
#: the final outcome, once the request has ended (crawler.ledger)
ENDED = "ended"
#: the id of the document a request is an attempt of, given when the document's first request
#: is scheduled (crawler.ledger): every later request for it (another mirror, a redirect, a
#: second look) carries it, is never taken for a duplicate, and ends the same document
DOCUMENT = "document"

#: Scrapy's own keys that belong to one download and must not follow a request to a mirror
DOWNLOAD_ONLY = ("download_latency", "download_slot_key", "redirect_times", "redirect_ttl",
                 "redirect_urls", "redirect_reasons", ENDED)
