"""The console entry point every gRPC service shares: logs, tracing, then serve until stopped.

def main() -> None:
    run_service("embedding", EmbeddingSettings(), create_server)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from bruno_core.event_loop import run_on_event_loop
from bruno_core.grpc_server import GrpcServer
from bruno_core.logs import configure_logging
from bruno_core.settings import BrunoSettings
from bruno_core.telemetry import configure_tracing

S = TypeVar("S", bound=BrunoSettings)


def run_service(
    name: str, settings: S, create_server: Callable[[S], Awaitable[GrpcServer]]
) -> None:
    """Configure JSON logs and tracing for ``name``, then serve ``create_server(settings)``
    until SIGTERM/SIGINT, on uvloop (:mod:`bruno_core.event_loop`); it returns once the server
    has drained and closed what it owns."""
    configure_logging(name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(name)
    run_on_event_loop(serve(settings, create_server))


async def serve(settings: S, create_server: Callable[[S], Awaitable[GrpcServer]]) -> None:
    """Serve ``create_server(settings)`` until SIGTERM or SIGINT, then stop it gracefully."""
    server = await create_server(settings)
    await server.run()
