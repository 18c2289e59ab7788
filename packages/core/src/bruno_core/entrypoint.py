"""The console entry point every gRPC service shares: logs, tracing, then serve until stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bruno_core.logs import configure_logging
from bruno_core.settings import BrunoSettings
from bruno_core.telemetry import configure_tracing

S = TypeVar("S", bound=BrunoSettings)


def run_service(name: str, settings: S, serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """Configure JSON logs and tracing for ``name``, then run ``serve(settings)`` to its end.

    ``serve`` returns after SIGTERM/SIGINT once the server has drained (``GrpcServer.run``).
    """
    configure_logging(name, level=settings.log_level, fmt=settings.log_format)
    configure_tracing(name)
    asyncio.run(serve(settings))
