"""The manifests stage: kustomize renders every overlay, kubernetes-validate checks the result
against the Kubernetes schema in strict mode (the same version the k8s tests use)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagger

from .checks import workspace

__all__ = ["KUBERNETES_VERSION", "KUSTOMIZE_IMAGE", "manifests", "overlays", "rendered_overlays"]

KUSTOMIZE_IMAGE = "registry.k8s.io/kustomize/kustomize:v5.4.3"
KUBERNETES_VERSION = "1.32.0"
OVERLAYS_DIR = "k8s/overlays"


def overlays(repo_root: Path) -> list[str]:
    """The overlay names (directories with a kustomization.yaml), sorted."""
    root = repo_root / OVERLAYS_DIR
    return sorted(p.parent.name for p in root.glob("*/kustomization.yaml"))


def rendered_overlays(
    client: dagger.Client, src: dagger.Directory, names: Sequence[str]
) -> dagger.Directory:
    """``<overlay>.yaml`` per overlay: what Flux would apply."""
    if not names:
        msg = f"no overlay to render under {OVERLAYS_DIR}/"
        raise ValueError(msg)
    ctr = (
        client.container()
        .from_(KUSTOMIZE_IMAGE)
        .with_directory("/src/k8s", src.directory("k8s"))
        .with_directory("/out", client.directory())
    )
    for name in names:
        ctr = ctr.with_exec(
            ["build", f"/src/{OVERLAYS_DIR}/{name}", "--output", f"/out/{name}.yaml"],
            use_entrypoint=True,
        )
    return ctr.directory("/out")


def manifests(
    client: dagger.Client, src: dagger.Directory, names: Sequence[str]
) -> dagger.Container:
    """Every rendered overlay validated in strict mode."""
    files = [f"/rendered/{name}.yaml" for name in names]
    return (
        workspace(client, src)
        .with_directory("/rendered", rendered_overlays(client, src, names))
        .with_exec(
            ["uv", "run", "kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, *files]
        )
    )
