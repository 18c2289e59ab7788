"""The smoke stage: the four built images as Dagger services, bound together, and one chat
request through the edge (the same check `make smoke` runs against Docker: scripts/smoke.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagger

from .checks import PYTHON_IMAGE
from .images import SERVICES

__all__ = ["PORTS", "SMOKE_SCRIPT", "non_root", "services", "smoke"]

PORTS: Mapping[str, int] = {
    "edge": 8080,
    "embedding": 50051,
    "retrieval": 50052,
    "generation": 50053,
}
SMOKE_SCRIPT = "scripts/smoke.py"
_BACKENDS = ("embedding", "retrieval", "generation")


def services(
    images: Mapping[str, dagger.Container], api_key: dagger.Secret
) -> dict[str, dagger.Service]:
    """Each image as a service, reaching the others by their service names.

    The edge binds 0.0.0.0 in its image, so it gets API keys (a secret); Ollama is absent,
    so generation answers with its extractive fallback.
    """
    missing = [s for s in SERVICES if s not in images]
    if missing:
        msg = f"smoke needs every service image; missing {', '.join(missing)}"
        raise ValueError(msg)
    embedding = images["embedding"].with_exposed_port(PORTS["embedding"]).as_service()
    retrieval = (
        images["retrieval"]
        .with_service_binding("embedding", embedding)
        .with_env_variable("BRUNO_EMBEDDING_ADDR", f"embedding:{PORTS['embedding']}")
        .with_exposed_port(PORTS["retrieval"])
        .as_service()
    )
    generation = images["generation"].with_exposed_port(PORTS["generation"]).as_service()
    backends = {"embedding": embedding, "retrieval": retrieval, "generation": generation}
    edge = images["edge"]
    for name in _BACKENDS:
        edge = edge.with_service_binding(name, backends[name]).with_env_variable(
            f"BRUNO_{name.upper()}_ADDR", f"{name}:{PORTS[name]}"
        )
    edge_service = (
        edge.with_secret_variable("BRUNO_API_KEYS", api_key)
        .with_exposed_port(PORTS["edge"])
        .as_service()
    )
    return {**backends, "edge": edge_service}


def smoke(
    client: dagger.Client,
    src: dagger.Directory,
    images: Mapping[str, dagger.Container],
    api_key: dagger.Secret,
    run_id: str,
) -> dagger.Container:
    """A client bound to the edge that ingests a document and checks the chat answer cites it.

    ``run_id`` changes per run so the engine never answers from its cache.
    """
    edge = services(images, api_key)["edge"]
    return (
        client.container()
        .from_(PYTHON_IMAGE)
        .with_file("/smoke/smoke.py", src.file(SMOKE_SCRIPT))
        .with_service_binding("edge", edge)
        .with_secret_variable("BRUNO_SMOKE_API_KEY", api_key)
        .with_env_variable("BRUNO_SMOKE_RUN", run_id)
        .with_exec(["python", "/smoke/smoke.py", "--edge-url", f"http://edge:{PORTS['edge']}"])
    )


def non_root(image: dagger.Container) -> dagger.Container:
    """The image's own user runs `id -u`; the exec fails when it is root."""
    return image.with_exec(["sh", "-c", 'uid="$(id -u)"; echo "uid $uid"; test "$uid" != 0'])
