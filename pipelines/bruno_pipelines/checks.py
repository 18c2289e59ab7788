"""Lint and test stages: the workspace's own tools, run in a clean Python container.

Both stages start from :func:`workspace`, so the engine builds the synced environment once
and shares it between them.
"""

from __future__ import annotations

import dagger

from .coverage import COVERAGE_DIR

__all__ = [
    "PYTHON_IMAGE",
    "TYPED_TREES",
    "UV_CACHE_DIR",
    "UV_CACHE_VOLUME",
    "UV_VERSION",
    "WORKDIR",
    "lint",
    "proto_check",
    "python_toolchain",
    "test",
    "workspace",
]

# The images' base too (Dockerfile ARG PYTHON_IMAGE): checks run on the Python that ships.
PYTHON_IMAGE = "python:3.11-slim-bookworm"
# The Dockerfile's ARG UV_VERSION and the workflow's setup-uv version follow this one.
UV_VERSION = "0.13.9"

UV_CACHE_DIR = "/root/.cache/uv"
UV_CACHE_VOLUME = "bruno-uv"
WORKDIR = "/src"
VENV = "/venv"

# mypy runs once per tree: every member keeps its tests in a `tests/` directory without
# __init__.py, so checking two members in one run would clash on module names (conftest).
# The generated stubs (packages/proto/src) are checked through their users, not on their own.
TYPED_TREES: tuple[str, ...] = (
    "packages/proto/tests",
    "packages/core",
    "packages/extract",
    "packages/testing",
    "packages/cli",
    "services/embedding",
    "services/retrieval",
    "services/generation",
    "services/edge",
    "pipelines",
    "scripts",
    "tests/docs",
    "tests/e2e",
    "tests/k8s",
    "benchmarks",
    "k8s",
)


def python_toolchain(client: dagger.Client) -> dagger.Container:
    """Python with uv, configured to never fetch its own interpreter."""
    return (
        client.container()
        .from_(PYTHON_IMAGE)
        .with_exec(["pip", "install", "--no-cache-dir", f"uv=={UV_VERSION}"])
        .with_env_variable("UV_LINK_MODE", "copy")
        .with_env_variable("UV_PYTHON_DOWNLOADS", "never")
        .with_env_variable("UV_PROJECT_ENVIRONMENT", VENV)
        .with_env_variable("UV_FROZEN", "1")
        .with_mounted_cache(UV_CACHE_DIR, client.cache_volume(UV_CACHE_VOLUME))
    )


def workspace(client: dagger.Client, src: dagger.Directory) -> dagger.Container:
    """The whole workspace with every member and the dev group synced from uv.lock.

    Manifests go in first so that the dependency layer survives source edits.
    """
    manifests = src.filter(include=["pyproject.toml", "uv.lock", "**/pyproject.toml"])
    return (
        python_toolchain(client)
        .with_workdir(WORKDIR)
        .with_directory(WORKDIR, manifests)
        .with_exec(["uv", "sync", "--frozen", "--all-packages", "--no-install-workspace"])
        .with_directory(WORKDIR, src)
        .with_exec(["uv", "sync", "--frozen", "--all-packages"])
    )


def lint(client: dagger.Client, src: dagger.Directory) -> dagger.Container:
    """ruff (rules and formatting) over the repository, then ``mypy --strict`` per tree."""
    ctr = (
        workspace(client, src)
        .with_exec(["uv", "run", "ruff", "check", "."])
        .with_exec(["uv", "run", "ruff", "format", "--check", "."])
    )
    for tree in TYPED_TREES:
        ctr = ctr.with_exec(["uv", "run", "mypy", "--strict", tree])
    return ctr


def test(client: dagger.Client, src: dagger.Directory) -> dagger.Container:
    """The whole pytest suite under branch coverage, judged against each package's floor
    (:mod:`bruno_pipelines.coverage`, what `make coverage` runs). The exit code is the
    verdict; ``/src/build/coverage`` holds the reports either way, so a failing run still
    shows its figures."""
    return (
        workspace(client, src)
        .with_directory(f"{WORKDIR}/{COVERAGE_DIR}", client.directory())
        .with_exec(
            ["uv", "run", "python", "-m", "bruno_pipelines.coverage"],
            expect=dagger.ReturnType.ANY,
        )
    )


def proto_check(client: dagger.Client, src: dagger.Directory) -> dagger.Container:
    """Fail when the committed gRPC stubs differ from what proto/ generates."""
    return workspace(client, src).with_exec(
        ["uv", "run", "python", "scripts/generate_protos.py", "--check"]
    )
