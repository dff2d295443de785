"""CPU per stored article of a standalone crawl, against trafilatura alone on the same pages.

    .venv/bin/python benchmarks/crawl.py [--pages demo|corpus] [--articles 600] [--copies 6]
                                         [--behaviours B,B,...] [--rounds 3]
                                         [-s NAME=VALUE ...] [--keep DIR] [--warc]

The outlet is served by nginx (``tests/nginx_outlet.py``: static files, gzip on, ETag and
Last-Modified, keep-alive, as real outlets serve), started by this process; nginx's CPU is
not counted:

- ``--pages demo`` (default): the demo outlet's generated pages (about 52 KB each,
  ``--articles`` of them); mirrors dead,seized,healthy unless ``--behaviours`` says otherwise.
- ``--pages corpus``: the 88 real pages of the AEB corpus (about 183 KB on average, served
  unchanged; the benchmark stops with a message where the corpus is not beside the
  repository), each under ``--copies`` article paths (6: 528 articles), listed by generated
  section pages; mirrors dead,healthy by default.

Each round runs, as a user would,

    python -m crawler.cli crawl OUTLET --outlets-dir DIR --store sqlite:///FRESH.db
        -s AUTOTHROTTLE_ENABLED=False -s LOG_LEVEL=WARNING

and counts the user+sys CPU of the crawler process and every process under it. This process
is made a child subreaper: descendants orphaned when their parent exits (the forkserver, the
extraction workers it forked) are reparented here instead of to init, and reaped here, so
RUSAGE_CHILDREN ends up holding every one of them (a process reaped by its parent, as the
forkserver reaps its workers, is in that parent's figure). A sampler reads /proc for the
whole tree every 0.1 s meanwhile (column ``seen s``: a lower bound, the CPU after the last
sample missed), which shows both that nothing is missed and where the CPU went.

The same round then times, with time.process_time() in this process,
trafilatura.bare_extraction (with_metadata) and the project's extract_article over every
stored article's page, fetched once from the server beforehand (uncompressed). trafilatura's
caches are reset before each pass, as a crawl starts with them empty. Crawls and extraction
passes alternate; each crawl is compared with the mean of the passes on either side of it,
and the ratio reported is the median of the per-round ratios, since the machine is shared.

With ``--warc`` each round also runs the same crawl with ``--warc DIR`` (a fresh store and
directory; which of the two goes first alternates), and the figures of both are printed side
by side: what writing every stored article's answer and request to WARC costs per article,
and the ratio of the two crawls' CPU per article (median of the rounds).

The crawl's CPU includes its fixed costs (interpreter start, imports, listing pages, the
forkserver and the extraction worker's start), which a user pays too; a last crawl into the
full store less one article pays all of them and shows how much of the per-article figure
they are, and what an article costs beyond them.

Measured on a shared 2-vCPU VM, ``--pages corpus --rounds 3`` (528 articles; dead,healthy;
gzip level 5), every article stored each round: the crawl 22.3 ms CPU per stored article
(11.8 s), of which the crawling process 4.9 ms and its descendants (forkserver, extraction
worker) 17.4 ms; trafilatura alone 16.5 ms, extract_article 16.0 ms. Median ratio against
trafilatura alone x1.36 (rounds x1.32, x1.36, x1.38), against extract_article x1.40. Fixed
cost of a crawl 1.26 s CPU (0.89 s the crawling process): 2.4 ms per article here; beyond it
x1.22. What is left is Scrapy's own cost per request (about 3 ms in the crawling process,
gzip included: zlib is 0.4 ms of it) and the extraction worker's start (its imports, about
0.9 ms per article of this crawl). Since then extract_article keeps links while trafilatura
judges (F1 +0.002 on the corpus for 1-4 % more CPU); ``--rounds 2`` while another test run
loaded the machine: x1.45 against trafilatura alone, x1.28 against extract_article. With
``-s EXTRACTION_SECOND_OPINION=True`` (readability's second opinion, one round): x1.61.
The second opinion now hears the readability result trafilatura computes anyway and is on by
default; ``--pages corpus --rounds 2`` on the shared VM, one run after the other: 26.5 ms CPU
per stored article (x1.54 against trafilatura alone, which measured 17.2 ms that run), and
with ``-s EXTRACTION_SECOND_OPINION=False`` 24.9 ms (x1.36; trafilatura alone 18.2 ms): the
second opinion costs the crawl about 1.6 ms (7 %) per article.
``--warc --rounds 2`` (twice, the machine loaded by others; the second opinion still off):
with WARC 26.15 and 25.70 ms CPU per article against 24.21 and 24.32 ms without, +1.93 and
+1.38 ms (x1.080 and x1.056), of which +1.42 and +1.26 ms in the crawling process (the
record pairs are gzipped there: 0.5 ms of zlib on an already gzipped page of 37 KB); 38.6 KB
of WARC per article.

Counting checked on a shared 2-vCPU VM (demo pages, 300 articles, dead,healthy,
EXTRACTION_PROCESSES=2, COMPRESSION_ENABLED=False): RUSAGE_CHILDREN 4.12 s for the crawl, of
which 1.68 s the crawler process as wait4 reports it; /proc sampling every 20 ms saw 4.05 s
over 5 processes: the crawler 1.66 s, multiprocessing's resource tracker 0.02 s, the
forkserver 0.28 s, its two extraction workers 1.09 s and 1.00 s. In the benchmark's own runs
(``seen s`` against ``CPU s``) the sample stays 1-4 % under the count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import trafilatura
from aeb import CORPUS
from processes import (
    PYTHON,
    ROOT,
    TreeSampler,
    become_subreaper,
    children_cpu,
    count_stored,
    reap_orphans,
)
from trafilatura.meta import reset_caches

from crawler.extraction import extract_article

sys.path.insert(0, str(ROOT / "tests"))
from nginx_outlet import (  # noqa: E402
    NginxOutlet,
    NginxUnavailable,
    demo_pages_needed,
    find_nginx,
    has_corpus,
)

TARGET, AIM = 1.3, 1.15


@dataclass
class CrawlRun:
    wall: float
    #: the crawler process and all its descendants
    cpu: float
    #: the crawler process alone (Scrapy, the spider, middlewares, pipelines' parent side)
    main_cpu: float
    #: the same tree as ``cpu``, sampled from /proc: a lower bound
    seen_cpu: float
    stored: int
    returncode: int
    log: Path

    @property
    def cpu_ms_per_article(self) -> float:
        return self.cpu / self.stored * 1000 if self.stored else math.inf


def crawl(fx: NginxOutlet, store: Path, log: Path, extra: list[str]) -> CrawlRun:
    command = [
        PYTHON, "-m", "crawler.cli", "crawl", fx.name,
        "--outlets-dir", str(fx.outlet_dir), "--store", f"sqlite:///{store}",
        "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=WARNING", *extra,
    ]
    nginx = {fx.pid} if fx.pid else set()  # the server: neither sampled nor waited for
    cpu_before = children_cpu()
    started = time.perf_counter()
    with log.open("w") as out, TreeSampler(exclude=nginx) as sampler:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        reap_orphans(exclude=nginx)
    cpu = children_cpu() - cpu_before
    main_cpu = usage.ru_utime + usage.ru_stime
    return CrawlRun(wall, cpu, main_cpu, sampler.cpu, count_stored(store), process.returncode,
                    log)


def stored_urls(store: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(store)) as db:
        return [row[0] for row in db.execute("SELECT url FROM articles ORDER BY url")]


def forget_one(store: Path) -> None:
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        db.execute("DELETE FROM articles WHERE canonical_url = "
                   "(SELECT min(canonical_url) FROM articles)")


def fetch(urls: list[str]) -> list[tuple[str, bytes]]:
    pages = []
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as answer:
            pages.append((url, answer.read()))
    return pages


def trafilatura_alone(pages: list[tuple[str, bytes]]) -> float:
    """CPU ms per page of bare_extraction with metadata, the crawler's decoding aside."""
    documents = [(url, body.decode("utf-8")) for url, body in pages]
    reset_caches()
    started = time.process_time()
    for url, html in documents:
        trafilatura.bare_extraction(html, url=url, with_metadata=True)
    return (time.process_time() - started) / len(pages) * 1000


def project_extraction(pages: list[tuple[str, bytes]]) -> float:
    """CPU ms per page of extract_article as the extraction worker calls it."""
    reset_caches()
    started = time.process_time()
    for url, body in pages:
        extract_article(body, url, None, "utf-8")
    return (time.process_time() - started) / len(pages) * 1000


def corpus_pages() -> int | None:
    """How many pages the AEB corpus has, or None when it is not beside the repository."""
    if not has_corpus(CORPUS):
        return None
    truth = CORPUS / "ground-truth.json"
    return len(json.loads(truth.read_text(encoding="utf-8")))


def start_outlet(args: argparse.Namespace, behaviours: str, directory: Path) -> NginxOutlet:
    if args.pages == "demo":
        # enough listing pages per section to reach every article
        return NginxOutlet(directory, behaviours, "demo", articles=args.articles,
                           max_section_pages=demo_pages_needed(args.articles)).start()
    return NginxOutlet(directory, behaviours, "corpus", copies=args.copies,
                       corpus=CORPUS).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", choices=("demo", "corpus"), default="demo",
                        help="the demo outlet's generated pages, or the AEB corpus's real ones")
    parser.add_argument("--articles", type=int, default=600, help="demo: articles on the outlet")
    parser.add_argument("--copies", type=int, default=6,
                        help="corpus: article paths per corpus page (88 pages)")
    parser.add_argument("--behaviours", default=None,
                        help="the outlet's mirrors, in preference order (default: "
                             "dead,seized,healthy for demo, dead,healthy for corpus)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE",
                        help="extra crawler setting (repeatable), e.g. EXTRACTION_PROCESSES=2")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the stores and crawl logs in this directory")
    parser.add_argument("--warc", action="store_true",
                        help="also crawl with --warc each round and compare the two")
    args = parser.parse_args()
    if args.pages == "demo":
        if args.articles < 500:
            parser.error("--articles must be at least 500")
        behaviours = args.behaviours or "dead,seized,healthy"
    else:
        available = corpus_pages()
        if available is None:
            print(f"--pages corpus needs the AEB corpus at {CORPUS} (ground-truth.json and "
                  f"html/); it is not there", file=sys.stderr)
            return 2
        if available * args.copies < 500:
            parser.error(f"--copies {args.copies} gives {available * args.copies} articles; "
                         f"at least {-(-500 // available)} copies are needed for 500")
        behaviours = args.behaviours or "dead,healthy"
    try:
        find_nginx()
    except NginxUnavailable as exc:
        print(f"the outlet is served by nginx: {exc}", file=sys.stderr)
        return 2

    logging.disable(logging.WARNING)  # trafilatura logs every page it discards
    if not become_subreaper():
        print("warning: cannot become a child subreaper; forkserver CPU may be missed",
              file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-crawl-"))
    logs = args.keep or work
    logs.mkdir(parents=True, exist_ok=True)
    extra = [f for setting in args.set for f in ("-s", setting)]
    fx = start_outlet(args, behaviours, work / "outlets")
    expected = len(fx.expected_articles())
    try:
        if args.pages == "demo":
            described = f"demo outlet: {args.articles} articles"
        else:
            described = (f"corpus outlet: {len(fx.site.pages)} pages x {args.copies} copies, "
                         f"{fx.site.average_size / 1000:.0f} KB on average")
        print(f"{described}, {expected} expected from a full crawl; served by nginx "
              f"(gzip level {fx.gzip_level}); mirrors: "
              f"{', '.join(f'{m.behaviour} {m.base_url}' for m in fx.mirrors_)}")
        print(f"crawl: python -m crawler.cli crawl {fx.name} --outlets-dir DIR "
              "--store sqlite:///FRESH.db -s AUTOTHROTTLE_ENABLED=False -s LOG_LEVEL=WARNING"
              + "".join(f" -s {s}" for s in args.set) + "\n")
        pages: list[tuple[str, bytes]] = []
        passes: list[tuple[float, float]] = []  # (trafilatura alone, extract_article) ms/page
        rows = []
        warc_rows: list[tuple[CrawlRun, CrawlRun, int]] = []  # (without, with, WARC bytes)
        header = (f"{'round':>5} {'stored':>6} {'wall s':>7} {'art/s':>6} {'CPU s':>6} "
                  f"{'seen s':>6} {'main s':>6} {'extr s':>6} {'crawl ms/art':>12} {'traf ms':>8} "
                  f"{'ours ms':>8} {'/traf':>6} {'/ours':>6}")
        for n in range(1, args.rounds + 1):
            store = logs / f"round{n}.db"
            store.unlink(missing_ok=True)
            if args.warc and n % 2 == 0:  # the crawl with WARC first, every other round
                with_warc = warc_crawl(fx, logs, n, extra)
            run = crawl(fx, store, logs / f"round{n}.log", extra)
            if args.warc and n % 2 == 1:
                with_warc = warc_crawl(fx, logs, n, extra)
            if run.returncode != 0 or run.stored == 0:
                print(f"round {n}: crawl failed (exit {run.returncode}, {run.stored} stored); "
                      f"log {run.log}:\n" + run.log.read_text()[-3000:], file=sys.stderr)
                return 1
            if run.seen_cpu > run.cpu * 1.02 + 0.05:
                print(f"warning: /proc saw {run.seen_cpu:.2f} s CPU, RUSAGE_CHILDREN only "
                      f"{run.cpu:.2f} s: some process was not counted", file=sys.stderr)
            if not pages:
                pages = fetch(stored_urls(store))
                trafilatura_alone(pages[:20])  # warm-up: imports, lazy tables
                print(header)
            passes.append((trafilatura_alone(pages), project_extraction(pages)))
            # the passes on either side of this crawl: the load of a shared machine drifts
            traf_ms = statistics.fmean(t for t, _ in passes[-2:])
            ours_ms = statistics.fmean(o for _, o in passes[-2:])
            row = (run, traf_ms, ours_ms)
            rows.append(row)
            print(f"{n:>5} {run.stored:>6} {run.wall:>7.2f} {run.stored / run.wall:>6.1f} "
                  f"{run.cpu:>6.2f} {run.seen_cpu:>6.2f} {run.main_cpu:>6.2f} "
                  f"{run.cpu - run.main_cpu:>6.2f} "
                  f"{run.cpu_ms_per_article:>12.2f} {traf_ms:>8.2f} "
                  f"{ours_ms:>8.2f} {run.cpu_ms_per_article / traf_ms:>6.2f} "
                  f"{run.cpu_ms_per_article / ours_ms:>6.2f}", flush=True)
            if args.warc:
                warc_run, warc_bytes = with_warc
                if warc_run.returncode != 0 or warc_run.stored != run.stored:
                    print(f"round {n}: the crawl with --warc stored {warc_run.stored} (exit "
                          f"{warc_run.returncode}); log {warc_run.log}", file=sys.stderr)
                    return 1
                warc_rows.append((run, warc_run, warc_bytes))
                print(f"{'+warc':>5} {warc_run.stored:>6} {warc_run.wall:>7.2f} "
                      f"{warc_run.stored / warc_run.wall:>6.1f} {warc_run.cpu:>6.2f} "
                      f"{warc_run.seen_cpu:>6.2f} {warc_run.main_cpu:>6.2f} "
                      f"{warc_run.cpu - warc_run.main_cpu:>6.2f} "
                      f"{warc_run.cpu_ms_per_article:>12.2f}   x{warc_run.cpu / run.cpu:.3f} "
                      f"the crawl without WARC", flush=True)

        # one article taken out, so the re-crawl pays every fixed cost: the extraction
        # worker starts too. --full: every listing read again, not answered 304 from the
        # validators the last crawl kept (the store is expected to keep what it stored)
        full = logs / f"round{args.rounds}.db"
        forget_one(full)
        recrawl = crawl(fx, full, logs / "recrawl.log", ["--full", *extra])
    finally:
        fx.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    def median(values) -> float:
        return statistics.median(list(values))

    stored = rows[-1][0].stored
    ratio_traf = median(r.cpu_ms_per_article / t for r, t, _ in rows)
    ratio_ours = median(r.cpu_ms_per_article / o for r, _, o in rows)
    print(f"\narticles stored: {stored} of {expected} expected")
    print(f"wall: {median(r.wall for r, _, _ in rows):.2f} s, "
          f"{median(r.stored / r.wall for r, _, _ in rows):.1f} articles/s (median)")
    print(f"crawler CPU (process and children): {median(r.cpu for r, _, _ in rows):.2f} s, "
          f"{median(r.cpu_ms_per_article for r, _, _ in rows):.2f} ms per stored article")
    print(f"  of which the crawler process: {median(r.main_cpu for r, _, _ in rows):.2f} s, "
          f"{median(r.main_cpu / r.stored * 1000 for r, _, _ in rows):.2f} ms per article; "
          f"its descendants (forkserver, extraction workers): "
          f"{median((r.cpu - r.main_cpu) / r.stored * 1000 for r, _, _ in rows):.2f} ms")
    print(f"trafilatura.bare_extraction(with_metadata) alone: "
          f"{median(t for _, t, _ in rows):.2f} ms per page")
    print(f"crawler.extraction.extract_article: {median(o for _, _, o in rows):.2f} ms per page")
    print(f"fixed cost of a crawl (re-crawl of the full store less one article: start, "
          f"every listing page, the extraction worker's start, one article): "
          f"{recrawl.cpu:.2f} s CPU ({recrawl.main_cpu:.2f} s the crawler process), "
          f"{recrawl.wall:.2f} s wall = {recrawl.cpu / stored * 1000:.2f} ms per article of "
          f"the full crawl")
    if recrawl.stored != stored:
        print(f"warning: the re-crawl left {recrawl.stored} stored, not {stored}",
              file=sys.stderr)
    beyond = [(r.cpu - recrawl.cpu) / (r.stored - 1) * 1000 for r, _, _ in rows]
    print(f"crawler CPU beyond that fixed cost: {median(beyond):.2f} ms per article, "
          f"x{median(b / t for b, (_, t, _) in zip(beyond, rows, strict=True)):.2f} "
          f"trafilatura alone (median)")
    verdict = "meets" if ratio_traf <= TARGET else "misses"
    print(f"\nmedian ratio crawler / trafilatura alone: x{ratio_traf:.2f} "
          f"({verdict} the x{TARGET} target; aim x{AIM})")
    print(f"median ratio crawler / extract_article:   x{ratio_ours:.2f}")
    if warc_rows:
        plain = median(p.cpu_ms_per_article for p, _, _ in warc_rows)
        warc = median(w.cpu_ms_per_article for _, w, _ in warc_rows)
        extra_ms = median(w.cpu_ms_per_article - p.cpu_ms_per_article for p, w, _ in warc_rows)
        extra_main = median((w.main_cpu - p.main_cpu) / w.stored * 1000
                            for p, w, _ in warc_rows)
        ratio = median(w.cpu_ms_per_article / p.cpu_ms_per_article for p, w, _ in warc_rows)
        size = median(b / w.stored / 1000 for _, w, b in warc_rows)
        rounds = ", ".join(f"x{w.cpu_ms_per_article / p.cpu_ms_per_article:.3f}"
                           for p, w, _ in warc_rows)
        print(f"\nWARC (--warc), side by side in each round: {warc:.2f} ms CPU per stored "
              f"article with, {plain:.2f} without: {extra_ms:+.2f} ms per article "
              f"({extra_main:+.2f} ms in the crawler process), x{ratio:.3f} (median of "
              f"{rounds}); "
              f"{size:.1f} KB of WARC per article")
    return 0


def warc_crawl(fx: NginxOutlet, logs: Path, n: int, extra: list[str]) -> tuple[CrawlRun, int]:
    """The round's crawl with ``--warc``, into its own store and directory; and the bytes of
    the WARC files it wrote."""
    store, directory = logs / f"round{n}-warc.db", logs / f"round{n}-warc"
    store.unlink(missing_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    run = crawl(fx, store, logs / f"round{n}-warc.log", ["--warc", str(directory), *extra])
    return run, sum(p.stat().st_size for p in directory.glob("*.warc.gz"))


if __name__ == "__main__":
    sys.exit(main())
