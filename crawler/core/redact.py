"""Keep secrets out of what the crawler prints: messages, log lines, status output.

Redis and store URLs carry passwords (``redis://:PASS@host``, ``postgresql://user:PASS@db``)
and end up in error messages, ours and the libraries'. The password is replaced by ``***``;
the user name is kept, since "role crawler does not exist" needs it and it is no secret,
except in a Redis URL with no ":" (``redis://PASS@host``): there it is a misplaced password.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
#: schemes whose lone userinfo (no ":") is taken for a password
_PASSWORD_ONLY_SCHEMES = ("redis://", "rediss://", "unix://")

# scheme://userinfo@ : the userinfo runs to the LAST "@" of the authority (an unencoded "@"
# in a password must not leave its tail in the clear), and the authority ends at the first
# "/", "?", "#" or space, as in RFC 3986 and the parsers of redis-py and libpq.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#]*)@")
# password=... in a query string or a libpq conninfo string
_PASSWORD_PARAM = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&;]*)",
                             re.IGNORECASE)


def _mask_userinfo(match: re.Match[str]) -> str:
    scheme = match["scheme"]
    user, colon, _password = match["userinfo"].partition(":")
    if colon:
        return f"{scheme}{user}:{MASK}@"
    if scheme.lower() in _PASSWORD_ONLY_SCHEMES:
        return f"{scheme}{MASK}@"
    return match[0]


def _mask_param(match: re.Match[str]) -> str:
    return match["key"] + MASK if match["value"] else match[0]


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and every ``password=``, masked."""
    if "@" in text:
        text = _USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _PASSWORD_PARAM.sub(_mask_param, text)
    return text


def redact_url(url: str) -> str:
    """``url`` with its password masked: ``redis://:***@host:6379/0``. Works on URLs too
    malformed to parse, since those are the ones that end up in error messages."""
    return redact_text(url)


class _RedactedLogRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802 (logging's name)
        return redact_text(super().getMessage())


def install_log_redaction() -> None:
    """Mask passwords in every log line, whichever library logs it and whichever handler
    writes it (Scrapy replaces its handler when a crawler starts, so not a handler filter)."""
    if logging.getLogRecordFactory() is logging.LogRecord:
        logging.setLogRecordFactory(_RedactedLogRecord)
