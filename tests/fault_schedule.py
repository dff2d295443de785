"""Seeded fault schedules over real mirrors, and the conservation law they check.

A seed picks, for each (mirror, article path) of an outlet of three nginx mirrors serving
real corpus pages (tests/nginx_outlet.py, ``pages="corpus"``), one answer (:data:`WEIGHTS`):
the article most often, else a seizure notice, a bot check, a soft error page, a page that
links nowhere (all with 200), 404, 429 with ``Retry-After``, 503, a timeout, a reset
connection, a truncated gzip body, a redirect to the same path with a query the identity
drops, a redirect to the home page or a section, or a cookie gate. Listings, feeds and
robots.txt stay healthy; a seed may also take one mirror down for a few seconds
(:meth:`NginxOutlet.set_down`), and in distributed mode kill a worker, freeze one and
restart Redis.

The oracle reads only the schedule: an article some mirror serves whole must be stored once,
from such a mirror, with its text; one no mirror serves whole must not be stored and must end
with an outcome one of its answers explains. Nothing may stay unaccounted (neither stored
nor ended), and ``crawler crawl`` exits non-zero exactly when something was lost.

No pytest here: ``benchmarks/fault_schedules.py`` uses it too. Every answer is real nginx
configuration (``NginxMirror.extra``) and files; the timeout's upstream is a loopback socket
that listens and never accepts.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from nginx_outlet import BOTCHECK_PAGE, CORPUS, CORPUS_PAGES, NginxOutlet, overlap
from outcome_log import extension_setting, read_outcomes

from crawler.demo.server import SEIZED_PAGE
from crawler.ledger import LOST

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

# -- answers ---------------------------------------------------------------------------------

ARTICLE = "article"
SEIZED = "seized"
BOTCHECK = "botcheck"
SOFT_ERROR = "soft_error"
DEAD_END = "dead_end"
NOT_FOUND = "404"
TOO_MANY = "429"
UNAVAILABLE = "503"
TIMEOUT = "timeout"
RESET = "reset"
TRUNCATED = "truncated_gzip"
REDIRECT_SELF = "redirect_self"
REDIRECT_HOME = "redirect_home"
COOKIE_GATE = "cookie_gate"

#: how often a seed picks each answer for one (mirror, article), in percent
WEIGHTS: Mapping[str, int] = {
    ARTICLE: 60, SEIZED: 3, BOTCHECK: 3, SOFT_ERROR: 4, DEAD_END: 3, NOT_FOUND: 5,
    TOO_MANY: 3, UNAVAILABLE: 4, TIMEOUT: 3, RESET: 3, TRUNCATED: 3, REDIRECT_SELF: 3,
    REDIRECT_HOME: 2, COOKIE_GATE: 1,
}
#: answers that give a reader the whole article (a redirect or a cookie on the way)
WHOLE = frozenset({ARTICLE, REDIRECT_SELF, COOKIE_GATE})
#: answers whose page is no article: nothing may be stored from them
NOTICES = frozenset({SEIZED, BOTCHECK, SOFT_ERROR, DEAD_END, TRUNCATED})
#: the final outcomes each answer explains, for an article no mirror serves whole
EXPLAINS: Mapping[str, frozenset[str]] = {
    NOT_FOUND: frozenset({"not_found"}),
    REDIRECT_HOME: frozenset({"not_found"}),
    SOFT_ERROR: frozenset({"no_text", "short_text", "given_up"}),
    DEAD_END: frozenset({"no_text", "short_text", "given_up"}),
    **{answer: frozenset({"given_up"})
       for answer in (SEIZED, BOTCHECK, TOO_MANY, UNAVAILABLE, TIMEOUT, RESET, TRUNCATED)},
}

MIRRORS = 3
ARTICLES = 60
RETRY_AFTER = 3
#: crawl settings: a timeout costs little, a mirror out comes back soon
DOWNLOAD_TIMEOUT = 2
#: seconds a document may wait for a mirror: long enough for a few rounds of every mirror
#: out and back (a document given up sooner is named lost, honestly, but the oracle cannot
#: tell a short horizon from a mirror that never served it)
MAX_WAIT = 45
SETTINGS = ["-s", f"DOWNLOAD_TIMEOUT={DOWNLOAD_TIMEOUT}", "-s", "AUTOTHROTTLE_ENABLED=False",
            "-s", "LOG_LEVEL=INFO", "-s", "MIRROR_COOLDOWN=2"]
WORKER_SETTINGS = ["-s", f"DOCUMENT_GIVE_UP_AFTER={MAX_WAIT}", "-s", "WORKER_HEARTBEAT=1",
                   "-s", "WORKER_TIMEOUT=4", "-s", "REDIS_RETRY_MAX=1"]
STANDALONE, DISTRIBUTED = "standalone", "distributed"
MODES = (STANDALONE, DISTRIBUTED)
#: distributed disruptions a seed may pick
KILL, FREEZE, REDIS_RESTART = "kill", "freeze", "redis_restart"
FREEZE_SECONDS = 12.0
RUN_TIMEOUT = 240.0

SOFT_ERROR_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable</title></head>
<body><main><h1>Sorry, the page you requested is temporarily unavailable</h1>
<p>Our editors have been told. Please try again in a few minutes.</p>
<p><a href="/">Go to the home page</a></p></main></body></html>
"""
DEAD_END_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Notice</title></head>
<body><p>This content is not available at the moment.</p></body></html>
"""
#: the page each notice answer serves, for telling its text apart in what was stored
NOTICE_PAGES: Mapping[str, bytes] = {SEIZED: SEIZED_PAGE, BOTCHECK: BOTCHECK_PAGE,
                                     SOFT_ERROR: SOFT_ERROR_PAGE, DEAD_END: DEAD_END_PAGE}


def replay_command(mode: str, seed: int) -> str:
    return f"python benchmarks/fault_schedules.py --mode {mode} --seed {seed}"


# -- the schedule (pure) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Down:
    """A mirror answering 503 to everything for a while, from ``after`` s into the crawl."""

    mirror: int
    after: float
    seconds: float


@dataclass(frozen=True)
class Schedule:
    seed: int
    #: article path -> one answer per mirror, in mirror order
    answers: Mapping[str, tuple[str, ...]]
    downs: tuple[Down, ...] = ()
    #: distributed mode only: KILL, FREEZE, REDIS_RESTART
    disruptions: frozenset[str] = frozenset()

    def whole_on(self, path: str) -> list[int]:
        """The mirrors that serve the article whole."""
        return [i for i, answer in enumerate(self.answers[path]) if answer in WHOLE]

    def explains(self, path: str) -> frozenset[str]:
        """Outcomes the mirrors' answers explain, for an article none serves whole."""
        return frozenset().union(*(EXPLAINS.get(a, frozenset()) for a in self.answers[path]))

    def events(self, mode: str) -> str:
        downs = [f"m{d.mirror} down {d.seconds:.0f} s after {d.after:.0f} s" for d in self.downs]
        shaken = sorted(self.disruptions) if mode == DISTRIBUTED else []
        return ", ".join(downs + shaken)

    def describe(self, path: str) -> str:
        return "/".join(self.answers[path])


def article_paths(articles: int = ARTICLES) -> list[str]:
    """The corpus outlet's article paths (one copy of each page), in listing order."""
    return [f"/news/2024/01/01/{n}/a" for n in range(1, articles + 1)]


def make_schedule(seed: int, paths: Sequence[str], mirrors: int = MIRRORS,
                  weights: Mapping[str, int] = WEIGHTS) -> Schedule:
    rng = random.Random(seed)
    names, shares = list(weights), list(weights.values())
    answers = {path: tuple(rng.choices(names, shares, k=mirrors)) for path in paths}
    downs = ()
    if rng.random() < 0.5:
        downs = (Down(rng.randrange(mirrors), rng.uniform(2, 8), rng.uniform(3, 8)),)
    disruptions = frozenset(d for d in (KILL, FREEZE, REDIS_RESTART) if rng.random() < 0.5)
    return Schedule(seed, answers, downs, disruptions)


# -- the answers as nginx serves them -----------------------------------------------------------


def location(answer: str, path: str, files: Path, mirror: int, upstream: int) -> str | None:
    """The nginx ``location`` that gives ``answer`` at ``path`` (None: the site's page)."""
    serve = "try_files $uri/index.html =404;"
    body = {
        ARTICLE: None,
        SEIZED: f"default_type text/html; alias {files}/{SEIZED}.html;",
        BOTCHECK: f"default_type text/html; ssi on; alias {files}/{BOTCHECK}.html;",
        SOFT_ERROR: f"default_type text/html; alias {files}/{SOFT_ERROR}.html;",
        DEAD_END: f"default_type text/html; alias {files}/{DEAD_END}.html;",
        NOT_FOUND: "return 404;",
        TOO_MANY: f"add_header Retry-After {RETRY_AFTER} always; return 429;",
        UNAVAILABLE: "return 503;",
        # nginx waits longer than the crawler does: the crawler's timeout is what happens
        TIMEOUT: (f"proxy_pass http://127.0.0.1:{upstream}; proxy_connect_timeout 300s; "
                  "proxy_read_timeout 300s;"),
        RESET: "return 444;",
        TRUNCATED: (f"root {files}/truncated/m{mirror}; default_type text/html; gzip off; "
                    "gzip_static always;"),
        REDIRECT_SELF: f'if ($arg_ref = "") {{ return 302 "$uri?ref=m{mirror}"; }} {serve}',
        REDIRECT_HOME: f"return 302 {'/' if len(path) % 2 else '/section/world'};",
        COOKIE_GATE: (f'if ($cookie_gate != "passed") {{ return 302 "/gate?to=$uri"; }} '
                      f"{serve}"),
    }[answer]
    return None if body is None else f"location = {path} {{ {body} }}"


#: the cookie gate's check page: sets the cookie and sends the reader back
GATE = ('location = /gate { add_header Set-Cookie "gate=passed; Path=/"; '
        "return 302 $arg_to; }")


def truncated(body: bytes, keep: float = 0.4) -> bytes:
    """The page gzipped, cut after ``keep`` of its compressed bytes."""
    packed = gzip.compress(body)
    return packed[: max(20, int(len(packed) * keep))]


def page_text(page: bytes) -> str:
    """The words of a notice page, for comparing with a stored text."""
    return " ".join(re.sub(r"<[^>]+>", " ", page.decode("utf-8", "replace")).split())


class FaultyOutlet:
    """The outlet of a schedule: three nginx mirrors of ``ARTICLES`` corpus pages, each
    article answered on each mirror as the schedule says."""

    def __init__(self, directory: Path, seed: int, corpus: Path = CORPUS,
                 weights: Mapping[str, int] = WEIGHTS) -> None:
        self.directory = directory
        self.fx = NginxOutlet(directory / "outlet", ("healthy",) * MIRRORS, pages=CORPUS_PAGES,
                              corpus=corpus, corpus_pages=slice(0, ARTICLES), copies=1)
        if self.fx.site.article_paths() != article_paths():
            raise AssertionError("the corpus outlet's article paths changed")
        self.schedule = make_schedule(seed, article_paths(), weights=weights)
        self._upstream: socket.socket | None = None
        self._timers: list[threading.Timer] = []

    def __enter__(self) -> FaultyOutlet:
        self.fx.start()
        self._keep_to_loopback()
        # accepts nothing: connections wait in the backlog, and nginx for an answer
        self._upstream = socket.socket()
        self._upstream.bind(("127.0.0.1", 0))
        self._upstream.listen(4096)
        files = self.fx.server_dir / "faults"
        self._write_files(files)
        upstream = self._upstream.getsockname()[1]
        for mirror in self.fx.mirrors_:
            mirror.extra.append(GATE)
            for path, answers in self.schedule.answers.items():
                rule = location(answers[mirror.index], path, files, mirror.index, upstream)
                if rule is not None:
                    mirror.extra.append(rule)
        self.fx.reload()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for timer in self._timers:
            timer.cancel()
        self.fx.stop()
        if self._upstream is not None:
            self._upstream.close()

    def _keep_to_loopback(self) -> None:
        # the corpus pages name their real sites (canonical links): no mirror discovery, so
        # that nothing is looked up or fetched off loopback
        document = yaml.safe_load(self.fx.outlet_file.read_text(encoding="utf-8"))
        document["mirror_discovery"] = "off"
        self.fx.outlet_file.write_text(yaml.safe_dump(document, sort_keys=False),
                                       encoding="utf-8")

    def _write_files(self, files: Path) -> None:
        files.mkdir(parents=True, exist_ok=True)
        for answer, page in NOTICE_PAGES.items():
            (files / f"{answer}.html").write_bytes(page)
        for path, answers in self.schedule.answers.items():
            for index, answer in enumerate(answers):
                if answer == TRUNCATED:
                    target = files / "truncated" / f"m{index}" / f"{path.lstrip('/')}.gz"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(truncated(self.fx.site.article_body(path) or b""))

    def start_downs(self) -> None:
        """Start the schedule's mirror-wide events, timed from now."""
        for down in self.schedule.downs:
            for at, state in ((down.after, True), (down.after + down.seconds, False)):
                timer = threading.Timer(at, self.fx.set_down, (down.mirror, state))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def mirror_index(self, base_url: str | None) -> int | None:
        mirrors = list(self.fx.mirrors)
        return mirrors.index(base_url) if base_url in mirrors else None


# -- the oracle (pure) -----------------------------------------------------------------------


@dataclass
class Findings:
    """What a run broke of the conservation law, each as a line naming the article."""

    mode: str
    seed: int
    listed: int = 0
    stored: int = 0
    #: listed articles neither stored nor ended
    unaccounted: list[str] = field(default_factory=list)
    #: served whole somewhere, not stored (or stored more than once, or with other text)
    missing: list[str] = field(default_factory=list)
    #: stored from an answer that is no article (a notice, a truncated body)
    from_notice: list[str] = field(default_factory=list)
    #: ended with an outcome none of its answers explains
    unexplained: list[str] = field(default_factory=list)
    #: something still queued, leased or waiting when the run was over
    still_open: list[str] = field(default_factory=list)
    #: what else the seed did: mirrors down for a while, workers killed or frozen
    events: str = ""
    #: standalone: the exit status, and whether it said what was lost
    exit_code: int | None = None
    honest_exit: bool | None = None
    folder: Path | None = None
    #: how many of each kind of problem: what tells one bug from another across seeds
    kinds: Counter[str] = field(default_factory=Counter)

    def problems(self) -> list[str]:
        lines = [f"unaccounted (never ended): {p}" for p in self.unaccounted]
        lines += [f"lost: {line}" for line in self.missing]
        lines += [f"stored from a non-article: {line}" for line in self.from_notice]
        lines += [f"unexplained end: {line}" for line in self.unexplained]
        lines += [f"open at the end: {line}" for line in self.still_open]
        if self.honest_exit is False:
            lines.append(f"dishonest exit status {self.exit_code}")
        return lines

    @property
    def ok(self) -> bool:
        return not self.problems()

    def report(self) -> str:
        head = (f"{self.mode} seed {self.seed}: {self.stored} stored of {self.listed} listed"
                f"{'' if self.exit_code is None else f', exit {self.exit_code}'}"
                f"{f' ({self.events})' if self.events else ''}")
        lines = [head, *(f"  {line}" for line in self.problems())]
        if not self.ok:
            lines.append(f"  replay: {replay_command(self.mode, self.seed)}")
        if self.folder is not None:
            lines.append(f"  run folder: {self.folder}")
        return "\n".join(lines)


def path_of(url: str) -> str:
    return urlsplit(url).path


def is_the_article(text: str | None, truth: str, reference: str) -> bool:
    """Whether a stored text is the article: near its annotated text, as the other tests
    ask, or, on a page whose whole extraction falls short of that, near what the whole page
    extracts to (a cut page's text is near neither)."""
    return overlap(truth, text) > 0.8 or overlap(reference, text) > 0.9


def judge(schedule: Schedule, mode: str, records: Sequence[Mapping], outcomes: Sequence[Mapping],
          truth: Mapping[str, tuple[str, str]], mirror_of: Mapping[str, int],
          exit_code: int | None = None) -> Findings:
    """The conservation law over one run: ``records`` stored, ``outcomes`` logged
    (``url``, ``outcome``), ``truth`` the annotated text of each article path and the text
    its whole page extracts to, ``mirror_of`` a mirror's index by base URL."""
    found = Findings(mode, schedule.seed, listed=len(schedule.answers),
                     events=schedule.events(mode))
    stored: dict[str, list[Mapping]] = defaultdict(list)
    for record in records:
        stored[path_of(record["canonical_url"])].append(record)
    ends: dict[str, list[str]] = defaultdict(list)
    for line in outcomes:
        if line.get("url"):
            ends[path_of(line["url"])].append(line["outcome"])
    found.stored = sum(1 for path in schedule.answers if stored.get(path))
    notices = {answer: page_text(page) for answer, page in NOTICE_PAGES.items()}
    lost = False
    for path, answers in schedule.answers.items():
        kept, ended = stored.get(path, []), [o for o in ends.get(path, []) if o != "stored"]
        if not kept and not ended:
            found.unaccounted.append(f"{path} ({schedule.describe(path)})")
            found.kinds["never ended"] += 1
            lost = True
            continue
        for record in kept:
            mirror = mirror_of.get(record.get("mirror") or "")
            answer = answers[mirror] if mirror is not None else "another host"
            if answer not in WHOLE:
                found.from_notice.append(f"{path} from m{mirror} ({answer}; answers "
                                         f"{schedule.describe(path)})")
                found.kinds[f"stored from {answer}"] += 1
            for name, text in notices.items():
                if overlap(text, record.get("text")) > 0.2:
                    found.from_notice.append(f"{path}: the text of the {name} page")
        whole = schedule.whole_on(path)
        if whole:
            if not kept:
                found.missing.append(f"{path} ended {','.join(ended)} though "
                                     f"m{whole[0]} serves it ({schedule.describe(path)})")
                found.kinds[f"served whole, ended {ended[-1]}"] += 1
                lost = True
            elif len(kept) > 1:
                found.missing.append(f"{path} stored {len(kept)} times")
                found.kinds["stored twice"] += 1
            elif not is_the_article(kept[0].get("text"), *truth[path]):
                found.missing.append(f"{path} stored with other text "
                                     f"({schedule.describe(path)})")
                found.kinds["served whole, stored with other text"] += 1
            continue
        unexplained = sorted(set(ended) - schedule.explains(path))
        if not kept and unexplained:
            found.unexplained.append(f"{path} ended {','.join(unexplained)} "
                                     f"({schedule.describe(path)})")
            found.kinds.update(f"{outcome}, unexplained" for outcome in unexplained)
        lost = lost or (not kept and bool(set(ended) & LOST))
    if exit_code is not None:
        found.exit_code = exit_code
        found.honest_exit = exit_code in (0, 1) and (exit_code == 1) == lost
        found.kinds["dishonest exit"] += not found.honest_exit
    return found


# -- runs ------------------------------------------------------------------------------------


def crawler_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def crawler_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawler.cli", *args]


def read_records(store: Path) -> list[dict]:
    if not store.exists():
        return []
    with contextlib.closing(sqlite3.connect(store)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM articles")]


@functools.cache
def whole_page_text(body: bytes) -> str:
    """What the crawler's extraction makes of the whole page."""
    from crawler.extraction import extract_article

    extracted = extract_article(body, "http://127.0.0.1/news/")
    return extracted.text if extracted is not None else ""


def judge_run(outlet: FaultyOutlet, mode: str, folder: Path,
              exit_code: int | None = None) -> Findings:
    fx = outlet.fx
    truth = {path: (fx.truth(path).text, whole_page_text(fx.site.article_body(path) or b""))
             for path in outlet.schedule.answers}
    mirror_of = {base: i for i, base in enumerate(fx.mirrors)}
    found = judge(outlet.schedule, mode, read_records(folder / "crawl.db"),
                  read_outcomes(folder / "outcomes"), truth, mirror_of, exit_code)
    found.folder = folder
    return found


def run_standalone(seed: int, folder: Path, corpus: Path = CORPUS,
                   weights: Mapping[str, int] = WEIGHTS) -> Findings:
    """``crawler crawl`` of the seed's outlet, to its end."""
    folder.mkdir(parents=True, exist_ok=True)
    with FaultyOutlet(folder, seed, corpus, weights) as outlet:
        args = crawler_command(
            "crawl", outlet.fx.name, "--outlets-dir", str(outlet.fx.outlet_dir),
            "--store", f"sqlite:///{folder / 'crawl.db'}", "--max-wait", f"{MAX_WAIT}s",
            *SETTINGS, *extension_setting(folder / "outcomes"))
        outlet.start_downs()
        with (folder / "crawl.log").open("w") as log:
            result = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    env=crawler_env(), timeout=RUN_TIMEOUT)
        return judge_run(outlet, STANDALONE, folder, result.returncode)


class _Workers:
    """The distributed run's ``crawler worker`` processes, each logging to its own file."""

    def __init__(self, folder: Path, args: list[str]) -> None:
        self.folder, self.args = folder, args
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = (self.folder / f"worker{len(self.processes)}.log").open("w")
        process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   env=crawler_env())
        log.close()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a frozen one must run to stop
                process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _open_work(client, prefix: str) -> list[str]:
    """What Redis still holds for the workers: queued, leased, waiting (empty when settled);
    Redis itself unreachable counts as open."""
    try:
        held = []
        for kind in ("queue", "inflight", "waiting"):
            for key in client.scan_iter(f"{prefix}:{kind}:*"):
                size = client.hlen(key) if kind == "inflight" else client.zcard(key)
                if size:
                    held.append(f"{key.decode()}: {size}")
        return held
    except Exception as exc:  # a restarting Redis
        return [f"Redis: {type(exc).__name__}"]


def _accounted(outlet: FaultyOutlet, folder: Path) -> int:
    records = {path_of(r["canonical_url"]) for r in _safe_records(folder / "crawl.db")}
    ended = {path_of(line["url"]) for line in read_outcomes(folder / "outcomes")
             if line.get("url")}
    return len((records | ended) & set(outlet.schedule.answers))


def _safe_records(store: Path) -> list[dict]:
    try:
        return read_records(store)
    except sqlite3.Error:  # a worker writing: read again at the next poll
        return []


def run_distributed(seed: int, folder: Path, corpus: Path = CORPUS,
                    weights: Mapping[str, int] = WEIGHTS) -> Findings:
    """``crawler schedule`` and two ``crawler worker`` processes on a private Redis (AOF on),
    with the seed's disruptions, until Redis holds nothing more, or ``RUN_TIMEOUT``."""
    from redis_server import RedisServer

    from crawler.distributed.keys import RedisKeys

    folder.mkdir(parents=True, exist_ok=True)
    prefix = RedisKeys().prefix
    with (FaultyOutlet(folder, seed, corpus, weights) as outlet,
          RedisServer(appendonly=True) as redis):
        fx = outlet.fx
        workers = _Workers(folder, crawler_command(
            "worker", "--redis", redis.url, "--store", f"sqlite:///{folder / 'crawl.db'}",
            "--outlets-dir", str(fx.outlet_dir), *SETTINGS, *WORKER_SETTINGS,
            *extension_setting(folder / "outcomes")))
        try:
            crew = [workers.start(), workers.start()]
            scheduled = subprocess.run(
                crawler_command("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                                "--redis", redis.url),
                capture_output=True, text=True, cwd=REPO, env=crawler_env(), timeout=60)
            if scheduled.returncode != 0:
                raise RuntimeError(f"crawler schedule failed: {scheduled.stderr}")
            outlet.start_downs()
            still_open = _drive(outlet, folder, redis, crew, workers, prefix)
        finally:
            workers.stop_all()
        found = judge_run(outlet, DISTRIBUTED, folder)
        found.still_open = still_open
        found.kinds["open at the end"] += bool(still_open)
        return found


def _drive(outlet: FaultyOutlet, folder: Path, redis, crew: list[subprocess.Popen],
           workers: _Workers, prefix: str) -> list[str]:
    """Carry out the disruptions as the crawl goes, then wait until Redis holds nothing
    more; returns what it still held at the deadline."""
    listed = len(outlet.schedule.answers)
    # each disruption once a share of the articles has ended, in this order
    pending = [(d, share) for d, share in ((KILL, 0.15), (FREEZE, 0.35), (REDIS_RESTART, 0.55))
               if d in outlet.schedule.disruptions]
    client = redis.client(socket_timeout=2, socket_connect_timeout=2)
    deadline = time.monotonic() + RUN_TIMEOUT
    settled_polls = 0
    while time.monotonic() < deadline:
        accounted = _accounted(outlet, folder)
        while pending and accounted >= pending[0][1] * listed:
            disruption = pending.pop(0)[0]
            if disruption == KILL:
                crew[0].kill()
                crew[0] = workers.start()
            elif disruption == FREEZE:
                crew[1].send_signal(signal.SIGSTOP)
                time.sleep(FREEZE_SECONDS)
                crew[1].send_signal(signal.SIGCONT)
            else:
                redis.restart(keep_data=True, kill=True)
        # nothing queued, leased or waiting: the crawl is over, whatever it accounted for
        held = _open_work(client, prefix)
        settled_polls = settled_polls + 1 if not held else 0
        if settled_polls >= 3:
            return []
        time.sleep(0.5)
    return _open_work(client, prefix)


RUNS = {STANDALONE: run_standalone, DISTRIBUTED: run_distributed}


def run(mode: str, seed: int, folder: Path, corpus: Path = CORPUS,
        weights: Mapping[str, int] = WEIGHTS) -> Findings:
    """One seed's run in ``mode``; ``weights`` other than :data:`WEIGHTS` make another
    family of schedules (only the article: the harness's own control)."""
    return RUNS[mode](seed, folder, corpus, weights)
