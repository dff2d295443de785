"""Real containers for tests: podman with state of its own, and the project's image.

:class:`Podman` runs ``podman`` with a storage root, run root and libpod directory of its own
(under a cache directory, so that images outlive the test session) and a containers.conf
of its own (``CONTAINERS_CONF``): the machine's podman configuration and containers are never
touched. :func:`crawler_images` builds the base image from Debian packages (mmdebstrap) and
the project's image from ``deploy/Dockerfile`` onto it, each tagged with a hash of what it is
made from, so a second session finds them built.

No pytest here: anything may use it. The tests are in ``tests/e2e/test_containers.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "news-crawler-tests"

#: what podman needs on these machines: the default nofile/nproc limits cannot be raised, crun
#: refuses the hybrid cgroups, and there is no systemd for cgroups or the event journal
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

#: the base image: Debian 12 with the Python the crawler runs on and its venv module (whose
#: own pip wheel starts the builder's pip: Debian's python3-pip would only take space),
#: without documentation, manual pages and translations (as Debian's own slim images), and
#: /usr merged by a hook rather than the usrmerge package, which would bring perl
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
MMDEBSTRAP = [
    "mmdebstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "bookworm",
]  # fmt: skip
#: the host's trust store: package downloads may pass a proxy whose CA only the host trusts.
#: Builds get it as a read-only mount, so it never becomes part of an image.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_REPOSITORY = "localhost/news-crawler-test-base"
IMAGE_REPOSITORY = "localhost/news-crawler-test"


class PodmanUnavailable(RuntimeError):
    """podman (or what the images are built with) cannot be used here; the message says why."""


class Podman:
    """``podman`` with state of its own under ``home``."""

    def __init__(self, home: Path = CACHE / "podman") -> None:
        binary = shutil.which("podman")
        if binary is None:
            raise PodmanUnavailable("podman is not installed (apt-get install podman runc)")
        if os.geteuid() != 0:
            raise PodmanUnavailable("podman runs the tests' containers as root only")
        self.binary = binary
        self.home = home
        for name in ("root", "runroot", "tmp"):
            (home / name).mkdir(parents=True, exist_ok=True)
        self.conf = home / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    @property
    def command(self) -> list[str]:
        return [self.binary, "--root", str(self.home / "root"),
                "--runroot", str(self.home / "runroot"), "--tmpdir", str(self.home / "tmp")]

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 **options) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True,
                                timeout=timeout, env=self.env, **options)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
        return result

    def popen(self, *args: str, **options) -> subprocess.Popen:
        return subprocess.Popen([*self.command, *args], env=self.env, **options)

    def image_exists(self, ref: str) -> bool:
        return self("image", "exists", ref, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", ref).stdout)

    def inspect(self, container: str) -> dict:
        return json.loads(self("container", "inspect", container).stdout)[0]

    def remove(self, *containers: str) -> None:
        if containers:
            self("rm", "--force", "--ignore", "--time", "0", *containers, check=False)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One session at a time builds: another waits and finds the image built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def context_files() -> list[Path]:
    """What the build context gives the Dockerfile (.dockerignore: pyproject.toml, README.md,
    crawler/ without caches and databases)."""
    files = [REPO / "pyproject.toml", REPO / "README.md"]
    files += sorted(
        p for p in (REPO / "crawler").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
        and not p.name.endswith((".pyc", ".pyo", ".db", ".db-wal", ".db-shm"))
    )
    return files


@dataclass
class Images:
    base: str
    image: str
    #: seconds each took to build in this session; None where it was found built
    base_seconds: float | None
    image_seconds: float | None


def build_base(podman: Podman) -> tuple[str, float | None]:
    tag = f"{BASE_REPOSITORY}:{_digest(' '.join(MMDEBSTRAP).encode())}"
    if podman.image_exists(tag):
        return tag, None
    if shutil.which("mmdebstrap") is None:
        raise PodmanUnavailable("mmdebstrap is not installed (apt-get install mmdebstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crawler-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        made = subprocess.run([*MMDEBSTRAP, str(tarball)], capture_output=True, text=True,
                              timeout=600)
        if made.returncode != 0:
            raise PodmanUnavailable(f"mmdebstrap could not make the base image:\n"
                                    f"{made.stderr[-2000:]}")
        podman("import", str(tarball), tag, timeout=300)
    return tag, time.monotonic() - started


def build_image(podman: Podman, base: str, tag: str | None = None) -> tuple[str, float | None]:
    base_id = podman("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    inputs = [base_id.encode(), DOCKERFILE.read_bytes(), (REPO / ".dockerignore").read_bytes()]
    for path in context_files():
        inputs += [str(path.relative_to(REPO)).encode(), path.read_bytes()]
    tag = tag or f"{IMAGE_REPOSITORY}:{_digest(*inputs)}"
    if podman.image_exists(tag):
        return tag, None
    started = time.monotonic()
    mounts = (["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
              if HOST_CA_BUNDLE.exists() else [])
    podman("build", "--network", "host", "--format", "docker", "--pull=never",
           *mounts, "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag,
           "--file", str(DOCKERFILE), str(REPO), timeout=600)
    return tag, time.monotonic() - started


def build_containerfile(podman: Podman, name: str, text: str, files: dict[str, str],
                        base: str) -> tuple[str, float | None]:
    """An image of the tests' own from ``text`` (``FROM ${BASE}``) and ``files`` beside it."""
    base_id = podman("image", "inspect", "--format", "{{.Id}}", base).stdout.strip()
    inputs = [base_id.encode(), text.encode()]
    inputs += [f"{k}\0{v}".encode() for k, v in sorted(files.items())]
    tag = f"localhost/news-crawler-test-{name}:{_digest(*inputs)}"
    if podman.image_exists(tag):
        return tag, None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"crawler-{name}-") as tmp:
        (Path(tmp) / "Containerfile").write_text(text)
        for file_name, content in files.items():
            (Path(tmp) / file_name).write_text(content)
        mounts = (["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
                  if HOST_CA_BUNDLE.exists() else [])
        podman("build", "--network", "host", "--format", "docker", "--pull=never",
               *mounts, "--build-arg", f"BASE={base}", "--tag", tag, tmp, timeout=600)
    return tag, time.monotonic() - started


def prune(podman: Podman, keep: set[str], older_than: str = "24h") -> None:
    """Drop the tests' images of other inputs, and dangling build layers, once they are a day
    old: the cache holds what the current inputs need, and a session running alongside (other
    inputs, a few minutes old) keeps its own."""
    listed = podman("images", "--filter", "reference=localhost/news-crawler-test*",
                    "--filter", f"until={older_than}", "--format", "{{.Repository}}:{{.Tag}}",
                    check=False)
    stale = [ref for ref in listed.stdout.split() if ref not in keep]
    if stale:
        podman("rmi", *stale, check=False)
    podman("image", "prune", "--force", "--filter", f"until={older_than}", check=False)


def crawler_images(podman: Podman) -> Images:
    """The base image and the project's image, built unless a session built them before."""
    with _locked(podman.home / "build.lock"):
        base, base_seconds = build_base(podman)
        probe = podman("run", "--rm", "--network", "none", base, "true", check=False)
        if probe.returncode != 0:
            raise PodmanUnavailable(f"podman cannot run a container here:\n{probe.stderr}")
        image, image_seconds = build_image(podman, base)
        if base_seconds is not None or image_seconds is not None:
            prune(podman, {base, image})
    return Images(base, image, base_seconds, image_seconds)
