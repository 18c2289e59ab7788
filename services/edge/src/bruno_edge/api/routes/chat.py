"""``POST /api/v1/chat``: a grounded answer with citations, whole or streamed as SSE."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from bruno_edge.api.deps import ChatDep
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.schemas import ChatRequest, ChatResponse

router = APIRouter(prefix=API_PREFIX, tags=["chat"])

SSE_PING_SECONDS = 15

_SSE_DESCRIPTION = (
    "With `stream: true` (or `Accept: text/event-stream`): event `citations` (a JSON list), "
    'then `token` events (`{"text": ...}`), then `done` (conversation_id, model, usage, '
    "timings_ms, fallback) or `error` (a problem document)."
)


def _wants_stream(body: ChatRequest, request: Request) -> bool:
    if body.stream is not None:
        return body.stream
    return "text/event-stream" in request.headers.get("accept", "")


@router.post(
    "/chat",
    response_model=ChatResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **problem_responses(401, 404, 413, 422, 503, 504),
    },
    description=_SSE_DESCRIPTION,
)
async def chat(
    body: ChatRequest, request: Request, chat: ChatDep
) -> ChatResponse | EventSourceResponse:
    # Retrieval runs before the response starts, so its failures keep their HTTP status;
    # only failures after the first event become an `error` event.
    turn = await chat.prepare(body)
    if _wants_stream(body, request):
        return EventSourceResponse(
            chat.events(turn), ping=SSE_PING_SECONDS, headers={"X-Accel-Buffering": "no"}
        )
    return await chat.answer(turn)
