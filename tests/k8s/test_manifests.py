"""The rendered k8s overlays: valid Kubernetes objects that follow the project's deployment rules.

Each overlay is rendered once per session with ``kubectl kustomize`` (offline) and checked against
the Kubernetes schemas (strict: unknown fields fail) and against the rules in ``k8s/README.md``.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "staging", "prod")
NAMESPACE = "agent-bruno"
# The oldest Kubernetes minor the manifests target (native gRPC probes are GA since 1.27,
# the StatefulSet PVC retention policy since 1.32).
K8S_VERSION = "1.32.0"

INTERNAL_PORTS = {"embedding": 50051, "retrieval": 50052, "generation": 50053}
EDGE_PORT = 8080
METRICS_PORT = 9090
SERVICES = ("edge", *INTERNAL_PORTS)
IMAGE_REPO = "ghcr.io/agent-bruno"
TMP = "/tmp"  # noqa: S108 - the path the pods mount their emptyDir at, not a file we open

# Secrets the operator creates out of band (k8s/README.md); the tree must never hold one.
EXTERNAL_SECRETS = {"bruno-api-keys", "bruno-edge-tls"}

# The settings the services read (docs: the README settings table); a misspelt name here would
# be silently ignored by pydantic-settings, so the ConfigMap may only use these.
KNOWN_SETTINGS = {
    "BRUNO_LOG_LEVEL",
    "BRUNO_LOG_FORMAT",
    "BRUNO_GRPC_MAX_MESSAGE_BYTES",
    "BRUNO_GRPC_GRACE_SECONDS",
    "BRUNO_GRPC_MAX_CONCURRENT_RPCS",
    "BRUNO_EMBEDDING_LISTEN_ADDR",
    "BRUNO_EMBEDDING_METRICS_PORT",
    "BRUNO_EMBEDDING_BACKEND",
    "BRUNO_EMBEDDING_OLLAMA_MODEL",
    "BRUNO_EMBEDDING_BATCH_SIZE",
    "BRUNO_EMBEDDING_MAX_TEXTS",
    "BRUNO_EMBEDDING_THREADS",
    "OLLAMA_HOST",
    "BRUNO_RETRIEVAL_LISTEN_ADDR",
    "BRUNO_RETRIEVAL_METRICS_PORT",
    "BRUNO_EMBEDDING_ADDR",
    "BRUNO_LANCEDB_URI",
    "BRUNO_CHUNK_SIZE_TOKENS",
    "BRUNO_CHUNK_OVERLAP_TOKENS",
    "BRUNO_MAX_DOCUMENT_BYTES",
    "BRUNO_EMBEDDING_TIMEOUT_SECONDS",
    "BRUNO_DEFAULT_TOP_K",
    "BRUNO_MAX_TOP_K",
    "BRUNO_GENERATION_LISTEN_ADDR",
    "BRUNO_GENERATION_METRICS_PORT",
    "BRUNO_GENERATION_BACKEND",
    "BRUNO_OLLAMA_MODEL",
    "BRUNO_OLLAMA_TIMEOUT_SECONDS",
    "BRUNO_OLLAMA_CONNECT_TIMEOUT_SECONDS",
    "BRUNO_EDGE_HOST",
    "BRUNO_EDGE_PORT",
    "BRUNO_RETRIEVAL_ADDR",
    "BRUNO_GENERATION_ADDR",
    "BRUNO_API_KEYS",
    "BRUNO_MAX_MESSAGE_CHARS",
    "BRUNO_MAX_REQUEST_BYTES",
    "BRUNO_CHAT_TIMEOUT_SECONDS",
    "BRUNO_REQUEST_TIMEOUT_SECONDS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
}

EXPECTED_REPLICAS = {
    "dev": {"edge": 1, "embedding": 1, "generation": 1, "retrieval": 1},
    "staging": {"edge": 1, "embedding": 1, "generation": 1, "retrieval": 1},
    "prod": {"edge": 3, "embedding": 2, "generation": 2, "retrieval": 1},
}
EXPECTED_STORAGE = {"dev": "1Gi", "staging": "5Gi", "prod": "20Gi"}
PROD_HOST = "bruno.example.internal"

CLUSTER_SCOPED = {"Namespace"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


@dataclass(frozen=True)
class Rendered:
    """One overlay as ``kubectl kustomize`` renders it, with the kustomization that made it."""

    overlay: str
    docs: list[Manifest]
    kustomization: Manifest

    def of_kind(self, kind: str) -> list[Manifest]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def workloads(self) -> list[Manifest]:
        return [doc for doc in self.docs if doc["kind"] in WORKLOAD_KINDS]

    def workload(self, name: str) -> Manifest:
        found = [doc for doc in self.workloads() if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one workload {name}"
        return found[0]

    def config(self) -> dict[str, str]:
        """The merged data of every ConfigMap (there is one: bruno-config-<hash>)."""
        data: dict[str, str] = {}
        for config_map in self.of_kind("ConfigMap"):
            data.update(config_map.get("data", {}))
        return data


def _kubectl() -> str | None:
    return shutil.which("kubectl") or (
        "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else None
    )


def _render(kubectl: str, overlay: str) -> Rendered:
    directory = K8S / "overlays" / overlay
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay} failed:\n{result.stderr}"
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return Rendered(overlay=overlay, docs=docs, kustomization=kustomization)


@pytest.fixture(scope="session")
def all_rendered() -> dict[str, Rendered]:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlays cannot be rendered (kubectl kustomize)")
    return {overlay: _render(kubectl, overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, all_rendered: dict[str, Rendered]) -> Rendered:
    overlay: str = request.param
    return all_rendered[overlay]


def _pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def _containers(workload: Manifest) -> Iterator[Manifest]:
    spec = _pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _all_containers(rendered: Rendered) -> Iterator[tuple[str, Manifest]]:
    for workload in rendered.workloads():
        for container in _containers(workload):
            yield (
                f"{rendered.overlay}:{workload['metadata']['name']}/{container['name']}",
                container,
            )


def _main_container(workload: Manifest) -> Manifest:
    name = workload["metadata"]["name"]
    found: list[Manifest] = [c for c in _pod_spec(workload)["containers"] if c["name"] == name]
    assert len(found) == 1, f"{name}: no container named like its workload"
    return found[0]


def _named_port(container: Manifest, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert name in ports, f"{container['name']}: no container port named {name!r}"
    port: int = ports[name]
    return port


def _quantity(value: str | int | float) -> Fraction:
    """A Kubernetes resource quantity (``250m``, ``1``, ``512Mi``, ``1G``) as a number."""
    text = str(value)
    suffixes = {
        "m": Fraction(1, 1000),
        "Ki": Fraction(2**10),
        "Mi": Fraction(2**20),
        "Gi": Fraction(2**30),
        "Ti": Fraction(2**40),
        "k": Fraction(10**3),
        "M": Fraction(10**6),
        "G": Fraction(10**9),
        "T": Fraction(10**12),
    }
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", text)
    assert match, f"not a quantity: {text!r}"
    number, suffix = match.groups()
    return Fraction(number) * suffixes.get(suffix, Fraction(1)) if suffix else Fraction(number)


def _split_image(image: str) -> tuple[str, str | None]:
    """``repo[:tag][@digest]`` → (repo, tag or None); a port in the registry is not a tag."""
    name = image.split("@", 1)[0]
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, None
    return repo, tag


# --- schema ----------------------------------------------------------------------------------


def test_every_object_is_valid_against_the_kubernetes_schema_in_strict_mode(
    rendered: Rendered,
) -> None:
    for doc in rendered.docs:
        where = f"{rendered.overlay}: {doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{where}: no schema for {doc['apiVersion']} {doc['kind']}")
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{where}: {path}: {error.message}")


def test_strict_validation_rejects_a_misspelt_field(all_rendered: dict[str, Rendered]) -> None:
    # Guards the test above: strict mode must catch what kubectl apply would silently drop.
    deployment = copy.deepcopy(all_rendered["dev"].get("Deployment", "edge"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


# --- namespace, labels, exposure ---------------------------------------------------------------


def test_everything_lives_in_the_agent_bruno_namespace_with_the_part_of_label(
    rendered: Rendered,
) -> None:
    for doc in rendered.docs:
        meta = doc["metadata"]
        where = f"{rendered.overlay}: {doc['kind']}/{meta['name']}"
        if doc["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == NAMESPACE, where
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "agent-bruno", where
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/part-of") == "agent-bruno"


def test_the_namespace_enforces_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    namespace = rendered.get("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_only_the_edge_is_exposed_and_only_through_a_prod_ingress(rendered: Rendered) -> None:
    for service in rendered.of_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == "edge"
    assert bool(rendered.of_kind("Ingress")) == (rendered.overlay == "prod")


# --- container hardening -------------------------------------------------------------------------


def test_every_container_runs_locked_down(rendered: Rendered) -> None:
    for where, container in _all_containers(rendered):
        context = container.get("securityContext", {})
        assert context.get("runAsNonRoot") is True, where
        assert context.get("runAsUser") == 10001, where
        assert context.get("readOnlyRootFilesystem") is True, where
        assert context.get("allowPrivilegeEscalation") is False, where
        assert context.get("privileged", False) is False, where
        assert context.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not context.get("capabilities", {}).get("add"), where
        assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


def test_every_container_gets_a_writable_tmp_from_an_empty_dir(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        volumes = {v["name"]: v for v in _pod_spec(workload).get("volumes", [])}
        for container in _containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            where = f"{rendered.overlay}:{container['name']}"
            assert TMP in mounts, where
            assert "emptyDir" in volumes[mounts[TMP]], where


def test_no_pod_mounts_a_service_account_token_or_shares_the_host(rendered: Rendered) -> None:
    accounts = {sa["metadata"]["name"]: sa for sa in rendered.of_kind("ServiceAccount")}
    for workload in rendered.workloads():
        spec = _pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec.get("serviceAccountName") in accounts, name
        assert accounts[spec["serviceAccountName"]].get("automountServiceAccountToken") is False
        for host_field in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host_field), f"{name}: {host_field}"


def test_every_pod_has_thirty_seconds_to_shut_down(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        spec = _pod_spec(workload)
        assert spec.get("terminationGracePeriodSeconds") == 30, workload["metadata"]["name"]


def test_every_container_has_cpu_and_memory_requests_within_limits(rendered: Rendered) -> None:
    for where, container in _all_containers(rendered):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            assert request is not None, f"{where}: no {resource} request"
            assert limit is not None, f"{where}: no {resource} limit"
            assert _quantity(request) <= _quantity(limit), f"{where}: {resource}"


def test_embedding_requests_memory_enough_for_its_model(rendered: Rendered) -> None:
    container = _main_container(rendered.workload("embedding"))
    assert _quantity(container["resources"]["requests"]["memory"]) >= _quantity("512Mi")


# --- probes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(INTERNAL_PORTS))
def test_internal_services_are_probed_with_native_grpc_health_checks(
    rendered: Rendered, service: str
) -> None:
    container = _main_container(rendered.workload(service))
    grpc_port = _named_port(container, "grpc")
    assert grpc_port == INTERNAL_PORTS[service]
    for probe_name in ("livenessProbe", "readinessProbe"):
        probe = container.get(probe_name)
        assert probe is not None, f"{service}: no {probe_name}"
        assert probe.get("grpc", {}).get("port") == grpc_port, f"{service}: {probe_name}"
        assert "httpGet" not in probe
        assert "exec" not in probe


def test_embedding_has_a_startup_probe_covering_the_model_load(rendered: Rendered) -> None:
    container = _main_container(rendered.workload("embedding"))
    probe = container.get("startupProbe")
    assert probe is not None
    assert probe["grpc"]["port"] == INTERNAL_PORTS["embedding"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 120


def test_edge_is_probed_over_http_on_health_and_ready(rendered: Rendered) -> None:
    container = _main_container(rendered.workload("edge"))
    assert _named_port(container, "http") == EDGE_PORT
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert (liveness["path"], liveness["port"]) == ("/health", "http")
    assert (readiness["path"], readiness["port"]) == ("/ready", "http")


# --- images --------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_tag_and_never_latest(rendered: Rendered) -> None:
    for where, container in _all_containers(rendered):
        repo, tag = _split_image(container["image"])
        assert tag is not None, f"{where}: {container['image']} has no tag"
        assert tag != "latest", f"{where}: {container['image']}"
        assert repo.startswith(f"{IMAGE_REPO}/"), where


def test_the_overlay_sets_every_image_tag_it_renders(rendered: Rendered) -> None:
    declared = {image["name"]: image["newTag"] for image in rendered.kustomization["images"]}
    assert set(declared) == {f"{IMAGE_REPO}/{service}" for service in SERVICES}
    for where, container in _all_containers(rendered):
        repo, tag = _split_image(container["image"])
        assert repo in declared, f"{where}: {repo} has no entry in the overlay's images:"
        assert tag == declared[repo], where


def test_dev_runs_development_builds_and_the_others_release_builds(
    all_rendered: dict[str, Rendered],
) -> None:
    for overlay, rendered in all_rendered.items():
        tags = {_split_image(c["image"])[1] for _, c in _all_containers(rendered)}
        assert len(tags) == 1, f"{overlay}: the services run different tags {tags}"
        (tag,) = tags
        assert tag is not None
        assert tag.endswith("-dev") == (overlay == "dev"), f"{overlay}: {tag}"


# --- secrets and configuration -------------------------------------------------------------------


def _secret_references(rendered: Rendered) -> set[str]:
    names: set[str] = set()
    for workload in rendered.workloads():
        for container in _containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
        for volume in _pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
    for ingress in rendered.of_kind("Ingress"):
        names.update(tls["secretName"] for tls in ingress["spec"].get("tls", []))
    return names


def test_no_secret_is_rendered_and_every_referenced_one_is_documented(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    referenced = _secret_references(rendered)
    assert "bruno-api-keys" in referenced
    assert referenced <= EXTERNAL_SECRETS, referenced - EXTERNAL_SECRETS
    readme = (K8S / "README.md").read_text()
    for name in referenced:
        assert f"`{name}`" in readme, f"k8s/README.md does not say how to create {name}"


def test_the_tree_commits_no_secret_objects_or_generators() -> None:
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict):
                assert doc.get("kind") != "Secret", path
                assert "secretGenerator" not in doc, path
    for path in sorted(K8S.rglob("*.env")):
        assert "BRUNO_API_KEYS" not in path.read_text(), path


def test_edge_reads_its_api_keys_from_the_secret(rendered: Rendered) -> None:
    env = {e["name"]: e for e in _main_container(rendered.workload("edge")).get("env", [])}
    ref = env["BRUNO_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("bruno-api-keys", "api-keys")
    assert not ref.get("optional", False)


def test_env_comes_only_from_rendered_config_maps_and_external_secrets(rendered: Rendered) -> None:
    config_maps = {
        cm["metadata"]["name"]: cm.get("data", {}) for cm in rendered.of_kind("ConfigMap")
    }
    for where, container in _all_containers(rendered):
        for source in container.get("envFrom", []):
            assert set(source) <= {"configMapRef", "secretRef"}, where
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps, where
        for env in container.get("env", []):
            # Settings live in the ConfigMap, not inline in a pod spec.
            assert "value" not in env, f"{where}: {env['name']} is set inline"
            assert env["name"] in KNOWN_SETTINGS, f"{where}: unknown setting {env['name']}"
            source = env["valueFrom"]
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in config_maps.get(ref["name"], {}), where
            elif "secretKeyRef" in source:
                assert source["secretKeyRef"]["name"] in EXTERNAL_SECRETS, where
            else:
                assert set(source) <= {"resourceFieldRef", "fieldRef"}, where


def test_the_config_map_holds_only_settings_the_services_read(rendered: Rendered) -> None:
    config = rendered.config()
    assert set(config) <= KNOWN_SETTINGS, set(config) - KNOWN_SETTINGS
    assert config["BRUNO_LOG_FORMAT"] == "json"
    assert config["BRUNO_EDGE_HOST"] == "0.0.0.0"
    assert config["OLLAMA_HOST"] == "http://ollama.ollama.svc.cluster.local:11434"


def test_listen_and_metrics_ports_match_the_containers_and_annotations(rendered: Rendered) -> None:
    config = rendered.config()
    for service, port in INTERNAL_PORTS.items():
        workload = rendered.workload(service)
        container = _main_container(workload)
        prefix = f"BRUNO_{service.upper()}"
        assert config[f"{prefix}_LISTEN_ADDR"] == f"0.0.0.0:{port}"
        assert _named_port(container, "grpc") == port
        assert int(config[f"{prefix}_METRICS_PORT"]) == METRICS_PORT
        assert _named_port(container, "metrics") == METRICS_PORT
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    edge = rendered.workload("edge")
    assert int(config["BRUNO_EDGE_PORT"]) == _named_port(_main_container(edge), "http")
    annotations = edge["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(EDGE_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_downstream_addresses_name_a_service_port_in_this_namespace(rendered: Rendered) -> None:
    services = {svc["metadata"]["name"]: svc for svc in rendered.of_kind("Service")}
    addresses = {k: v for k, v in rendered.config().items() if k.endswith("_ADDR")}
    assert set(addresses) >= {f"BRUNO_{s.upper()}_ADDR" for s in INTERNAL_PORTS}
    for key, address in addresses.items():
        if key.endswith("_LISTEN_ADDR"):
            continue
        host, _, port = address.rpartition(":")
        name, *domain = host.split(".")
        assert domain in (
            [],
            [NAMESPACE],
            [NAMESPACE, "svc"],
            [NAMESPACE, "svc", "cluster", "local"],
        )
        assert name in services, f"{key}={address}: no Service {name}"
        grpc_ports = [p["port"] for p in services[name]["spec"]["ports"] if p["name"] == "grpc"]
        assert grpc_ports == [int(port)], f"{key}={address}"


# --- services and selectors ----------------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_service_selects_exactly_one_workload_and_targets_its_named_ports(
    rendered: Rendered,
) -> None:
    for service in rendered.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        matches = [
            w
            for w in rendered.workloads()
            if _selects(selector, w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matches) == 1, f"{rendered.overlay}: Service {name} selects {len(matches)}"
        container = _main_container(matches[0])
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            if isinstance(target, str):
                _named_port(container, target)
            else:
                assert target in [p["containerPort"] for p in container["ports"]], name
        if name in INTERNAL_PORTS:
            assert [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"] == [
                INTERNAL_PORTS[name]
            ]


def test_every_workload_is_reachable_through_a_service(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        selector = workload["spec"]["selector"]["matchLabels"]
        assert _selects(selector, labels), workload["metadata"]["name"]
        assert any(
            _selects(service["spec"]["selector"], labels) for service in rendered.of_kind("Service")
        ), workload["metadata"]["name"]


# --- retrieval's volume, replicas, storage -------------------------------------------------------


def test_retrieval_is_a_single_writer_statefulset_with_lancedb_on_its_volume(
    rendered: Rendered,
) -> None:
    statefulset = rendered.get("StatefulSet", "retrieval")
    assert statefulset["spec"]["replicas"] == 1
    headless = rendered.get("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in _main_container(statefulset)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"
    assert rendered.config()["BRUNO_LANCEDB_URI"] == "/data/lancedb"
    assert _pod_spec(statefulset)["securityContext"]["fsGroup"] == 10001


def test_each_overlay_sizes_the_lancedb_volume(rendered: Rendered) -> None:
    (claim,) = rendered.get("StatefulSet", "retrieval")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == EXPECTED_STORAGE[rendered.overlay]


def test_each_overlay_runs_its_replica_counts(rendered: Rendered) -> None:
    replicas = {w["metadata"]["name"]: w["spec"]["replicas"] for w in rendered.workloads()}
    assert replicas == EXPECTED_REPLICAS[rendered.overlay]


def test_prod_raises_resources_above_the_base(all_rendered: dict[str, Rendered]) -> None:
    for service in SERVICES:
        base = _main_container(all_rendered["staging"].workload(service))["resources"]
        prod = _main_container(all_rendered["prod"].workload(service))["resources"]
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert _quantity(prod[bound][resource]) > _quantity(base[bound][resource]), (
                    f"{service}: {bound}.{resource}"
                )


# --- prod extras ---------------------------------------------------------------------------------


def test_prod_keeps_edge_pods_up_through_voluntary_disruptions(
    all_rendered: dict[str, Rendered],
) -> None:
    prod = all_rendered["prod"]
    (budget,) = prod.of_kind("PodDisruptionBudget")
    edge = prod.workload("edge")
    assert _selects(
        budget["spec"]["selector"]["matchLabels"], edge["spec"]["template"]["metadata"]["labels"]
    )
    for other in prod.workloads():
        if other is not edge:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not _selects(budget["spec"]["selector"]["matchLabels"], labels)
    assert budget["spec"]["maxUnavailable"] < edge["spec"]["replicas"]


def test_prod_ingress_serves_the_edge_over_tls_on_the_placeholder_host(
    all_rendered: dict[str, Rendered],
) -> None:
    prod = all_rendered["prod"]
    ingress = prod.get("Ingress", "edge")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == PROD_HOST
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = prod.get("Service", backend["name"])
    assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [PROD_HOST]
    assert PROD_HOST in (K8S / "README.md").read_text()
