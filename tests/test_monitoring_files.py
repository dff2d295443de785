"""Checks of monitoring/: Prometheus configs and alert rules (promtool), the rules' unit
tests, the Grafana provisioning and dashboard, and a real Prometheus scraping real
prometheus_client metrics through which every dashboard query and every rule is evaluated."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_server import PrometheusServer, require_prometheus

from crawler.extensions.metrics import CrawlerMetrics

REPO = Path(__file__).resolve().parents[1]
MONITORING = REPO / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
CONFIGS = ["prometheus.yml", "prometheus-local.yml", "prometheus-kubernetes.yml"]
GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "crawler.json"
DATASOURCE_UID = "crawler-prometheus"
WORKER_JOB = "crawler-workers"

#: metric families the crawler exports (README.md "Metrics" and crawler.extensions.metrics /
#: crawler.distributed.status), with their labels; plus Prometheus's own ``up``
FAMILIES: dict[str, set[str]] = {
    "crawler_requests_total": {"outlet", "mirror", "outcome"},
    "crawler_requests_ended_total": {"outlet", "outcome"},
    "crawler_articles_stored_total": {"outlet", "section"},
    "crawler_extraction_failures_total": {"outlet"},
    "crawler_mirror_up": {"outlet", "mirror"},
    "crawler_mirror_candidates": {"outlet", "state"},
    "crawler_mirror_failovers_total": {"outlet"},
    "crawler_queue_depth": {"outlet"},
    "crawler_inflight_requests": {"outlet"},
    "crawler_worker_up": {"worker"},
    "crawler_schedule_last_run_timestamp_seconds": {"outlet", "section"},
    "crawler_outlet_scheduled": {"outlet"},
    "crawler_response_seconds": {"outlet"},
    "crawler_extraction_seconds": set(),
    "crawler_article_revisions_total": {"outlet"},
    "crawler_articles_removed_total": {"outlet"},
    "crawler_article_freshness_seconds": {"outlet"},
    "crawler_article_last_stored_timestamp_seconds": {"outlet"},
    "crawler_warc_records_total": {"outlet"},
    "crawler_warc_bytes_total": {"outlet"},
    "up": {"job", "instance"},
}
HISTOGRAMS = {"crawler_response_seconds", "crawler_extraction_seconds",
              "crawler_article_freshness_seconds"}
#: series an operator may add to alerts.yml as a knob (see its comments)
KNOBS = {"crawler:article_staleness_override_seconds"}

PROMQL_WORDS = {
    "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "atan2", "inf", "nan",
}


def known_series_names() -> set[str]:
    names = set(FAMILIES)
    for family in HISTOGRAMS:
        names |= {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
    return names | recorded_names() | KNOBS


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a lexer-level reading of PromQL: strings,
    label matchers, ranges and grouping clauses are dropped, then every identifier that is
    not a keyword and not called as a function is a metric name)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, called = match.groups()
        if not called and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def test_metric_names_reads_promql():
    expr = (
        'histogram_quantile(0.9, sum by (outlet, le) (rate(crawler_response_seconds_bucket'
        '{outlet=~"$outlet", mirror!="a{b}"}[$__rate_interval]))) / on (outlet) group_left() '
        "max without (instance) (crawler_mirror_up offset 5m) > bool 1e3 or vector(0)"
    )
    assert metric_names(expr) == {"crawler_response_seconds_bucket", "crawler_mirror_up"}


# -- Prometheus: configuration, rules, rule unit tests ------------------------------------------


def promtool(*args: str | Path, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    _, binary = require_prometheus()
    return subprocess.run(
        [binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def promtool_has_kubernetes_discovery(directory: Path) -> bool:
    probe = directory / "probe.yml"
    probe.write_text(yaml.safe_dump(
        {"scrape_configs": [{"job_name": "probe", "kubernetes_sd_configs": [{"role": "pod"}]}]}
    ))
    result = promtool("check", "config", probe, cwd=directory)
    return "kubernetes_sd_configs not found" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_prometheus_config_is_valid_with_its_rule_files(name, tmp_path):
    """promtool checks the config and the rule files it names (resolved next to it).

    Debian's build has no Kubernetes discovery and rejects kubernetes_sd_configs; then the
    Kubernetes config is checked with each such block replaced by an empty static config,
    so everything else in it, the relabelling included, is still checked."""
    config = load_yaml(PROMETHEUS_DIR / name)
    assert config["rule_files"] == ["alerts.yml"]
    path = PROMETHEUS_DIR / name
    if name == "prometheus-kubernetes.yml" and not promtool_has_kubernetes_discovery(tmp_path):
        for job in config["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": []}]
        (tmp_path / "alerts.yml").write_text(ALERTS.read_text(encoding="utf-8"))
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = promtool("check", "config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_labels_its_worker_targets_as_the_worker_job(name):
    """The alerts and the dashboard select job="crawler-workers"."""
    jobs = load_yaml(PROMETHEUS_DIR / name)["scrape_configs"]
    worker_jobs = [
        job for job in jobs
        if job["job_name"] == WORKER_JOB
        or any(r.get("target_label") == "job" and r.get("replacement") == WORKER_JOB
               for r in job.get("relabel_configs", []))
    ]
    assert worker_jobs, f"{name}: no job scrapes the workers as {WORKER_JOB}"
    assert {job["job_name"] for job in jobs} >= {"redis-exporter"}


def test_container_configs_discover_workers_as_compose_and_kubernetes_run_them():
    compose_job = next(
        job for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
        if job["job_name"] == WORKER_JOB
    )
    assert compose_job["dns_sd_configs"][0]["names"] == ["worker"]
    assert compose_job["dns_sd_configs"][0]["port"] == 9410
    assert compose_job["docker_sd_configs"]
    keep = compose_job["relabel_configs"][0]
    assert keep["action"] == "keep"
    pattern = re.compile(f"^(?:{keep['regex']})$")
    # Docker targets of service worker, DNS targets of the name worker; nothing else
    assert pattern.match("worker;") and pattern.match(";worker")
    assert not pattern.match("beat;") and not pattern.match(";redis") and not pattern.match(";")

    k8s_job = next(
        job for job in load_yaml(PROMETHEUS_DIR / "prometheus-kubernetes.yml")["scrape_configs"]
        if "kubernetes_sd_configs" in job
    )
    assert k8s_job["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabel = {tuple(r.get("source_labels", [])): r for r in k8s_job["relabel_configs"]}
    scrape = relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]
    assert (scrape["action"], scrape["regex"]) == ("keep", "true")
    address = relabel[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    rewritten = re.sub(
        f"^(?:{address['regex']})$",
        address["replacement"].replace("${1}", r"\1").replace("${2}", r"\2"),
        "10.1.2.3:8080;9410",
    )
    assert rewritten == "10.1.2.3:9410"


def test_the_kubernetes_config_selects_the_worker_pods_of_deploy_k8s():
    manifest = REPO / "deploy" / "k8s" / "worker-deployment.yaml"
    if not manifest.exists():
        pytest.skip("no deploy/k8s/worker-deployment.yaml")
    deployment = next(
        d for d in yaml.safe_load_all(manifest.read_text(encoding="utf-8"))
        if d and d.get("kind") == "Deployment"
    )
    pod = deployment["spec"]["template"]["metadata"]
    k8s_job = next(
        job for job in load_yaml(PROMETHEUS_DIR / "prometheus-kubernetes.yml")["scrape_configs"]
        if "kubernetes_sd_configs" in job
    )
    for rule in k8s_job["relabel_configs"]:
        if rule.get("action") != "keep":
            continue
        (source,) = rule["source_labels"]
        prefix, kind = (
            ("__meta_kubernetes_pod_annotation_", pod.get("annotations", {}))
            if "annotation" in source else ("__meta_kubernetes_pod_label_", pod["labels"])
        )
        value = next(
            (v for k, v in kind.items() if re.sub(r"[^\w]", "_", k) == source[len(prefix):]),
            "",
        )
        assert re.fullmatch(rule["regex"], str(value)), f"{source}={value!r} is not kept"


def test_alert_rules_are_valid():
    result = promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass():
    assert RULE_TESTS, "no promtool rule tests"
    result = promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r]


def recorded_names() -> set[str]:
    return {r["record"] for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if "record" in r}


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        spec = load_yaml(path)
        assert spec["rule_files"] == ["../alerts.yml"], path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts no test fires"
    assert names - quiet == set(), "alerts no test shows quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_alerts_are_labelled_and_explained():
    required = {
        "CrawlerMirrorDown", "CrawlerAllMirrorsDown", "CrawlerNoArticlesStored",
        "CrawlerExtractionFailuresHigh", "CrawlerQueueStalled", "CrawlerWorkerDown",
        "CrawlerNoWorkerUp", "CrawlerWorkerCountDropped", "CrawlerOutletFreshnessDegraded",
        "CrawlerVerifiedMirrorProposed",
    }
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= required
    assert len({r["alert"] for r in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule.get("for"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "outlet" in by_labels(rule["expr"]):
            for key in ("summary", "description"):
                assert "$labels.outlet" in rule["annotations"][key], (rule["alert"], key)
    mirror_down = next(r for r in rules if r["alert"] == "CrawlerMirrorDown")
    assert "crawler_mirror_up" in mirror_down["expr"] and mirror_down["for"] == "10m"


def by_labels(expr: str) -> set[str]:
    return {
        label.strip()
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr)
        for label in group.split(",")
    }


def test_rules_use_only_known_metrics():
    known = known_series_names()
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known
            assert not unknown, f"{rule.get('alert') or rule['record']}: {unknown}"


# -- Grafana ---------------------------------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def panel_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_datasource_is_provisioned_with_the_uid_the_dashboard_uses():
    files = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
    sources = [s for f in files for s in load_yaml(f)["datasources"]]
    (prometheus,) = [s for s in sources if s["type"] == "prometheus"]
    assert prometheus["uid"] == DATASOURCE_UID
    assert prometheus["url"].startswith("http")


def test_dashboard_provider_loads_the_dashboards_directory_where_compose_mounts_it():
    files = sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
    providers = [p for f in files for p in load_yaml(f)["providers"]]
    (provider,) = providers
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    compose = REPO / "deploy" / "docker-compose.yml"
    if compose.exists():
        volumes = load_yaml(compose)["services"]["grafana"]["volumes"]
        assert f"../monitoring/grafana/dashboards:{path}:ro" in volumes


def test_dashboard_structure():
    board = dashboard()
    assert board["uid"] and board["title"]
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARD.parent.glob("*.json")]
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"
    panels = list(all_panels(board["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    (outlet,) = [v for v in board["templating"]["list"] if v["name"] == "outlet"]
    assert outlet["type"] == "query"
    assert outlet["datasource"]["uid"] == DATASOURCE_UID
    assert re.sub(r"\s", "", outlet["query"]) == "label_values(crawler_requests_total,outlet)"
    assert outlet["multi"] and outlet["includeAll"]


def test_dashboard_shows_what_an_operator_needs():
    exprs = " ".join(expr for _, expr in panel_exprs())
    for needed in (
        "crawler_articles_stored_total", "crawler_requests_total", "crawler_mirror_up",
        "crawler_mirror_failovers_total", "crawler_response_seconds_bucket",
        "crawler_extraction_seconds_bucket", "crawler_queue_depth", "crawler_worker_up",
        "crawler_extraction_failures_total",
    ):
        assert needed in exprs, needed
    assert "by (outlet, section)" in exprs and "by (outcome)" in exprs
    assert "by (outlet, mirror)" in exprs
    assert exprs.count("histogram_quantile(") >= 4


def test_dashboard_uses_only_known_metrics_and_filters_by_outlet():
    known = known_series_names()
    with_outlet = {
        name for name in known_series_names()
        if "outlet" in FAMILIES.get(re.sub(r"_(bucket|count|sum)$", "", name), set())
    }
    for title, expr in panel_exprs():
        assert metric_names(expr) <= known, (title, metric_names(expr) - known)
        for match in re.finditer(r"(?<![\w:])([A-Za-z_:][\w:]*)\s*(\{[^}]*\})?", expr):
            name, matchers = match.groups()
            if name in with_outlet:
                assert matchers and 'outlet=~"$outlet"' in matchers, (title, name)


# -- a real Prometheus scraping real prometheus_client metrics ---------------------------------


class SimulatedWorker:
    """A worker's /metrics on loopback: the real metric families (crawler.extensions.metrics)
    plus the shared-state gauges that distributed workers read from Redis, kept moving by a thread
    so that rates and quantiles have something to show."""

    OUTLETS = {
        "presstv": ["https://www.presstv.ir", "https://www.presstv.co.uk"],
        "demo": ["http://127.0.0.1:1", "http://127.0.0.2:1"],
    }
    SECTIONS = ["economy", "world"]
    OUTCOMES = ["ok", "http_error", "timeout", "connection_error", "blocked"]
    WORKERS = ["host-a-1", "host-b-2"]

    def __init__(self, seed: int) -> None:
        self.registry = CollectorRegistry()
        self.metrics = CrawlerMetrics(self.registry)
        self.registry.register(self)
        self.step = seed
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.server, self._server_thread = start_http_server(
            0, addr="127.0.0.1", registry=self.registry
        )
        self.advance()
        self._thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def advance(self) -> None:
        m = self.metrics
        self.step += 1
        for outlet, mirrors in self.OUTLETS.items():
            for i, mirror in enumerate(mirrors):
                m.mirror_up.labels(outlet, mirror).set(1 if i == 0 else 0)
                for outcome in self.OUTCOMES:
                    m.requests.labels(outlet, mirror, outcome).inc(1 + (outcome == "ok") * 5)
            for section in self.SECTIONS:
                m.articles_stored.labels(outlet, section).inc(2)
            m.extraction_failures.labels(outlet).inc()
            m.failovers.labels(outlet).inc()
            m.revisions.labels(outlet).inc()
            m.removed.labels(outlet).inc()
            m.warc_records.labels(outlet).inc(4)
            m.warc_bytes.labels(outlet).inc(4 * 39_000)
            m.freshness.labels(outlet).observe(60 * (self.step % 90))
            m.mirror_candidates.labels(outlet, "verified").set(self.step % 2)
            m.last_stored.labels(outlet).set_to_current_time()
            m.response_seconds.labels(outlet).observe(0.05 * (self.step % 40))
        m.extraction_seconds.observe(0.01 * (self.step % 50))

    def collect(self):
        """Shared state, as crawler.distributed.status.RedisStateCollector reports it."""
        depth = GaugeMetricFamily("crawler_queue_depth", "queued", labels=["outlet"])
        inflight = GaugeMetricFamily("crawler_inflight_requests", "leased", labels=["outlet"])
        scheduled = GaugeMetricFamily("crawler_outlet_scheduled", "scheduled",
                                      labels=["outlet"])
        last_run = GaugeMetricFamily("crawler_schedule_last_run_timestamp_seconds",
                                     "last run", labels=["outlet", "section"])
        for outlet in self.OUTLETS:
            depth.add_metric([outlet], 100 + self.step)
            inflight.add_metric([outlet], 4)
            scheduled.add_metric([outlet], 1)
            for section in self.SECTIONS:
                last_run.add_metric([outlet, section], self.started)
        workers = GaugeMetricFamily("crawler_worker_up", "live", labels=["worker"])
        for worker in self.WORKERS:
            workers.add_metric([worker], 1)
        return [depth, inflight, scheduled, last_run, workers]

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.advance()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        self._server_thread.join(timeout=5)


@pytest.fixture
def simulated_workers() -> Iterator[list[str]]:
    workers = [SimulatedWorker(seed) for seed in (0, 17)]
    try:
        yield [w.target for w in workers]
    finally:
        for worker in workers:
            worker.close()


def grafana_outlet_value(values: Sequence[str]) -> str:
    """What Grafana puts for $outlet with several outlets selected."""
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def dashboard_query(expr: str, outlet: str) -> str:
    """A panel's query as Grafana sends it: variables filled in (intervals fit 1 s scrapes)."""
    for variable, value in (
        ("$__rate_interval", "15s"), ("$__interval", "5s"), ("$__range", "1m"),
        ("$outlet", outlet),
    ):
        expr = expr.replace(variable, value)
    return expr


def check_monitoring_against(targets: Sequence[str], timeout: float = 90.0) -> dict:
    """Scrape ``targets`` (host:port of worker /metrics endpoints on loopback) with a real
    Prometheus that loads alerts.yml; evaluate every dashboard query and every rule.

    Returns {"empty": [(panel, query)] with no data, "empty_records": recording rules that
    recorded nothing, "rule_errors": [(rule, error)], "outlets": [...], "live_workers": ...}.
    Works the same with real workers (``crawler worker --metrics-port``)."""
    require_prometheus()
    with PrometheusServer(targets, rule_files=[ALERTS]) as prometheus:
        prometheus.wait_for(
            lambda: {t["health"] for t in prometheus.active_targets()} == {"up"}
            and len(prometheus.active_targets()) == len(targets),
            timeout=timeout, what="every target scraped",
        )
        outlets = prometheus.wait_for(
            lambda: prometheus.label_values("outlet", "crawler_requests_total"),
            timeout=timeout, what="outlet values",
        )
        outlet = grafana_outlet_value(outlets)
        pending = {(title, dashboard_query(expr, outlet)) for title, expr in panel_exprs()}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = {(title, q) for title, q in pending if not prometheus.query(q)}
            if pending:
                time.sleep(1)

        # every recording rule records something once its inputs have two samples
        empty_records = set(recorded_names())
        deadline = time.monotonic() + timeout
        while empty_records and time.monotonic() < deadline:
            empty_records = {name for name in empty_records if not prometheus.query(name)}
            if empty_records:
                time.sleep(1)
        rules = [r for group in prometheus.rules() for r in group["rules"]]
        return {
            "empty": sorted(pending),
            "empty_records": sorted(empty_records),
            "rule_errors": [
                (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
            ],
            "outlets": outlets,
            "live_workers": prometheus.query("crawler:live_workers:count"),
            "log": prometheus.log_tail(),
        }


def test_every_dashboard_query_and_rule_works_on_real_metrics(simulated_workers):
    result = check_monitoring_against(simulated_workers)
    assert sorted(result["outlets"]) == ["demo", "presstv"]
    assert result["empty"] == [], "panels without data:\n" + "\n".join(
        f"{title}: {q}" for title, q in result["empty"]
    )
    assert result["rule_errors"] == []
    assert result["empty_records"] == []
    # two scraped workers report the same two registered workers
    assert [s["value"][1] for s in result["live_workers"]] == ["2"]
