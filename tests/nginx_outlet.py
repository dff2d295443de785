"""An outlet's mirrors served by a real nginx on loopback, compressing as real servers do.

:class:`NginxOutlet` writes a static copy of a site (the demo site's pages, or the AEB
corpus's real pages behind generated listings) and an ``nginx.conf`` into a folder, starts
one nginx (master and one worker, through mirakuru) with one ``server`` block per mirror,
each on its own loopback port, and writes the outlet file that points a crawler at them::

    with NginxOutlet(tmp_path, ("dead", "seized", "botcheck", "flaky", "healthy"),
                     pages="corpus") as fx:
        run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), ...)
        assert stored == fx.expected_articles()
        assert overlap(fx.truth(url).text, record["text"]) > 0.8
        fx.mirror("flaky").hits(status=503)

Every mirror serves as nginx serves static files: gzip (``Vary: Accept-Encoding``) when the
client accepts it, ETag and Last-Modified with 304 answers to conditional requests,
keep-alive, ``text/html; charset=utf-8`` pages, a ``text/plain`` robots.txt, nginx's own 404
and 503 pages. Behaviours, one per mirror (:data:`BEHAVIOURS`):

- ``healthy``; ``flaky``: about 30 % of requests answer 503 (``split_clients`` on the
  request id), the others healthy;
- ``seized``: every path answers 200 with the seizure notice; ``garbage``: every path 200
  with a parked-domain page; ``redirect_off``: every path 302 off the outlet;
- ``botcheck``: every path 200 with a "Just a moment..." browser check that carries a
  per-request token (SSI) and links into the site, so it differs on every request;
- ``dead``: the port is bound but nothing listens: connection refused.

:meth:`NginxOutlet.set_down` makes a mirror (or every mirror) answer 503 at once and back,
through a flag file nginx checks on each request; :meth:`NginxOutlet.set_behaviour` gives a
mirror another behaviour (``dead`` included, and back) by reloading nginx. Each mirror logs
its requests to its own access log, which :meth:`NginxMirror.requests` reads.

No pytest here: the benchmarks use it too. The fixture is in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from mirakuru import HTTPExecutor

from crawler.core.outlets import Outlet, load_outlet_file
from crawler.demo import corpus as corpus_site
from crawler.demo.server import PARKED_PAGE, REDIRECT_TARGET, SEIZED_PAGE
from crawler.demo.server import outlet_document as demo_outlet_document
from crawler.demo.site import NEWS_SITEMAP, SITE_FEED, DemoSite, Truth
from crawler.demo.site import PER_PAGE as DEMO_PER_PAGE
from crawler.demo.site import SECTIONS as DEMO_SECTIONS

REPO = Path(__file__).resolve().parents[1]
#: the saved-page corpora (crawler.demo.corpus.CORPORA), each in a folder of its own
CORPORA = REPO.parent / "shared" / "corpus"
CORPUS = CORPORA / "aeb-dev"

HEALTHY = "healthy"
DEAD = "dead"
SEIZED = "seized"
BOTCHECK = "botcheck"
FLAKY = "flaky"
REDIRECT_OFF = "redirect_off"
GARBAGE = "garbage"
BEHAVIOURS = (HEALTHY, DEAD, SEIZED, BOTCHECK, FLAKY, REDIRECT_OFF, GARBAGE)
#: share of a flaky mirror's requests that answer 503
FLAKY_PERCENT = 30
DEMO, CORPUS_PAGES = "demo", "corpus"
START_TIMEOUT = 15.0

#: a Cloudflare-like browser check: the SSI echo gives every answer its own token
BOTCHECK_PAGE = b"""<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta http-equiv="X-UA-Compatible" content="IE=Edge">
<meta name="robots" content="noindex,nofollow">
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>*{box-sizing:border-box;margin:0;padding:0}html{line-height:1.15}body{display:flex;
flex-direction:column;height:100vh;min-height:100vh}.main-content{margin:8rem auto;
max-width:60rem;padding-left:1.5rem}</style></head>
<body class="no-js"><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1"><!--# echo var="host" --></h1>
<h2 class="h2" id="challenge-running">Just a moment... checking your browser before
accessing <!--# echo var="host" -->.</h2>
<noscript><div class="h2"><span id="challenge-error-text">Enable JavaScript and cookies to
continue</span></div></noscript>
<div id="challenge-body-text" class="core-msg spacer">This process is automatic. Your browser
will redirect to your requested content shortly.</div>
<form id="challenge-form" action="/?__cf_chl_f_tk=<!--# echo var="request_id" -->"
method="POST" enctype="application/x-www-form-urlencoded">
<input type="hidden" name="md" value="<!--# echo var="request_id" -->">
<input type="hidden" name="r" value="<!--# echo var="msec" -->"></form>
<p class="retry"><a href="/?__cf_chl_rt_tk=<!--# echo var="request_id" -->">Retry</a></p>
</div></div>
<script>(function(){window._cf_chl_opt={cvId:'3',cType:'managed',
cRay:'<!--# echo var="request_id" -->',cUPMDTk:"\\/?__cf_chl_tk=<!--# echo var="request_id"
-->"};}());</script>
<div class="footer" role="contentinfo"><div class="footer-inner"><div class="text-center">
Ray ID: <code><!--# echo var="request_id" --></code></div><div class="text-center">
Performance &amp; security by <a rel="noopener noreferrer"
href="https://cloudflare.example.invalid/?utm_source=challenge">Cloudflare</a></div>
</div></div></body></html>
"""

#: an error page as a site's template serves it with 200 (a "soft" 503): the site's header
#: and sections, an apology long enough to pass for a short article, links home, the footer
SORRY_PAGE_IN_TEMPLATE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Page temporarily unavailable | Demo News</title>
<link rel="stylesheet" href="/static/css/site.css"><link rel="icon" href="/favicon.ico">
</head><body class="error-page">
<header class="site-header">
<a class="logo" href="/"><img src="/static/logo.svg" alt="Demo News"></a>
<nav class="main-nav" aria-label="Sections"><ul><li><a href="/">Home</a></li>
<li><a href="/section/politics">Politics</a></li><li><a href="/section/economy">Economy</a></li>
<li><a href="/section/world">World</a></li><li><a href="/section/culture">Culture</a></li></ul>
</nav><form class="search" action="/search" method="get"><input type="search" name="q">
<button type="submit">Search</button></form></header>
<main class="container"><div class="error-box">
<h1>Sorry, the page you requested is temporarily unavailable</h1>
<p>We are experiencing technical difficulties and could not load this page. Our team has
been notified and is working to restore it as quickly as possible. Please try again in a
few minutes.</p>
<p>In the meantime, you can return to the <a href="/">home page</a> for the latest news, or
browse our <a href="/section/world">World</a> and <a href="/section/economy">Economy</a>
sections.</p></div></main>
<footer class="site-footer"><ul class="footer-links"><li><a href="/about">About us</a></li>
<li><a href="/contact">Contact</a></li><li><a href="/privacy">Privacy policy</a></li>
<li><a href="/terms">Terms of use</a></li></ul>
<p>&copy; 2024 Demo News. All rights reserved.</p></footer>
</body></html>
"""

#: behaviours answered from one fixed page, whatever the path
_FIXED_PAGES = {SEIZED: "seized.html", GARBAGE: "parked.html", BOTCHECK: "botcheck.html"}
#: behaviours that serve the site itself
_SITE_BEHAVIOURS = (HEALTHY, FLAKY)
_LOG_LINE = re.compile(
    r'^(?P<time>[\d.]+) (?P<status>\d{3}) (?P<method>\S+) "(?P<target>[^"]*)" '
    r'(?P<bytes>\d+) "(?P<encoding>[^"]*)" (?P<request_id>\S+)$'
)
_LOG_FORMAT = (
    '$msec $status $request_method "$request_uri" $body_bytes_sent '
    '"$sent_http_content_encoding" $request_id'
)


class NginxUnavailable(RuntimeError):
    """No ``nginx`` binary can be found."""


def find_nginx() -> str:
    """Path of the ``nginx`` binary: $NGINX, then $PATH, then /usr/sbin/nginx."""
    candidates = [os.environ.get("NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NginxUnavailable(
        "no nginx binary (install Debian's nginx-light or nginx package, or set $NGINX)"
    )


def has_corpus(corpus: Path = CORPUS) -> bool:
    return corpus_site.has_corpus(corpus)


@functools.cache
def _corpus_pages(corpus: Path) -> tuple[corpus_site.CorpusPage, ...]:
    # read once per process: several outlets in one test run serve the same pages
    return corpus_site.article_pages(corpus)


def overlap(expected: str, got: str | None) -> float:
    """F1 of the 4-word shingles of two texts (the AEB benchmark's measure): 1.0 when the
    same words come in the same order, near 0 when they have nothing in common."""

    def shingles(text: str) -> Counter[str]:
        words = re.findall(r"\w+", text)
        return Counter(" ".join(words[i : i + 4]) for i in range(max(1, len(words) - 3)))

    a, b = shingles(expected), shingles(got or "")
    common = sum((a & b).values())
    return 2 * common / (sum(a.values()) + sum(b.values())) if common else 0.0


#: markdown link syntax: stored text is plain text, links and all
LINK_MARKUP = ("](http", "](/")


def with_link_markup(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Canonical URLs of the stored records whose text carries markdown link syntax."""
    return [r["canonical_url"] for r in records
            if any(mark in (r.get("text") or "") for mark in LINK_MARKUP)]


# -- what the mirrors saw --------------------------------------------------------------------


@dataclass(frozen=True)
class AccessEntry:
    """One request from a mirror's access log."""

    #: Unix time the answer was finished
    time: float
    status: int
    method: str
    #: path and query, as sent
    target: str
    #: body bytes sent (compressed, when it was)
    bytes: int
    #: "gzip" when the answer was compressed, else ""
    content_encoding: str
    request_id: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class NginxMirror:
    """One mirror: a ``server`` block of the outlet's nginx, on its own port."""

    index: int
    #: ``m<index>-<behaviour it started with>``; it stays when the behaviour changes
    name: str
    behaviour: str
    port: int
    #: the site's files as this mirror serves them
    root: Path
    log: Path
    host: str = "127.0.0.1"
    #: extra nginx directives for this mirror's ``server`` block (``NginxOutlet.answer``)
    extra: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests(self) -> list[AccessEntry]:
        """Every request the mirror answered, oldest first (nothing for refused ones).
        nginx writes a request's line just after the answer has gone out: a client that has
        just read its answer may have to wait a moment for it."""
        if not self.log.exists():
            return []
        entries = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            match = _LOG_LINE.match(line)
            if match is None:
                raise ValueError(f"unexpected line in {self.log}: {line!r}")
            entries.append(
                AccessEntry(
                    time=float(match["time"]), status=int(match["status"]),
                    method=match["method"], target=match["target"],
                    bytes=int(match["bytes"]),
                    content_encoding="" if match["encoding"] == "-" else match["encoding"],
                    request_id=match["request_id"],
                )
            )
        return entries

    def hits(self, path: str | None = None, status: int | None = None) -> int:
        """Requests for ``path`` (path and query as sent; or any) answered with ``status``
        (or any)."""
        return sum(
            1
            for entry in self.requests()
            if (path is None or entry.target == path)
            and (status is None or entry.status == status)
        )

    def statuses(self) -> Counter[int]:
        return Counter(entry.status for entry in self.requests())


@dataclass(frozen=True)
class CorpusTruth:
    """What a correct extraction of a corpus article yields: the annotated article text."""

    page_id: str
    #: where the page was saved from
    source_url: str
    text: str
    #: the page exactly as served
    html: bytes


# -- the outlet ------------------------------------------------------------------------------


class NginxOutlet:
    """An outlet whose mirrors are ``server`` blocks of one nginx, in ``behaviours`` order
    (the first canonical, even when it is dead), and ``<directory>/<outlet>.yaml``.

    ``pages``: ``"demo"`` (the demo site, ``articles`` of them, ``seed``) or ``"corpus"``
    (a corpus's article pages at ``corpus``, the AEB corpus by default, each under ``copies``
    article paths, or with ``layout="variants"`` under 1 to 3 paths of their own: see
    :mod:`crawler.demo.corpus`).
    ``max_section_pages`` goes into the outlet file (demo: default 5; corpus: enough for
    every article). nginx's files (configuration, site copies, logs) are written under
    ``<directory>/nginx``.

    ``name`` names the outlet (its file and ``name:``; default the site's), so that several
    outlets can be crawled at once; ``corpus_pages`` picks the corpus pages served (by
    position, sorted by id; all by default). ``limit_rate`` (nginx's size syntax: ``"4k"``)
    makes every mirror a slow server: each answer is sent at that many bytes a second
    (nginx's ``limit_rate``), so a page of twice the rate takes about a second to arrive.
    """

    def __init__(
        self,
        directory: str | Path,
        behaviours: Iterable[str] | str = (DEAD, SEIZED, HEALTHY),
        pages: str = DEMO,
        *,
        articles: int = 60,
        seed: int = 7,
        copies: int = 2,
        corpus: Path = CORPUS,
        max_section_pages: int | None = None,
        politeness: Mapping[str, Any] | None = None,
        gzip_level: int = 5,
        nginx: str | None = None,
        discovery: Iterable[str] = ("listings",),
        newest: datetime | None = None,
        name: str | None = None,
        corpus_pages: slice | None = None,
        limit_rate: str | None = None,
        layout: str = corpus_site.COPIES,
    ) -> None:
        if isinstance(behaviours, str):
            behaviours = behaviours.split(",")
        self.behaviours = tuple(b.strip() for b in behaviours if b.strip())
        if not self.behaviours:
            raise ValueError("an outlet needs at least one mirror")
        for behaviour in self.behaviours:
            _check_behaviour(behaviour)
        if pages not in (DEMO, CORPUS_PAGES):
            raise ValueError(f"pages must be {DEMO!r} or {CORPUS_PAGES!r}, not {pages!r}")
        self.nginx = nginx or find_nginx()
        self.pages = pages
        self.outlet_dir = Path(directory)
        self.server_dir = self.outlet_dir / "nginx"
        self.politeness = dict(politeness) if politeness else None
        self.gzip_level = gzip_level
        self.limit_rate = limit_rate
        #: what the demo outlet's file reads: "listings", "feeds", "sitemaps"
        self.discovery = tuple(discovery)
        self.site: DemoSite | corpus_site.CorpusSite
        if pages == DEMO:
            self.site = DemoSite(articles=articles, seed=seed, newest=newest)
            self.max_section_pages = 5 if max_section_pages is None else max_section_pages
        else:
            if not has_corpus(corpus):
                raise FileNotFoundError(f"no corpus at {corpus}")
            chosen = list(_corpus_pages(corpus))[corpus_pages or slice(None)]
            self.site = corpus_site.CorpusSite(chosen, copies, layout)
            self.max_section_pages = (
                self.site.max_section_pages + 1 if max_section_pages is None
                else max_section_pages
            )
        self.name = name or self.site.name
        self.outlet_file = self.outlet_dir / f"{self.name}.yaml"
        self.mirrors_: list[NginxMirror] = []
        self._reserved: dict[int, socket.socket] = {}  # mirror index -> bound, not listening
        self._control_port = 0
        self._generation = 0
        self._executor: HTTPExecutor | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> NginxOutlet:
        self.server_dir.mkdir(parents=True, exist_ok=True)
        for name in ("logs", "down", "temp", "www"):
            (self.server_dir / name).mkdir(exist_ok=True)
        for attempt in range(3):
            self._reserve_ports()
            if isinstance(self.site, DemoSite):
                self.site.mirrors = self.mirrors
            self._write_outlet_file()
            self._write_site()
            try:
                self._start_nginx()
                return self
            except Exception:
                self._release_ports()
                if attempt == 2 or not self._port_taken():
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.stop()
            self._executor = None
        self._release_ports()

    def __enter__(self) -> NginxOutlet:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The nginx master process, while it runs."""
        if self._executor is None or self._executor.process is None:
            return None
        return self._executor.process.pid

    # -- the outlet ------------------------------------------------------------------------------

    @property
    def mirrors(self) -> tuple[str, ...]:
        """Base URLs, in the outlet file's order."""
        return tuple(mirror.base_url for mirror in self.mirrors_)

    @property
    def canonical(self) -> str:
        return self.mirrors[0]

    def outlet(self) -> Outlet:
        return load_outlet_file(self.outlet_file)

    def mirror(self, key: int | str) -> NginxMirror:
        """A mirror by position, by name (``m2-flaky``), or the first with a behaviour."""
        if isinstance(key, int):
            return self.mirrors_[key]
        for mirror in self.mirrors_:
            if key in (mirror.name, f"m{mirror.index}"):
                return mirror
        for mirror in self.mirrors_:
            if mirror.behaviour == key:
                return mirror
        raise KeyError(f"no mirror {key!r} (mirrors: {[m.name for m in self.mirrors_]})")

    def expected_articles(self) -> set[str]:
        """Canonical URLs of the articles a complete crawl stores."""
        if isinstance(self.site, DemoSite):
            return self.site.expected_articles(self.max_section_pages)
        return {self.canonical + path for path in self.site.article_paths()}

    def truth(self, url: str) -> Truth | CorpusTruth:
        """Ground truth of the article at ``url`` (any mirror, or a path)."""
        if isinstance(self.site, DemoSite):
            return self.site.truth(url)
        page = self.site.corpus_page(url)
        if page is None:
            raise KeyError(url)
        return CorpusTruth(page.id, page.url, page.truth, self.site.article_body(url) or b"")

    def requests(self) -> list[AccessEntry]:
        """Every mirror's requests, in the order they were answered."""
        return sorted((e for m in self.mirrors_ for e in m.requests()), key=lambda e: e.time)

    def hits(self, path: str | None = None, status: int | None = None) -> int:
        """Requests for ``path`` (or all) with ``status`` (or any), across every mirror."""
        return sum(mirror.hits(path, status) for mirror in self.mirrors_)

    # -- failures at run time --------------------------------------------------------------------

    def set_down(self, key: int | str | None = None, down: bool = True) -> None:
        """Make one mirror (or, with no key, every mirror) answer every request with 503, at
        once, or bring it back. The port keeps accepting connections."""
        flag = self.server_dir / "down" / ("all" if key is None else self.mirror(key).name)
        if down:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def set_behaviour(self, key: int | str, behaviour: str) -> NginxMirror:
        """Give a mirror another behaviour on the same port (``dead``: connections refused)
        and wait until nginx applies it. The mirror keeps its name."""
        _check_behaviour(behaviour)
        mirror = self.mirror(key)
        if behaviour == mirror.behaviour:
            return mirror
        was_dead, mirror.behaviour = mirror.behaviour == DEAD, behaviour
        if was_dead:
            self._reserved.pop(mirror.index).close()
        self._reload()
        if behaviour == DEAD:
            self._reserved[mirror.index] = _reserve(mirror.host, mirror.port, wait=10.0)
        return mirror

    def reload(self) -> None:
        """Write the configuration again and wait until nginx runs it."""
        self._reload()

    def answer(self, key: int | str, path: str, directive: str) -> None:
        """Make one mirror answer ``path`` with an nginx directive (``return 302 URL``), as a
        real server misbehaving on one document would."""
        self.mirror(key).extra.append(f"location = {path} {{ {directive}; }}")
        self._reload()

    def serve(self, key: int | str, path: str, body: bytes) -> None:
        """Make one mirror serve ``body`` at ``path`` (no file extension: nginx sends it as
        application/octet-stream). The other mirrors keep their page."""
        target = self.mirror(key).root / path.strip("/")
        shutil.rmtree(target, ignore_errors=True)  # the page's folder; hard links go too
        target.write_bytes(body)

    def serve_page(self, key: int | str, path: str, body: bytes,
                   modified: float | None = None) -> None:
        """Make one mirror serve the HTML ``body`` at ``path`` instead of its page;
        ``modified`` (Unix time) sets what nginx's Last-Modified and ETag are made of."""
        target = self.mirror(key).root / _file_name(path)
        target.unlink(missing_ok=True)  # a hard link shared with the other mirrors
        target.write_bytes(body)
        if modified is not None:
            os.utime(target, (modified, modified))

    def serve_gzipped(self, key: int | str, path: str, gzipped: bytes) -> None:
        """Make one mirror send ``gzipped`` as it is, with ``Content-Encoding: gzip`` and
        its length as ``Content-Length``, for the page at ``path``: nginx's ``gzip_static``
        serving a precompressed ``.html.gz`` beside the page (a cut file is sent cut)."""
        mirror = self.mirror(key)
        target = mirror.root / f"{_file_name(path)}.gz"
        target.unlink(missing_ok=True)
        target.write_bytes(gzipped)
        if "gzip_static on;" not in mirror.extra:
            mirror.extra.append("gzip_static on;")
            self._reload()

    # -- internals: ports ------------------------------------------------------------------------

    def _reserve_ports(self) -> None:
        # every port stays bound (not listening) until nginx takes it: nothing else can
        for index, behaviour in enumerate(self.behaviours):
            sock = _reserve("127.0.0.1", 0)
            self._reserved[index] = sock
            port = sock.getsockname()[1]
            if index < len(self.mirrors_):  # a second attempt: new ports
                self.mirrors_[index].port = port
                continue
            name = f"m{index}-{behaviour}"
            self.mirrors_.append(NginxMirror(
                index, name, behaviour, port, root=self.server_dir / "www" / name,
                log=self.server_dir / "logs" / f"{name}.log",
            ))
        with _reserve("127.0.0.1", 0) as control:
            self._control_port = control.getsockname()[1]

    def _release_ports(self) -> None:
        for sock in self._reserved.values():
            sock.close()
        self._reserved.clear()

    def _port_taken(self) -> bool:
        error_log = self.server_dir / "error.log"
        return error_log.exists() and "Address already in use" in error_log.read_text()

    # -- internals: files ------------------------------------------------------------------------

    def _write_outlet_file(self) -> None:
        if isinstance(self.site, DemoSite):
            document = demo_outlet_document(self.mirrors, self.max_section_pages,
                                            self.politeness, self.discovery)
        else:
            document = corpus_site.outlet_document(self.site, list(self.mirrors))
            document["max_section_pages"] = self.max_section_pages
            if self.politeness:
                document["politeness"] = dict(self.politeness)
        document["name"] = self.name
        Outlet.model_validate(document)
        self.outlet_dir.mkdir(parents=True, exist_ok=True)
        self.outlet_file.write_text(
            yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )

    def _write_site(self) -> None:
        fixed = self.server_dir / "fixed"
        fixed.mkdir(exist_ok=True)
        (fixed / _FIXED_PAGES[SEIZED]).write_bytes(SEIZED_PAGE)
        (fixed / _FIXED_PAGES[GARBAGE]).write_bytes(PARKED_PAGE)
        (fixed / _FIXED_PAGES[BOTCHECK]).write_bytes(BOTCHECK_PAGE)
        store = self.server_dir / "www" / "blobs"
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir()
        # every mirror gets the whole site, so that any behaviour can change to healthy;
        # files with the same bytes are one file, hard-linked
        for mirror in self.mirrors_:
            shutil.rmtree(mirror.root, ignore_errors=True)
            for path, body in self._files(mirror.base_url):
                blob = store / hashlib.sha256(body).hexdigest()
                if not blob.exists():
                    blob.write_bytes(body)
                target = mirror.root / _file_name(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(blob, target)
                except OSError:
                    shutil.copyfile(blob, target)

    def _files(self, mirror: str) -> Iterator[tuple[str, bytes]]:
        """(path and query, body) of every page the site serves with 200."""
        if isinstance(self.site, corpus_site.CorpusSite):
            for path, page in self.site.files():
                yield path, page.body
            return
        site = self.site
        targets = ["/", "/robots.txt", "/about", "/contact", "/privacy", "/terms"]
        for section in DEMO_SECTIONS:
            base = f"/section/{section}"
            targets.append(base)
            for number in range(1, site.section_pages(section) + 1):
                targets += [f"{base}/page/{number}", f"{base}?page={number}"]
        targets += [article.path for article in site.articles]
        # feeds and news sitemaps, written with their extensions for their content types
        targets += [SITE_FEED, NEWS_SITEMAP]
        targets += [f"/section/{section}/feed.rss" for section in DEMO_SECTIONS]
        targets += [f"/sitemaps/news-{day}.xml.gz" for day in site.sitemap_days()]
        for target in targets:
            page = site.page(target, mirror)
            if page.status != 200:
                raise AssertionError(f"the demo site answers {page.status} for {target}")
            yield target, page.body

    # -- internals: nginx ------------------------------------------------------------------------

    def _config(self) -> str:
        d = self.server_dir
        user = "user root root;\n" if os.geteuid() == 0 else ""  # files may be 0700 (tmp_path)
        servers = "\n".join(self._server_block(m) for m in self.mirrors_ if m.behaviour != DEAD)
        gzip_types = ("text/plain text/css text/xml text/javascript application/javascript "
                      "application/json application/xml application/rss+xml "
                      "application/atom+xml image/svg+xml")
        return f"""# written by tests/nginx_outlet.py; generation {self._generation}
{user}daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    types {{
        text/html html;
        text/plain txt;
        text/xml xml;
        application/rss+xml rss;
        application/gzip gz;
    }}
    default_type application/octet-stream;
    charset utf-8;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000;
    client_body_temp_path {d}/temp/body;
    proxy_temp_path {d}/temp/proxy;
    fastcgi_temp_path {d}/temp/fastcgi;
    uwsgi_temp_path {d}/temp/uwsgi;
    scgi_temp_path {d}/temp/scgi;
    gzip on;
    gzip_comp_level {self.gzip_level};
    gzip_min_length 20;
    gzip_proxied any;
    gzip_vary on;
    gzip_types {gzip_types};
    {f"limit_rate {self.limit_rate};" if self.limit_rate else "# no limit_rate"}
    log_format mirror '{_LOG_FORMAT}';
    access_log off;
    # a listing's page N also answers at ?page=N: written as <path>/index@page=N.html
    map $args $page_file {{
        default "index.html";
        "~^page=(?<number>[0-9]+)$" "index@page=$number.html";
    }}
    split_clients "${{request_id}}" $flaky_fails {{
        {FLAKY_PERCENT}% "1";
        * "";
    }}
    server {{
        listen 127.0.0.1:{self._control_port};
        location = /generation {{ return 200 "{self._generation}"; }}
    }}
{servers}
}}
"""

    def _server_block(self, mirror: NginxMirror) -> str:
        d = self.server_dir
        rules = [
            f"if (-f {d}/down/all) {{ return 503; }}",
            f"if (-f {d}/down/{mirror.name}) {{ return 503; }}",
        ]
        behaviour = mirror.behaviour
        if behaviour == FLAKY:
            rules.append("if ($flaky_fails) { return 503; }")
        if behaviour == REDIRECT_OFF:
            rules.append(f"return 302 {REDIRECT_TARGET};")
        if behaviour in _FIXED_PAGES:
            ssi = "ssi on; " if behaviour == BOTCHECK else ""
            locations = (f"root {d}/fixed;\n        location / {{ {ssi}"
                         f"try_files /{_FIXED_PAGES[behaviour]} =500; }}")
        else:
            locations = (
                f"root {mirror.root};\n"
                "        location / { try_files $uri/index.html $uri =404; }\n"
                "        location /section/ { try_files $uri/$page_file $uri =404; }"
            )
        body = "\n        ".join(rules + mirror.extra)
        return (
            f"    server {{  # {mirror.name}\n"
            f"        listen {mirror.host}:{mirror.port};\n"
            f"        access_log {mirror.log} mirror;\n"
            f"        {body}\n"
            f"        {locations}\n"
            "    }"
        )

    def _write_config(self) -> Path:
        config = self.server_dir / "nginx.conf"
        config.write_text(self._config(), encoding="utf-8")
        return config

    def _command(self, config: Path) -> list[str]:
        return [self.nginx, "-p", str(self.server_dir), "-c", str(config),
                "-e", str(self.server_dir / "error.log")]

    def _next_config(self) -> Path:
        """Write the next generation's configuration; nginx must accept it."""
        self._generation += 1
        config = self._write_config()
        check = subprocess.run([*self._command(config), "-t", "-q"], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refuses {config}:\n{check.stderr}")
        return config

    def _start_nginx(self) -> None:
        config = self._next_config()
        for index, behaviour in enumerate(self.behaviours):
            if behaviour != DEAD:
                self._reserved.pop(index).close()
        self._executor = HTTPExecutor(
            self._command(config),
            url=f"http://127.0.0.1:{self._control_port}/generation",
            method="GET",
            timeout=START_TIMEOUT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._executor.start()

    def _reload(self) -> None:
        if self.pid is None:
            raise RuntimeError("nginx is not running")
        self._next_config()
        old_workers = _children(self.pid)
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        # the old workers go on accepting until they have taken their leave: they finish
        # the requests they have, close the kept-alive connections and exit
        while self._running_generation() != self._generation or (
            old_workers & _children(self.pid)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload; see {self.server_dir}/error.log")
            time.sleep(0.02)
        for mirror in self.mirrors_:
            if mirror.behaviour != DEAD:
                _wait_for_port(mirror.host, mirror.port, listening=True)

    def _running_generation(self) -> int | None:
        connection = http.client.HTTPConnection("127.0.0.1", self._control_port, timeout=2)
        try:
            connection.request("GET", "/generation")
            return int(connection.getresponse().read())
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            connection.close()


def _check_behaviour(behaviour: str) -> None:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r} (known: {', '.join(BEHAVIOURS)})")


def _file_name(target: str) -> str:
    """Where the page at ``target`` (path and query) is written, relative to the root."""
    path, _, query = target.partition("?")
    if path.endswith((".txt", ".rss", ".xml", ".gz")):
        return path.lstrip("/")
    folder = path.strip("/")
    name = f"index@{query}.html" if query else "index.html"
    return f"{folder}/{name}" if folder else name


def _children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def _reserve(host: str, port: int, wait: float = 0.0) -> socket.socket:
    """A socket bound to ``host:port`` and not listening: connections to it are refused.
    ``wait``: how long to retry while the port is still taken (an old nginx worker)."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _wait_for_port(host: str, port: int, listening: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                accepted = True
        except OSError:
            accepted = False
        if accepted == listening:
            return
        if time.monotonic() > deadline:
            state = "listen" if listening else "stop listening"
            raise RuntimeError(f"{host}:{port} did not {state} in {timeout:.0f} s")
        time.sleep(0.02)


def demo_pages_needed(articles: int) -> int:
    """Listing pages per section that reach every article of a demo site of ``articles``."""
    return -(-articles // DEMO_PER_PAGE) + 1
