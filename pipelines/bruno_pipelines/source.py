"""The repository as the pipeline sees it: the working tree minus local state."""

from __future__ import annotations

from pathlib import Path

import dagger

__all__ = ["SOURCE_EXCLUDES", "source"]

# Local state that must never reach a container: virtualenvs built for the host's platform,
# tool caches, LanceDB data and build output. .dockerignore keeps the same things out of
# plain `docker build`.
SOURCE_EXCLUDES: tuple[str, ...] = (
    ".git",
    "**/.venv",
    "**/__pycache__",
    "**/*.py[cod]",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.pytest_cache",
    "**/*.egg-info",
    ".coverage",
    "data",
    "**/data/lancedb",
    "build",
    "dist",
)


def source(client: dagger.Client, repo_root: Path) -> dagger.Directory:
    """The monorepo at ``repo_root`` as a Dagger directory, without local state."""
    return client.host().directory(str(repo_root.resolve()), exclude=list(SOURCE_EXCLUDES))
