"""The challenge pages of the common anti-bot services, served in place of a page.

Pure, and light (nothing of Scrapy). A mirror behind such a service that answers a crawler
with its challenge ("Just a moment...", a captcha) serves something other than the outlet,
whatever its status; served for one or two documents it would otherwise pass for a short
article. Told by structure, never by wording (challenge pages are translated): a token that
only the service's challenge carries, on a page that has nothing else to read.

Only the challenge's own tokens count, never what the service adds to the pages it lets
through: many real articles load Cloudflare's ``/cdn-cgi/challenge-platform/`` detection
script (68 of the corpus pages), Turnstile or reCAPTCHA in a comment or newsletter form,
Incapsula's ``/_Incapsula_Resource`` script, or name ``#px-captcha-modal`` in their CSS.
"""

from __future__ import annotations

import html
import re

# service -> (strings one of which its challenge or block page carries, as sent: a cheap
# first look; the tokens themselves)
_CHALLENGES: dict[str, tuple[tuple[bytes, ...], re.Pattern[bytes]]] = {
    # the challenge's options object, its form's and links' tokens, the old JS challenge
    "Cloudflare": ((b"_cf_chl_", b"cf-browser-verification"), re.compile(
        rb"window\._cf_chl_opt\b|[?&;]__cf_chl_(?:[a-z]+_)?tk(?:__)?="
        rb"|\bcf-browser-verification\b")),
    "DDoS-Guard": ((b"/.well-known/ddos-guard/",),
                   re.compile(rb"/\.well-known/ddos-guard/(?:js-challenge|check\b)")),
    # the JavaScript challenge sets this cookie; the firewall's block page names itself
    "Sucuri": ((b"sucuri_cloudproxy_js", b"Sucuri WebSite Firewall"),
               re.compile(rb"\bsucuri_cloudproxy_js\b|Sucuri WebSite Firewall - ")),
    # the incident iframe (the script on pages it lets through is ?SWJIYLWA=)
    "Imperva": ((b"Incapsula incident ID", b"_Incapsula_Resource?"), re.compile(
        rb"Incapsula incident ID|/_Incapsula_Resource\?(?:CWUDNSAI|SWUDNSAI)=")),
    # the bot manager's challenge; the edge's "Access Denied" (its link written in entities)
    "Akamai": ((b"/_sec/cp_challenge/", b"sec-if-cpt-container", b"edgesuite"),
               re.compile(rb"/_sec/cp_challenge/|\bsec-if-cpt-container\b"
                          rb"|errors(?:\.|&#46;)edgesuite(?:\.|&#46;)net(?:/|&#47;)")),
    # the captcha's own element (a real page's CSS may name #px-captcha-modal)
    "PerimeterX": ((b"px-captcha", b"captcha.px-cdn.net"), re.compile(
        rb"""\bid\s*=\s*["']?px-captcha["'\s>]|//captcha\.px-cdn\.net/""")),
    "DataDome": ((b"captcha-delivery.com/",),
                 re.compile(rb"//(?:geo|ct)\.captcha-delivery\.com/")),
}
#: a captcha widget (the element a reader solves; not the script, which a page may load for
#: an invisible score) alone: real pages carry one in their comment and newsletter forms, so
#: it counts only on a page that has next to nothing else (:data:`CAPTCHA_MAX_TEXT`)
_CAPTCHA = ((b"g-recaptcha", b"h-captcha", b"cf-turnstile"), re.compile(
    rb"""class\s*=\s*["']?(?:[^"'>]*\s)?(?:g-recaptcha|h-captcha|cf-turnstile)["'\s>]"""))

#: what a challenge page says (the service's name, "checking your browser", a ray or
#: incident id, a line on enabling JavaScript): a few hundred characters at most
CHALLENGE_MAX_TEXT = 1000
#: a page that is a captcha and a line asking to solve it
CAPTCHA_MAX_TEXT = 200
#: challenge pages are small; a page larger than this is not searched for text
CHALLENGE_MAX_BYTES = 512 * 1024

_INVISIBLE = re.compile(
    rb"<!--.*?(?:-->|$)|<(script|style|template|svg)\b.*?(?:</\1\s*>|$)|<head\b.*?</head\s*>",
    re.IGNORECASE | re.DOTALL)
_TAG = re.compile(rb"<[^>]*>")


def visible_text(body: bytes) -> str:
    """What a reader sees of a page, roughly: its body without markup, scripts or styles,
    whitespace collapsed."""
    text = _TAG.sub(b" ", _INVISIBLE.sub(b" ", body)).decode("utf-8", "replace")
    return " ".join(html.unescape(text).split())


def bot_check(body: bytes) -> str | None:
    """The anti-bot service whose challenge ``body`` is ("Cloudflare", "captcha" for a page
    that is a captcha alone), or None. A page is one when it carries a token only that
    service's challenge carries and has next to no text of its own."""
    if len(body) > CHALLENGE_MAX_BYTES:
        return None
    service = next((name for name, signs in _CHALLENGES.items() if _carries(body, signs)),
                   None)
    limit = CHALLENGE_MAX_TEXT
    if service is None:
        if not _carries(body, _CAPTCHA):
            return None
        service, limit = "captcha", CAPTCHA_MAX_TEXT
    return service if len(visible_text(body)) <= limit else None


def _carries(body: bytes, signs: tuple[tuple[bytes, ...], re.Pattern[bytes]]) -> bool:
    strings, tokens = signs
    return any(s in body for s in strings) and tokens.search(body) is not None
