"""Shared test fixtures: the demo outlet on loopback, running the `crawler` command, and a
private redis-server (tests/redis_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import redis_server, redis_server_factory, redis_url  # noqa: F401

from crawler.demo import DemoOutlet
from crawler.storage import open_store

REPO = Path(__file__).resolve().parents[1]
#: settings that keep a test crawl quick on loopback (a hanging mirror costs one timeout)
FAST = ["-s", "DOWNLOAD_TIMEOUT=3", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=INFO"]


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
