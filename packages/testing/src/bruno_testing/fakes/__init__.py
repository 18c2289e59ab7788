"""In-memory stand-ins for Bruno's gRPC services, for tests of their callers (the edge), each
served by a real :class:`~bruno_core.GrpcServer` on loopback so errors reach callers through
the same error policy as the real services' do. Their answers are checked against the real
services' by ``packages/testing/tests/test_fakes_match_services.py``, so they cannot drift.

    async with FakeServices() as fakes:
        fakes.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE
        settings = EdgeSettings(retrieval_addr=fakes.addr("retrieval"), ...)
"""

from __future__ import annotations

from types import TracebackType

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import GrpcServer, GrpcServerSettings
from bruno_testing.fakes.conversations import FakeConversations
from bruno_testing.fakes.embedding import FakeEmbedding, HealthOnlyEmbedding, embedding_server
from bruno_testing.fakes.generation import FakeGeneration
from bruno_testing.fakes.jobs import FakeJobs
from bruno_testing.fakes.retrieval import FakeRetrieval, StoredDocument

__all__ = [
    "FakeConversations",
    "FakeEmbedding",
    "FakeGeneration",
    "FakeJobs",
    "FakeRetrieval",
    "FakeServices",
    "HealthOnlyEmbedding",
    "StoredDocument",
    "embedding_server",
]


class FakeServices:
    """The fakes of retrieval (with conversations and jobs), generation and embedding, each on
    its own :class:`GrpcServer` on a free loopback port while the context is open."""

    def __init__(self) -> None:
        self.retrieval = FakeRetrieval()
        self.conversations = FakeConversations()
        self.jobs = FakeJobs(self.retrieval)
        self.generation = FakeGeneration()
        settings = GrpcServerSettings(grpc_grace_seconds=0)
        self.servers = {
            name: GrpcServer(name, settings, listen_addr="127.0.0.1:0")
            for name in ("retrieval", "generation", "embedding")
        }
        retrieval = self.servers["retrieval"]
        retrieval.add_servicer(
            retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"],
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
            self.retrieval,
        )
        retrieval.add_servicer(
            conversations_pb2.DESCRIPTOR.services_by_name["ConversationService"],
            conversations_pb2_grpc.add_ConversationServiceServicer_to_server,
            self.conversations,
        )
        retrieval.add_servicer(
            jobs_pb2.DESCRIPTOR.services_by_name["JobService"],
            jobs_pb2_grpc.add_JobServiceServicer_to_server,
            self.jobs,
        )
        self.servers["generation"].add_servicer(
            generation_pb2.DESCRIPTOR.services_by_name["GenerationService"],
            generation_pb2_grpc.add_GenerationServiceServicer_to_server,
            self.generation,
        )
        self.servers["embedding"].add_servicer(
            embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"],
            embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server,
            HealthOnlyEmbedding(),
        )

    def addr(self, name: str) -> str:
        """``127.0.0.1:<port>`` of the fake ``name`` (retrieval, generation or embedding)."""
        return f"127.0.0.1:{self.servers[name].port}"

    async def __aenter__(self) -> FakeServices:
        for server in self.servers.values():
            await server.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for server in self.servers.values():
            await server.stop()
