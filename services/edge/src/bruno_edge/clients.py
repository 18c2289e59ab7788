"""The edge's gRPC connections to retrieval, generation and embedding, opened once per process.

downstreams = Downstreams.connect(settings)
with rpc_errors("retrieval"):
    response = await downstreams.retrieval_reads.Search(request)
await downstreams.close()

Retrieval may be two services: its writer (``BRUNO_RETRIEVAL_ADDR``), which every write goes
to, and its readers (``BRUNO_RETRIEVAL_READER_ADDR``, balanced round-robin like any address),
which searches and listings go to; without readers both stubs share the one channel.
Conversations go to the writer, reads included: a chat reads the turns its previous answer
appended a moment ago, which a reader may not have seen yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from bruno.embedding.v1 import embedding_pb2
from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno.retrieval.v1 import (
    conversations_pb2_grpc,
    jobs_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import (
    create_channel,
    from_rpc_error,
)
from bruno_core.grpc_client import check_health
from bruno_edge.config import EdgeSettings

log = logging.getLogger(__name__)

# The per-service names the servers register with the standard health service.
HEALTH_SERVICE_NAMES = {
    "retrieval": retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name,
    "generation": generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name,
    "embedding": embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name,
}
HEALTH_SERVICE_NAMES["retrieval-reader"] = HEALTH_SERVICE_NAMES["retrieval"]


@contextmanager
def rpc_errors(service: str) -> Iterator[None]:
    """Re-raise a failed call to ``service`` as the domain error it stands for.

    :func:`bruno_core.from_rpc_error` keeps the details our services wrote for the caller
    (``the embedding service is unavailable``) and replaces what the gRPC runtime said, which
    names internal addresses; that goes to the log.
    """
    try:
        yield
    except grpc.aio.AioRpcError as error:
        mapped = from_rpc_error(error, service=service)
        if mapped.http_status >= 500:
            log.warning(
                "downstream call failed",
                extra={
                    "downstream": service,
                    "code": error.code().name,
                    "details": mapped.transport_detail or mapped.detail,
                },
            )
        raise mapped from error


class Downstreams:
    """Channels and typed stubs of the services the edge calls."""

    def __init__(
        self,
        *,
        retrieval: grpc.aio.Channel,
        generation: grpc.aio.Channel,
        embedding: grpc.aio.Channel,
        retrieval_reader: grpc.aio.Channel | None = None,
    ) -> None:
        self.channels: dict[str, grpc.aio.Channel] = {
            "retrieval": retrieval,
            "generation": generation,
            "embedding": embedding,
        }
        # Writes (and conversations) to the writer; searches and listings to the readers.
        self.retrieval = retrieval_pb2_grpc.RetrievalServiceStub(retrieval)
        self.retrieval_reads = self.retrieval
        self.has_readers = retrieval_reader is not None
        if retrieval_reader is not None:
            self.channels["retrieval-reader"] = retrieval_reader
            self.retrieval_reads = retrieval_pb2_grpc.RetrievalServiceStub(retrieval_reader)
        self.generation = generation_pb2_grpc.GenerationServiceStub(generation)
        # Conversation history lives in the retrieval service, on the same channel.
        self.conversations = conversations_pb2_grpc.ConversationServiceStub(retrieval)
        # So do jobs, beside the knowledge base they write.
        self.jobs = jobs_pb2_grpc.JobServiceStub(retrieval)

    @classmethod
    def connect(cls, settings: EdgeSettings) -> Downstreams:
        """Open (lazily connecting) channels to the addresses in ``settings``."""
        return cls(
            retrieval=create_channel(
                settings.retrieval_addr, timeout_seconds=settings.request_timeout_seconds
            ),
            generation=create_channel(
                settings.generation_addr, timeout_seconds=settings.chat_timeout_seconds
            ),
            embedding=create_channel(
                settings.embedding_addr, timeout_seconds=settings.request_timeout_seconds
            ),
            retrieval_reader=create_channel(
                settings.retrieval_reader_addr, timeout_seconds=settings.request_timeout_seconds
            )
            if settings.retrieval_reader_addr
            else None,
        )

    async def health(self, *, timeout_seconds: float = 2.0) -> dict[str, str]:
        """The health status of every downstream (``SERVING``, ``NOT_SERVING``, ``UNREACHABLE``…),
        checked concurrently."""
        names = list(self.channels)
        statuses = await asyncio.gather(
            *(
                check_health(
                    self.channels[name],
                    HEALTH_SERVICE_NAMES[name],
                    timeout_seconds=timeout_seconds,
                )
                for name in names
            )
        )
        return dict(zip(names, statuses, strict=True))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))
