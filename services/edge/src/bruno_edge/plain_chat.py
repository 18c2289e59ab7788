"""A plain model's answer, without retrieval: what the pulled Ollama models do on ``/v1``.

Chat UIs run their own tasks as chat completions (Open WebUI writes titles, tags and follow-up
suggestions that way, with instructions of its own). Grounded in passages they would come back
as "I don't know"; so a request that names a pulled Ollama model instead of ``bruno`` goes to
that model as it is, through generation's ``Converse``: the client's messages, its system
prompt included, and its sampling options. Those tasks are asked without streaming (nobody
reads a title word by word), while a person chatting with a plain model reads the stream: so a
request that does not stream waits behind interactive answers for the model (background
priority), one that streams does not.

    async for piece in converse(
        downstreams, settings, model="llama3.2:latest", messages=..., options=..., streamed=True
    ):
        ...  # str pieces, then one PlainDone
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal

from bruno.generation.v1 import generation_pb2
from bruno_core import Internal
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.config import EdgeSettings


@dataclass(frozen=True)
class PlainDone:
    """How a plain answer ended."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


async def converse(
    downstreams: Downstreams,
    settings: EdgeSettings,
    *,
    model: str,
    messages: Sequence[generation_pb2.ChatMessage],
    options: generation_pb2.SamplingOptions,
    streamed: bool,
) -> AsyncGenerator[str | PlainDone, None]:
    """The model's answer as it streams, then one :class:`PlainDone`; ``streamed`` says
    whether the client reads it as it comes (interactive) or whole (background).

    Closing this generator (the client went away) cancels the call, and with it the model.
    """
    priority = (
        generation_pb2.PRIORITY_INTERACTIVE if streamed else generation_pb2.PRIORITY_BACKGROUND
    )
    request = generation_pb2.ConverseRequest(
        model=model, messages=messages, options=options, priority=priority
    )
    call = downstreams.generation.Converse(request, timeout=settings.chat_timeout_seconds)
    try:
        with rpc_errors("generation"):
            async for response in call:
                if response.WhichOneof("event") == "token":
                    yield response.token.text
                    continue
                done = response.done
                yield PlainDone(
                    model=done.model,
                    prompt_tokens=done.usage.prompt_tokens,
                    completion_tokens=done.usage.completion_tokens,
                    finish_reason="length" if done.finish_reason == "length" else "stop",
                )
                return
        raise Internal("generation ended its stream without a Done event")
    finally:
        call.cancel()
