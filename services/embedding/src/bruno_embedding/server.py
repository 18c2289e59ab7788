"""The embedding service's wiring: the configured :class:`~bruno_embedding.embedders.Embedder`
behind its servicer in a :class:`GrpcServer`.

In-process (tests, harnesses):

    server = await create_server(EmbeddingSettings(embedding_listen_addr="127.0.0.1:0"))
    port = await server.start()
    ...
    await server.stop()  # also closes the embedder it built
"""

from __future__ import annotations

from bruno.embedding.v1 import embedding_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.grpc_server import GrpcServer
from bruno_core.queueing import Bounds
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder
from bruno_embedding.servicer import SERVICE, EmbeddingServicer


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The backend the settings name, constructed but not started."""
    if settings.embedding_backend == "ollama":
        return OllamaEmbedder(
            host=settings.ollama_host,
            model=settings.embedding_ollama_model,
            batch_size=settings.embedding_batch_size,
        )
    return OnnxMiniLMEmbedder(
        model=settings.embedding_onnx_model,
        cache_dir=settings.embedding_cache_dir,
        batch_size=settings.embedding_batch_size,
        background_call_chars=settings.embedding_document_call_chars,
        threads=settings.embedding_threads,
        thread_spinning=settings.embedding_thread_spinning,
        max_waiting=Bounds(
            interactive=settings.embedding_max_waiting_queries,
            background=settings.embedding_max_waiting_documents,
        ),
        max_batch_tokens=settings.embedding_max_batch_tokens,
    )


async def create_server(
    settings: EmbeddingSettings, *, embedder: Embedder | None = None
) -> GrpcServer:
    """The embedding server, not yet started.

    Without ``embedder`` the one the settings name is built and started here (the model is
    loaded before ``start`` reports SERVING) and closed when the server stops; one passed in
    stays the caller's to close.
    """
    server = GrpcServer(
        "embedding",
        settings,
        listen_addr=settings.embedding_listen_addr,
        metrics_port=settings.embedding_metrics_port,
    )
    if embedder is None:
        embedder = build_embedder(settings)
        await embedder.start()
        server.on_stop(embedder.aclose)
    servicer = EmbeddingServicer(embedder, max_texts=settings.embedding_max_texts)
    server.add_servicer(
        SERVICE, embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, servicer
    )
    return server


def main() -> None:
    """Console entry point ``bruno-embedding``: serve until SIGTERM or SIGINT."""
    run_service("embedding", EmbeddingSettings(), create_server)
