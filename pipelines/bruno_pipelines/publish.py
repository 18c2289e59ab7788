"""The publish stage's plan: which image goes to which address, with which credentials.

The plan is lazy containers carrying the registry credentials (the password as a Dagger
secret); the stage awaits ``publish`` on each. Publishing happens only with ``--publish``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagger

from .release import RegistryCredentials, image_address, registry_host

__all__ = ["Publication", "publications"]


@dataclass(frozen=True, slots=True)
class Publication:
    service: str
    address: str
    image: dagger.Container


def publications(
    client: dagger.Client,
    images: Mapping[str, dagger.Container],
    registry: str,
    tags: Sequence[str],
    credentials: RegistryCredentials,
) -> list[Publication]:
    """One publication per image and tag, each authenticated to the registry."""
    if not tags:
        msg = "nothing to publish: no tags"
        raise ValueError(msg)
    password = client.set_secret("registry-password", credentials.password)
    return [
        Publication(
            service,
            image_address(registry, service, tag),
            image.with_registry_auth(registry_host(registry), credentials.username, password),
        )
        for service, image in images.items()
        for tag in tags
    ]
