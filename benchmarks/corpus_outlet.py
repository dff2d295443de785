"""An outlet of real article pages on loopback: the AEB corpus behind generated listings.

    .venv/bin/python benchmarks/corpus_outlet.py [--copies 6] [--behaviours dead,healthy]
                                                 [--dir DIR]

The site is :class:`crawler.demo.corpus.CorpusSite`: each of the corpus's 88 pages (read at
start from the corpus beside the repository, never copied into the project) is served, byte
for byte, under ``--copies`` article paths ``/news/2024/01/01/<n>/a``; four sections list
them, each listing page linking the next with ``rel="next"``; ``robots.txt`` allows
everything. The mirrors are :class:`crawler.demo.server.MirrorServer` instances, one per
behaviour, in the outlet file's order (canonical first). ``tests/nginx_outlet.py`` serves the
same site from nginx.

Prints the outlet file, one line per mirror (``URL behaviour``), ``note:`` lines, then
``N articles expected from a full crawl``; serves until terminated.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
from pathlib import Path

import yaml
from aeb import CORPUS

from crawler.demo.corpus import OUTLET_NAME, CorpusSite, has_corpus, outlet_document
from crawler.demo.server import BEHAVIOURS, DEAD, HEALTHY, MirrorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=6, help="article paths per corpus page")
    parser.add_argument("--behaviours", default=f"{DEAD},{HEALTHY}",
                        help=f"one mirror each, in preference order ({', '.join(BEHAVIOURS)})")
    parser.add_argument("--dir", type=Path, default=None, help=f"where to write {OUTLET_NAME}.yaml")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    if not has_corpus(args.corpus):
        print(f"the AEB corpus is not at {args.corpus} (expected ground-truth.json and html/)",
              file=sys.stderr)
        return 2
    if args.copies < 1:
        parser.error("--copies must be at least 1")

    site = CorpusSite(args.corpus, args.copies)
    behaviours = [b.strip() for b in args.behaviours.split(",") if b.strip()]
    servers = [MirrorServer(site, behaviour) for behaviour in behaviours]  # type: ignore[arg-type]
    directory = args.dir or Path(tempfile.mkdtemp(prefix=f"{OUTLET_NAME}-"))
    directory.mkdir(parents=True, exist_ok=True)
    outlet_file = directory / f"{OUTLET_NAME}.yaml"
    document = outlet_document(site, [server.base_url for server in servers])
    outlet_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    for server in servers:
        server.start()
    try:
        print(outlet_file, flush=True)
        for server in servers:
            print(f"  {server.base_url}  {server.behaviour}", flush=True)
        print(f"note: {len(site.pages)} corpus pages x {site.copies} copies, "
              f"{site.average_size / 1000:.0f} KB on average", flush=True)
        print(f"  {site.articles} articles expected from a full crawl; Ctrl-C to stop",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
