"""Dependencies of the routes, as ``Annotated`` aliases (``SettingsDep``, ``ChatDep`` …), the
API-key check every ``/api`` and ``/v1`` route depends on (:mod:`bruno_edge.auth`), the scope a
route needs (:func:`needs`) and the admission slots it holds while it answers (:func:`admitted`,
:func:`chat_slot`; :mod:`bruno_edge.admission`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bruno_core import Unavailable
from bruno_edge.admission import ChatSlots, Drain, Gate, Work, WorkSlots
from bruno_edge.auth import Caller
from bruno_edge.chat import ChatService
from bruno_edge.clients import Downstreams
from bruno_edge.config import EdgeSettings
from bruno_edge.keys import Keyring, Scope
from bruno_edge.metrics import EdgeMetrics


@dataclass
class EdgeState:
    """What one app instance holds; ``downstreams`` exists while the app's lifespan runs."""

    settings: EdgeSettings
    metrics: EdgeMetrics
    keyring: Keyring
    downstreams: Downstreams | None = None
    gate: Gate = field(init=False)
    chat_slots: ChatSlots = field(init=False)
    work_slots: WorkSlots = field(init=False)
    drain: Drain = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate(self.settings, self.keyring, self.metrics)
        self.chat_slots = ChatSlots(self.settings, self.metrics)
        self.work_slots = WorkSlots(self.settings, self.metrics)
        self.drain = Drain(self.settings.shutdown_grace_seconds)


# Every dependency is ``async def``, even those that do not await: FastAPI runs a plain ``def``
# dependency in its thread pool, and that hop (a thread wake-up, a lock and a future each way)
# cost more than the rest of the dependency solving together. And the route's dependencies
# take the ``Request`` (which FastAPI hands over as it is) rather than ``StateDep``: FastAPI
# solves a dependency's whole tree again wherever it is named, before it looks in its cache, so
# each ``StateDep`` below a dependency was one more solving pass on every request.


def state_of(request: Request) -> EdgeState:
    """The app's :class:`EdgeState`."""
    state: EdgeState = request.app.state.edge
    return state


async def get_state(request: Request) -> EdgeState:
    return state_of(request)


StateDep = Annotated[EdgeState, Depends(get_state)]


async def get_settings(request: Request) -> EdgeSettings:
    return state_of(request).settings


async def get_downstreams(request: Request) -> Downstreams:
    state = state_of(request)
    if state.downstreams is None:
        raise Unavailable("the edge is not connected to its downstreams (starting or stopping)")
    return state.downstreams


SettingsDep = Annotated[EdgeSettings, Depends(get_settings)]
DownstreamsDep = Annotated[Downstreams, Depends(get_downstreams)]


async def get_chat(request: Request, downstreams: DownstreamsDep) -> ChatService:
    state = state_of(request)
    return ChatService(downstreams, state.settings, state.metrics)


ChatDep = Annotated[ChatService, Depends(get_chat)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (BRUNO_API_KEYS or the keys file), sent as "
    "`Authorization: Bearer <key>`.",
)


async def require_api_key(
    request: Request,
    # Declared for the OpenAPI document (the security scheme); the header is read below.
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """Let the request in only with a configured API key (or in open mode on loopback) within
    its rate limit; the caller is kept on ``request.state.caller`` for whatever needs to know
    who asks."""
    client = request.client.host if request.client else None
    caller = state_of(request).gate.admit(request.headers.get("authorization"), client)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(require_api_key)]


def needs(scope: Scope) -> Callable[[Caller], Awaitable[None]]:
    """A dependency refusing (403) a key without ``scope``."""

    async def check(caller: CallerDep) -> None:
        caller.require(scope)

    return check


def admitted(work: Work) -> Callable[[Request], AsyncIterator[None]]:
    """A dependency holding a slot of ``work`` until the response is sent (503 when none
    frees in time)."""

    async def hold(request: Request) -> AsyncIterator[None]:
        async with state_of(request).work_slots.hold(work):
            yield

    return hold


async def chat_slot(request: Request, caller: CallerDep) -> AsyncIterator[None]:
    """One of the caller's concurrent chats, held until the answer is sent (429 past them)."""
    async with state_of(request).chat_slots.hold(caller):
        yield


def guarded(scope: Scope, work: Work, *, chat: bool = False) -> list[Any]:
    """A route's dependencies: the scope it needs, then (a chat) one of the key's concurrent
    chats, then a slot of its kind of work; in that order, so a refusal holds nothing."""
    chat_slots = [Depends(chat_slot)] if chat else []
    return [Depends(needs(scope)), *chat_slots, Depends(admitted(work))]
