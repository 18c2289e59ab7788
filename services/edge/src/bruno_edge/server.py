"""``bruno-edge``: serve the edge with uvicorn on ``BRUNO_EDGE_HOST:BRUNO_EDGE_PORT``.

uvicorn stops gracefully on SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish
for up to :data:`SHUTDOWN_GRACE_SECONDS`, then runs the lifespan exit that closes the channels.
The process then exits 0, like the gRPC services, instead of re-raising the signal.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from pydantic import ValidationError

from bruno_core import configure_logging, configure_tracing
from bruno_edge.app import create_app
from bruno_edge.config import EdgeSettings, is_loopback

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10
EXIT_CONFIG_ERROR = 2


def exposure_problem(settings: EdgeSettings) -> str | None:
    """Why ``settings`` must not be served, or None: an open API only on loopback."""
    if settings.open_mode and not is_loopback(settings.edge_host):
        return (
            f"refusing to serve on {settings.edge_host} without API keys: set BRUNO_API_KEYS "
            "(comma-separated) or bind BRUNO_EDGE_HOST to a loopback address"
        )
    return None


def _load_settings() -> EdgeSettings:
    try:
        return EdgeSettings()
    except ValidationError as error:
        # Without the input values: one of them could be a key.
        for problem in error.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in problem["loc"])
            print(f"bruno-edge: BRUNO_{field.upper()}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None


class _Server(uvicorn.Server):
    """uvicorn's server, ending with exit status 0 after a graceful stop on SIGTERM/SIGINT.

    Stock uvicorn re-raises the captured signal once it has shut down, so a clean stop looks
    like a kill to supervisors (supervisord, tests, shells). A second signal still forces the exit.
    """

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        def on_signal(sig: int, frame: FrameType | None) -> None:
            self.handle_exit(sig, frame)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main() -> None:
    settings = _load_settings()
    configure_logging("edge", level=settings.log_level, fmt=settings.log_format)
    refusal = exposure_problem(settings)
    if refusal is not None:
        log.error(refusal)
        print(f"bruno-edge: {refusal}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR)
    configure_tracing("edge")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.edge_host,
        port=settings.edge_port,
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        server_header=False,
    )
    _Server(config).run()
