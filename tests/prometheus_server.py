"""A private Prometheus server for tests.

:class:`PrometheusServer` runs the real ``prometheus`` binary on a free loopback port with
its storage in a temporary folder, scraping the targets it is given (``host:port`` of
``/metrics`` endpoints) every second, and answers queries through the HTTP API. Nothing of
the machine's own Prometheus set-up is used: no system service, no port 9090, no
/var/lib/prometheus.

The binaries come from Debian's ``prometheus`` package (``apt-get install -y prometheus``,
which ``.ci/run`` does), or from $PROMETHEUS / $PROMTOOL. Without them
:func:`require_prometheus` skips the calling test and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from mirakuru import HTTPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

# a free loopback port outside the IANA-registered ones, so never 9090
from port_for import select_random as free_loopback_port

START_TIMEOUT = 30

T = TypeVar("T")


class PrometheusUnavailable(RuntimeError):
    """No ``prometheus`` / ``promtool`` binary can be found."""


def find_binary(name: str) -> str:
    """Path of ``name`` (prometheus or promtool): $NAME in capitals, then $PATH, then
    /usr/bin."""
    candidates = [os.environ.get(name.upper()), shutil.which(name), f"/usr/bin/{name}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise PrometheusUnavailable(
        f"no {name} binary: install Debian's package with `apt-get install -y prometheus` "
        f"(.ci/run does) or set ${name.upper()}"
    )


def require_prometheus() -> tuple[str, str]:
    """``(prometheus, promtool)`` paths, or skip the calling test with the reason."""
    import pytest

    try:
        return find_binary("prometheus"), find_binary("promtool")
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))


class PrometheusServer:
    """One private ``prometheus`` process on 127.0.0.1.

    ``targets`` are scraped as job ``job`` (the alerts and dashboard select
    ``job="crawler-workers"``); ``rule_files`` are loaded and evaluated every
    ``evaluation_interval``.
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        job: str = "crawler-workers",
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: Iterable[str | Path] = (),
        binary: str | None = None,
    ) -> None:
        for target in targets:
            host = target.rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise ValueError(f"target {target} is not on loopback")
        self.binary = binary or find_binary("prometheus")
        self.targets = list(targets)
        self.job = job
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = [str(Path(f).resolve()) for f in rule_files]
        self.port: int | None = None
        self.executor: HTTPExecutor | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="prometheus-")
        self.dir = Path(self._tmp.name)

    # -- configuration and addresses ------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]},
            ],
        }

    @property
    def config_file(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def logfile(self) -> Path:
        return self.dir / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"http://127.0.0.1:{self.port}"

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> PrometheusServer:
        """Start the server and wait until /-/ready answers 200."""
        if self.executor is not None:
            raise RuntimeError("the server is already running")
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        # A free port can be taken between choosing it and binding it: choose again.
        for _ in range(5):
            port = free_loopback_port()
            with self.logfile.open("ab") as log:
                executor = HTTPExecutor(
                    [
                        self.binary,
                        f"--config.file={self.config_file}",
                        f"--storage.tsdb.path={self.dir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        "--log.level=info",
                    ],
                    url=f"http://127.0.0.1:{port}/-/ready", method="GET", status=200,
                    timeout=START_TIMEOUT, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
                try:
                    executor.start()
                except (AlreadyRunning, ProcessExitedWithError):
                    if "address already in use" in self.log_text():
                        continue
                    raise RuntimeError(f"prometheus exited at start:\n{self.log_tail()}") from None
                except TimeoutExpired:
                    raise RuntimeError(
                        f"prometheus not ready after {START_TIMEOUT} s:\n{self.log_tail()}"
                    ) from None
            self.executor, self.port = executor, port
            return self
        raise RuntimeError(f"prometheus found no free port; see {self.logfile}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within START_TIMEOUT."""
        executor, self.executor = self.executor, None
        if executor is not None:
            executor.stop()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- HTTP API -------------------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/PATH; the ``data`` of a successful answer, else RuntimeError."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now: the result's samples (``[{"metric": ..., "value": ...}]``)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def active_targets(self) -> list[dict[str, Any]]:
        return self.api("targets")["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return self.api("rules")["groups"]

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params = {"match[]": match} if match else {}
        return self.api(f"label/{label}/values", **params)

    def wait_for(self, probe: Callable[[], T], timeout: float = 60.0, interval: float = 0.5,
                 what: str = "condition") -> T:
        """Call ``probe`` until it returns something truthy; that value, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} not met within {timeout} s")
            time.sleep(interval)
