"""The Tiltfile names only what exists: Dockerfile targets, files, kustomizations that render,
workloads to forward. Tilt cannot run here (no cluster); its Starlark is Python syntax, so the
file is read with ``ast`` and every call it makes is checked against the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest

if TYPE_CHECKING:
    from conftest import Kustomize

ROOT = Path(__file__).resolve().parents[2]
TILTFILE = ROOT / "Tiltfile"
TREE = ast.parse(TILTFILE.read_text(), filename="Tiltfile")
SERVICES = ("edge", "embedding", "retrieval", "generation")
REGISTRY = "ghcr.io/agent-bruno"


def _constants() -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments (REGISTRY, SERVICES)."""
    found: dict[str, Any] = {}
    for node in TREE.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


CONSTANTS = _constants()


def _value(node: ast.expr, loop: dict[str, str]) -> Any:
    """A literal, a constant, the loop variable, ``a + b`` or a list of those; any other name
    reads as ``<name>`` (a value known only when Tilt runs, such as an environment variable)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, loop) + _value(node.right, loop)
    if isinstance(node, ast.Name):
        return loop.get(node.id, CONSTANTS.get(node.id, f"<{node.id}>"))
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(item, loop) for item in node.elts]
    return ast.literal_eval(node)


def calls(function: str) -> list[tuple[list[Any], dict[str, Any]]]:
    """Every call of ``function`` with its arguments evaluated; a call inside ``for service in
    SERVICES`` counts once per service."""
    found: list[tuple[list[Any], dict[str, Any]]] = []

    def visit(nodes: list[ast.stmt], loop: dict[str, str]) -> None:
        for node in nodes:
            if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                for item in _value(node.iter, loop):
                    visit(node.body, {**loop, node.target.id: item})
                continue
            for child in ast.walk(node):
                if (
                    isinstance(child, ast.Call)
                    and isinstance(child.func, ast.Name)
                    and child.func.id == function
                ):
                    args = [_value(a, loop) for a in child.args]
                    kwargs = {k.arg: _value(k.value, loop) for k in child.keywords if k.arg}
                    found.append((args, kwargs))

    visit(TREE.body, {})
    return found


def dockerfile_targets(path: Path) -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", path.read_text(), re.MULTILINE | re.I))


def test_the_four_images_are_built_from_the_dockerfile_targets_of_their_name() -> None:
    builds = {args[0]: kwargs for args, kwargs in calls("docker_build")}

    for service in SERVICES:
        build = builds[f"{REGISTRY}/{service}"]
        assert build["target"] == service
        assert build["dockerfile"] == "Dockerfile"
        assert service in dockerfile_targets(ROOT / build["dockerfile"])


def test_every_file_and_folder_the_tiltfile_names_exists() -> None:
    for args, kwargs in calls("docker_build"):
        assert (ROOT / args[1]).is_dir(), args
        assert (ROOT / kwargs["dockerfile"]).is_file(), kwargs
    for args, _ in calls("kustomize"):
        assert (ROOT / args[0] / "kustomization.yaml").is_file(), args


Docs = list[dict[str, Any]]
WORKLOADS = {"Deployment", "StatefulSet"}


@pytest.fixture
def variants(kustomize: Kustomize) -> dict[str, Docs]:
    return {args[0]: kustomize.render(ROOT / args[0]) for args, _ in calls("kustomize")}


def _images(docs: list[dict[str, Any]]) -> set[str]:
    return {
        c["image"].rsplit(":", 1)[0]
        for d in docs
        if d["kind"] in WORKLOADS
        for c in d["spec"]["template"]["spec"]["containers"]
    }


def test_both_ollama_variants_render_the_dev_overlay_valid_and_default_deny(
    variants: dict[str, Docs],
) -> None:
    assert set(variants) == {"k8s/tilt/standin", "k8s/tilt/ollama"}
    for name, docs in variants.items():
        for doc in docs:
            if doc["apiVersion"].startswith(("v1", "apps/", "networking.k8s.io/", "policy/")):
                kubernetes_validate.validate(doc, "1.32.0", strict=True)
        policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
        assert {"default-deny", "ollama"} <= policies, name
        workloads = {d["metadata"]["name"] for d in docs if d["kind"] in WORKLOADS}
        assert workloads == {*SERVICES, "ollama"}, name


def test_tilt_builds_exactly_the_images_each_variant_runs(
    variants: dict[str, Docs],
) -> None:
    built = {args[0] for args, _ in calls("docker_build")}
    standin = _images(variants["k8s/tilt/standin"])
    real = _images(variants["k8s/tilt/ollama"])

    assert standin == {f"{REGISTRY}/{s}" for s in SERVICES} | {f"{REGISTRY}/ollama-standin"}
    assert standin == built
    assert real - built == {"docker.io/ollama/ollama"}


def test_the_stand_in_takes_ollamas_place_with_no_volume_and_the_same_service(
    variants: dict[str, Docs],
) -> None:
    docs = variants["k8s/tilt/standin"]
    (deployment,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ollama"
    ]
    pod = deployment["spec"]["template"]["spec"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")

    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert config["data"]["OLLAMA_HOST"] == "http://ollama.agent-bruno.svc.cluster.local:11434"
    standin = (ROOT / "k8s/tilt/ollama-standin.Dockerfile").read_text()
    assert "USER 10001:10001" in standin
    assert "port=11434" in standin


def test_the_forwarded_edge_port_is_the_edges_and_named_resources_are_workloads(
    variants: dict[str, Docs],
) -> None:
    resources = {args[0]: kwargs for args, kwargs in calls("k8s_resource")}
    docs = variants["k8s/tilt/standin"]
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOADS}

    assert set(resources) <= set(workloads)
    for kwargs in resources.values():
        assert set(kwargs.get("resource_deps", [])) <= set(workloads)
    (forward,) = resources["edge"]["port_forwards"]
    local, remote = forward.split(":")
    edge_ports = {
        p["containerPort"]
        for p in workloads["edge"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert (local, int(remote)) == ("8080", 8080)
    assert int(remote) in edge_ports


def test_the_api_keys_secret_comes_from_the_environment_not_the_repository() -> None:
    (secret,) = [args[0] for args, _ in calls("local")]
    text = TILTFILE.read_text()

    assert secret[:5] == ["kubectl", "create", "secret", "generic", "bruno-api-keys"]
    assert '"--dry-run=client"' in text
    assert 'os.getenv("BRUNO_API_KEYS", "")' in text
    assert "fail(" in text


def test_the_reader_of_the_tiltfile_sees_a_broken_target(kustomize: Kustomize) -> None:
    # Guards the checks above: an unknown target is not in the Dockerfile's stages.
    assert "edge" in dockerfile_targets(ROOT / "Dockerfile")
    assert "edge-server" not in dockerfile_targets(ROOT / "Dockerfile")
    with pytest.raises(kustomize.error):
        kustomize.render(ROOT / "k8s" / "tilt")
