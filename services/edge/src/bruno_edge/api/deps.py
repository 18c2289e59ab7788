"""Dependencies of the routes, as ``Annotated`` aliases (``SettingsDep``, ``ChatDep`` …), the
API-key check every ``/api`` and ``/v1`` route depends on (:mod:`bruno_edge.auth`), and each
route's guard (:func:`guarded`): the scope it needs and the admission slots it holds while it
answers (:mod:`bruno_edge.admission`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from bruno_core import Unavailable
from bruno_edge.admission import ChatSlots, Drain, Gate, Work, WorkSlots, held_until_answered
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
# take the ``Request`` (which FastAPI hands over as it is) rather than other dependencies:
# FastAPI solves a dependency's whole tree again wherever it is named, before it looks in its
# cache, and each solving pass (a node of the tree) costs tens of microseconds. So the key is
# checked once, by the routers' own dependency (:func:`require_api_key`), which leaves the
# caller on the request for ``CallerDep`` and the route's one guard (:func:`guarded`) to read.


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

#: How a key is sent, for the OpenAPI document only (:func:`bruno_edge.openapi.install_openapi`
#: declares it on every route behind :func:`require_api_key`). Not a dependency: FastAPI would
#: solve it, one more node, on every request, to parse a header the key check reads itself.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (BRUNO_API_KEYS or the keys file), sent as "
    "`Authorization: Bearer <key>`.",
)


async def require_api_key(request: Request) -> Caller:
    """Let the request in only with a configured API key (or in open mode on loopback) within
    its rate limit; the caller is kept on ``request.state.caller`` for whatever needs to know
    who asks."""
    client = request.client.host if request.client else None
    caller = state_of(request).gate.admit(request.headers.get("authorization"), client)
    request.state.caller = caller
    return caller


async def current_caller(request: Request) -> Caller:
    """The caller :func:`require_api_key` let in (every route that names this is behind it:
    it is each such route's first dependency, :func:`bruno_edge.app.include_flat`)."""
    caller: Caller = request.state.caller
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]


def needs(scope: Scope) -> Callable[[Caller], Awaitable[None]]:
    """A dependency refusing (403) a key without ``scope``."""

    async def check(caller: CallerDep) -> None:
        caller.require(scope)

    return check


def guarded(scope: Scope, work: Work, *, chat: bool = False) -> list[Any]:
    """A route's one guard, as its ``dependencies``: the scope it needs (403), then (a chat) one
    of the key's concurrent chats (429 past them), then a slot of its kind of work (503 when
    none frees in time); in that order, so a refusal holds nothing. The slots are held until
    the response is sent, a stream's last byte included: the middleware gives them back
    (:func:`~bruno_edge.admission.held_until_answered`). A plain dependency, not a ``yield``
    one: FastAPI enters each of those on an exit stack, inside a cancel scope, through two
    context-manager wrappers, on every request (docs/benchmarks.md, "Tenth pass")."""

    async def guard(request: Request) -> None:
        state = state_of(request)
        caller: Caller = request.state.caller
        caller.require(scope)
        held = held_until_answered(request.scope)
        if not chat:
            held.append(await state.work_slots.take(work))
            return
        release_chat = state.chat_slots.take(caller)
        try:
            release_work = await state.work_slots.take(work)
        except BaseException:
            release_chat()  # refused (or cancelled) waiting for a slot: the chat is not run
            raise
        held += (release_chat, release_work)

    return [Depends(guard)]
