"""The retrieval service's wiring: the knowledge and conversation stores behind their
servicers in a :class:`GrpcServer`, embedding through the embedding service.

In-process (tests, harnesses):

    server = await create_server(RetrievalSettings(retrieval_listen_addr="127.0.0.1:0"))
    port = await server.start()
    ...
    await server.stop()  # also closes the stores and the clients it made
"""

from __future__ import annotations

import logging

from bruno.retrieval.v1 import conversations_pb2_grpc, jobs_pb2_grpc, retrieval_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.grpc_server import GrpcServer
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import ConversationStore
from bruno_retrieval.embedding_client import EmbeddingClient
from bruno_retrieval.fetching import UrlFetcher
from bruno_retrieval.id_check import find_invalid_ids
from bruno_retrieval.jobs import JobRunner, JobStore
from bruno_retrieval.knowledge import Embedder, HttpReranker, KnowledgeStore
from bruno_retrieval.roles import Role
from bruno_retrieval.servicer import (
    CONVERSATION_SERVICE,
    JOB_SERVICE,
    SERVICE,
    ConversationServicer,
    JobServicer,
    RetrievalServicer,
)

log = logging.getLogger(__name__)


async def create_server(
    settings: RetrievalSettings, *, embedder: Embedder | None = None
) -> GrpcServer:
    """The retrieval server, not yet started, with its database already open.

    Without ``embedder`` it embeds through the embedding service at ``settings.embedding_addr``
    over a channel it closes when it stops; one passed in stays the caller's to close.
    """
    server = GrpcServer(
        "retrieval",
        settings,
        listen_addr=settings.retrieval_listen_addr,
        metrics_port=settings.retrieval_metrics_port,
    )
    if embedder is None:
        client = EmbeddingClient.from_settings(settings)
        server.on_stop(client.close)
        embedder = client
    reranker = None
    if settings.reranker_url:
        reranker = HttpReranker(
            settings.reranker_url, timeout_seconds=settings.reranker_timeout_seconds
        )
        server.on_stop(reranker.close)
    store = await KnowledgeStore.open(settings, embedder, reranker=reranker)
    conversations = await ConversationStore.open(settings)

    async def close_stores() -> None:
        store.close()
        conversations.close()

    server.on_stop(close_stores)
    role = Role(settings.retrieval_role)
    # Jobs are writes with a runner in the background: the writer's alone. A reader does not
    # serve JobService at all (UNIMPLEMENTED); the edge sends jobs to the writer.
    if role.writes:
        jobs = await JobStore.open(settings)
        fetcher = UrlFetcher(
            settings.fetch_policy, settings.extraction_limits, settings.fetch_limits
        )
        runner = JobRunner(jobs, store, fetcher)
        # Interrupted jobs are settled before the first call can ask about them.
        await runner.start()

        async def close_jobs() -> None:
            await runner.stop()
            await fetcher.aclose()
            jobs.close()

        server.on_stop(close_jobs)
        server.add_servicer(
            JOB_SERVICE, jobs_pb2_grpc.add_JobServiceServicer_to_server, JobServicer(runner, jobs)
        )
    server.add_servicer(
        SERVICE, retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server, RetrievalServicer(store)
    )
    server.add_servicer(
        CONVERSATION_SERVICE,
        conversations_pb2_grpc.add_ConversationServiceServicer_to_server,
        ConversationServicer(conversations),
    )
    # The writer's to report (readers would repeat it N times): bruno_retrieval.roles.
    if role.writes and (invalid := await find_invalid_ids(settings.lancedb_uri)):
        log.warning(
            "stored ids break the identifier rule; list them with bruno-retrieval-check-ids",
            extra={"count": len(invalid), "first": str(invalid[0])},
        )
    return server


def main() -> None:
    """Console entry point ``bruno-retrieval``: serve until SIGTERM or SIGINT."""
    run_service("retrieval", RetrievalSettings(), create_server)
