"""Server-sent event responses that survive the edge stopping: a stream in flight at SIGTERM
goes on for the grace period and, if it cannot finish in time, ends with an error event in its
dialect (an ``error`` event with a problem document under ``/api``, an OpenAI error chunk under
``/v1``) before the connection closes, rather than being cut mid-answer.

    return chat_events(chat.events(turn), state)          # /api/v1/chat
    return completion_events(chunks(pieces, ...), state)  # /v1/chat/completions
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from sse_starlette import EventSourceResponse

from bruno_edge.admission import drained_stream
from bruno_edge.api.deps import EdgeState
from bruno_edge.problems import openai_code, openai_error_body
from bruno_edge.refusals import Overloaded

#: What a client reads when the edge stopped before its answer was done.
CUT_DETAIL = "the edge is shutting down and could not finish this answer; ask again"


def _cut() -> Overloaded:
    return Overloaded(CUT_DETAIL, retry_after=1)


def chat_events(
    events: AsyncGenerator[dict[str, Any], None], state: EdgeState
) -> EventSourceResponse:
    """The REST chat's events; cut by a shutdown, an ``error`` event ends them."""

    def farewell() -> dict[str, Any]:
        return {"event": "error", "data": json.dumps(_cut().problem())}

    return _response(drained_stream(events, state.drain, farewell), state)


def completion_events(
    chunks: AsyncGenerator[dict[str, str], None], state: EdgeState
) -> EventSourceResponse:
    """OpenAI ``chat.completion.chunk`` events; cut by a shutdown, an error object ends them
    (without ``[DONE]``, as a failed OpenAI stream ends)."""

    def farewell() -> dict[str, str]:
        cut = _cut()
        return {
            "data": json.dumps(
                openai_error_body(cut.http_status, cut.detail, code=openai_code(cut))
            )
        }

    return _response(drained_stream(chunks, state.drain, farewell), state)


def _response(events: AsyncGenerator[Any, None], state: EdgeState) -> EventSourceResponse:
    return EventSourceResponse(
        events,
        ping=state.settings.sse_heartbeat_seconds,
        headers={"X-Accel-Buffering": "no"},
        # sse-starlette cancels its streams when uvicorn begins to stop; this lets them run
        # the whole grace period instead, which drained_stream ends just before.
        shutdown_grace_period=state.settings.shutdown_grace_seconds,
    )
