"""The processes a crawl benchmark runs: the outlet server it crawls, the CPU of the crawler
processes and everything under them, and the articles they stored.

Shared by the benchmark scripts beside it, which import it as ``processes`` (a script's own
folder is first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from crawler.demo.site import PER_PAGE as DEMO_PER_PAGE

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PR_SET_CHILD_SUBREAPER = 36


# -- CPU of the crawler processes and their descendants --------------------------------------


def become_subreaper() -> bool:
    """Orphaned descendants (the forkserver, its workers) are reparented here, not to init,
    so their CPU reaches this process's RUSAGE_CHILDREN once reaped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children(exclude: set[int]) -> list[int]:
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry.name))
    return found


def reap_orphans(exclude: set[int], deadline: float = 30.0) -> None:
    """Wait for the descendants the crawlers left behind (reparented here) and reap them."""
    until = time.monotonic() + deadline
    while pids := _children(exclude):
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > until:
            print(f"warning: descendants {pids} still running; their CPU is not counted",
                  file=sys.stderr)
            return
        time.sleep(0.05)


class TreeSampler:
    """Samples, from /proc, the CPU of every process under this one (except ``exclude`` and
    their descendants) while it runs: a lower bound (CPU after the last sample is missed) that
    shows RUSAGE_CHILDREN missing nothing, and which processes the CPU went to."""

    def __init__(self, exclude: set[int], interval: float = 0.1) -> None:
        self.exclude = exclude
        self.interval = interval
        #: pid -> (user+sys seconds at the last sample, command line)
        self.seen: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu(self) -> float:
        return sum(cpu for cpu, _ in self.seen.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for pid in _descendants(os.getpid(), self.exclude):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if pid in self.seen:  # a zombie has no command line left
                    cpu = max(cpu, self.seen[pid][0])
                    command = command or self.seen[pid][1].encode()
                self.seen[pid] = (cpu, command.decode(errors="replace").strip())


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _descendants(root: int, exclude: set[int]) -> set[int]:
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():  # any thread may have forked
                for child in map(int, (task / "children").read_text().split()):
                    if child not in found and child not in exclude:
                        found.add(child)
                        todo.append(child)
    return found


# -- the outlet server -----------------------------------------------------------------------


@dataclass
class OutletServer:
    process: subprocess.Popen
    outlet_dir: Path
    name: str
    mirrors: list[tuple[str, str]]
    expected: int
    #: what the server says about its pages (the corpus outlet: links it added)
    notes: list[str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def demo_command(articles: int, behaviours: str, directory: Path,
                 delay: float | None = None) -> list[str]:
    """The demo outlet's server; ``delay``: seconds it waits before each answer."""
    # enough listing pages per section to reach every article
    pages = -(-articles // DEMO_PER_PAGE) + 1
    command = [
        PYTHON, "-m", "crawler.demo.server", "--articles", str(articles),
        "--behaviours", behaviours, "--dir", str(directory), "--max-section-pages", str(pages),
    ]
    if delay is not None:
        command += ["--delay", str(delay)]
    return command


def start_server(command: list[str]) -> OutletServer:
    """Start an outlet server process and read what it serves from its first lines: the
    outlet file, ``URL behaviour`` per mirror, ``note: ...`` lines, ``N articles expected``."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    mirrors: list[tuple[str, str]] = []
    notes: list[str] = []
    outlet_file = Path(process.stdout.readline().strip())
    while True:
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise RuntimeError(f"the outlet server exited ({process.returncode})")
        words = line.split()
        if words[0] == "note:":
            notes.append(line.strip().removeprefix("note: "))
        elif words[1:3] == ["articles", "expected"]:
            expected = int(words[0])
            break
        else:
            mirrors.append((words[0], words[1]))
    return OutletServer(process, outlet_file.parent, outlet_file.stem, mirrors, expected, notes)


# -- what the crawl stored -------------------------------------------------------------------


def count_stored(store: Path) -> int:
    """Articles in a SQLite store, read-only, so it can be polled while a crawl writes it;
    0 while the store is not created yet or is busy."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True,
                                                timeout=1)) as db:
            return db.execute("SELECT count(*) FROM articles").fetchone()[0]
    except sqlite3.Error:
        return 0
