"""Shared test fixtures: the demo outlet on loopback, the same served by nginx
(tests/nginx_outlet.py), running the `crawler` command, and a private redis-server
(tests/redis_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from nginx_outlet import CORPUS, CORPUS_PAGES, NginxOutlet, NginxUnavailable, find_nginx, has_corpus
from pg_server import NoPostgres, postgres_server
from redis_server import redis_server, redis_server_factory, redis_url  # noqa: F401

from crawler.demo import DemoOutlet
from crawler.storage import open_store

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Install the reactor a crawl runs on before any test can import Twisted's default.

    Components and ``get_crawler`` check the installed reactor against TWISTED_REACTOR,
    and anything that touches ``twisted.internet.reactor`` (a ``LoopingCall`` even with
    its own clock) installs the default one: without this, a test's outcome would depend
    on which tests ran before it.
    """
    from scrapy.utils.reactor import install_reactor

    from crawler import settings as project_settings

    install_reactor(project_settings.TWISTED_REACTOR)
#: settings that keep a test crawl quick on loopback (a hanging mirror costs one timeout)
FAST = ["-s", "DOWNLOAD_TIMEOUT=3", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO"]


#: the outlet the component tests crawl: two mirrors, one section
NEWS_MIRRORS = ("https://www.news.example", "https://news-mirror.example")
NEWS_OUTLET_FILE = f"""
name: news
mirrors: [{NEWS_MIRRORS[0]}, {NEWS_MIRRORS[1]}]
sections: {{world: /world}}
article_url: '^/a/\\d+'
"""


def crawler_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
    env.update(extra)
    return env


def run_crawler(*args: str, timeout: float = 240, cwd: Path | None = None,
                **env: str) -> subprocess.CompletedProcess:
    """Run `crawler ARGS...` as a user would, in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", *args], capture_output=True, text=True,
        timeout=timeout, cwd=cwd or REPO, env=crawler_env(**env),
    )


def stored_records(store_uri: str, outlet: str | None = None) -> list[dict]:
    store = open_store(store_uri)
    try:
        return list(store.read(outlet))
    finally:
        store.close()


def export_records(store_uri: str) -> list[dict]:
    result = run_crawler("export", "--store", store_uri)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def project_crawler(spidercls=None, **settings):
    """A crawler of the project's settings with ``settings`` over them, as ``get_crawler``
    builds one: its components can be built from it, and nothing runs."""
    from scrapy.utils.test import get_crawler

    from crawler import settings as project_settings

    project = {k: v for k, v in vars(project_settings).items() if k.isupper()}
    return get_crawler(spidercls, settings_dict={**project, **settings})


def leasing_scheduler(url: str, **settings):
    """A worker's scheduler on its own, on the Redis at ``url`` (no engine, no heartbeat),
    with Scrapy's default settings but the scheduler's (its requests need no outlet file)."""
    from scrapy.utils.test import get_crawler

    from crawler import settings as defaults
    from crawler.distributed.keys import RedisKeys
    from crawler.distributed.queue import OutletQueues
    from crawler.distributed.scheduler import LeasingScheduler

    names = ("WORKER_HEARTBEAT", "WORKER_TIMEOUT", "REDIS_RETRY_MAX", "SCHEDULER_IDLE_POLL",
             "SCHEDULER_PUSH_BATCH", "SCHEDULER_TAKE_BATCH", "SCHEDULER_ACK_DELAY")
    crawler = get_crawler(settings_dict={
        **{name: getattr(defaults, name) for name in names}, "REDIS_URL": url,
        "DUPEFILTER_CLASS": "crawler.distributed.dupefilter.CompactDupeFilter", **settings,
    })
    spider = crawler._create_spider()
    scheduler = LeasingScheduler.from_crawler(crawler)
    scheduler.spider = spider
    scheduler.queues = OutletQueues(scheduler.server, RedisKeys.from_settings(crawler.settings),
                                    scheduler.worker, spider)
    return scheduler


def outlet_crawler(tmp_path: Path, outlet_file: str, outlet: str, **settings):
    """A crawler of the project's settings for the one outlet in ``outlet_file``, with its
    spider and stats open: for testing the components over it."""
    from crawler.spiders.outlet import OutletSpider

    (tmp_path / f"{outlet}.yaml").write_text(outlet_file)
    crawler = project_crawler(OutletSpider, **{
        "OUTLETS_DIR": str(tmp_path), "STORE_URI": f"sqlite:///{tmp_path}/c.db", **settings})
    crawler.spider = crawler._create_spider(outlet=outlet)
    crawler.stats.open_spider()
    return crawler


@pytest.fixture
def demo_outlet(tmp_path):
    """Start a demo outlet: ``demo_outlet("dead", "healthy", articles=60)``."""
    started = []

    def start(*behaviours: str, **options) -> DemoOutlet:
        fx = DemoOutlet(tmp_path / f"outlets{len(started)}", behaviours=behaviours, **options)
        started.append(fx.start())
        return fx

    yield start
    for fx in started:
        fx.stop()


@pytest.fixture
def nginx_outlet(tmp_path):
    """Start an outlet served by nginx: ``nginx_outlet("dead", "healthy", pages="corpus")``
    (see :class:`nginx_outlet.NginxOutlet` for the options). Skips the test when nginx, or
    for ``pages="corpus"`` its corpus (the AEB corpus by default), is not there."""
    try:
        find_nginx()
    except NginxUnavailable as exc:
        pytest.skip(str(exc))
    started: list[NginxOutlet] = []

    def start(*behaviours: str, **options) -> NginxOutlet:
        if options.get("pages") == CORPUS_PAGES and not has_corpus(options.get("corpus", CORPUS)):
            pytest.skip(f"corpus not found at {options.get('corpus', CORPUS)}")
        fx = NginxOutlet(tmp_path / f"nginx-outlets{len(started)}", behaviours, **options)
        started.append(fx)
        return fx.start()

    yield start
    for fx in started:
        fx.stop()


# -- distributed mode -----------------------------------------------------------------------


class Worker:
    """A `crawler worker` process, logging to a file."""

    def __init__(self, redis: str, store: str, outlet_dir: Path, log: Path,
                 *settings: str, metrics_port: int | None = None) -> None:
        args = [sys.executable, "-m", "crawler.cli", "worker", "--redis", redis,
                "--store", store, "--outlets-dir", str(outlet_dir), *FAST, *settings]
        if metrics_port is not None:
            args += ["--metrics-port", str(metrics_port)]
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        cwd=REPO, env=crawler_env())

    def stop(self, sig: int, timeout: float = 60) -> float:
        """Send ``sig``; returns the seconds the worker took to exit. A SIGTERM waits until
        the worker runs (its handler is installed): one still importing would just die."""
        import signal
        import time

        if sig == signal.SIGTERM:
            wait_for(lambda: self.process.poll() is not None
                     or "taking work from Redis" in self.output(), 60, "the worker to start")
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout)
        self._log_file.close()
        return time.monotonic() - started

    def output(self) -> str:
        return self.log.read_text()


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll ``condition`` until it returns something true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def workers(tmp_path):
    """Start workers: ``workers(redis, store, outlet_dir, *settings)``; all are killed at
    the end of the test."""
    import signal

    started: list[Worker] = []

    def start(redis: str, store: str, outlet_dir: Path, *settings: str,
              metrics_port: int | None = None) -> Worker:
        log = tmp_path / f"worker{len(started)}.log"
        worker = Worker(redis, store, outlet_dir, log, *settings, metrics_port=metrics_port)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL)


def store_count(store_uri: str) -> int:
    store = open_store(store_uri)
    try:
        return store.count()
    finally:
        store.close()


# -- PostgreSQL ------------------------------------------------------------------------------


def skip_without_postgres(stack: ExitStack, context):
    """Enter a tests/pg_server.py context, or skip the test when there is no PostgreSQL."""
    try:
        return stack.enter_context(context)
    except NoPostgres as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")


@pytest.fixture(scope="module")
def pg():
    """The shared PostgreSQL server when it answers, else a private one."""
    with ExitStack() as stack:
        yield skip_without_postgres(stack, postgres_server())


@pytest.fixture
def pg_uri(pg):
    """A fresh, empty database."""
    with pg.database() as uri:
        yield uri
