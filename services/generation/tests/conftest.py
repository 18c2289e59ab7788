"""Fixtures for the generation service: the service itself on loopback, the Ollama stand-in,
a dead Ollama address and a count of the Ollama clients made."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from ollama import AsyncClient

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core import create_channel
from bruno_generation import ollama_generator
from bruno_generation.config import GenerationSettings
from bruno_generation.server import create_server
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import free_port

if TYPE_CHECKING:  # the async stub type exists for type checkers only
    Stub = generation_pb2_grpc.GenerationServiceAsyncStub
    Serve = Callable[..., AbstractAsyncContextManager[Stub]]

PASSAGES = [
    generation_pb2.Passage(
        marker=1,
        document_id="flux",
        chunk_id="flux#0",
        title="Flux",
        source="runbooks/flux.md",
        text="Flux reconciles the cluster every ten minutes. Run flux reconcile to force it.",
        score=0.9,
    ),
    generation_pb2.Passage(
        marker=2,
        document_id="velero",
        chunk_id="velero#0",
        title="Velero",
        source="runbooks/velero.md",
        text="Velero backs up the cluster nightly. Restore a backup with velero restore create.",
        score=0.7,
    ),
]


@pytest.fixture
def passages() -> list[generation_pb2.Passage]:
    """Two retrieved passages, best first, marked [1] and [2]."""
    return list(PASSAGES)


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaStandIn]:
    async with OllamaStandIn(models=["llama3.2", "mistral"]) as standin:
        yield standin


@pytest.fixture
def dead_ollama_url() -> str:
    """An address where nothing listens: the port was free a moment ago and is closed again."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def serve() -> Serve:
    """Start the generation service with the given settings and hand back a client stub."""

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[Stub]:
        settings = GenerationSettings(
            generation_listen_addr="127.0.0.1:0", grpc_grace_seconds=1, **overrides
        )
        server = await create_server(settings)
        port = await server.start()
        channel = create_channel(f"127.0.0.1:{port}", timeout_seconds=30)
        try:
            yield generation_pb2_grpc.GenerationServiceStub(channel)
        finally:
            await channel.close()
            await server.stop()

    return running


@dataclass
class Made:
    """How many Ollama clients were made and CA bundles loaded (every TLS context loads one,
    the cost of making a client)."""

    clients: int = 0
    bundles: int = 0


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> Made:
    """Counts, from here on, the clients the generator makes and the CA bundles loaded."""
    made = Made()

    class Counted(AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.clients += 1
            super().__init__(*args, **kwargs)

    load = ssl.SSLContext.load_verify_locations

    def counted(context: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        made.bundles += 1
        load(context, *args, **kwargs)

    monkeypatch.setattr(ollama_generator, "AsyncClient", Counted)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    return made
