"""Flux, Flagger and Velero objects: valid against the schemas kept in k8s/schemas, and wired to
what exists (paths render, dependencies point at real objects, hooks call real commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

if TYPE_CHECKING:
    from conftest import Kustomize, Rendered

Manifest = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CLUSTERS = ("dev", "staging", "prod")
GOLDEN = K8S / "components" / "canary" / "golden-questions.json"
WATCHED_KINDS = {"GitRepository", "Kustomization"}


CUSTOM_GROUPS = {
    "source.toolkit.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "flagger.app",
    "velero.io",
    "monitoring.coreos.com",
    "external-secrets.io",
    "notification.toolkit.fluxcd.io",
}


def _validate(doc: Manifest) -> None:
    group, _, version = doc["apiVersion"].rpartition("/")
    if group in CUSTOM_GROUPS:
        schema = K8S / "schemas" / group / f"{doc['kind'].lower()}_{version}.json"
        jsonschema.validate(doc, json.loads(schema.read_text()))
    else:
        kubernetes_validate.validate(doc, "1.32.0", strict=True)


def cluster_docs(cluster: str) -> list[Manifest]:
    docs = []
    for path in sorted((K8S / "clusters" / cluster).glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _flux(cluster: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in cluster_docs(cluster) if d["kind"] == "Kustomization"}


# --- Flux ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_flux_objects_are_valid(cluster: str) -> None:
    docs = cluster_docs(cluster)
    assert {d["kind"] for d in docs} == {"GitRepository", "Kustomization", "Provider", "Alert"}
    for doc in docs:
        _validate(doc)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_apps_wait_for_configs_which_wait_for_controllers(cluster: str) -> None:
    flux = _flux(cluster)
    assert [d["name"] for d in flux["agent-bruno"]["spec"]["dependsOn"]] == ["infra-configs"]
    assert [d["name"] for d in flux["infra-configs"]["spec"]["dependsOn"]] == ["infra-controllers"]
    assert "dependsOn" not in flux["infra-controllers"]["spec"]
    sources = {d["metadata"]["name"] for d in cluster_docs(cluster) if d["kind"] == "GitRepository"}
    for kustomization in flux.values():
        spec = kustomization["spec"]
        assert spec["prune"] is True
        assert spec["sourceRef"]["name"] in sources
        assert "timeout" in spec
        assert spec.get("wait") is True or spec.get("healthChecks"), kustomization


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_cluster_applies_its_own_overlay(cluster: str) -> None:
    assert _flux(cluster)["agent-bruno"]["spec"]["path"] == f"./k8s/overlays/{cluster}"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_flux_path_renders_and_every_object_is_valid(
    cluster: str, kustomize: Kustomize
) -> None:
    for kustomization in _flux(cluster).values():
        directory = ROOT / kustomization["spec"]["path"]
        for doc in kustomize.render(directory):
            _validate(doc)


@pytest.mark.parametrize("cluster", ["staging", "prod"])
def test_health_checks_name_objects_the_overlay_renders(
    cluster: str, all_rendered: dict[str, Rendered]
) -> None:
    checks = _flux(cluster)["agent-bruno"]["spec"]["healthChecks"]
    for check in checks:
        assert all_rendered[cluster].find(check["kind"], check["name"]) is not None, check
    # Under Flagger the Canary's status, not the scaled-to-zero Deployment, says the edge is up.
    kinds = {c["kind"] for c in checks}
    assert ("Canary" in kinds) == bool(all_rendered[cluster].of_kind("Canary"))


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_each_cluster_tells_the_team_chat_about_everything_flux_applies_there(
    cluster: str,
) -> None:
    docs = cluster_docs(cluster)
    (provider,) = [d for d in docs if d["kind"] == "Provider"]
    (alert,) = [d for d in docs if d["kind"] == "Alert"]
    watched = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in WATCHED_KINDS}

    assert alert["spec"]["providerRef"]["name"] == provider["metadata"]["name"]
    assert {(s["kind"], s["name"]) for s in alert["spec"]["eventSources"]} == watched
    assert alert["spec"]["eventSeverity"] == "info"  # each applied revision, not only failures
    assert alert["spec"]["eventMetadata"]["cluster"] == cluster
    # The webhook URL comes from a Secret created out of band, never from the repository.
    assert provider["spec"]["secretRef"] == {"name": "deploy-notifications"}
    assert "address" not in provider["spec"]
    assert {d["metadata"]["namespace"] for d in (provider, alert)} == {"flux-system"}


def test_the_notification_schemas_reject_a_misspelt_field_and_an_unknown_source() -> None:
    docs = cluster_docs("prod")
    alert = next(d for d in docs if d["kind"] == "Alert")
    misspelt = {**alert, "spec": {**alert["spec"], "eventSeverty": "info"}}
    canary = {**alert, "spec": {**alert["spec"], "eventSources": [{"kind": "Canary", "name": "e"}]}}

    for wrong in (misspelt, canary):
        with pytest.raises(jsonschema.ValidationError):
            _validate(wrong)


# --- Velero ----------------------------------------------------------------------------------


def test_velero_keeps_hourly_backups_30_days_and_daily_90(kustomize: Kustomize) -> None:
    schedules = {d["metadata"]["name"]: d for d in kustomize.render(K8S / "backup")}
    for doc in schedules.values():
        _validate(doc)
        assert doc["metadata"]["namespace"] == "velero"
        assert doc["spec"]["template"]["includedNamespaces"] == ["agent-bruno"]
        assert doc["spec"]["useOwnerReferencesInBackup"] is False
    assert schedules["agent-bruno-hourly"]["spec"]["schedule"] == "0 * * * *"
    assert schedules["agent-bruno-hourly"]["spec"]["template"]["ttl"] == "720h0m0s"
    assert schedules["agent-bruno-daily"]["spec"]["template"]["ttl"] == "2160h0m0s"


def _backup_commands(rendered: Rendered) -> list[list[str]]:
    pod = rendered.get("StatefulSet", "retrieval")["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    commands = [
        json.loads(annotations[f"{phase}.hook.backup.velero.io/command"])
        for phase in ("pre", "post")
    ]
    (init,) = pod["spec"]["initContainers"]
    return [*commands, init["command"]]


def test_the_lancedb_volume_is_backed_up_with_consistency_hooks(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in all_rendered.values():
        statefulset = rendered.get("StatefulSet", "retrieval")
        annotations = statefulset["spec"]["template"]["metadata"].get("annotations", {})
        if not rendered.has("velero-backup"):
            assert "backup.velero.io/backup-volumes" not in annotations
            continue
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        assert annotations["backup.velero.io/backup-volumes"] == claim["metadata"]["name"]
        assert annotations["pre.hook.backup.velero.io/container"] == "retrieval"
        assert annotations["pre.hook.backup.velero.io/on-error"] == "Fail"
        verbs = [command[2] for command in _backup_commands(rendered)]
        assert verbs == ["checkpoint", "release", "recover"]
        for command in _backup_commands(rendered):
            assert command[:2] == ["python", "/opt/bruno-backup/lancedb_backup.py"]
            assert command[3] == "/data/lancedb"


# --- Flagger ---------------------------------------------------------------------------------


def test_the_canary_rolls_out_the_edge_behind_the_ingress_with_both_gates(
    all_rendered: dict[str, Rendered],
) -> None:
    prod = all_rendered["prod"]
    canary = prod.get("Canary", "edge")
    spec = canary["spec"]
    assert prod.get("Deployment", spec["targetRef"]["name"])
    assert prod.get("Ingress", spec["ingressRef"]["name"])
    assert prod.get("HorizontalPodAutoscaler", spec["autoscalerRef"]["name"])
    assert spec["provider"] == "nginx"
    analysis = spec["analysis"]
    assert 0 < analysis["stepWeight"] <= analysis["maxWeight"] <= 50
    templates = {t["metadata"]["name"] for t in prod.of_kind("MetricTemplate")}
    assert {m["templateRef"]["name"] for m in analysis["metrics"]} == templates
    hooks = {h["type"]: h for h in analysis["webhooks"]}
    assert set(hooks) == {"pre-rollout", "rollout"}
    gate = hooks["pre-rollout"]
    assert gate["url"] == "http://golden-gate.agent-bruno/"
    assert prod.get("Service", "golden-gate")["spec"]["ports"][0]["port"] == 80
    assert gate["metadata"]["url"] == "http://edge-canary.agent-bruno"
    assert "flagger-loadtester" in hooks["rollout"]["url"]
    assert "edge-canary.agent-bruno" in hooks["rollout"]["metadata"]["cmd"]


def test_the_canary_load_test_runs_the_scenario_make_load_runs(
    all_rendered: dict[str, Rendered],
) -> None:
    prod = all_rendered["prod"]
    canary = prod.get("Canary", "edge")
    (hook,) = [h for h in canary["spec"]["analysis"]["webhooks"] if h["type"] == "rollout"]
    command = hook["metadata"]["cmd"]
    # Flagger's load tester starts a swarm of the Locust pod against the canary ...
    assert "http://bruno-load.agent-bruno/swarm" in command
    assert "host=http://edge-canary.agent-bruno" in command
    assert "user_count=32" in command  # make load's default number of users
    service = prod.get("Service", "bruno-load")["spec"]["ports"][0]
    pod = prod.get("Deployment", "bruno-load")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert service["port"] == 80
    assert [p["containerPort"] for p in container["ports"]] == [8089]
    # ... whose scenario is the very file benchmarks/load.py runs.
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    config_map = prod.get("ConfigMap", volume["configMap"]["name"])
    scenario = K8S / "components" / "canary" / "locustfile.py"
    assert config_map["data"] == {"locustfile.py": scenario.read_text()}
    assert "--locustfile=/opt/bruno-load/locustfile.py" in container["args"]
    assert (
        'SCENARIO = ROOT / "k8s" / "components" / "canary" / "locustfile.py"'
        in (ROOT / "benchmarks" / "load.py").read_text()
    )


def test_the_golden_questions_expect_documents_of_the_demo_corpus() -> None:
    questions = json.loads(GOLDEN.read_text())
    corpus = {p.name for p in (ROOT / "demo").glob("*.md")}
    assert len(questions) >= 3
    for question in questions:
        assert set(question["expect_any"]) <= corpus, question
