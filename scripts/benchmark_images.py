"""Measure the service images: size against a naive single-stage build, cold and warm builds.

    python scripts/benchmark_images.py              # ~6 min; prints a Markdown table
    python scripts/benchmark_images.py --skip-full  # without the naive build on python:3.11
    python scripts/benchmark_images.py --sizes-at d85da60 963e7e4 HEAD --services edge
        # only the runtime image at each git commit, for a dependency change's cost

Needs the Docker engine and base image that `make smoke` prepares (it runs the same scripts).
It works on a copy of the repository under build/bench/ (the warm rebuild edits code there),
and it clears the engine's build cache first so that the cold build is cold.

The naive build, for comparison only, is generated here and never committed: one stage,
``COPY . .``, uv installed with pip and the same locked dependencies synced in place, so the
image keeps uv, its cache and the whole build context. It is built twice: on the runtime's own
base (``python:3.11-slim-bookworm``, the like-for-like baseline) and on ``python:3.11-bookworm``,
the full image (compilers, -dev libraries, git, ...) that ``FROM python:3.11`` means and most
naive Dockerfiles start from. ``scripts/base-image.sh full`` provides it (a local stand-in
when Docker Hub is unreachable; its first build takes a minute or more).
"""

from __future__ import annotations

import argparse
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
SLIM_BASE = "python:3.11-slim-bookworm"
FULL_BASE = "python:3.11-bookworm"
NAIVE = """\
FROM {base}
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


def build_naive(docker: str, context: Path, base: str, variant: str) -> dict[str, float]:
    """Build the naive single-stage image of each service on ``base``; its sizes in MB."""
    sizes = {}
    for service in SERVICES:
        naive_file = WORK / f"Dockerfile.{variant}-{service}"
        naive_file.write_text(NAIVE.format(base=base, uv=UV_VERSION, service=service))
        build(docker, context, f"bench-{variant}-{service}", None, naive_file)
        sizes[service] = size_mb(docker, f"bench-{variant}-{service}")
    return sizes


def sizes_at(docker: str, refs: list[str], services: list[str]) -> None:
    """Build the runtime image of ``services`` at each git ref; print sizes and the change.

    Each ref is exported with ``git archive`` (committed files only) and built with its own
    Dockerfile; the build cache is shared, so only the sizes are comparable, not the times.
    """
    WORK.mkdir(parents=True, exist_ok=True)
    sizes: dict[str, dict[str, float]] = {}
    for ref in refs:
        commit = sh("git", "-C", str(REPO), "rev-parse", "--short", f"{ref}^{{commit}}")
        context = WORK / f"at-{commit}"
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        archive = WORK / f"at-{commit}.tar"
        sh("git", "-C", str(REPO), "archive", "-o", str(archive), commit)
        shutil.unpack_archive(archive, context)
        label = commit if ref == commit else f"{ref} ({commit})"
        sizes[label] = {}
        for service in services:
            tag = f"bench-{service}-{commit}"
            build(docker, context, tag, service, context / "Dockerfile")
            sizes[label][service] = size_mb(docker, tag)
    labels = list(sizes)
    print("| service | " + " | ".join(f"{label} (MB)" for label in labels) + " | change |")
    print("|---|" + "---:|" * len(labels) + "---:|")
    for service in services:
        first, last = sizes[labels[0]][service], sizes[labels[-1]][service]
        cells = [f"{sizes[label][service]:.1f}" for label in labels]
        change = f"{last - first:+.1f} MB ({last / first - 1:+.1%})"
        print(f"| {service} | " + " | ".join(cells) + f" | {change} |")


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the service images (see the docstring).")
    parser.add_argument(
        "--skip-full", action="store_true", help=f"skip the naive build on {FULL_BASE}"
    )
    parser.add_argument(
        "--sizes-at", nargs="+", metavar="REF",
        help="only build the runtime images at these git refs and compare their sizes",
    )  # fmt: skip
    parser.add_argument(
        "--services", nargs="+", choices=SERVICES, default=list(SERVICES),
        help="the services --sizes-at builds (default: all four)",
    )  # fmt: skip
    args = parser.parse_args()
    docker = sh(str(REPO / "scripts" / "docker-engine.sh")).splitlines()[-1]
    sh(str(REPO / "scripts" / "base-image.sh"))
    if args.sizes_at:
        sizes_at(docker, args.sizes_at, args.services)
        return 0
    if not args.skip_full:
        sh(str(REPO / "scripts" / "base-image.sh"), "full")
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

    naive = build_naive(docker, context, SLIM_BASE, "naive")
    full = {} if args.skip_full else build_naive(docker, context, FULL_BASE, "naive-full")

    columns = ["service", "runtime image (MB)", "naive single-stage, slim (MB)", "ratio"]
    if full:
        columns += ["naive single-stage, full (MB)", "ratio"]
    columns += ["cold build (s)", "warm rebuild (s)"]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for service in SERVICES:
        size = size_mb(docker, f"bench-{service}")
        cells = [service, f"{size:.0f}", f"{naive[service]:.0f}", f"{size / naive[service]:.0%}"]
        if full:
            cells += [f"{full[service]:.0f}", f"{size / full[service]:.0%}"]
        cells += [f"{cold[service]:.1f}", f"{warm[service]:.1f}"]
        print("| " + " | ".join(cells) + " |")
    print(f"\ncold build of all four, one after the other: {cold_total:.0f} s")
    print(f"base image {SLIM_BASE}: {size_mb(docker, SLIM_BASE):.0f} MB")
    if full:
        print(f"base image {FULL_BASE}: {size_mb(docker, FULL_BASE):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
