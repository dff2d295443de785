"""Extraction quality and CPU cost on the AEB pages: ours against trafilatura alone.

    .venv/bin/python benchmarks/extraction.py [--rounds N] [--worst N]

Quality uses the benchmark's published scoring (see benchmarks/aeb.py). CPU time is
time.process_time() in this one process, per page, the best of --rounds passes after a
warm-up pass, so both extractors are measured under the same conditions in the same run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

import trafilatura
from aeb import CORPUS, Page, load_pages, score, worst

from crawler.extraction import extract_article

Extractor = Callable[[Page], str | None]


def ours(page: Page) -> str | None:
    extracted = extract_article(page.html, page.url, encoding="utf-8")
    return extracted.text if extracted else None


def trafilatura_defaults(page: Page) -> str | None:
    document = trafilatura.bare_extraction(page.html, url=page.url)
    return document.text if document else None


def trafilatura_precision(page: Page) -> str | None:
    document = trafilatura.bare_extraction(page.html, url=page.url, favor_precision=True)
    return document.text if document else None


EXTRACTORS: dict[str, Extractor] = {
    "extract_article (ours, with metadata)": ours,
    "trafilatura.bare_extraction defaults": trafilatura_defaults,
    "  reference: bare_extraction favor_precision": trafilatura_precision,
}


def cpu_ms_per_page(extractor: Extractor, pages: list[Page], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for page in pages:
            extractor(page)
        best = min(best, time.process_time() - start)
    return best / len(pages) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed passes (best is kept)")
    parser.add_argument("--worst", type=int, default=0, help="list our N worst pages")
    args = parser.parse_args()

    if not (CORPUS / "ground-truth.json").is_file():
        print(f"corpus not found at {CORPUS}: nothing to measure", file=sys.stderr)
        return 2
    # trafilatura logs every page it discards
    logging.disable(logging.WARNING)
    pages = load_pages()
    print(f"{len(pages)} pages from {CORPUS}\n")

    results = {}
    for name, extractor in EXTRACTORS.items():
        predictions = [extractor(page) for page in pages]  # also the warm-up pass
        pairs = ((page.truth, text) for page, text in zip(pages, predictions, strict=True))
        results[name] = (score(pairs), predictions)

    timings = {name: [] for name in EXTRACTORS}
    for _ in range(args.rounds):  # interleaved, so drift affects every extractor alike
        for name, extractor in EXTRACTORS.items():
            timings[name].append(cpu_ms_per_page(extractor, pages, 1))

    width = max(map(len, EXTRACTORS))
    print(f"{'':{width}}  {'F1':>6} {'prec':>6} {'recall':>6} {'CPU ms/page':>12}")
    for name in EXTRACTORS:
        quality = results[name][0]
        print(
            f"{name:{width}}  {quality.f1:6.3f} {quality.precision:6.3f} "
            f"{quality.recall:6.3f} {min(timings[name]):12.1f}"
        )
    ours_name, base_name = list(EXTRACTORS)[:2]
    ratio = min(timings[ours_name]) / min(timings[base_name])
    delta = results[ours_name][0].f1 - results[base_name][0].f1
    print(f"\nours / trafilatura defaults: CPU x{ratio:.2f}, F1 {delta:+.3f}")

    if args.worst:
        print(f"\nour {args.worst} worst pages (id, precision, recall):")
        rows = ((p.id, p.truth, text) for p, text in zip(pages, results[ours_name][1], strict=True))
        for page_id, precision, recall in worst(rows, args.worst):
            print(f"  {page_id[:16]}  {precision:.3f}  {recall:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
