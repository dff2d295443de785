"""Extraction in worker processes, with a time limit per page (trafilatura has none of its
own: a pathological page can run for minutes). A page over the limit costs its worker, which
is killed and replaced, and the caller gets :class:`ExtractionTimeout`.

The workers import :mod:`crawler.extraction.article` and trafilatura, nothing of the crawling
side (Scrapy, asyncio, pydantic and the outlet files): each crawl pays for their start-up once.
The limit counts only the time this process could wait: a freeze of the whole crawl is no
overrun (:func:`~crawler.core.stalls.wait_without_stalls`), which a pool library measuring
wall-clock time from its own thread would count against the page.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from crawler.core.stalls import wait_without_stalls
from crawler.extraction.article import Extracted, extract_article
from crawler.extraction.boilerplate import BoilerplateRules, PlainBoilerplate
from crawler.extraction.options import DEFAULT_OPTIONS, ExtractionOptions
from crawler.extraction.selectors import PlainSelectors, SelectorRules


class ExtractionTimeout(Exception):
    """The page took longer than the pool's time limit; its worker was replaced."""


class ExtractionError(Exception):
    """Extraction crashed (an exception in trafilatura, or the worker process died)."""


def _context() -> multiprocessing.context.BaseContext:
    # Never fork: the crawling process runs Twisted and its threads. A forkserver that has
    # imported trafilatura once starts (and after a timeout, replaces) workers quickly.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["crawler.extraction.article", "trafilatura"])
        return context
    return multiprocessing.get_context("spawn")


def _serve(conn: Connection) -> None:
    """Worker loop: extract_article's arguments in, ("ok", result) or ("error", msg) out."""
    # Ctrl+C reaches the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # trafilatura warns about every page it discards; without handlers that goes to stderr
    logging.getLogger().addHandler(logging.NullHandler())
    conn.send("ready")  # imports are done: from here on the time limit is the page's alone
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if job is None:
            return
        try:
            reply = ("ok", extract_article(*job))
        except Exception as exc:  # noqa: BLE001 - reported to the caller, the worker lives on
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


#: seconds a new worker may take to import trafilatura (spawn) before it is given up
_STARTUP_TIMEOUT = 120.0


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_conn,), name="crawler-extraction", daemon=True
        )
        self.process.start()
        child_conn.close()
        try:
            ready = self.conn.poll(_STARTUP_TIMEOUT) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise ExtractionError("an extraction worker failed to start")

    def stop(self, grace: float = 1.0) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(grace)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()
        self.process.close()


class ExtractorPool:
    """Runs :func:`extract_article` in worker processes with a time limit per page.

    ``extract`` is awaited inside the running asyncio loop; each call waits in an executor
    thread (one per worker) so the loop never blocks. Workers start on first use and are
    reused; one that overruns ``timeout`` is killed and replaced by the next call. The time
    this process stood still is not counted (:func:`~crawler.core.stalls.wait_without_stalls`).
    ``processes=0`` extracts inline in the calling thread, without a time limit.
    """

    def __init__(self, processes: int, timeout: float,
                 options: ExtractionOptions = DEFAULT_OPTIONS) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.processes = processes
        self.timeout = timeout
        self.options = options
        self._closed = False
        self._slots: queue.SimpleQueue[list[_Worker | None]] = queue.SimpleQueue()
        self._all_slots: list[list[_Worker | None]] = []
        self._executor: ThreadPoolExecutor | None = None
        if processes:
            self._context = _context()
            self._executor = ThreadPoolExecutor(processes, thread_name_prefix="extraction")
            for _ in range(processes):
                slot: list[_Worker | None] = [None]
                self._all_slots.append(slot)
                self._slots.put(slot)

    async def extract(
        self,
        body: bytes | str,
        url: str,
        boilerplate: BoilerplateRules | None = None,
        encoding: str | None = None,
        selectors: SelectorRules | None = None,
    ) -> Extracted | None:
        import asyncio  # here: the workers import this module and never need it

        if self._closed:
            raise RuntimeError("the extractor pool is closed")
        job = (body, url, PlainBoilerplate.of(boilerplate), encoding,
               PlainSelectors.of(selectors), self.options)
        if self._executor is None:
            try:
                return extract_article(*job)
            except Exception as exc:
                raise ExtractionError(f"{type(exc).__name__}: {exc}") from exc
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._extract_in_worker, job)

    def _extract_in_worker(self, job: tuple) -> Extracted | None:
        # at most `processes` executor threads run this, so a slot is always free
        slot = self._slots.get()
        try:
            worker = slot[0]
            if worker is None or not worker.process.is_alive():
                slot[0] = None
                if worker is not None:  # died while idle (killed from outside, out of memory)
                    worker.kill()
                worker = slot[0] = _Worker(self._context)
            try:
                worker.conn.send(job)
                # the limit is on the time this process could wait: a pause of the whole
                # crawl (a paused container, SIGSTOP) is no overrun of the page
                ready = wait_without_stalls(worker.conn.poll, self.timeout, time.monotonic)
                if not ready:
                    slot[0] = None
                    worker.kill()
                    raise ExtractionTimeout(f"extraction took over {self.timeout:g} s: {job[1]}")
                status, value = worker.conn.recv()
            except (EOFError, OSError) as exc:
                slot[0] = None
                worker.kill()
                raise ExtractionError(f"extraction worker died on {job[1]}") from exc
        finally:
            self._slots.put(slot)
        if status == "error":
            raise ExtractionError(value)
        return value

    def worker_pids(self) -> list[int]:
        """Process ids of the workers running now."""
        pids = []
        for slot in self._all_slots:
            worker = slot[0]
            with contextlib.suppress(ValueError):  # closed by a thread meanwhile
                if worker is not None and worker.process.is_alive():
                    pids.append(worker.process.pid)
        return pids

    def close(self) -> None:
        """Stops and reaps the workers; waits for extractions in progress (up to ``timeout``)."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        for slot in self._all_slots:
            worker, slot[0] = slot[0], None
            if worker is not None:
                worker.stop()

    def __enter__(self) -> ExtractorPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
