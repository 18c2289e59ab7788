"""The ASGI endpoint at ``/mcp``: the API-key check, then the MCP SDK's streamable HTTP
transport, stateless (every request stands alone, answered as JSON) so that any edge replica
answers any request.

A missing or wrong key is a ``401`` whose body is a JSON-RPC error (a key without ``read`` a
``403``, too many requests a ``429`` with ``Retry-After``), answered here so it never reaches
the SDK.

    endpoint = McpEndpoint(state, create_mcp_server(state))
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint))
    async with endpoint.running(): ...   # in the app's lifespan
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import INTERNAL_ERROR
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from bruno_core import BrunoError
from bruno_edge.api.deps import EdgeState
from bruno_edge.keys import Scope
from bruno_edge.refusals import retry_after_headers

MCP_PATH = "/mcp"
_LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
# JSON-RPC leaves -32000 to -32099 to implementations; MCP servers commonly use -32001 for a
# refused credential.
UNAUTHENTICATED = -32001
FORBIDDEN = -32003
#: Too many requests from the key.
RATE_LIMITED = -32029


class McpEndpoint:
    """The ASGI app at ``/mcp``: the API-key check, then the SDK's streamable HTTP transport.

    A refused key never reaches the SDK: it is answered here with ``401`` and the
    ``WWW-Authenticate`` challenge (``403`` without the ``read`` scope, ``429`` with
    ``Retry-After`` past the key's rate limit) and a JSON-RPC error body, which MCP clients
    surface as the error of the call they made. The caller is kept in the request's state
    (``caller``) for the tools' per-key decisions.
    """

    def __init__(self, state: EdgeState, server: MCPServer) -> None:
        self.state = state
        settings = state.settings
        self.server = server
        # In open mode (no keys, loopback only) a web page the browser visits must not reach
        # the tools through a rebound DNS name: only loopback Host and Origin headers pass.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=settings.open_mode,
            allowed_hosts=[f"{h}{port}" for h in _LOOPBACK_HOSTS for port in ("", ":*")],
            allowed_origins=[f"http://{h}{port}" for h in _LOOPBACK_HOSTS for port in ("", ":*")],
        )
        # Builds the session manager this endpoint hands requests to; the Starlette app it
        # returns is not used (the edge is the app).
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            transport_security=security,
            max_request_body_size=settings.max_request_bytes,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP requests while this is entered (the edge's lifespan).

        The session manager's task group lives in a task of its own: a task group must be
        left by the task that entered it, and whoever runs a lifespan may enter and leave it
        from different tasks.
        """
        started, stopping = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.server.session_manager.run():
                started.set()
                await stopping.wait()

        task = asyncio.create_task(serve(), name="mcp-sessions")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()  # it failed to start: raise why
        try:
            yield
        finally:
            stopping.set()
            await task

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        try:
            caller = self.state.gate.admit(
                headers.get("authorization"), client[0] if client else None
            )
            caller.require(Scope.READ)
        except BrunoError as error:
            await _refuse(error, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.server.session_manager.handle_request(scope, receive, send)


_REFUSAL_CODES = {401: UNAUTHENTICATED, 403: FORBIDDEN, 429: RATE_LIMITED}


async def _refuse(error: BrunoError, send: Send) -> None:
    data: dict[str, Any] = {"status": error.http_status}
    extra_headers = retry_after_headers(error)
    if extra_headers:
        data["retry_after"] = int(extra_headers["Retry-After"])
    code = _REFUSAL_CODES.get(error.http_status, INTERNAL_ERROR)
    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": error.detail, "data": data},
    }
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in extra_headers.items()),
    ]
    if error.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
