"""``POST /api/v1/chat``: a grounded answer with citations, whole or streamed as SSE."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, ChatDep, StateDep, guarded
from bruno_edge.api.routes import (
    API_PREFIX,
    CHAT_EVENTS,
    CLIENT_CLOSED_REQUEST,
    event_stream,
    problem_responses,
)
from bruno_edge.consistency import AtLeastDep
from bruno_edge.keys import Scope
from bruno_edge.schemas import ChatRequest, ChatResponse
from bruno_edge.streams import chat_events

router = APIRouter(prefix=API_PREFIX, tags=["chat"])

_SSE_DESCRIPTION = (
    'With `stream: true` (or `Accept: text/event-stream`): `token` events (`{"text": ...}`), '
    "then `citations` (a JSON list, each with `cited` true or false), then `done` "
    "(conversation_id, model, usage, timings_ms, fallback, passages_used, passages_dropped, "
    "cited, finish_reason, search_query); or `error` (a problem document) once something "
    "fails. Comment lines keep the connection alive while the model thinks. "
    "A `conversation_id` must name a conversation an earlier answer returned (else 404); "
    "without one a new conversation is started. With a `Bruno-Consistency-Token` header (from "
    "a write's answer) the passages are retrieved from that write or a later state."
)

_T = TypeVar("_T")


async def unless_disconnected(request: Request, work: Awaitable[_T]) -> _T | None:
    """``work``'s result, or None after cancelling it when the client hangs up first.

    A plain (non-streamed) endpoint is not cancelled when its client goes away, so without
    this a model would go on writing an answer nobody will read.
    """

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(hung_up())
    try:
        finished, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task in finished:
        return task.result()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _wants_stream(body: ChatRequest, request: Request) -> bool:
    if body.stream is not None:
        return body.stream
    return "text/event-stream" in request.headers.get("accept", "")


@router.post(
    "/chat",
    response_model=ChatResponse,
    responses={
        200: {"content": event_stream(CHAT_EVENTS)},
        **problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 499, 500, 503, 504),
    },
    description=_SSE_DESCRIPTION,
    dependencies=guarded(Scope.READ, Work.CHAT, chat=True),
)
async def chat(
    body: ChatRequest,
    request: Request,
    caller: CallerDep,
    chat: ChatDep,
    state: StateDep,
    at_least: AtLeastDep,
) -> ChatResponse | EventSourceResponse | Response:
    caller.check_collection(body.collection)
    # History, rewriting and retrieval run before the response starts, so their failures keep
    # their HTTP status; only failures after the first event become an `error` event.
    turn = await chat.prepare(body, owner=caller.name, at_least=at_least)
    if _wants_stream(body, request):
        return chat_events(chat.events(turn), state)
    answer = await unless_disconnected(request, chat.answer(turn))
    if answer is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return answer
