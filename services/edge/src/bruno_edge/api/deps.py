"""Dependencies of the routes, as ``Annotated`` aliases (``SettingsDep``, ``ChatDep`` …), and the
API-key check every ``/api`` route depends on."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from bruno_core import Unauthenticated, Unavailable
from bruno_edge.chat import ChatService
from bruno_edge.clients import Downstreams
from bruno_edge.config import EdgeSettings, is_loopback
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


def key_matches(candidate: str, keys: Iterable[SecretStr]) -> bool:
    """Whether ``candidate`` is one of ``keys``, in time independent of where they differ."""
    # Digests make every comparison the same length; no early exit across keys either.
    digest = hashlib.sha256(candidate.encode()).digest()
    matched = False
    for key in keys:
        expected = hashlib.sha256(key.get_secret_value().encode()).digest()
        matched |= hmac.compare_digest(digest, expected)
    return matched


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Let the request in only with a configured API key (or in open mode on loopback)."""
    if settings.open_mode:
        if is_loopback(settings.edge_host):
            return
        # server.main refuses this configuration; an app built some other way fails closed.
        raise Unauthenticated("no API keys are configured and the edge is not on loopback")
    if credentials is None:
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>`")
    if not key_matches(credentials.credentials, settings.api_keys):
        raise Unauthenticated("the API key is not valid")
