"""Whether a compressed body is whole: a stream that does not end was cut short.

Scrapy's decoders are lenient: a gzip, deflate, brotli or zstd body cut short decodes to the
part that came, without complaint, and a mirror that cuts bodies short while its
``Content-Length`` matches what it sent (a full disk under a cache, a proxy's size limit, a
truncated precompressed file) would have the first lines of a page (the site's name, its
menu) taken for the article. Every one of these formats marks its own end; a body that
does not reach it is not the page.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterable

try:
    import brotli
except ImportError:  # pragma: no cover - Scrapy needs one of the two
    import brotlicffi as brotli

if sys.version_info >= (3, 14):  # pragma: no cover
    from compression import zstd
else:
    from backports import zstd

#: bytes decoded at a time: the check holds one chunk of the page, not the page
_CHUNK = 65536
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Corrupt(Exception):
    pass


def _zlib_ends(body: bytes, wbits: int) -> tuple[bool, bytes]:
    """Whether one zlib/gzip/raw deflate stream at the start of ``body`` ends, and what
    follows it."""
    decoder = zlib.decompressobj(wbits)
    try:
        decoder.decompress(body, _CHUNK)
        while decoder.unconsumed_tail and not decoder.eof:
            decoder.decompress(decoder.unconsumed_tail, _CHUNK)
    except zlib.error as exc:
        if str(exc).endswith(("incorrect data check", "incorrect length check")):
            # every byte of the page came, only its checksum is wrong: Scrapy keeps the
            # page, and it is whole
            return True, b""
        raise _Corrupt(str(exc)) from None
    return decoder.eof, decoder.unused_data


def _gzip_whole(body: bytes) -> bool:
    # gzip allows members one after the other; GzipFile skips zero padding between them,
    # and anything else after a member is not gzip (Scrapy keeps what came before it)
    while True:
        ended, rest = _zlib_ends(body, 16 + zlib.MAX_WBITS)  # the trailer (CRC, size) too
        if not ended:
            return False
        body = rest.lstrip(b"\0")
        if not body.startswith(_GZIP_MAGIC):
            return True


def _deflate_whole(body: bytes) -> bool:
    # zlib-wrapped, or raw deflate as some servers send it (Scrapy tries both, in this order)
    try:
        return _zlib_ends(body, zlib.MAX_WBITS)[0]
    except _Corrupt:
        return _zlib_ends(body, -zlib.MAX_WBITS)[0]


def _brotli_whole(body: bytes) -> bool:
    decoder = brotli.Decompressor()
    try:
        output = decoder.process(body, output_buffer_limit=_CHUNK)
        while output and not decoder.is_finished():  # the output held back, chunk by chunk
            output = decoder.process(b"", output_buffer_limit=_CHUNK)
    except brotli.error as exc:
        raise _Corrupt(str(exc)) from None
    return decoder.is_finished()


def _zstd_whole(body: bytes) -> bool:
    # frames one after the other, as for gzip members
    while True:
        decoder = zstd.ZstdDecompressor()
        try:
            decoder.decompress(body, _CHUNK)
            while not decoder.eof and not decoder.needs_input:
                decoder.decompress(b"", _CHUNK)
        except zstd.ZstdError as exc:
            raise _Corrupt(str(exc)) from None
        if not decoder.eof:
            return False
        body = decoder.unused_data
        if not body.startswith(_ZSTD_MAGIC):
            return True


_WHOLE: dict[bytes, Callable[[bytes], bool]] = {
    b"gzip": _gzip_whole, b"x-gzip": _gzip_whole, b"deflate": _deflate_whole,
    b"br": _brotli_whole, b"zstd": _zstd_whole,
}


def outer_encoding(content_encoding: Iterable[bytes]) -> bytes | None:
    """The encoding applied last (the one a cut ends), as ``Content-Encoding`` lists them."""
    names = [name.strip().lower() for header in content_encoding for name in header.split(b",")]
    names = [name for name in names if name and name != b"identity"]
    return names[-1] if names else None


def incomplete_body(body: bytes, content_encoding: Iterable[bytes]) -> str | None:
    """Why a body sent with ``content_encoding`` is not the whole page: its compressed stream
    stops before its end ("cut short") or breaks ("corrupt"); None for a whole body, an empty
    one (a 304, a HEAD) and an encoding Scrapy does not decode (it keeps the body as sent).

    Only the outermost encoding is checked: a cut in transit or in a stored file cuts it."""
    encoding = outer_encoding(content_encoding)
    whole = _WHOLE.get(encoding) if encoding else None
    if whole is None or not body:
        return None
    name = encoding.decode("latin-1")
    try:
        return None if whole(body) else f"{name} body cut short ({len(body)} bytes)"
    except _Corrupt as exc:
        return f"corrupt {name} body ({exc})"
