"""``bruno-edge``: serve the edge with uvicorn on ``BRUNO_EDGE_HOST:BRUNO_EDGE_PORT``;
``bruno-edge keys new NAME …`` makes an API key (:func:`bruno_edge.keys.keys_command`).

On SIGTERM/SIGINT the edge drains (:class:`bruno_edge.admission.Drain`): ``/ready`` and new
requests get 503 at once, uvicorn stops accepting, requests and streams in flight get
``BRUNO_SHUTDOWN_GRACE_SECONDS`` to finish (a stream that cannot ends with an error event),
then the lifespan exit closes the channels. The process exits 0, like the gRPC services,
instead of re-raising the signal. Connections are served by
:mod:`bruno_edge.connections` (header and body deadlines, a cap on open connections).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

import uvicorn
from pydantic import ValidationError

from bruno_core import configure_logging, configure_tracing
from bruno_edge.admission import Drain
from bruno_edge.app import create_app
from bruno_edge.config import EdgeSettings, is_loopback
from bruno_edge.connections import guarded_protocol
from bruno_edge.keys import KeysFileError, keys_command

log = logging.getLogger(__name__)

EXIT_CONFIG_ERROR = 2


def exposure_problem(settings: EdgeSettings) -> str | None:
    """Why ``settings`` must not be served, or None: an open API only on loopback."""
    if settings.open_mode and not is_loopback(settings.edge_host):
        return (
            f"refusing to serve on {settings.edge_host} without API keys: set BRUNO_API_KEYS "
            "(comma-separated) or BRUNO_API_KEYS_FILE, or bind BRUNO_EDGE_HOST to a loopback "
            "address"
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
    """uvicorn's server, draining the app on SIGTERM/SIGINT and ending with exit status 0.

    Stock uvicorn re-raises the captured signal once it has shut down, so a clean stop looks
    like a kill to supervisors (supervisord, tests, shells). A second signal still forces the exit.
    """

    def __init__(self, config: uvicorn.Config, drain: Drain) -> None:
        super().__init__(config)
        self.drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain.request()
        super().handle_exit(sig, frame)

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


def _refuse_to_start(reason: str) -> NoReturn:
    log.error(reason)
    print(f"bruno-edge: {reason}", file=sys.stderr)
    raise SystemExit(EXIT_CONFIG_ERROR)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["keys"]:
        raise SystemExit(keys_command(arguments[1:]))
    if arguments:
        print("usage: bruno-edge [keys new NAME --scopes … --collections …]", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR)
    settings = _load_settings()
    configure_logging("edge", level=settings.log_level, fmt=settings.log_format)
    refusal = exposure_problem(settings)
    if refusal is not None:
        _refuse_to_start(refusal)
    try:
        app = create_app(settings)
    except KeysFileError as error:
        _refuse_to_start(f"BRUNO_API_KEYS_FILE: {error}")
    configure_tracing("edge")
    config = uvicorn.Config(
        app,
        host=settings.edge_host,
        port=settings.edge_port,
        http=guarded_protocol(settings),
        loop="uvloop",  # the loop every Bruno process runs on (bruno_core.event_loop)
        log_config=None,  # keep the JSON logging configured above
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        server_header=False,
    )
    _Server(config, app.state.edge.drain).run()
