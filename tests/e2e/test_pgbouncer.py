"""The PostgreSQL store behind a real PgBouncer in transaction pooling, configured as
deploy/k8s/pgbouncer.yaml configures it (its pgbouncer.ini, with the addresses and the
authentication of the test server). Skipped where pgbouncer is not installed (Debian's
``pgbouncer`` package; ``bash scripts/test`` installs it)."""

from __future__ import annotations

import configparser
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from conftest import REPO, run_crawler, wait_for
from mirakuru import TCPExecutor
from mirakuru.exceptions import ProcessFinishedWithError
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from redis_server import free_loopback_port

from crawler.storage.postgres import PostgresStore

K8S_MANIFEST = REPO / "deploy" / "k8s" / "pgbouncer.yaml"


def find_pgbouncer() -> str | None:
    for candidate in (os.environ.get("PGBOUNCER"), shutil.which("pgbouncer"),
                      "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def deployed_ini() -> configparser.ConfigParser:
    """pgbouncer.ini as the Kubernetes ConfigMap holds it."""
    documents = yaml.safe_load_all(K8S_MANIFEST.read_text(encoding="utf-8"))
    (configmap,) = [d for d in documents if d and d["kind"] == "ConfigMap"]
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # keys as written
    ini.read_string(configmap["data"]["pgbouncer.ini"])
    return ini


@contextmanager
def pgbouncer(server_uri: str) -> Iterator[str]:
    """A pgbouncer on loopback in front of the server of ``server_uri`` (trust
    authentication, as the test server has); yields the URI of the same database through
    it."""
    binary = find_pgbouncer()
    if binary is None:
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    params = conninfo_to_dict(server_uri)
    user = params.get("user") or "postgres"
    directory = Path(tempfile.mkdtemp(prefix="crawler-pgbouncer-"))
    port = free_loopback_port()
    ini = deployed_ini()
    ini["databases"]["*"] = f"host={params['host']} port={params.get('port') or 5432}"
    ini["pgbouncer"].update({
        "listen_addr": "127.0.0.1", "listen_port": str(port), "auth_type": "trust",
        "auth_file": str(directory / "userlist.txt"), "admin_users": user,
        "logfile": str(directory / "pgbouncer.log"), "pidfile": str(directory / "pid"),
    })
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    config = directory / "pgbouncer.ini"
    with config.open("w") as fh:
        ini.write(fh)
    command = [binary, str(config)]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root: -u drops to postgres
        account = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        command += ["-u", "postgres"]
    executor = TCPExecutor(command, host="127.0.0.1", port=port, timeout=15)
    try:
        executor.start()
        parts = urlsplit(server_uri)
        auth = parts.netloc.rpartition("@")[0]
        yield urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth
                                        else f"127.0.0.1:{port}"))
    finally:
        with suppress(ProcessFinishedWithError):  # pgbouncer exits 1 on SIGTERM
            executor.stop()
        log = directory / "pgbouncer.log"
        if log.exists():
            print(log.read_text()[-3000:])
        shutil.rmtree(directory, ignore_errors=True)


def transactions_through(bouncer_uri: str, dbname: str) -> int:
    """Transactions PgBouncer passed on to ``dbname`` (its admin console's SHOW STATS)."""
    with psycopg.connect(make_conninfo(bouncer_uri, dbname="pgbouncer"),
                         autocommit=True) as admin:
        # the console speaks the simple query protocol only
        cursor = admin.cursor()
        cursor.execute("SHOW STATS", prepare=False)
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return sum(int(r["total_xact_count"]) for r in rows if r["database"] == dbname)


def test_the_deployed_configuration_pools_transactions():
    settings = deployed_ini()["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    assert settings["listen_port"] == "6432"


def test_stores_share_pgbouncer_server_connections_transaction_by_transaction(pg):
    with pg.database() as uri, pgbouncer(uri) as bouncer:
        stores = [PostgresStore(bouncer, pool_size=2) for _ in range(4)]
        try:
            records = [
                {"canonical_url": f"http://127.0.0.1/news/{n}", "url": f"http://127.0.0.1/news/{n}",
                 "mirror": "http://127.0.0.1", "outlet": "o", "text": f"text {n}",
                 "content_hash": str(n)}
                for n in range(40)
            ]
            # the same statements, many times over, on connections that PgBouncer hands to
            # other clients between transactions: a statement prepared on one server
            # connection would be missing on the next
            for round_ in range(10):
                for i, store in enumerate(stores):
                    batch = records[(round_ * 4 + i) % 40:][:4]
                    store.write(batch)
                    assert store.existing(r["canonical_url"] for r in batch) == {
                        r["canonical_url"] for r in batch}
                    assert store.count() >= len(batch)
            assert stores[0].count() == 40
            assert len(list(stores[0].read())) == 40
        finally:
            for store in stores:
                store.close()
        assert transactions_through(bouncer, conninfo_to_dict(uri)["dbname"]) > 100


def test_workers_crawl_through_pgbouncer(demo_outlet, redis_server, workers, pg):
    fx = demo_outlet("healthy", articles=60)
    with pg.database() as uri, pgbouncer(uri) as bouncer:
        crew = [workers(redis_server.url, bouncer, fx.outlet_dir) for _ in range(3)]
        result = run_crawler("schedule", fx.name, "--outlets-dir", str(fx.outlet_dir),
                             "--redis", redis_server.url)
        assert result.returncode == 0, result.stderr
        expected = fx.expected_articles()

        def stored() -> list[str]:
            with psycopg.connect(uri) as conn:
                if conn.execute("SELECT to_regclass('articles')").fetchone()[0] is None:
                    return []  # the workers are still starting
                return [u for (u,) in conn.execute("SELECT canonical_url FROM articles")]

        wait_for(lambda: set(stored()) >= expected, 180, "every article stored", interval=1)
        for worker in crew:
            assert worker.stop(signal.SIGTERM) < 30
            assert worker.process.returncode == 0, worker.output()[-2000:]
            assert "prepared statement" not in worker.output()
        urls = stored()
        assert len(urls) == len(set(urls)) and set(urls) == expected
        assert transactions_through(bouncer, conninfo_to_dict(uri)["dbname"]) > 0
