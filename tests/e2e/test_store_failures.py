"""A store that cannot be written stops `crawler crawl` in one line naming the cause, with a
non-zero exit: read-only at the start, full mid-crawl (every listed article then counted as
stored or lost), corrupt. The read-only and full stores are real: a tmpfs of our own,
remounted read-only or too small (tests run as root, whom file modes do not stop), or an
immutable file; each case skips where the container allows none of it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import FAST, run_crawler, stored_records

#: articles of the full-disk crawl's outlet (it lists 175 within max_section_pages); its
#: store fills up long before they are stored
ARTICLES = 200


def crawl(fx, store: str, *extra: str) -> subprocess.CompletedProcess:
    return run_crawler("crawl", fx.name, "--outlets-dir", str(fx.outlet_dir), "--store",
                       store, *FAST, *extra)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(size)``: a directory on a tmpfs of that size, mounted for the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(where)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def made_read_only(path: Path, how: str) -> None:
    """``path``'s store (written, closed) made read-only ``how``: its file system mounted
    read-only, or the file immutable (``chattr +i``)."""
    if how == "read-only mount":
        done = subprocess.run(["mount", "-o", "remount,ro", str(path.parent)],
                              capture_output=True, text=True)
    else:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make the store read-only ({how}): {done.stderr.strip()}")


@pytest.mark.parametrize("how", ["read-only mount", "immutable file"])
def test_a_read_only_store_fails_at_the_start_in_one_line(nginx_outlet, tmpfs, how):
    fx = nginx_outlet("healthy", articles=20)
    path = tmpfs("2m") / "ro.db"
    store = f"sqlite:///{path}"
    first = crawl(fx, store)
    assert first.returncode == 0, first.stderr[-3000:]
    served = fx.hits()
    made_read_only(path, how)
    try:
        result = crawl(fx, store)
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    assert error_lines(result) == [f"error: the store {store} is read-only"], \
        result.stderr[-3000:]
    assert result.returncode == 2
    assert fx.hits() == served  # nothing fetched for a store that cannot keep it


def test_a_full_disk_mid_crawl_ends_every_listed_article_and_fails_in_one_line(
    nginx_outlet, tmpfs
):
    fx = nginx_outlet("healthy", articles=ARTICLES)
    store = f"sqlite:///{tmpfs('300k') / 'full.db'}"
    result = crawl(fx, store, "-s", "STORE_BATCH_SIZE=10", "-s", "LOG_LEVEL=WARNING")
    (line,) = error_lines(result)
    assert line.startswith(f"error: crawl stopped storing: the disk holding the store {store}"
                           " is full"), result.stderr[-3000:]
    assert result.returncode == 1
    stored = len(stored_records(store))
    listed = fx.expected_articles()
    assert 0 < stored < len(listed)  # it did fill up mid-crawl
    # every article listed: stored, or lost because the store could not take it
    lost = int(line.rsplit("(", 1)[1].split()[0])
    assert stored + lost == len(listed)


def test_a_corrupt_store_fails_in_one_line(nginx_outlet, tmp_path):
    fx = nginx_outlet("healthy", articles=20)
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"not a database, garbage " * 512)
    store = f"sqlite:///{path}"
    result = crawl(fx, store)
    assert error_lines(result) == [
        f"error: the store {store} is not a SQLite database (corrupt?)"], result.stderr[-3000:]
    assert result.returncode == 2
    assert fx.hits() == 0
