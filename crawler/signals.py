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

#: a 2xx page looked wrong (a listing with no links, an article with no text).
#: kwargs: request, response, reason, severe (bool: plainly not the outlet, take the mirror
#: out of rotation at once). The mirror middleware answers by trying the next mirror.
response_suspect = object()

#: the crawler is finished with a request without storing anything more for it: a listing
#: handled, or a document given up after every mirror failed.  kwargs: request, outcome
#: ("handled" or "given_up")
request_finished = object()

#: extraction ran. kwargs: outlet, seconds, ok (bool), reason (str | None: "empty", "timeout",
#: "error")
extraction_finished = object()

#: a batch of articles is durable in the store.  kwargs: articles (list[dict], the stored
#: records), requests (the requests that produced them, same order)
articles_stored = object()
