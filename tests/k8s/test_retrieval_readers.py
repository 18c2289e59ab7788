"""The retrieval-readers component: one writer StatefulSet, a reader Deployment that follows it.

Rendered with every overlay that could use it (conftest.py's matrix: base, dev, staging and prod
with lancedb-s3 added). The writer must stay a single pod in the writer role behind the
unchanged ``retrieval`` Service; the readers must run what the writer runs (image, settings,
object-storage credentials, probes, hardening) in the reader role, autoscaled, budgeted and
spread, and the edge must balance its reads over them. Without the component nothing of it
may be rendered. The NetworkPolicies' paths are checked in test_network_policies.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Kustomize, Rendered

Manifest = dict[str, Any]

COMPONENT = "retrieval-readers"
READERS = "retrieval-reader"
WRITER = "retrieval"
GRPC_PORT = 50052
METRICS_PORT = 9090
READER_ADDR = f"dns:///{READERS}.agent-bruno.svc.cluster.local:{GRPC_PORT}"
# The writer's container fields the readers must share (resources are compared separately:
# an overlay may raise the writer's after the component has run, see k8s/README.md).
SHARED_FIELDS = (
    "image",
    "ports",
    "env",
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
    "lifecycle",
    "securityContext",
)
SHARED_POD_SECURITY = ("runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile")


def _with_readers(all_rendered: dict[str, Rendered]) -> Iterator[Rendered]:
    found = [r for r in all_rendered.values() if r.has(COMPONENT)]
    assert len(found) >= 4, "the matrix renders the readers with base, dev, staging and prod"
    yield from found


def _pod(workload: Manifest) -> Manifest:
    pod: Manifest = workload["spec"]["template"]
    return pod


def _container(workload: Manifest) -> Manifest:
    name = workload["metadata"]["name"]
    (container,) = [c for c in _pod(workload)["spec"]["containers"] if c["name"] == name]
    found: Manifest = container
    return found


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _environment(rendered: Rendered, container: Manifest) -> dict[str, str]:
    """What the process sees from its ConfigMaps: envFrom in order (a later source wins)."""
    config_maps = {
        cm["metadata"]["name"]: cm.get("data", {}) for cm in rendered.of_kind("ConfigMap")
    }
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(config_maps[source["configMapRef"]["name"]])
    for env in container.get("env", []):
        if "value" in env:
            environment[env["name"]] = env["value"]
    return environment


def test_the_component_refuses_to_render_without_object_storage(
    tmp_path: Path, kustomize: Kustomize
) -> None:
    # Readers of a ReadWriteOnce volume cannot exist: no lancedb-s3 (or listed after), no render.
    for components in ((COMPONENT,), (COMPONENT, "lancedb-s3")):
        directory = kustomize.variant(tmp_path / "-".join(components), "overlays/dev", components)
        with pytest.raises(kustomize.error, match="object-storage"):
            kustomize.render(directory)


def test_without_the_component_nothing_of_the_readers_is_rendered(
    all_rendered: dict[str, Rendered],
) -> None:
    without = [r for r in all_rendered.values() if not r.has(COMPONENT)]
    assert {"dev", "staging", "prod", "base+lancedb-s3"} <= {r.name for r in without}
    for rendered in without:
        names = {doc["metadata"]["name"] for doc in rendered.docs}
        assert not {n for n in names if n.startswith((READERS, "retrieval-role-"))}, rendered.name
        assert "BRUNO_RETRIEVAL_READER_ADDR" not in rendered.config(), rendered.name
        writer = rendered.get("StatefulSet", WRITER)
        (settings,) = _container(writer)["envFrom"]
        assert settings["configMapRef"]["name"].startswith("bruno-config-"), rendered.name
        assert "BRUNO_RETRIEVAL_ROLE" not in _environment(rendered, _container(writer))
        for policy in rendered.of_kind("NetworkPolicy"):
            assert READERS not in str(policy), f"{rendered.name}: {policy['metadata']['name']}"


def test_the_writer_stays_one_pod_in_the_writer_role_behind_the_retrieval_service(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in _with_readers(all_rendered):
        writer = rendered.get("StatefulSet", WRITER)
        assert writer["spec"]["replicas"] == 1, rendered.name
        environment = _environment(rendered, _container(writer))
        assert environment["BRUNO_RETRIEVAL_ROLE"] == "writer", rendered.name
        # Writes still go to the one writer: its Services select it and never a reader.
        readers = rendered.get("Deployment", READERS)
        for name in (WRITER, f"{WRITER}-headless"):
            selector = rendered.get("Service", name)["spec"]["selector"]
            assert _selects(selector, _pod(writer)["metadata"]["labels"]), name
            assert not _selects(selector, _pod(readers)["metadata"]["labels"]), name
        assert rendered.config()["BRUNO_RETRIEVAL_ADDR"] == (
            f"{WRITER}.agent-bruno.svc.cluster.local:{GRPC_PORT}"
        )


def test_readers_run_the_writers_image_settings_probes_and_hardening_in_the_reader_role(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in _with_readers(all_rendered):
        writer = rendered.get("StatefulSet", WRITER)
        readers = rendered.get("Deployment", READERS)
        ours, theirs = _container(readers), _container(writer)
        for field in SHARED_FIELDS:
            assert ours.get(field) == theirs.get(field), f"{rendered.name}: {field}"
        pod, writer_pod = _pod(readers)["spec"], _pod(writer)["spec"]
        for field in SHARED_POD_SECURITY:
            assert pod["securityContext"][field] == writer_pod["securityContext"][field], field
        for field in ("serviceAccountName", "terminationGracePeriodSeconds"):
            assert pod[field] == writer_pod[field], field
        environment = _environment(rendered, ours)
        assert environment["BRUNO_RETRIEVAL_ROLE"] == "reader", rendered.name
        # Apart from the role, the readers see exactly the writer's settings.
        assert {k: v for k, v in environment.items() if k != "BRUNO_RETRIEVAL_ROLE"} == {
            k: v for k, v in _environment(rendered, theirs).items() if k != "BRUNO_RETRIEVAL_ROLE"
        }
        # Stateless: no volume but /tmp, so nothing ties a reader to a node.
        assert [v["name"] for v in pod["volumes"]] == ["tmp"]
        assert "emptyDir" in pod["volumes"][0]


def test_readers_read_the_writers_object_storage_with_its_credentials(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in _with_readers(all_rendered):
        readers = rendered.get("Deployment", READERS)
        writer = rendered.get("StatefulSet", WRITER)
        assert _environment(rendered, _container(readers))["BRUNO_LANCEDB_URI"].startswith("s3://")
        secrets = {
            env["name"]: env["valueFrom"]["secretKeyRef"] for env in _container(readers)["env"]
        }
        assert secrets == {
            env["name"]: env["valueFrom"]["secretKeyRef"] for env in _container(writer)["env"]
        }
        assert {ref["name"] for ref in secrets.values()} == {"bruno-lancedb-s3"}
        label = "agent-bruno.dev/object-storage"
        assert _pod(readers)["metadata"]["labels"][label] == "true", rendered.name


def test_readers_start_with_the_writers_resources(all_rendered: dict[str, Rendered]) -> None:
    # The component copies the base writer's; an overlay that raises the writer's (prod's
    # patches/resources-retrieval.yaml) raises the readers' itself (k8s/README.md).
    base_writer = all_rendered["base"].get("StatefulSet", WRITER)
    for rendered in _with_readers(all_rendered):
        readers = rendered.get("Deployment", READERS)
        assert _container(readers)["resources"] == _container(base_writer)["resources"]


def test_readers_are_autoscaled_on_cpu_from_two(all_rendered: dict[str, Rendered]) -> None:
    for rendered in _with_readers(all_rendered):
        readers = rendered.get("Deployment", READERS)
        assert "replicas" not in readers["spec"], "replicas would fight the autoscaler"
        (hpa,) = [
            h
            for h in rendered.of_kind("HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": READERS}
        ]
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"] <= 10
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert "cpu" in _container(readers)["resources"]["requests"]


def test_readers_have_a_disruption_budget_and_spread_across_nodes_and_zones(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in _with_readers(all_rendered):
        readers = rendered.get("Deployment", READERS)
        labels = _pod(readers)["metadata"]["labels"]
        budgets = [
            b
            for b in rendered.of_kind("PodDisruptionBudget")
            if _selects(b["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(budgets) == 1, rendered.name
        assert budgets[0]["spec"]["maxUnavailable"] == 1
        writer_labels = _pod(rendered.get("StatefulSet", WRITER))["metadata"]["labels"]
        assert not _selects(budgets[0]["spec"]["selector"]["matchLabels"], writer_labels)
        constraints = _pod(readers)["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        for constraint in constraints:
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": READERS}


def test_readers_answer_native_grpc_health_probes_and_get_minutes_to_start(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in _with_readers(all_rendered):
        container = _container(rendered.get("Deployment", READERS))
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["grpc"]["port"] == GRPC_PORT, probe
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_the_edge_balances_its_reads_over_every_reader(all_rendered: dict[str, Rendered]) -> None:
    for rendered in _with_readers(all_rendered):
        assert rendered.config()["BRUNO_RETRIEVAL_READER_ADDR"] == READER_ADDR
        service = rendered.get("Service", READERS)
        # Headless: the name resolves to every ready reader for the client's round-robin.
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": READERS}
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports["grpc"] == (GRPC_PORT, "grpc")


def test_readers_are_scraped_like_the_writer(all_rendered: dict[str, Rendered]) -> None:
    for rendered in _with_readers(all_rendered):
        readers = rendered.get("Deployment", READERS)
        annotations = _pod(readers)["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(METRICS_PORT)
        ports = rendered.get("Service", READERS)["spec"]["ports"]
        assert {p["name"]: (p["port"], p["targetPort"]) for p in ports}["metrics"] == (
            METRICS_PORT,
            "metrics",
        )
        monitors = rendered.of_kind("ServiceMonitor")
        assert bool(monitors) == rendered.has("monitoring"), rendered.name
        for monitor in monitors:
            (expression,) = monitor["spec"]["selector"]["matchExpressions"]
            assert expression["key"] == "app.kubernetes.io/name"
            assert {WRITER, READERS} <= set(expression["values"]), rendered.name
