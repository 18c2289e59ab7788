"""The rendered k8s tree: valid Kubernetes objects that follow the project's deployment rules.

Every overlay and every variant of the component matrix (conftest.py) is checked against the
Kubernetes schemas (strict: unknown fields fail), the custom resources against the schemas in
``k8s/schemas``, and all of it against the rules in ``k8s/README.md``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from bruno_core.settings import GrpcServerSettings, environment_variables
from bruno_edge.config import EdgeSettings
from bruno_embedding.config import EmbeddingSettings
from bruno_generation.config import GenerationSettings
from bruno_pipelines import gitops
from bruno_retrieval.config import RetrievalSettings

if TYPE_CHECKING:
    from conftest import Kustomize, Rendered

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = K8S / "schemas"
NAMESPACE = "agent-bruno"
# The oldest Kubernetes minor the manifests target (native gRPC probes are GA since 1.27,
# the StatefulSet PVC retention policy and the preStop sleep action since 1.32).
K8S_VERSION = "1.32.0"

INTERNAL_PORTS = {"embedding": 50051, "retrieval": 50052, "generation": 50053}
# The retrieval-readers component's Deployment: the retrieval image in the reader role.
READERS = "retrieval-reader"
EDGE_PORT = 8080
METRICS_PORT = 9090
SERVICES = ("edge", *INTERNAL_PORTS)
IMAGE_REPO = "ghcr.io/agent-bruno"
OUR_IMAGES = {f"{IMAGE_REPO}/{service}" for service in SERVICES}
TMP = "/tmp"  # noqa: S108 - the path the pods mount their emptyDir at, not a file we open
CUSTOM_GROUPS = {
    "source.toolkit.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "flagger.app",
    "velero.io",
    "monitoring.coreos.com",
    "external-secrets.io",
}

# Secrets the operator creates out of band (k8s/README.md); the tree must never hold one.
EXTERNAL_SECRETS = {
    "bruno-api-keys",
    "bruno-api-keys-file",
    "bruno-edge-tls",
    "bruno-lancedb-s3",
    "deploy-notifications",
}


# A misspelt name would be silently ignored by pydantic-settings, so pods may only set these.
KNOWN_SETTINGS = set().union(
    *(
        environment_variables(cls)
        for cls in (EmbeddingSettings, RetrievalSettings, GenerationSettings, EdgeSettings)
    )
)
# Read by libraries, not by a settings class: the OpenTelemetry SDK, LanceDB's object store.
READ_BY_LIBRARIES = {
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "AWS_REGION",
    "AWS_ENDPOINT",
    "AWS_ALLOW_HTTP",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
}

EXPECTED_REPLICAS = {
    "dev": {"edge": 1, "embedding": 1, "generation": 1, "retrieval": 1},
    "staging": {"edge": 2, "embedding": 2, "generation": 2, "retrieval": 1},
    "prod": {"edge": 3, "embedding": 2, "generation": 2, "retrieval": 1},
}
EXPECTED_STORAGE = {"dev": "1Gi", "staging": "5Gi", "prod": "20Gi"}
# dev takes the cluster's default class (no storageClassName).
EXPECTED_STORAGE_CLASS = {"dev": None, "staging": "local-path", "prod": "longhorn"}
EXPECTED_HOSTS = {
    "dev": "bruno.dev.example.internal",
    "staging": "bruno.staging.example.internal",
    "prod": "bruno.example.internal",
}
CLUSTER_SCOPED = {"Namespace"}


def _pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def _pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _containers(workload: Manifest) -> Iterator[Manifest]:
    spec = _pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _all_containers(rendered: Rendered) -> Iterator[tuple[str, Manifest]]:
    for workload in rendered.workloads():
        for container in _containers(workload):
            yield f"{rendered.name}:{workload['metadata']['name']}/{container['name']}", container


def _ours(container: Manifest) -> bool:
    return _split_image(container["image"])[0] in OUR_IMAGES


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


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _canary_targets(rendered: Rendered) -> set[str]:
    return {c["spec"]["targetRef"]["name"] for c in rendered.of_kind("Canary")}


def custom_schema(doc: Manifest) -> Path:
    api_version: str = doc["apiVersion"]
    group, _, version = api_version.rpartition("/")
    path: Path = SCHEMAS / group / f"{str(doc['kind']).lower()}_{version}.json"
    return path


def validate_object(doc: Manifest) -> None:
    """Strict schema validation: Kubernetes' own for core kinds, ours for custom resources."""
    group = doc["apiVersion"].rpartition("/")[0]
    if group in CUSTOM_GROUPS:
        path = custom_schema(doc)
        assert path.exists(), f"no schema {path.relative_to(ROOT)} for {doc['kind']}"
        jsonschema.validate(doc, json.loads(path.read_text()))
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --- schema ----------------------------------------------------------------------------------


def test_every_object_is_valid_against_its_schema_in_strict_mode(rendered: Rendered) -> None:
    for doc in rendered.docs:
        where = f"{rendered.name}: {doc['kind']}/{doc['metadata']['name']}"
        try:
            validate_object(doc)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{where}: no schema for {doc['apiVersion']} {doc['kind']}")
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{where}: {path}: {error.message}")
        except jsonschema.ValidationError as error:
            path = ".".join(str(part) for part in error.absolute_path)
            pytest.fail(f"{where}: {path}: {error.message}")


def test_strict_validation_rejects_a_misspelt_field(all_rendered: dict[str, Rendered]) -> None:
    # Guards the test above: strict mode must catch what kubectl apply would silently drop.
    deployment = copy.deepcopy(all_rendered["dev"].get("Deployment", "edge"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment)


@pytest.mark.parametrize(
    ("kind", "path", "typo"),
    [
        ("Canary", ("spec", "analysis"), "stepWieght"),
        ("PrometheusRule", ("spec",), "group"),
        ("MetricTemplate", ("spec", "provider"), "adress"),
        ("AlertProvider", ("spec",), "adress"),
        ("Canary", ("spec", "analysis", "alerts", 0), "severty"),
    ],
)
def test_custom_resource_schemas_reject_a_misspelt_field(
    all_rendered: dict[str, Rendered], kind: str, path: tuple[str | int, ...], typo: str
) -> None:
    doc = copy.deepcopy(all_rendered["prod"].of_kind(kind)[0])
    target: Any = doc
    for key in path:
        target = target[key]
    target[typo] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_object(doc)


# --- namespace, labels, exposure ---------------------------------------------------------------


def test_everything_lives_in_the_agent_bruno_namespace_with_the_part_of_label(
    rendered: Rendered,
) -> None:
    for doc in rendered.docs:
        meta = doc["metadata"]
        where = f"{rendered.name}: {doc['kind']}/{meta['name']}"
        if doc["kind"] not in CLUSTER_SCOPED:
            assert meta.get("namespace") == NAMESPACE, where
        assert meta.get("labels", {}).get("app.kubernetes.io/part-of") == "agent-bruno", where
    for workload in rendered.workloads():
        assert _pod_labels(workload).get("app.kubernetes.io/part-of") == "agent-bruno"


def test_the_namespace_enforces_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    namespace = rendered.get("Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_only_the_edge_is_exposed_and_only_through_an_ingress(rendered: Rendered) -> None:
    for service in rendered.of_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == "edge"
    assert bool(rendered.of_kind("Ingress")) == rendered.has("ingress")


def test_each_overlay_serves_its_own_host_over_tls(overlay: Rendered) -> None:
    ingress = overlay.get("Ingress", "edge")
    (rule,) = ingress["spec"]["rules"]
    host = EXPECTED_HOSTS[overlay.name]
    assert rule["host"] == host
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"]["port"]["name"] == "http"
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [host]
    assert tls["secretName"] == "bruno-edge-tls"


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
            where = f"{rendered.name}:{container['name']}"
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


def test_every_pod_gets_more_time_to_stop_than_its_service_drains(rendered: Rendered) -> None:
    drain = {
        "edge": EdgeSettings().shutdown_grace_seconds,
        **dict.fromkeys((*INTERNAL_PORTS, READERS), GrpcServerSettings().grpc_grace_seconds),
    }
    for workload in rendered.workloads():
        name = workload["metadata"]["name"]
        grace = _pod_spec(workload)["terminationGracePeriodSeconds"]
        if name not in drain:
            assert grace >= 10, name
            continue
        pre_stop = _main_container(workload)["lifecycle"]["preStop"]["sleep"]["seconds"]
        # preStop (endpoints catch up) + the service's own drain, with room to spare.
        assert grace >= pre_stop + drain[name] + 5, f"{name}: {grace} s"


def test_every_container_has_cpu_and_memory_requests_within_limits(rendered: Rendered) -> None:
    for where, container in _all_containers(rendered):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            assert request is not None, f"{where}: no {resource} request"
            assert limit is not None, f"{where}: no {resource} limit"
            assert _quantity(request) <= _quantity(limit), f"{where}: {resource}"


# `make bench-embedding-memory` (docs/benchmarks.md, "Embedding memory"): the embedding
# service's resident MiB after an ingest (its ONNX arena keeps one capped call's worth) and at
# the peak of the largest request it accepts (256 texts, 15 MiB), one ONNX thread or two.
EMBEDDING_AFTER_INGEST_MIB = 373
EMBEDDING_LARGEST_REQUEST_PEAK_MIB = 440


def test_embedding_memory_is_derived_from_its_measured_figures(rendered: Rendered) -> None:
    resources = _main_container(rendered.workload("embedding"))["resources"]
    request = _quantity(resources["requests"]["memory"]) / 2**20
    limit = _quantity(resources["limits"]["memory"]) / 2**20
    # The request holds what an ingest leaves resident, with a fifth to spare; the limit holds
    # the largest request's peak with half again as much, and no more than two and a half.
    assert request >= EMBEDDING_AFTER_INGEST_MIB * Fraction(6, 5)
    assert (
        EMBEDDING_LARGEST_REQUEST_PEAK_MIB * Fraction(3, 2)
        <= limit
        <= EMBEDDING_LARGEST_REQUEST_PEAK_MIB * Fraction(5, 2)
    )


# --- probes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(INTERNAL_PORTS))
def test_internal_services_are_probed_with_native_grpc_health_checks(
    rendered: Rendered, service: str
) -> None:
    container = _main_container(rendered.workload(service))
    grpc_port = _named_port(container, "grpc")
    assert grpc_port == INTERNAL_PORTS[service]
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(probe_name)
        assert probe is not None, f"{service}: no {probe_name}"
        assert probe.get("grpc", {}).get("port") == grpc_port, f"{service}: {probe_name}"
        assert "httpGet" not in probe
        assert "exec" not in probe


def test_every_long_running_container_has_startup_liveness_and_readiness_probes(
    rendered: Rendered,
) -> None:
    for workload in rendered.workloads():
        for container in _pod_spec(workload)["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{rendered.name}:{container['name']}: no {probe}"


def test_slow_starters_get_minutes_before_liveness_counts(rendered: Rendered) -> None:
    for service, at_least in (("embedding", 120), ("retrieval", 120)):
        probe = _main_container(rendered.workload(service))["startupProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] >= at_least, service


def test_edge_liveness_never_depends_on_a_downstream(rendered: Rendered) -> None:
    container = _main_container(rendered.workload("edge"))
    assert _named_port(container, "http") == EDGE_PORT
    for probe in ("startupProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == ("/health", "http"), probe
    readiness = container["readinessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == ("/ready", "http")


# --- availability ----------------------------------------------------------------------------


def test_every_stateless_service_has_a_disruption_budget_that_lets_drains_proceed(
    rendered: Rendered,
) -> None:
    budgets = rendered.of_kind("PodDisruptionBudget")
    for name in ("edge", "embedding", "generation"):
        labels = _pod_labels(rendered.workload(name))
        matching = [b for b in budgets if _selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, f"{rendered.name}: {name} has {len(matching)} budgets"
        (budget,) = matching
        assert budget["spec"]["maxUnavailable"] == 1, name
        others = [w for w in rendered.workloads() if w["metadata"]["name"] != name]
        for other in others:
            assert not _selects(budget["spec"]["selector"]["matchLabels"], _pod_labels(other))


def test_stateless_services_spread_across_nodes_and_zones(rendered: Rendered) -> None:
    for name in ("edge", "embedding", "generation"):
        constraints = _pod_spec(rendered.workload(name)).get("topologySpreadConstraints", [])
        keys = {c["topologyKey"] for c in constraints}
        assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, name
        for constraint in constraints:
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}


def test_autoscalers_own_the_replica_count_of_the_stateless_services(rendered: Rendered) -> None:
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in rendered.of_kind("HorizontalPodAutoscaler")
    }
    expected = {"edge", "embedding", "generation"} if rendered.has("autoscaling") else set()
    if rendered.has("retrieval-readers"):
        expected.add(READERS)  # the component brings its own autoscaler
    assert set(autoscalers) == expected
    for name, hpa in autoscalers.items():
        deployment = rendered.get("Deployment", name)
        assert "replicas" not in deployment["spec"], f"{name}: replicas would fight the HPA"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        limits = _main_container(deployment)["resources"]["requests"]
        assert "cpu" in limits, f"{name}: CPU utilization needs a CPU request"
    assert rendered.get("StatefulSet", "retrieval")["spec"]["replicas"] == 1


@pytest.mark.parametrize("name", ["staging", "prod"])
def test_staging_and_prod_autoscale_edge_embedding_and_generation(
    all_rendered: dict[str, Rendered], name: str
) -> None:
    targets = {
        (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
        for h in all_rendered[name].of_kind("HorizontalPodAutoscaler")
    }

    assert targets == {("Deployment", s) for s in ("edge", "embedding", "generation")}


# --- images --------------------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_tag_and_never_latest(rendered: Rendered) -> None:
    for where, container in _all_containers(rendered):
        _, tag = _split_image(container["image"])
        assert tag is not None, f"{where}: {container['image']} has no tag"
        assert tag != "latest", f"{where}: {container['image']}"


def image_entry_problems(kustomization: Manifest, rendered: Rendered) -> list[str]:
    """Why ``pipelines/deploy.py`` could not set this overlay's tags: it edits ``newTag`` of the
    ``images:`` entries named ``ghcr.io/agent-bruno/<service>``, one per service."""
    problems = []
    entries = kustomization.get("images")
    if not isinstance(entries, list):
        return ["no kustomize `images:` list"]
    declared = {str(e.get("name")): e.get("newTag") for e in entries if isinstance(e, dict)}
    for image in sorted(OUR_IMAGES - set(declared)):
        problems.append(f"`images:` has no entry named {image}")
    for name in sorted(set(declared) - OUR_IMAGES):
        problems.append(f"`images:` entry {name} names no service image")
    for name, tag in declared.items():
        if not tag:
            problems.append(f"`images:` entry {name} has no newTag")
    for where, container in _all_containers(rendered):
        repo, tag = _split_image(container["image"])
        if repo.startswith(f"{IMAGE_REPO}/") and declared.get(repo) != tag:
            problems.append(f"{where} runs {container['image']}, not the overlay's tag")
    return problems


def test_deploy_py_finds_every_image_of_every_overlay(overlay: Rendered) -> None:
    assert image_entry_problems(overlay.kustomization, overlay) == []


def test_an_image_entry_deploy_py_cannot_find_is_reported(
    all_rendered: dict[str, Rendered],
) -> None:
    broken = copy.deepcopy(all_rendered["prod"].kustomization)
    broken["images"][0]["name"] = "ghcr.io/agent-bruno/edg"
    problems = image_entry_problems(broken, all_rendered["prod"])
    assert "`images:` has no entry named ghcr.io/agent-bruno/edge" in problems
    assert "`images:` entry ghcr.io/agent-bruno/edg names no service image" in problems


def test_the_release_pipeline_can_bump_every_overlay(overlay: Rendered) -> None:
    text = (K8S / "overlays" / overlay.name / "kustomization.yaml").read_text()
    bumped = yaml.safe_load(gitops.set_image_tags(text, sorted(OUR_IMAGES), "9.9.9"))
    assert {e["name"]: e["newTag"] for e in bumped["images"]} == dict.fromkeys(OUR_IMAGES, "9.9.9")


def test_dev_runs_development_builds_and_the_others_release_builds(
    all_rendered: dict[str, Rendered],
) -> None:
    for name in ("dev", "staging", "prod"):
        rendered = all_rendered[name]
        tags = {_split_image(c["image"])[1] for _, c in _all_containers(rendered) if _ours(c)}
        assert len(tags) == 1, f"{name}: the services run different tags {tags}"
        (tag,) = tags
        assert tag is not None
        assert tag.endswith("-dev") == (name == "dev"), f"{name}: {tag}"


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
    names.update(p["spec"]["secretRef"]["name"] for p in rendered.of_kind("AlertProvider"))
    return names


def test_no_secret_is_rendered_and_every_referenced_one_is_documented(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == []
    referenced = _secret_references(rendered)
    assert "bruno-api-keys" in referenced
    assert referenced <= EXTERNAL_SECRETS, referenced - EXTERNAL_SECRETS
    readme = (K8S / "README.md").read_text()
    for name in referenced:
        assert f"`{name}`" in readme, f"k8s/README.md does not say how to create {name}"


def test_external_secrets_manage_the_api_keys_secret_when_chosen(rendered: Rendered) -> None:
    managed = {e["spec"]["target"]["name"] for e in rendered.of_kind("ExternalSecret")}
    assert managed == ({"bruno-api-keys"} if rendered.has("external-secrets") else set())


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
        if not _ours(container):
            continue  # a third-party server's own variables (Ollama) are set inline
        for env in container.get("env", []):
            # Settings live in the ConfigMap, not inline in a pod spec.
            assert "value" not in env, f"{where}: {env['name']} is set inline"
            known = KNOWN_SETTINGS | READ_BY_LIBRARIES
            assert env["name"] in known, f"{where}: unknown setting {env['name']}"
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
    unknown = set(config) - KNOWN_SETTINGS - READ_BY_LIBRARIES
    assert not unknown, unknown
    assert config["BRUNO_LOG_FORMAT"] == "json"
    assert config["BRUNO_EDGE_HOST"] == "0.0.0.0"
    ollama = (
        "http://ollama.agent-bruno.svc.cluster.local:11434"
        if rendered.has("ollama")
        else "http://ollama.ollama.svc.cluster.local:11434"
    )
    assert config["OLLAMA_HOST"] == ollama


def test_every_config_map_our_containers_read_holds_only_settings_the_services_read(
    rendered: Rendered,
) -> None:
    # bruno-config and the retrieval roles' ConfigMaps alike: a misspelt name is ignored.
    config_maps = {
        cm["metadata"]["name"]: cm.get("data", {}) for cm in rendered.of_kind("ConfigMap")
    }
    for where, container in _all_containers(rendered):
        if not _ours(container):
            continue
        for source in container.get("envFrom", []):
            if "configMapRef" not in source:
                continue
            data = config_maps[source["configMapRef"]["name"]]
            unknown = set(data) - KNOWN_SETTINGS - READ_BY_LIBRARIES
            assert not unknown, f"{where}: {unknown}"


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
    addresses = {
        k: v
        for k, v in rendered.config().items()
        if k.endswith("_ADDR") and not k.endswith("_LISTEN_ADDR")
    }
    expected = {f"BRUNO_{s.upper()}_ADDR" for s in INTERNAL_PORTS}
    if rendered.has("retrieval-readers"):
        expected.add("BRUNO_RETRIEVAL_READER_ADDR")
    assert set(addresses) == expected
    for key, address in addresses.items():
        host, _, port = address.removeprefix("dns:///").rpartition(":")
        name, *domain = host.split(".")
        assert domain in ([NAMESPACE, "svc", "cluster", "local"],), key
        assert name in services, f"{key}={address}: no Service {name}"
        grpc_ports = [p["port"] for p in services[name]["spec"]["ports"] if p["name"] == "grpc"]
        assert grpc_ports == [int(port)], f"{key}={address}"


@pytest.mark.parametrize("service", ["embedding", "generation"])
def test_clients_balance_over_every_pod_of_a_scaled_out_service(
    rendered: Rendered, service: str
) -> None:
    # The shared gRPC client balances round-robin over every address its target resolves to;
    # only a headless Service resolves to every pod, and only with the dns:/// scheme.
    address = rendered.config()[f"BRUNO_{service.upper()}_ADDR"]
    assert address.startswith(f"dns:///{service}-headless."), address
    headless = rendered.get("Service", f"{service}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == {"app.kubernetes.io/name": service}


# --- services and selectors ----------------------------------------------------------------------


def test_every_service_selects_exactly_one_workload_and_targets_its_named_ports(
    rendered: Rendered,
) -> None:
    for service in rendered.of_kind("Service"):
        name = service["metadata"]["name"]
        selector = service["spec"]["selector"]
        matches = [w for w in rendered.workloads() if _selects(selector, _pod_labels(w))]
        assert len(matches) == 1, f"{rendered.name}: Service {name} selects {len(matches)}"
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
    # Flagger generates the Services of the workloads it rolls out (edge, edge-primary, …).
    flagged = _canary_targets(rendered)
    for workload in rendered.workloads():
        labels = _pod_labels(workload)
        selector = workload["spec"]["selector"]["matchLabels"]
        name = workload["metadata"]["name"]
        assert _selects(selector, labels), name
        if name in flagged:
            assert rendered.find("Service", name) is None, f"{name}: Flagger owns this Service"
            continue
        assert any(
            _selects(service["spec"]["selector"], labels) for service in rendered.of_kind("Service")
        ), name


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
    uri = rendered.config()["BRUNO_LANCEDB_URI"]
    assert uri.startswith("s3://") if rendered.has("lancedb-s3") else uri == "/data/lancedb"
    assert _pod_spec(statefulset)["securityContext"]["fsGroup"] == 10001


def test_lancedb_on_object_storage_takes_its_credentials_from_a_secret(
    all_rendered: dict[str, Rendered],
) -> None:
    with_s3 = [r for r in all_rendered.values() if r.has("lancedb-s3")]
    assert with_s3
    for rendered in with_s3:
        statefulset = rendered.get("StatefulSet", "retrieval")
        env = {e["name"]: e for e in _main_container(statefulset).get("env", [])}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "bruno-lancedb-s3"
        assert _pod_labels(statefulset)["agent-bruno.dev/object-storage"] == "true"
        assert "AWS_REGION" in rendered.config()


def test_each_overlay_sizes_the_lancedb_volume(overlay: Rendered) -> None:
    (claim,) = overlay.get("StatefulSet", "retrieval")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == EXPECTED_STORAGE[overlay.name]


def test_each_overlay_chooses_the_lancedb_storage_class(overlay: Rendered) -> None:
    (claim,) = overlay.get("StatefulSet", "retrieval")["spec"]["volumeClaimTemplates"]
    assert claim["spec"].get("storageClassName") == EXPECTED_STORAGE_CLASS[overlay.name]


def test_each_overlay_runs_its_replica_counts(overlay: Rendered) -> None:
    minimum = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["minReplicas"]
        for h in overlay.of_kind("HorizontalPodAutoscaler")
    }
    replicas = {
        w["metadata"]["name"]: w["spec"].get("replicas", minimum.get(w["metadata"]["name"]))
        for w in overlay.workloads()
        if w["metadata"]["name"] in SERVICES
    }
    assert replicas == EXPECTED_REPLICAS[overlay.name]


def test_prod_raises_resources_above_the_base(all_rendered: dict[str, Rendered]) -> None:
    for service in SERVICES:
        base = _main_container(all_rendered["staging"].workload(service))["resources"]
        prod = _main_container(all_rendered["prod"].workload(service))["resources"]
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                assert _quantity(prod[bound][resource]) > _quantity(base[bound][resource]), (
                    f"{service}: {bound}.{resource}"
                )


def test_the_overlays_turn_on_the_components_their_environment_needs(
    all_rendered: dict[str, Rendered],
) -> None:
    assert set(all_rendered["dev"].components) == {"ingress", "network-policies"}
    assert set(all_rendered["staging"].components) == {
        "ingress",
        "network-policies",
        "monitoring",
        "velero-backup",
        "autoscaling",
    }
    assert set(all_rendered["prod"].components) == {
        "ingress",
        "network-policies",
        "monitoring",
        "velero-backup",
        "autoscaling",
        "canary",
    }


# --- bad input -----------------------------------------------------------------------------------


def test_an_overlay_that_references_a_missing_base_fails_with_the_path(
    tmp_path: Path, kustomize: Kustomize
) -> None:
    overlay = tmp_path / "overlays" / "broken"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - ../../base\n"
    )
    with pytest.raises(kustomize.error, match="base"):
        kustomize.render(overlay)


def test_a_missing_component_fails_with_the_path(tmp_path: Path, kustomize: Kustomize) -> None:
    with pytest.raises(kustomize.error, match="no-such-component"):
        kustomize.render(kustomize.variant(tmp_path, "overlays/dev", ("no-such-component",)))


def test_every_canary_event_goes_to_the_team_chat_through_a_secret(
    all_rendered: dict[str, Rendered],
) -> None:
    for rendered in all_rendered.values():
        providers = {p["metadata"]["name"]: p for p in rendered.of_kind("AlertProvider")}
        for canary in rendered.of_kind("Canary"):
            (alert,) = canary["spec"]["analysis"]["alerts"]
            provider = providers[alert["providerRef"]["name"]]
            assert alert["providerRef"]["namespace"] == NAMESPACE
            assert alert["severity"] == "info"  # analysis start, failed checks, the verdict
            assert provider["spec"]["secretRef"] == {"name": "deploy-notifications"}
            assert "address" not in provider["spec"], "the URL lives in the Secret only"
        assert bool(providers) == bool(rendered.of_kind("Canary")), rendered.name
