"""An OpenAI chat completion, faithfully: what the request asks for reaches the model, what
Bruno cannot do is refused by name, and the answer comes back whole or as spec-shaped chunks.

    refuse_unsupported(body)                                # BadParam naming the parameter
    pieces = rag_answer(chat, turn, inline_sources=True)    # or plain_answer(...)
    text, ending = await collect(pieces)                    # or: chunks(pieces, ...)

With model ``bruno`` the question is the last user message and retrieval runs on it; earlier
user and assistant turns are the history, and the client's system prompts are left out, so the
grounding instructions cannot be overridden. Turns after the question (an assistant's tool
calls and their ``tool`` results) are left out too: Bruno calls no tools, and a tool's result is
no passage of the knowledge base, so the answer could not cite it. A pulled Ollama model gets
the messages as they are (:mod:`bruno_edge.plain_chat`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from bruno.generation.v1 import generation_pb2
from bruno_core import BrunoError, Internal, InvalidInput
from bruno_edge.chat import ChatService, ChatTurn
from bruno_edge.config import EdgeSettings
from bruno_edge.openai_schemas import (
    BrunoExtras,
    ChatCompletionRequest,
    CompletionUsage,
    FinishReason,
    Message,
)
from bruno_edge.plain_chat import PlainDone
from bruno_edge.problems import openai_code, openai_error_body
from bruno_edge.schemas import ChatDone, Citation
from bruno_edge.sources import sources_text, without_sources

log = logging.getLogger(__name__)

_INT64 = 2**63


class BadParam(InvalidInput):
    """A request parameter Bruno will not take, named as OpenAI's ``param``."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(detail)
        self.param = param


@dataclass(frozen=True)
class Ending:
    """How an answer ended; ``citations`` and ``extras`` with model ``bruno`` only."""

    finish_reason: FinishReason
    usage: CompletionUsage
    citations: list[Citation] | None = None
    extras: BrunoExtras | None = None


Pieces = AsyncIterator[str | Ending]


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """Raise :class:`BadParam` for what Bruno cannot do, rather than silently not doing it."""
    if body.n is not None and body.n > 1:
        raise BadParam("n", "n: Agent Bruno answers with one choice; n must be 1")
    if body.logprobs or body.top_logprobs:
        param = "logprobs" if body.logprobs else "top_logprobs"
        raise BadParam(param, f"{param}: Agent Bruno does not return log probabilities")
    if body.tools and body.tool_choice != "none":
        raise BadParam(
            "tools",
            'tools: Agent Bruno calls no tools; send no tools, or tool_choice "none"',
        )
    if body.functions:
        raise BadParam("functions", "functions: Agent Bruno calls no functions")
    if body.logit_bias:
        raise BadParam("logit_bias", "logit_bias: Agent Bruno cannot bias tokens")
    if (
        body.max_tokens is not None
        and body.max_completion_tokens is not None
        and body.max_tokens != body.max_completion_tokens
    ):
        raise BadParam(
            "max_tokens", "max_tokens: send max_completion_tokens or max_tokens, not both"
        )


def sampling_options(body: ChatCompletionRequest) -> generation_pb2.SamplingOptions:
    """What the request asks of the model, as generation's :class:`SamplingOptions`."""
    options = generation_pb2.SamplingOptions()
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = getattr(body, name)
        if value is not None:
            setattr(options, name, value)
    limit = body.max_completion_tokens or body.max_tokens
    if limit is not None:
        if limit >= 2**32:
            raise BadParam("max_tokens", "max_tokens is larger than any model's answer")
        options.max_tokens = limit
    if body.seed is not None:
        if not -_INT64 <= body.seed < _INT64:
            raise BadParam("seed", "seed must fit in 64 bits")
        options.seed = body.seed
    if body.stop:
        options.stop.extend([body.stop] if isinstance(body.stop, str) else body.stop)
    options.format = _format(body)
    return options


def _format(body: ChatCompletionRequest) -> str:
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        return ""
    if response_format.type == "json_object":
        return "json"
    if response_format.json_schema is None or response_format.json_schema.json_schema is None:
        raise BadParam(
            "response_format",
            "response_format: a json_schema format needs json_schema.schema",
        )
    return json.dumps(response_format.json_schema.json_schema)


def wants_json(body: ChatCompletionRequest) -> bool:
    return body.response_format is not None and body.response_format.type != "text"


def question_and_history(
    messages: list[Message], settings: EdgeSettings
) -> tuple[str, list[generation_pb2.ChatMessage]]:
    """For ``bruno``: the question (the last user message) and the earlier turns worth
    keeping, latest ``BRUNO_CHAT_HISTORY_TURNS`` of them, without sources lists."""
    asked = [index for index, message in enumerate(messages) if message.role == "user"]
    if not asked or not messages[asked[-1]].text.strip():
        raise BadParam("messages", "messages must hold a non-empty user message to answer")
    last = asked[-1]
    question = messages[last].text
    if len(question) > settings.max_message_chars:
        raise BadParam(
            f"messages.{last}.content",
            f"a question is limited to {settings.max_message_chars} characters",
        )
    history = [
        generation_pb2.ChatMessage(
            role=m.role, content=without_sources(m.text) if m.role == "assistant" else m.text
        )
        for m in messages[:last]
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    keep = settings.chat_history_turns
    return question, history[-keep:] if keep else []


def plain_messages(messages: list[Message]) -> list[generation_pb2.ChatMessage]:
    """For a plain model: every message as it is (``developer`` is a system prompt)."""
    return [
        generation_pb2.ChatMessage(
            role="system" if m.role == "developer" else m.role, content=m.text
        )
        for m in messages
    ]


async def rag_answer(chat: ChatService, turn: ChatTurn, *, inline_sources: bool) -> Pieces:
    """A grounded answer's pieces, with its cited sources after it when ``inline_sources``."""
    async for item in chat.stream(turn):
        if isinstance(item, str):
            yield item
            continue
        citations = turn.cited_citations(item.cited)
        if inline_sources and (block := sources_text(citations)):
            yield block
        yield Ending(
            finish_reason=item.finish_reason,
            usage=_usage(item.usage.prompt_tokens, item.usage.completion_tokens),
            citations=citations,
            extras=_extras(item),
        )


async def plain_answer(pieces: AsyncIterator[str | PlainDone]) -> Pieces:
    """A plain model's pieces, ending in an :class:`Ending`."""
    async for item in pieces:
        if isinstance(item, str):
            yield item
        else:
            yield Ending(
                finish_reason=item.finish_reason,
                usage=_usage(item.prompt_tokens, item.completion_tokens),
            )


async def collect(pieces: Pieces) -> tuple[str, Ending]:
    """The whole answer text and how it ended."""
    text: list[str] = []
    async for item in pieces:
        if isinstance(item, Ending):
            return "".join(text), item
        text.append(item)
    raise Internal("the answer ended without finishing")


async def chunks(
    pieces: Pieces, *, completion_id: str, created: int, model: str, include_usage: bool
) -> AsyncGenerator[dict[str, str], None]:
    """``chat.completion.chunk`` events as OpenAI streams them: the role, content deltas, the
    finish (with ``citations`` and ``bruno`` for model ``bruno``), the usage in a chunk of its
    own with no choices when ``stream_options.include_usage`` asks, then ``[DONE]``. A failure
    after the start is an error object, and the stream ends without ``[DONE]``."""

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        if include_usage:
            body.setdefault("usage", None)  # every chunk but the last has it null
        return {"data": json.dumps(body, ensure_ascii=False)}

    def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, str]:
        return chunk([{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}])

    yield delta({"role": "assistant", "content": ""})
    try:
        async for item in pieces:
            if isinstance(item, str):
                yield delta({"content": item})
                continue
            extra: dict[str, Any] = {}
            if item.citations is not None:
                extra["citations"] = [c.model_dump() for c in item.citations]
            if item.extras is not None:
                extra["bruno"] = item.extras.model_dump(mode="json")
            finish = {"index": 0, "delta": {}, "logprobs": None}
            yield chunk([{**finish, "finish_reason": item.finish_reason}], **extra)
            if include_usage:
                yield chunk([], usage=item.usage.model_dump())
    except BrunoError as error:
        log.warning("chat completion stream failed", extra={"error": error.detail})
        body = openai_error_body(error.http_status, error.detail, code=openai_code(error))
        yield {"data": json.dumps(body)}
        return
    except Exception:
        log.exception("chat completion stream failed")
        failed = Internal("the answer could not be completed")
        yield {"data": json.dumps(openai_error_body(500, failed.detail, code=openai_code(failed)))}
        return
    yield {"data": "[DONE]"}


def _usage(prompt: int, completion: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _extras(done: ChatDone) -> BrunoExtras:
    return BrunoExtras(
        answered_by=done.model,
        timings_ms=done.timings_ms,
        fallback=done.fallback,
        passages_used=done.passages_used,
        passages_dropped=done.passages_dropped,
        cited=done.cited,
        search_query=done.search_query,
    )
