"""Service images: one per service, each a target of the repository's Dockerfile.

Building through the Dockerfile (rather than Dagger's native container API) keeps a single
definition of the images for Dagger and plain ``docker build --target <service> .`` alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import dagger

from .release import GitRef

__all__ = ["DOCKERFILE", "SERVICES", "ImageLabels", "all_images", "build_image"]

DOCKERFILE = "Dockerfile"
# Build target == service name == console script suffix (bruno-<service>).
SERVICES: tuple[str, ...] = ("edge", "embedding", "retrieval", "generation")


@dataclass(frozen=True, slots=True)
class ImageLabels:
    """Values for the images' OCI labels, passed to the Dockerfile as build arguments."""

    version: str = "dev"
    revision: str = "unknown"
    source: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ImageLabels:
        """Labels from GitHub Actions' environment (version: a ``v*`` tag's); defaults outside."""
        env = os.environ if environ is None else environ
        defaults = cls()
        server, repository = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
        version = GitRef.from_env(env).version if env.get("GITHUB_SHA") else None
        return cls(
            version=version or defaults.version,
            revision=env.get("GITHUB_SHA") or defaults.revision,
            source=f"{server}/{repository}" if server and repository else defaults.source,
        )

    def build_args(self) -> list[dagger.BuildArg]:
        return [
            dagger.BuildArg(name="IMAGE_VERSION", value=self.version),
            dagger.BuildArg(name="IMAGE_REVISION", value=self.revision),
            dagger.BuildArg(name="IMAGE_SOURCE", value=self.source),
        ]


def build_image(
    src: dagger.Directory, service: str, labels: ImageLabels | None = None
) -> dagger.Container:
    """The image of one service, built from the Dockerfile target of the same name."""
    if service not in SERVICES:
        msg = f"unknown service {service!r}; services are {', '.join(SERVICES)}"
        raise ValueError(msg)
    return src.docker_build(
        dockerfile=DOCKERFILE,
        target=service,
        build_args=(labels or ImageLabels()).build_args(),
    )


def all_images(
    src: dagger.Directory, labels: ImageLabels | None = None
) -> dict[str, dagger.Container]:
    """Every service image, keyed by service name."""
    return {service: build_image(src, service, labels) for service in SERVICES}
