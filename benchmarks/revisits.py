"""The CPU revisits add per article, against a crawl without them.

    .venv/bin/python benchmarks/revisits.py [--pages demo|corpus] [--articles 600]
                                            [--copies 6] [--rounds 2] [--keep DIR]

The outlet is served by nginx as in ``benchmarks/crawl.py`` (gzip, ETag and Last-Modified;
mirrors dead,healthy), and every crawl's CPU counts the crawler process and everything under
it (see that file). Each round, into one fresh SQLite store:

    new       crawl OUTLET                 every article new: fetched, extracted, stored
    idle      crawl OUTLET --revisit       revisit interval 1 h: nothing new, nothing due
                                           (the fixed cost of a crawl: start, listings
                                           answered 304)
    304       crawl OUTLET --revisit       every article due (revisit interval 1 s), its
                                           page unchanged: the mirror answers 304
    200       crawl OUTLET --revisit       every article due, its page touched (new ETag,
                                           same bytes): fetched and extracted again, no
                                           revision

(each crawl's summary must show 0, all and all articles revisited) and reports, per
article, the CPU of ``new`` and what a revisit costs beyond the idle crawl:
``(304 - idle) / articles`` and ``(200 - idle) / articles``. An article is revisited
``window / interval`` times (3 d / 6 h = 12 by default), nearly always answered 304 when it
did not change, so its revisits cost about 12 x the 304 figure, and x the 200 figure for a
server that does not answer conditional requests.

Measured on a shared 2-vCPU VM (two other jobs running), ``--pages corpus --rounds 2``
(528 articles; gzip; the second opinion on): a new article 23.9 ms CPU (rounds 23.7, 24.1);
the idle re-crawl 0.8-0.9 s; a revisit answered 304 0.99 ms (0.97, 1.00: x0.04 of a new
article), answered 200 with the same text 22.4 ms (x0.93: the extraction is most of it); no
revision stored. 12 revisits of an unchanged article answered 304 (a 6 h interval without a
backoff) add about half of its first crawl's CPU (+49 %); a server that ignores conditional
requests makes them cost 11 first crawls. The default backoff makes it about 4 revisits:
+16 % and 3.7 first crawls.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from crawl import corpus_pages, crawl, start_outlet
from processes import become_subreaper, count_stored

from crawler.storage import open_store


def revisit_every(outlet_file: Path, interval: str) -> None:
    document = yaml.safe_load(outlet_file.read_text())
    document["revisit"] = {"window": "100000d", "interval": interval, "backoff": 0}
    outlet_file.write_text(yaml.safe_dump(document, sort_keys=False))


def revisited(log: Path) -> int:
    """The revisits a crawl queued, from its summary table."""
    found = re.search(r"revisits\s*\S\s*(\d+)", log.read_text())
    return int(found.group(1)) if found else 0


def touch_articles(fx) -> None:
    """A new modification time for every page: a new ETag and Last-Modified, same bytes."""
    now = time.time()
    for mirror in fx.mirrors_:
        for page in mirror.root.rglob("index.html"):
            os.utime(page, (now, now))


def revisions(store: Path) -> int:
    db = open_store(f"sqlite:///{store}")
    try:
        return sum(r["revision"] - 1 for r in db.read())
    finally:
        db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", choices=("demo", "corpus"), default=None,
                        help="default: corpus where it is there, else demo")
    parser.add_argument("--articles", type=int, default=600, help="demo: articles")
    parser.add_argument("--copies", type=int, default=6, help="corpus: paths per page")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    if args.pages is None:
        args.pages = "corpus" if corpus_pages() else "demo"
    if not become_subreaper():
        print("warning: cannot become a child subreaper; forkserver CPU may be missed",
              file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="bench-revisits-"))
    logs = args.keep or work
    logs.mkdir(parents=True, exist_ok=True)
    fx = start_outlet(args, "dead,healthy", work / "outlets")
    rows = []
    try:
        print(f"{args.pages} outlet, {len(fx.expected_articles())} articles, served by nginx "
              f"(gzip); mirrors {', '.join(m.behaviour for m in fx.mirrors_)}\n")
        print(f"{'round':>5} {'articles':>8} {'new ms/art':>10} {'idle s':>7} "
              f"{'304 ms/art':>10} {'200 ms/art':>10} {'revisions':>9}")
        for n in range(1, args.rounds + 1):
            store = logs / f"round{n}.db"
            store.unlink(missing_ok=True)
            revisit_every(fx.outlet_file, "1h")
            new = crawl(fx, store, logs / f"new{n}.log", [])
            idle = crawl(fx, store, logs / f"idle{n}.log", ["--revisit"])
            revisit_every(fx.outlet_file, "1s")
            time.sleep(1.1)  # every article due
            not_modified = crawl(fx, store, logs / f"304-{n}.log", ["--revisit"])
            touch_articles(fx)
            time.sleep(1.1)
            refetched = crawl(fx, store, logs / f"200-{n}.log", ["--revisit"])
            runs = (new, idle, not_modified, refetched)
            if any(r.returncode != 0 for r in runs) or new.stored == 0:
                failed = next(r for r in runs if r.returncode != 0)
                print(f"round {n}: a crawl failed; log {failed.log}:\n"
                      + failed.log.read_text()[-3000:], file=sys.stderr)
                return 1
            articles = count_stored(store)
            counts = [revisited(r.log) for r in runs[1:]]
            if counts != [0, articles, articles]:
                print(f"round {n}: revisits queued (idle, 304, 200): {counts}, expected "
                      f"[0, {articles}, {articles}]", file=sys.stderr)
                return 1
            row = (new.cpu_ms_per_article, idle.cpu,
                   (not_modified.cpu - idle.cpu) / articles * 1000,
                   (refetched.cpu - idle.cpu) / articles * 1000)
            rows.append(row)
            print(f"{n:>5} {articles:>8} {row[0]:>10.2f} {row[1]:>7.2f} {row[2]:>10.2f} "
                  f"{row[3]:>10.2f} {revisions(store):>9}", flush=True)
    finally:
        fx.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    new_ms, _, ms_304, ms_200 = (statistics.median(column) for column in zip(*rows, strict=True))
    print(f"\nper article (medians): a new article {new_ms:.2f} ms CPU; a revisit answered 304 "
          f"{ms_304:.2f} ms (x{ms_304 / new_ms:.2f} of a new one), answered 200 {ms_200:.2f} ms "
          f"(x{ms_200 / new_ms:.2f})")
    for count, schedule in ((12, "6 h interval, no backoff"), (4, "the default backoff")):
        print(f"{count} revisits in 3 d ({schedule}), all 304: "
              f"+{count * ms_304 / new_ms:.0%} of the article's first crawl; all 200: "
              f"+{count * ms_200 / new_ms:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
