"""The image built and run: workers in containers (podman), scaled up, stopped, killed and
scaled down against the tests' own Redis, PostgreSQL and an nginx outlet.

The base image is made from Debian packages (mmdebstrap) and the project's image from
deploy/Dockerfile onto it, once per input hash (tests/podman_images.py); every container
uses the host's network, so all traffic stays on loopback. Skipped, with the reason, where
podman cannot run a container (not root, podman or mmdebstrap missing). Run with ``-s`` for
the figures: image size, build times, drain time, lease takeover, refetched documents.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml
from conftest import FAST, wait_for
from nginx_outlet import CORPUS
from podman_images import Podman, PodmanUnavailable, build_containerfile, crawler_images
from redis_server import free_loopback_port

from crawler.distributed.keys import RedisKeys

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
KEYS = RedisKeys()
UID = 10001
#: the worker drains within 30 s of SIGTERM; compose and Kubernetes give it 45
GRACE = 45
OUTLETS_MOUNT = "/etc/crawler/outlets"
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"
COMPOSE = REPO / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="session")
def podman() -> Podman:
    try:
        return Podman()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def images(podman):
    try:
        built = crawler_images(podman)
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))
    size = podman.image_size(built.image)
    base_size = podman.image_size(built.base)

    def took(seconds):
        return "found built" if seconds is None else f"built in {seconds:.0f} s"

    print(f"\nimages: base {base_size / 1e6:.0f} MB ({took(built.base_seconds)}), "
          f"crawler {size / 1e6:.0f} MB ({took(built.image_seconds)})")
    return built


@pytest.fixture
def names(podman):
    """``names("worker1")``: a container name of this test's own; all are removed after it."""
    token = secrets.token_hex(3)
    given: list[str] = []

    def name(role: str) -> str:
        given.append(f"crawler-test-{token}-{role}")
        return given[-1]

    yield name
    podman.remove(*given)


@pytest.fixture
def readable_outlets():
    """``readable_outlets(fx.outlet_file)``: a copy of outlet files that the image's user can
    read (tmp_path is root's, 0700), removed after the test."""
    made: list[Path] = []

    def copy(*outlet_files: Path) -> Path:
        made.append(Path(tempfile.mkdtemp(prefix="crawler-outlets-")))
        made[-1].chmod(0o755)
        for path in outlet_files:
            target = made[-1] / path.name
            target.write_bytes(path.read_bytes())
            target.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        return made[-1]

    yield copy
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


class Crew:
    """Containers of the crawler image on the host's network, configured by environment
    variables as deploy/ does."""

    def __init__(self, podman: Podman, image: str, names, redis: str, store: str,
                 outlets: Path) -> None:
        self.podman, self.image, self.names = podman, image, names
        self.env = {"CRAWLER_REDIS_URL": redis, "CRAWLER_STORE": store,
                    "CRAWLER_OUTLETS_DIR": OUTLETS_MOUNT}
        self.outlets = outlets

    def _options(self, env: dict[str, str]) -> list[str]:
        options = ["--network", "host", "--volume", f"{self.outlets}:{OUTLETS_MOUNT}:ro"]
        for key, value in {**self.env, **env}.items():
            options += ["--env", f"{key}={value}"]
        return options

    def run(self, *args: str, timeout: float = 120):
        """A one-off command in a container of its own, as `docker compose run --rm` does."""
        return self.podman("run", "--rm", *self._options({}), self.image, *args,
                           check=False, timeout=timeout)

    def start_worker(self, role: str) -> Worker:
        name = self.names(role)
        port = free_loopback_port()
        self.podman("run", "--detach", "--name", name, "--hostname", name,
                    "--stop-timeout", str(GRACE),
                    *self._options({"CRAWLER_METRICS_PORT": str(port)}),
                    self.image, "worker", *FAST)
        return Worker(self.podman, name, port)

    def status(self) -> dict:
        result = self.run("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


class Worker:
    def __init__(self, podman: Podman, name: str, metrics_port: int) -> None:
        self.podman, self.name, self.metrics_port = podman, name, metrics_port

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict:
        return self.podman.inspect(self.name)["State"]

    def started(self) -> bool:
        if not self.state()["Running"]:
            pytest.fail(f"{self.name} exited:\n{self.logs()[-3000:]}")
        return "taking work from Redis" in self.logs()

    def worker_id(self, status: dict) -> str | None:
        """The worker's id in Redis: its host name (the container's name), pid, a nonce."""
        ids = [w["worker"] for w in status["workers"] if w["worker"].startswith(self.name + "-")]
        return ids[0] if ids else None


def live_workers(status: dict) -> list[str]:
    return sorted(w["worker"] for w in status["workers"] if w["alive"])


def stored(pg_uri: str) -> tuple[int, set[str]]:
    with psycopg.connect(pg_uri) as conn:
        urls = [url for (url,) in conn.execute("SELECT canonical_url FROM articles")]
    return len(urls), set(urls)


def leased(redis_client, worker_id: str) -> int:
    return redis_client.hlen(KEYS.inflight(worker_id))


def settled(crew: Crew):
    def check() -> dict | None:
        state = crew.status()
        busy = any(o["queued"] or o["in_flight"] or o["waiting"]
                   for o in state["outlets"].values())
        return None if busy else state

    return check


# -- the image ----------------------------------------------------------------------------------


def test_the_image_runs_the_crawler_as_uid_10001_and_holds_only_the_crawler(
    podman, images, tmp_path
):
    image = images.image
    (config,) = json.loads(podman("image", "inspect", image).stdout)
    assert config["Config"]["User"] == f"{UID}:{UID}"
    # built in Docker's format: the HEALTHCHECK survives (OCI images have none)
    healthcheck = config.get("Healthcheck") or config["Config"].get("Healthcheck")
    assert healthcheck and "/metrics" in " ".join(healthcheck["Test"]), config["Config"]

    def run(*args: str, entrypoint: str | None = None, timeout: float = 120):
        # root in the container for the searches below: every directory can be read
        options = ["--entrypoint", entrypoint, "--user", "0"] if entrypoint else []
        result = podman("run", "--rm", "--network", "none", *options, image, *args,
                        check=False, timeout=timeout)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    user = podman("run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u")
    assert user.stdout.strip() == str(UID)
    assert "worker" in run("--help")
    assert "presstv" in run("outlets")
    # the demo serves its outlet on the container's own loopback: no network at all
    demo = podman("run", "--rm", "--network", "none", image, "demo", check=False, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "crawl finished" in demo.stdout + demo.stderr

    # no compiler, no test suites (the packages' or ours), nothing but the crawler's package
    ours = sorted({p.name for p in (REPO / "tests").iterdir() if p.is_file()} | {CORPUS.name})
    any_of_ours = " -o ".join(f"-name {shlex.quote(name)}" for name in ours)
    shell = f"""
        for tool in cc gcc g++ c++ clang tcc cpp make ld as; do command -v "$tool"; done
        ls -d /usr/lib/gcc/*/*/cc1 2>/dev/null
        find /opt/venv \\( -name conftest.py -o -type d \\( -name tests -o -name test \\
            -o -name _test \\) \\) -print
        find / -xdev \\( {any_of_ours} \\) -print
        echo ---
        cd {SITE_PACKAGES}/crawler && find . -type f ! -path '*/__pycache__/*' | sort
    """
    found, _, package = run("-c", shell, entrypoint="sh").partition("---\n")
    assert found.split() == []
    expected = sorted(
        f"./{p.relative_to(REPO / 'crawler')}" for p in (REPO / "crawler").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".yaml")
    )
    assert package.split() == expected


# -- workers in containers ----------------------------------------------------------------------


def article_fetches(fx) -> Counter[str]:
    """How often the outlet answered each of its article pages with 200."""
    paths = {urlsplit(url).path for url in fx.expected_articles()}
    return Counter(e.path for m in fx.mirrors_ for e in m.requests()
                   if e.status == 200 and e.path in paths)


def test_three_worker_containers_stopped_killed_and_scaled_down_store_every_article_once(
    podman, images, names, redis_server, pg_uri, nginx_outlet, readable_outlets
):
    # slow enough (politeness, for the outlet across all workers) to stop and kill mid-crawl:
    # the others store up to 5 articles a second while the first drains (10-15 s)
    fx = nginx_outlet("healthy", articles=150,
                      politeness={"requests_per_second": 5, "concurrency": 4})
    crew = Crew(podman, images.image, names, redis_server.url, pg_uri,
                readable_outlets(fx.outlet_file))
    client = redis_server.client()
    expected = fx.expected_articles()
    started = time.monotonic()
    workers = [crew.start_worker(f"worker{n}") for n in (1, 2, 3)]
    wait_for(lambda: all(w.started() for w in workers), 180, "three workers taking work",
             interval=1)
    ready = time.monotonic()
    # the image's HEALTHCHECK, run as the engine runs it, inside the worker's container
    wait_for(lambda: podman("healthcheck", "run", workers[0].name, check=False).returncode == 0,
             60, "the worker's healthcheck to pass", interval=1)
    state = crew.status()
    ids = [w.worker_id(state) for w in workers]
    assert None not in ids and live_workers(state) == sorted(ids), state["workers"]

    scheduled = crew.run("schedule", fx.name)
    assert scheduled.returncode == 0, scheduled.stderr
    scheduled_at = time.monotonic()
    wait_for(lambda: stored(pg_uri)[0] >= len(expected) // 10, 120, "a tenth stored")

    # podman stop: SIGTERM, then SIGKILL once the grace period is over
    stopping = time.monotonic()
    podman("stop", "--time", str(GRACE), workers[0].name, timeout=GRACE + 30)
    drain = time.monotonic() - stopping
    state = workers[0].state()
    assert state["ExitCode"] == 0, workers[0].logs()[-3000:]
    assert drain < 30, f"drained in {drain:.1f} s"
    # what it had leased went back to the queue
    assert leased(client, ids[0]) == 0
    at_stop = stored(pg_uri)[0]
    assert at_stop < len(expected), "the crawl ended before the stop: slow the outlet down"

    wait_for(lambda: leased(client, ids[1]) > 0, 60, "the second worker to hold leases",
             interval=0.1)
    podman("kill", workers[1].name)  # SIGKILL: no chance to give anything back
    killed = time.monotonic()
    held = leased(client, ids[1])
    at_kill = stored(pg_uri)[0]
    assert at_kill < len(expected), "the crawl ended before the kill: slow the outlet down"
    assert workers[1].state()["ExitCode"] == 137
    # the survivor notices the silence (WORKER_TIMEOUT) and takes the leases over
    wait_for(lambda: not client.exists(KEYS.inflight(ids[1])), 90,
             "the killed worker's leases taken over", interval=0.5)
    takeover = time.monotonic() - killed

    wait_for(lambda: stored(pg_uri)[1] >= expected, 240, "every article stored", interval=1)
    crawled = time.monotonic()
    state = wait_for(settled(crew), 60, "nothing queued, in flight or waiting", interval=1)
    assert live_workers(state) == [ids[2]], state["workers"]
    total, urls = stored(pg_uri)
    assert total == len(urls) == len(expected) and urls == expected

    fetches = article_fetches(fx)
    refetched = sum(1 for count in fetches.values() if count > 1)
    assert set(fetches) == {urlsplit(url).path for url in expected}
    stopping = time.monotonic()
    podman("stop", "--time", str(GRACE), workers[2].name, timeout=GRACE + 30)
    last_drain = time.monotonic() - stopping
    assert workers[2].state()["ExitCode"] == 0, workers[2].logs()[-3000:]
    print(f"\ncontainers: 3 workers ready in {ready - started:.0f} s; {len(expected)} articles "
          f"crawled in {crawled - scheduled_at:.0f} s, each stored once; podman stop drained "
          f"in {drain:.1f} s (exit 0, {at_stop} stored by then); podman kill with {held} "
          f"leases held ({at_kill} stored): taken over after {takeover:.1f} s; {refetched} "
          f"article pages fetched twice ({sum(fetches.values())} fetches for {len(fetches)}); "
          f"the last worker stopped in {last_drain:.1f} s")


# -- docker-compose through podman's Docker-compatible API ---------------------------------------

#: Redis and PostgreSQL for the compose stack, from Debian's packages on the tests' base
#: image, standing in for the redis and postgres images no registry here can give
SERVICES_CONTAINERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
       redis-server postgresql \\
    && rm -rf /var/lib/apt/lists/*
COPY entrypoint /usr/local/bin/entrypoint
RUN chmod 755 /usr/local/bin/entrypoint && mkdir /data
ENV PGDATA=/var/lib/postgresql/data
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["postgres"]
"""
#: what the official images do at start, in brief: redis-server as the compose file asks for
#: it (on the host's network: a port of the test's own, loopback only); PostgreSQL with a
#: cluster made at the first start from POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB
SERVICES_ENTRYPOINT = """\
#!/bin/sh
set -eu
case "$1" in
redis-server)
    exec "$@" --port "$REDIS_PORT" --bind 127.0.0.1 --dir /data ;;
postgres)
    bin=$(ls -d /usr/lib/postgresql/*/bin)
    mkdir -p "$PGDATA" /run/postgresql
    chown postgres:postgres "$PGDATA" /run/postgresql
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        printf '%s\\n' "$POSTGRES_PASSWORD" >/run/postgresql/pw
        runuser -u postgres -- "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" \\
            --pwfile=/run/postgresql/pw --auth-local=trust --auth-host=scram-sha-256 \\
            --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        rm /run/postgresql/pw
        echo "CREATE DATABASE \\"$POSTGRES_DB\\"" | runuser -u postgres -- \\
            "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
    fi
    exec runuser -u postgres -- "$bin/postgres" -D "$PGDATA" -p "$PGPORT" \\
        -c listen_addresses=127.0.0.1 ;;
*)
    exec "$@" ;;
esac
"""


def compose_override(services_image: str, outlets: Path, redis_port: int, pg_port: int,
                     redis_url: str) -> dict:
    """Every service on the host's network (so on loopback, at ports of the test's own), the
    local Redis and PostgreSQL images, the outlet, and short test timeouts for the workers."""
    host = {"network_mode": "host"}
    return {"services": {
        "redis": {**host, "image": services_image, "environment": {"REDIS_PORT": str(redis_port)},
                  "healthcheck": {"test": ["CMD", "redis-cli", "-p", str(redis_port), "ping"]}},
        "postgres": {**host, "image": services_image, "environment": {"PGPORT": str(pg_port)}},
        "worker": {
            **host,
            # replicas sharing the host's network cannot share a metrics port: any free one
            "command": ["worker", "--metrics-port", "0", *FAST],
            "environment": {"CRAWLER_REDIS_URL": redis_url, "CRAWLER_METRICS_PORT": "0",
                            "CRAWLER_OUTLETS_DIR": OUTLETS_MOUNT},
            "volumes": [f"{outlets}:{OUTLETS_MOUNT}:ro"],
        },
    }}


class Compose:
    """docker-compose on podman's Docker-compatible API (``podman system service``)."""

    def __init__(self, podman: Podman, directory: Path, files: list[Path],
                 env: dict[str, str]) -> None:
        binary = shutil.which("docker-compose")
        if binary is None:
            pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
        self.podman = podman
        self.project = f"crawler-test-{secrets.token_hex(3)}"
        self.socket = directory / "podman.sock"
        self.service_log = (directory / "podman-service.log").open("w")
        self.service = podman.popen("system", "service", "--time", "0",
                                    f"unix://{self.socket}", stdout=self.service_log,
                                    stderr=subprocess.STDOUT)
        wait_for(self.socket.exists, 30, "podman's API socket")
        self.command = [binary, "--project-name", self.project, "--ansi", "never"]
        for file in files:
            self.command += ["--file", str(file)]
        self.env = {**os.environ, **env, "DOCKER_HOST": f"unix://{self.socket}"}
        self._health_stop = threading.Event()
        self._health = threading.Thread(target=self._run_healthchecks, daemon=True)
        self._health.start()

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*self.command, *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env, cwd=REPO)

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        result = self.podman("ps", "--all", *filters, "--format", "{{.Names}}")
        return result.stdout.split()

    def _run_healthchecks(self) -> None:
        # podman runs healthchecks from systemd timers, and there is no systemd here: run
        # those of the servers the workers depend on as the timers would, so that
        # `depends_on: condition: service_healthy` can wait for them
        while not self._health_stop.wait(2.0):
            try:
                for name in self.containers("redis") + self.containers("postgres"):
                    self.podman("healthcheck", "run", name, check=False, timeout=30)
            except Exception:  # noqa: BLE001 - a container going away meanwhile
                continue

    def close(self) -> None:
        self("down", "--volumes", "--timeout", "5", timeout=120)
        self._health_stop.set()
        self._health.join(30)
        self.podman.remove(*self.containers())
        self.service.terminate()
        try:
            self.service.wait(30)
        except subprocess.TimeoutExpired:
            self.service.kill()
        self.service_log.close()


def test_compose_scales_worker_containers_up_and_down_on_podman(
    podman, images, nginx_outlet, readable_outlets, tmp_path
):
    fx = nginx_outlet("healthy", articles=60,
                      politeness={"requests_per_second": 10, "concurrency": 4})
    services, services_seconds = build_containerfile(
        podman, "services", SERVICES_CONTAINERFILE, {"entrypoint": SERVICES_ENTRYPOINT},
        images.base)
    redis_port, pg_port = free_loopback_port(), free_loopback_port()
    redis_password, pg_password = secrets.token_hex(8), secrets.token_hex(8)
    redis_url = f"redis://:{redis_password}@127.0.0.1:{redis_port}/0"
    pg_uri = f"postgresql://crawler:{pg_password}@127.0.0.1:{pg_port}/crawler"
    override = tmp_path / "docker-compose.test.yml"
    override.write_text(yaml.safe_dump(compose_override(
        services, readable_outlets(fx.outlet_file), redis_port, pg_port, redis_url)))
    # the stack's own settings, as deploy/.env would give them
    env = {"REDIS_PASSWORD": redis_password, "POSTGRES_PASSWORD": pg_password,
           "STORE_ADDRESS": f"127.0.0.1:{pg_port}", "CRAWLER_IMAGE": images.image}
    compose = Compose(podman, tmp_path, [COMPOSE, override], env)
    expected = fx.expected_articles()
    try:
        def logs(name: str) -> str:
            result = podman("logs", name, check=False)
            return result.stdout + result.stderr

        started = time.monotonic()
        up = compose("up", "--detach", "--no-build", "--scale", "worker=3", "worker")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        workers = compose.containers("worker")
        assert len(workers) == 3, workers

        wait_for(lambda: all("taking work from Redis" in logs(w) for w in workers), 180,
                 "three workers taking work", interval=1)
        ready = time.monotonic()
        # `run --rm worker ...` (deploy/README.md) fails on podman: compose 1.29 links a one-off
        # container to the service's containers, and podman's API has no links. A worker's
        # container runs the command instead.
        scheduled = compose("exec", "-T", "worker", "crawler", "schedule", fx.name)
        assert scheduled.returncode == 0, scheduled.stderr[-3000:]
        wait_for(lambda: stored(pg_uri)[1] >= expected, 240, "every article stored", interval=1)
        crawled = time.monotonic()

        def status() -> dict:
            result = compose("exec", "-T", "worker", "crawler", "status", "--json")
            assert result.returncode == 0, result.stderr[-3000:]
            return json.loads(result.stdout)

        assert len(live_workers(status())) == 3
        scaling = time.monotonic()
        down = compose("up", "--detach", "--no-build", "--scale", "worker=1", "worker")
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        scaled = time.monotonic() - scaling
        assert len(compose.containers("worker")) == 1
        wait_for(lambda: len(live_workers(status())) == 1, 60, "one live worker", interval=1)
        total, urls = stored(pg_uri)
        assert total == len(urls) == len(expected) and urls == expected
    except BaseException:
        for name in compose.containers():  # what went wrong, in the test's report
            print(f"--- {name}\n{logs(name)[-2000:]}")
        print(compose("exec", "-T", "worker", "crawler", "status").stdout)
        raise
    finally:
        compose.close()
    built = ("found built" if services_seconds is None
             else f"built in {services_seconds:.0f} s")
    print(f"\ncompose: services image {built}; up --scale worker=3 ready in "
          f"{ready - started:.0f} s; {len(expected)} articles in {crawled - ready:.0f} s, each "
          f"stored once; --scale worker=1 took {scaled:.1f} s")
