"""The embedding service's wiring: the models the settings name, in an
:class:`~bruno_embedding.registry.EmbedderRegistry` behind the servicer in a :class:`GrpcServer`.

In-process (tests, harnesses):

    server = await create_server(EmbeddingSettings(embedding_listen_addr="127.0.0.1:0"))
    port = await server.start()
    ...
    await server.stop()  # also closes the embedders it built
"""

from __future__ import annotations

from bruno.embedding.v1 import embedding_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.grpc_server import GrpcServer
from bruno_core.queueing import Bounds
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_embedding.onnx_embedder import ONNX_MODELS, OnnxMiniLMEmbedder, OnnxModel, model_info
from bruno_embedding.registry import EmbedderRegistry, OnDemandEmbedder
from bruno_embedding.servicer import SERVICE, EmbeddingServicer


def build_embedders(settings: EmbeddingSettings) -> EmbedderRegistry:
    """The models the settings' backend serves, constructed but not started.

    Ollama: its one configured model. ONNX: every built-in model, the configured one the
    default (loaded here); each other one is loaded by the first request naming it and shares
    the default's worker, so memory grows only when some collection uses it.
    """
    if settings.embedding_backend == "ollama":
        return EmbedderRegistry(
            OllamaEmbedder(
                host=settings.ollama_host,
                model=settings.embedding_ollama_model,
                batch_size=settings.embedding_batch_size,
            )
        )
    default = OnnxMiniLMEmbedder(
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

    def sibling(model: OnnxModel) -> OnDemandEmbedder:
        return OnDemandEmbedder(model_info(model), lambda: default.sibling(model))

    others = [sibling(model) for model in ONNX_MODELS if model != default.model]
    return EmbedderRegistry(default, others=others)


async def create_server(
    settings: EmbeddingSettings, *, embedders: EmbedderRegistry | None = None
) -> GrpcServer:
    """The embedding server, not yet started.

    Without ``embedders`` the models the settings name are built and started here (the
    default is loaded before ``start`` reports SERVING) and closed when the server stops;
    a registry passed in stays the caller's to close.
    """
    server = GrpcServer(
        "embedding",
        settings,
        listen_addr=settings.embedding_listen_addr,
        metrics_port=settings.embedding_metrics_port,
    )
    if embedders is None:
        embedders = build_embedders(settings)
        await embedders.start()
        server.on_stop(embedders.aclose)
    servicer = EmbeddingServicer(embedders, max_texts=settings.embedding_max_texts)
    server.add_servicer(
        SERVICE, embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server, servicer
    )
    return server


def main() -> None:
    """Console entry point ``bruno-embedding``: serve until SIGTERM or SIGINT."""
    run_service("embedding", EmbeddingSettings(), create_server)
