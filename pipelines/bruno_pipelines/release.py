"""Where images are published and under which tags; the registry credentials.

Pure functions of the environment (GitHub Actions' variables, or git on a laptop), so the
publish plan is decided and checked before any engine work starts.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_REGISTRY",
    "GitRef",
    "RegistryCredentials",
    "image_address",
    "publish_tags",
    "registry_host",
]

# The k8s overlays name the images ghcr.io/agent-bruno/<service> (kustomize `images:`).
DEFAULT_REGISTRY = "ghcr.io/agent-bruno"
PASSWORD_ENV = "REGISTRY_PASSWORD"  # noqa: S105 - a variable name
USERNAME_ENV = "REGISTRY_USERNAME"
_VERSION_TAG = re.compile(r"v(?P<version>\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)")
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class GitRef:
    """The commit being built and the branch or tag it was pushed as."""

    sha: str
    name: str = ""  # branch or tag name; empty on a detached checkout
    is_tag: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, repo: Path | None = None) -> GitRef:
        """GitHub Actions' GITHUB_SHA/GITHUB_REF_NAME/GITHUB_REF_TYPE, else git's view."""
        env = os.environ if environ is None else environ
        if env.get("GITHUB_SHA"):
            return cls(
                sha=env["GITHUB_SHA"],
                name=env.get("GITHUB_REF_NAME", ""),
                is_tag=env.get("GITHUB_REF_TYPE") == "tag",
            )
        if repo is None:
            return cls(sha="unknown")
        sha = _git(repo, "rev-parse", "HEAD") or "unknown"
        return cls(
            sha=sha, name=_git(repo, "rev-parse", "--abbrev-ref", "HEAD").replace("HEAD", "")
        )

    @property
    def version(self) -> str | None:
        """``1.2.3`` for a tag ``v1.2.3``; None for anything else."""
        match = _VERSION_TAG.fullmatch(self.name) if self.is_tag else None
        return match["version"] if match else None


def publish_tags(ref: GitRef) -> list[str]:
    """The git SHA, the branch (made tag-safe) or, on a version tag, the version."""
    if ref.sha == "unknown" or not re.fullmatch(r"[0-9a-f]{7,40}", ref.sha):
        msg = f"cannot tag images without a git commit (got {ref.sha!r})"
        raise ValueError(msg)
    tags = [ref.sha]
    if ref.version:
        tags.append(ref.version)
    elif ref.name and not ref.is_tag:
        tags.append(_TAG_UNSAFE.sub("-", ref.name)[:128])
    return tags


def image_address(registry: str, service: str, tag: str) -> str:
    return f"{registry.rstrip('/')}/{service}:{tag}"


def registry_host(registry: str) -> str:
    """``ghcr.io`` for ``ghcr.io/agent-bruno``: what credentials are given for."""
    return registry.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """Read from REGISTRY_USERNAME and REGISTRY_PASSWORD; the password only ever reaches the
    engine as a Dagger secret."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password='***')"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RegistryCredentials | None:
        env = os.environ if environ is None else environ
        username, password = env.get(USERNAME_ENV, ""), env.get(PASSWORD_ENV, "")
        return cls(username, password) if username and password else None


def _git(repo: Path, *args: str) -> str:
    try:
        result = subprocess.run(  # noqa: S603 - fixed git arguments
            ["git", "-C", str(repo), *args],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""
