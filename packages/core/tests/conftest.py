"""Fixtures for the shared core: a real gRPC server on loopback with a scriptable servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import GrpcServer, GrpcServerSettings

Context = grpc.aio.ServicerContext[Any, Any]
SERVICE = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]


class ScriptedEmbedding(embedding_pb2_grpc.EmbeddingServiceServicer):
    """An EmbeddingService whose Embed behaviour each test sets through ``behaviour``."""

    def __init__(self) -> None:
        self.calls = 0
        self.metadata: list[dict[str, str]] = []
        self.behaviour: Callable[[int, Context], Awaitable[None]] | None = None

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: Context
    ) -> embedding_pb2.EmbedResponse:
        self.calls += 1
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        if self.behaviour is not None:
            await self.behaviour(self.calls, context)
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=[float(len(t))]) for t in request.texts],
            model="scripted",
            dimension=1,
        )

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: Context
    ) -> embedding_pb2.InfoResponse:
        return embedding_pb2.InfoResponse(model="scripted", dimension=1)


@pytest.fixture
def settings() -> GrpcServerSettings:
    return GrpcServerSettings(grpc_grace_seconds=5.0)


@pytest.fixture
async def served(
    settings: GrpcServerSettings,
) -> AsyncIterator[tuple[GrpcServer, ScriptedEmbedding, str]]:
    server = GrpcServer("embedding", settings, listen_addr="127.0.0.1:0")
    servicer = ScriptedEmbedding()
    server.add_servicer(
        SERVICE, embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, servicer
    )
    port = await server.start()
    yield server, servicer, f"127.0.0.1:{port}"
    await server.grpc.stop(None)
