"""The OpenAI-compatible surface: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Existing chat UIs and the official ``openai`` clients work unchanged. The conversation travels
in ``messages`` (nothing is stored): the last user message is the question, retrieval runs on it
(rewritten to stand alone when earlier turns exist), and the earlier user and assistant turns
are the history. Client ``system`` messages are ignored: the grounded instructions never change.
``tool`` messages and assistant turns without text (tool calls) are dropped: the edge runs no
tools.
The passages travel in an extra ``citations`` field (on the first chunk when streamed), timings
and budgeting in ``bruno``. Errors are OpenAI error objects, not problem documents.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse

from bruno.generation.v1 import generation_pb2
from bruno_core import BrunoError, Internal, InvalidInput
from bruno_edge.api.deps import ChatDep, DownstreamsDep, SettingsDep
from bruno_edge.api.routes.chat import CLIENT_CLOSED_REQUEST, unless_disconnected
from bruno_edge.chat import ChatService, ChatTurn
from bruno_edge.clients import rpc_errors
from bruno_edge.config import EdgeSettings
from bruno_edge.openai_schemas import (
    AssistantMessage,
    BrunoExtras,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    ErrorResponse,
    Message,
    Model,
    ModelList,
)
from bruno_edge.problems import OPENAI_PREFIX, openai_code, openai_error, openai_error_body
from bruno_edge.schemas import ChatDone

log = logging.getLogger(__name__)

# "bruno" (or the configured model's own name) means: the model generation is configured with.
DEFAULT_MODEL_ALIAS = "bruno"
MODELS_TIMEOUT_SECONDS = 5.0

# Errors here are OpenAI error objects: bruno_edge.problems renders every error under /v1 so.
router = APIRouter(prefix=OPENAI_PREFIX, tags=["openai"])


def _split(
    messages: list[Message], settings: EdgeSettings
) -> tuple[str, list[generation_pb2.ChatMessage]]:
    """The question (the last message, a user's) and the earlier turns worth keeping."""
    for index, message in enumerate(messages):
        if len(message.text) > settings.max_message_chars:
            raise _BadParam(
                f"messages.{index}.content",
                f"a message is limited to {settings.max_message_chars} characters",
            )
    last = messages[-1]
    if last.role != "user" or not last.text.strip():
        raise _BadParam("messages", "the last message must be a non-empty user message")
    history = [
        generation_pb2.ChatMessage(role=m.role, content=m.text)
        for m in messages[:-1]
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    keep = settings.chat_history_turns
    return last.text, history[-keep:] if keep else []


class _BadParam(InvalidInput):
    def __init__(self, param: str, detail: str) -> None:
        super().__init__(detail)
        self.param = param


def _model_for(requested: str) -> str:
    return "" if requested == DEFAULT_MODEL_ALIAS else requested


def _extras(done: ChatDone) -> BrunoExtras:
    return BrunoExtras(
        timings_ms=done.timings_ms,
        fallback=done.fallback,
        passages_used=done.passages_used,
        passages_dropped=done.passages_dropped,
        cited=done.cited,
        search_query=done.search_query,
    )


def _usage(done: ChatDone) -> CompletionUsage:
    prompt, completion = done.usage.prompt_tokens, done.usage.completion_tokens
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **{status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 503, 504)},
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, chat: ChatDep, settings: SettingsDep
) -> ChatCompletion | EventSourceResponse | Response:
    """An OpenAI chat completion grounded in the knowledge base (RAG on the last user turn)."""
    try:
        question, history = _split(body.messages, settings)
    except _BadParam as error:
        return openai_error(400, error.detail, param=error.param, code=openai_code(error))
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    turn = await chat.prepare_stateless(
        question, history, model=_model_for(body.model), conversation_id=completion_id
    )
    created = int(time.time())
    if body.stream:
        return EventSourceResponse(
            _chunks(chat, turn, completion_id, created, body.model),
            ping=settings.sse_heartbeat_seconds,
            headers={"X-Accel-Buffering": "no"},
        )
    answer = await unless_disconnected(request, chat.answer(turn))
    if answer is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=answer.model,
        choices=[Choice(message=AssistantMessage(content=answer.answer))],
        usage=_usage(answer),
        citations=answer.citations,
        bruno=_extras(answer),
    )


async def _chunks(
    chat: ChatService, turn: ChatTurn, completion_id: str, created: int, model: str
) -> AsyncGenerator[dict[str, str], None]:
    """``chat.completion.chunk`` events: role and citations, content deltas, the finish with
    usage, then ``[DONE]``; a failure after the start is an ``error`` object, then the end."""

    def chunk(delta: dict[str, Any], **extra: Any) -> dict[str, str]:
        finish = extra.pop("finish_reason", None)
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": extra.pop("model", model),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return {"data": json.dumps(body, ensure_ascii=False)}

    citations = [c.model_dump() for c in turn.citations]
    yield chunk({"role": "assistant", "content": ""}, citations=citations)
    try:
        async for item in chat.stream(turn):
            if isinstance(item, str):
                yield chunk({"content": item})
            else:
                yield chunk(
                    {},
                    finish_reason="stop",
                    model=item.model,
                    usage=_usage(item).model_dump(),
                    bruno=_extras(item).model_dump(mode="json"),
                )
    except BrunoError as error:
        log.warning("chat completion stream failed", extra={"error": error.detail})
        yield {
            "data": json.dumps(
                openai_error_body(error.http_status, error.detail, code=openai_code(error))
            )
        }
        return
    except Exception:
        log.exception("chat completion stream failed")
        failed = Internal("the answer could not be completed")
        yield {"data": json.dumps(openai_error_body(500, failed.detail, code=openai_code(failed)))}
        return
    yield {"data": "[DONE]"}


@router.get("/models", responses={503: {"model": ErrorResponse}})
async def models(downstreams: DownstreamsDep) -> ModelList:
    """The model that answers (and the ``bruno`` alias for it)."""
    with rpc_errors("generation"):
        info = await downstreams.generation.Info(
            generation_pb2.InfoRequest(), timeout=MODELS_TIMEOUT_SECONDS
        )
    return ModelList(data=[Model(id=info.model), Model(id=DEFAULT_MODEL_ALIAS)])
