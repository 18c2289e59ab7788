"""Dependencies of the routes, as ``Annotated`` aliases (``SettingsDep``, ``ChatDep`` …), and the
API-key check every ``/api`` and ``/v1`` route depends on (:mod:`bruno_edge.auth`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bruno_core import Unavailable
from bruno_edge.auth import Caller, authenticate
from bruno_edge.chat import ChatService
from bruno_edge.clients import Downstreams
from bruno_edge.config import EdgeSettings
from bruno_edge.metrics import EdgeMetrics


@dataclass
class EdgeState:
    """What one app instance holds; ``downstreams`` exists while the app's lifespan runs."""

    settings: EdgeSettings
    metrics: EdgeMetrics
    downstreams: Downstreams | None = None


def get_state(request: Request) -> EdgeState:
    state: EdgeState = request.app.state.edge
    return state


StateDep = Annotated[EdgeState, Depends(get_state)]


def get_settings(state: StateDep) -> EdgeSettings:
    return state.settings


def get_downstreams(state: StateDep) -> Downstreams:
    if state.downstreams is None:
        raise Unavailable("the edge is not connected to its downstreams (starting or stopping)")
    return state.downstreams


SettingsDep = Annotated[EdgeSettings, Depends(get_settings)]
DownstreamsDep = Annotated[Downstreams, Depends(get_downstreams)]


def get_chat(state: StateDep, downstreams: DownstreamsDep) -> ChatService:
    return ChatService(downstreams, state.settings, state.metrics)


ChatDep = Annotated[ChatService, Depends(get_chat)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key from BRUNO_API_KEYS, sent as `Authorization: Bearer <key>`.",
)


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    # Declared for the OpenAPI document (the security scheme); the header is read below.
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """Let the request in only with a configured API key (or in open mode on loopback); the
    caller is kept on ``request.state.caller`` for whatever needs to know who asks."""
    caller = authenticate(settings, request.headers.get("authorization"))
    request.state.caller = caller
    return caller
