"""The edge's FastAPI application: routes, auth, limits, problem errors, metrics and tracing.

app = create_app(EdgeSettings(api_keys="k1,k2"))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.routing import Route

from bruno_edge._version import __version__
from bruno_edge.api.deps import EdgeState, require_api_key
from bruno_edge.api.routes import (
    chat,
    collections,
    conversations,
    documents,
    health,
    ingest_jobs,
    openai,
    search,
)
from bruno_edge.clients import Downstreams
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import Keyring
from bruno_edge.mcp_endpoint import MCP_PATH, McpEndpoint
from bruno_edge.mcp_server import create_mcp_server
from bruno_edge.metrics import EdgeMetrics
from bruno_edge.middleware import EdgeMiddleware
from bruno_edge.openapi import install_openapi
from bruno_edge.problems import install_problem_handlers

log = logging.getLogger(__name__)

_DESCRIPTION = """\
Ask questions over your own documents and get answers grounded in them, with citations.

Every `/api` and `/v1` route, and the MCP server at `/mcp`, needs `Authorization: Bearer <key>`
(a key from `BRUNO_API_KEYS` or the keys file); with no keys configured the edge only serves on
loopback. A key has scopes (`read`: search, chat, listings; `write`: ingest and delete
documents; `admin`: delete and reindex collections; a missing one is a 403) and collections:
any other collection is a 404, as if it did not exist. Errors are `application/problem+json`
(RFC 9457), except under `/v1`, where they are OpenAI error objects, and at `/mcp`, where they
are JSON-RPC errors. Too many requests from one key are a 429, load the edge sheds a 503, both
with `Retry-After`. Limits: request bodies up to `BRUNO_MAX_REQUEST_BYTES`, chat messages up to
`BRUNO_MAX_MESSAGE_CHARS` characters, documents up to `BRUNO_MAX_DOCUMENT_BYTES`, `top_k` up to
`BRUNO_MAX_TOP_K`.
"""


def create_app(settings: EdgeSettings | None = None) -> FastAPI:
    """The edge application; its lifespan opens the gRPC channels and closes them on shutdown.

    Raises :class:`~bruno_edge.keys.KeysFileError` for a keys file it cannot use.
    """
    settings = settings or EdgeSettings()
    state = EdgeState(
        settings=settings, metrics=EdgeMetrics(), keyring=Keyring.from_settings(settings)
    )
    mcp = McpEndpoint(state, create_mcp_server(state))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.open_mode:
            log.warning(
                "no API keys configured (BRUNO_API_KEYS): the API is open to anyone who can "
                "reach %s",
                settings.edge_host,
            )
        state.drain.bind(asyncio.get_running_loop())
        state.downstreams = Downstreams.connect(settings)
        try:
            async with mcp.running():
                yield
        finally:
            downstreams, state.downstreams = state.downstreams, None
            await downstreams.close()

    app = FastAPI(
        title="Agent Bruno",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # The edge's middleware makes the request spans (FastAPI's own would wrap every
        # request a second time); Prometheus has the metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.edge = state
    install_problem_handlers(app)
    install_openapi(app, settings)

    # The router tries the routes in this order on every request (FastAPI matches an included
    # router's routes twice: to choose it, then its route), so the hot ones come first: a
    # search was matched against the 18 API routes before its own. No two routers' paths
    # overlap, so the order changes nothing else but that of the OpenAPI document's paths.
    for resource in (search, chat, collections, conversations, documents, ingest_jobs, openai):
        app.include_router(resource.router, dependencies=[Depends(require_api_key)])
    app.include_router(health.router)
    # A plain ASGI app (the MCP SDK's transport), so it checks the key itself.
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))

    # One pass for the request's span, metrics, the drain and the body limit
    # (bruno_edge.middleware).
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=state.metrics, drain=state.drain)
    return app
