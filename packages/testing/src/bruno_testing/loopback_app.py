"""An ASGI app served by uvicorn inside the running event loop on a free 127.0.0.1 port: the
shared life cycle of the wire-level stand-ins (Ollama, the reranker)."""

from __future__ import annotations

import asyncio
import socket
from typing import Self

import uvicorn
from starlette.types import ASGIApp


class LoopbackApp:
    """Serves :attr:`app` on :attr:`url` from :meth:`start` to :meth:`stop` (or ``async with``)."""

    #: Names the server in errors.
    name = "loopback app"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"the {self.name} is not started")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # IPPROTO_TCP, not the default 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) on
        # the connections of a listening socket only when it names the protocol. Ollama (Go's
        # net/http) and the services' own servers send every write at once; with Nagle on, a
        # streamed token written while the client's ACK of the headers was delayed (Linux
        # delays it on a keep-alive connection used back to back) waited ~40 ms for that ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError(f"the {self.name} stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server, self._task, self.port = None, None, 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
