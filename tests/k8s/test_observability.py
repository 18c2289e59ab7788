"""Alerts, the dashboard and the canary analysis query metrics the services really export.

The exported names are read from the code (``Counter(``, ``Histogram(``, ``Gauge(`` in
packages/core and services/*/src) the way prometheus_client exposes them: a counter as
``<name>_total``, a histogram as ``_bucket``/``_sum``/``_count``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "components" / "monitoring"
CANARY = ROOT / "k8s" / "components" / "canary"
SOURCES = [
    ROOT / "packages" / "core" / "src",
    *sorted((ROOT / "services").glob("*/src")),
    ROOT / "pipelines" / "bruno_pipelines",  # the DORA metrics (dora.py)
]
DASHBOARDS = sorted(MONITORING.glob("*dashboard.json"))

# Series that come from Prometheus itself or kube-state-metrics, not from our code.
FROM_THE_PLATFORM = {
    "up",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
    "kube_statefulset_replicas",
    "kube_statefulset_status_replicas_ready",
}
# Labels Prometheus adds to every target (PodMonitor/ServiceMonitor) or to histograms.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "le"}

_METRIC = re.compile(
    r"\b(Counter|Histogram|Gauge)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"\s*,\s*\"[^\"]*\"\s*"
    r"(?:,\s*\[([^\]]*)\])?",
    re.DOTALL,
)
_PROMQL_WORDS = {
    "sum", "rate", "increase", "histogram_quantile", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "bool", "avg", "max", "min", "count",
    "topk", "bottomk", "irate", "offset", "abs", "clamp_min", "clamp_max", "humanizePercentage",
}  # fmt: skip


def exported() -> dict[str, set[str]]:
    """Every series name the code exports → the label names it carries."""
    series: dict[str, set[str]] = {}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for kind, name, labels in _METRIC.findall(path.read_text()):
                label_names = set(re.findall(r"\"([a-zA-Z_]+)\"", labels or ""))
                if kind == "Counter":
                    base = name.removesuffix("_total")
                    names = [f"{base}_total", f"{base}_created"]
                elif kind == "Histogram":
                    names = [f"{name}_{s}" for s in ("bucket", "sum", "count", "created")]
                else:
                    names = [name]
                for series_name in names:
                    series[series_name] = label_names
    return series


def metric_names(expr: str) -> dict[str, set[str]]:
    """The metric names an expression selects → the label names it matches on."""
    text = re.sub(r"\{\{.*?\}\}", "x", expr)  # Flagger/Go templates
    text = re.sub(r"\$\w+", "x", text)  # Grafana variables
    used: dict[str, set[str]] = {}
    for name, selector in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", text):
        if selector:
            used.setdefault(name, set()).update(re.findall(r"([a-zA-Z_]+)\s*[!=]~?", selector))
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", text)
    stripped = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", stripped
    )
    for name in re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", stripped):
        if name not in _PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d*", name):
            used.setdefault(name, set())
    return used


def expressions() -> list[tuple[str, str]]:
    found = []
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", rule["expr"]))
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.name}: panel {panel['title']}", target["expr"]))
    for template in yaml.safe_load_all((CANARY / "metric-templates.yaml").read_text()):
        found.append((f"MetricTemplate {template['metadata']['name']}", template["spec"]["query"]))
    return found


def test_the_code_exports_the_metrics_the_issue_names() -> None:
    series = exported()
    assert series["http_request_duration_seconds_bucket"] == {"method", "path", "status"}
    assert "bruno_grpc_server_handled_total" in series
    assert "bruno_generation_fallbacks_total" in series


@pytest.mark.parametrize(("where", "expr"), expressions())
def test_every_metric_queried_is_one_the_services_export(where: str, expr: str) -> None:
    series = exported()
    used = metric_names(expr)
    assert used, f"{where}: no metric found in {expr!r}"
    for name, labels in used.items():
        if name in FROM_THE_PLATFORM:
            continue
        assert name in series, f"{where}: {name} is not exported by any service"
        unknown = labels - series[name] - TARGET_LABELS
        assert not unknown, f"{where}: {name} has no label {unknown}"


def test_the_checker_catches_a_misspelt_metric() -> None:
    used = metric_names('sum(rate(http_request_duration_second_count{status=~"5.."}[5m]))')
    assert "http_request_duration_second_count" in used
    assert "http_request_duration_second_count" not in exported()


def test_the_alerts_cover_errors_latency_readiness_ingestion_and_ollama() -> None:
    rules = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    alerts = {rule["alert"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert {
        "BrunoEdgeHighErrorRate",
        "BrunoEdgeHighLatency",
        "BrunoPodsNotReady",
        "BrunoIngestionFailures",
        "BrunoConversationUpkeepFailing",
        "BrunoOllamaUnavailable",
    } <= alerts


def test_every_dashboard_is_shipped_by_the_monitoring_component() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    shipped = {
        entry.split("=", 1)[1]
        for generator in kustomization["configMapGenerator"]
        for entry in generator["files"]
    }

    assert [p.name for p in DASHBOARDS] == ["dashboard.json", "dora-dashboard.json"]
    assert shipped == {p.name for p in DASHBOARDS}


def test_the_dora_dashboard_shows_the_four_keys() -> None:
    dashboard = json.loads((MONITORING / "dora-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for t in panel["targets"]
               for name in metric_names(t["expr"])}  # fmt: skip

    assert {
        "bruno_dora_deployments_per_day",
        "bruno_dora_lead_time_seconds",
        "bruno_dora_change_failure_ratio",
        "bruno_dora_time_to_restore_seconds",
    } <= queried
    assert len({d["uid"] for d in map(json.loads, map(Path.read_text, DASHBOARDS))}) == 2
