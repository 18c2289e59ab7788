"""The edge's FastAPI application: routes, auth, limits, problem errors, metrics and tracing.

app = create_app(EdgeSettings(api_keys="k1,k2"))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
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

    # The app's router tries its routes in this order on every request, so the hot ones come
    # first. No two routers' paths overlap, so the order changes nothing else but that of the
    # OpenAPI document's paths.
    for resource in (search, chat, collections, conversations, documents, ingest_jobs, openai):
        include_flat(app, resource.router, dependencies=[Depends(require_api_key)])
    include_flat(app, health.router)
    # A plain ASGI app (the MCP SDK's transport), so it checks the key itself.
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))

    # One pass for the request's span, metrics, the drain and the body limit
    # (bruno_edge.middleware).
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=state.metrics, drain=state.drain)
    return app


def include_flat(
    app: FastAPI, router: APIRouter, *, dependencies: Sequence[DependsParam] = ()
) -> None:
    """Add ``router``'s routes to the app's own router, each with ``dependencies`` before its
    own: what ``app.include_router(router, dependencies=...)`` declares, but matched once.

    FastAPI keeps an included router as one route of the app's that stands for all of its own:
    a request is matched against that router's routes to choose it, then again to choose its
    route, through per-request bookkeeping on the ASGI scope (its routes' version, summed over
    the tree, is checked each time); flat, a request is matched against the routes themselves.
    The routers hold only FastAPI routes (``APIRoute``), already carrying their router's prefix,
    tags, responses and dependencies; the app adds nothing else an inclusion would (no prefix,
    tags, responses or dependencies of its own), and its ``dependency_overrides`` apply to the
    routes as they would to an included router's.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only FastAPI routes can be added flat")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=[*dependencies, *route.dependencies],
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
            max_body_size=route.max_body_size,
            form_limits=route.form_limits,
        )
