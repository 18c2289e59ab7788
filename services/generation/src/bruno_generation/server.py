"""The generation service's wiring: an :class:`~bruno_generation.answering.Answerer` over
Ollama (or the extractive backend) behind its servicer in a :class:`GrpcServer`.

In-process (tests, harnesses):

    server = await create_server(GenerationSettings(generation_listen_addr="127.0.0.1:0"))
    port = await server.start()
    ...
    await server.stop()  # also closes the Ollama connections it made
"""

from __future__ import annotations

import logging

from bruno.generation.v1 import generation_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.grpc_server import GrpcServer
from bruno_generation.answering import Answerer
from bruno_generation.config import GenerationSettings
from bruno_generation.ollama_generator import OllamaGenerator
from bruno_generation.servicer import SERVICE, GenerationServicer

log = logging.getLogger(__name__)


def build_ollama(settings: GenerationSettings) -> OllamaGenerator:
    """The Ollama client the settings describe: its HTTP clients are made here, when the
    service starts, so the first answer does not wait for them; it connects on first use."""
    return OllamaGenerator(
        host=settings.ollama_host,
        timeout_seconds=settings.ollama_timeout_seconds,
        connect_timeout_seconds=settings.ollama_connect_timeout_seconds,
        options={
            "temperature": settings.ollama_temperature,
            "num_ctx": settings.ollama_num_ctx,
        },
        keep_alive=settings.ollama_keep_alive,
    )


async def create_server(
    settings: GenerationSettings, *, ollama: OllamaGenerator | None = None
) -> GrpcServer:
    """The generation server, not yet started.

    Without ``ollama`` the client the settings describe is built here and its pooled
    connections closed when the server stops; one passed in stays the caller's to close.
    """
    server = GrpcServer(
        "generation",
        settings,
        listen_addr=settings.generation_listen_addr,
        metrics_port=settings.generation_metrics_port,
    )
    if ollama is None:
        ollama = build_ollama(settings)
        server.on_stop(ollama.aclose)
    servicer = GenerationServicer(Answerer(settings, ollama=ollama))
    server.add_servicer(
        SERVICE, generation_pb2_grpc.add_GenerationServiceServicer_to_server, servicer
    )
    log.info(
        "generation backend",
        extra={
            "backend": settings.generation_backend,
            "ollama_host": settings.ollama_host,
            "model": settings.ollama_model,
        },
    )
    return server


def main() -> None:
    """Console entry point ``bruno-generation``: serve until SIGTERM or SIGINT."""
    run_service("generation", GenerationSettings(), create_server)
