"""Measure the service images: size against a naive single-stage build, cold and warm builds.

    python scripts/benchmark_images.py        # ~5 min; prints a Markdown table

Needs the Docker engine and base image that `make smoke` prepares (it runs the same scripts).
It works on a copy of the repository under build/bench/ (the warm rebuild edits code there),
and it clears the engine's build cache first so that the cold build is cold.

The naive build, for comparison only, is generated here and never committed: one stage,
``COPY . .``, uv installed with pip and the same locked dependencies synced in place, so the
image keeps uv, its cache and the whole build context.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("edge", "embedding", "retrieval", "generation")
WORK = REPO / "build" / "bench"
UV_VERSION = "0.13.9"
NAIVE = """\
FROM python:3.11-slim-bookworm
RUN pip install uv=={uv}
WORKDIR /app
COPY . .
RUN uv sync --frozen --no-editable --no-dev --package bruno-{service}
ENV PATH=/app/.venv/bin:$PATH
CMD ["bruno-{service}"]
"""
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    "build", "data", "node_modules",
)  # fmt: skip


def sh(*argv: str, log: Path | None = None) -> str:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    if log is None:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)  # noqa: S603
        return out.stdout.strip()
    with log.open("w") as handle:
        subprocess.run(argv, stdout=handle, stderr=subprocess.STDOUT, check=True, env=env)  # noqa: S603
    return ""


def build(docker: str, context: Path, tag: str, target: str | None, dockerfile: Path) -> float:
    argv = [docker, "build", "--network", "host", "-f", str(dockerfile), "-t", tag]
    if target:
        argv += ["--target", target]
    start = time.perf_counter()
    sh(*argv, str(context), log=WORK / f"{tag.replace(':', '-').replace('/', '-')}.log")
    return time.perf_counter() - start


def size_mb(docker: str, tag: str) -> float:
    return int(sh(docker, "image", "inspect", "-f", "{{.Size}}", tag)) / 1e6


def main() -> int:
    docker = sh(str(REPO / "scripts" / "docker-engine.sh")).splitlines()[-1]
    sh(str(REPO / "scripts" / "base-image.sh"))
    shutil.rmtree(WORK, ignore_errors=True)
    context = WORK / "context"
    shutil.copytree(REPO, context, ignore=IGNORE)
    dockerfile = context / "Dockerfile"

    # Cold: no build cache at all (the base image stays: it is a pull, not a build).
    for service in SERVICES:
        subprocess.run([docker, "image", "rm", "-f", f"bench-{service}"], capture_output=True)  # noqa: S603
    sh(docker, "builder", "prune", "-af")
    cold_start = time.perf_counter()
    cold = {s: build(docker, context, f"bench-{s}", s, dockerfile) for s in SERVICES}
    cold_total = time.perf_counter() - cold_start

    # Warm: a code-only change in each service, then a rebuild of that service.
    warm = {}
    for service in SERVICES:
        module = context / "services" / service / "src" / f"bruno_{service}" / "__init__.py"
        module.write_text(module.read_text() + "\n# benchmark: code-only change\n")
        warm[service] = build(docker, context, f"bench-{service}", service, dockerfile)

    naive = {}
    for service in SERVICES:
        naive_file = WORK / f"Dockerfile.naive-{service}"
        naive_file.write_text(NAIVE.format(uv=UV_VERSION, service=service))
        build(docker, context, f"bench-naive-{service}", None, naive_file)
        naive[service] = size_mb(docker, f"bench-naive-{service}")

    columns = ["service", "runtime image (MB)", "naive single-stage (MB)", "ratio"]
    columns += ["cold build (s)", "warm rebuild (s)"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|---:|---:|")
    for service in SERVICES:
        size = size_mb(docker, f"bench-{service}")
        print(
            f"| {service} | {size:.0f} | {naive[service]:.0f} | {size / naive[service]:.0%} "
            f"| {cold[service]:.1f} | {warm[service]:.1f} |"
        )
    print(f"\ncold build of all four, one after the other: {cold_total:.0f} s")
    print(f"base image: {size_mb(docker, 'python:3.11-slim-bookworm'):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
