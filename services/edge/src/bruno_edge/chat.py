"""Chat orchestration: retrieve passages, ask generation for a grounded answer, return it whole
or as a stream of server-sent events.

    turn = await chat.prepare(request)          # retrieval; errors here are plain HTTP problems
    response = await chat.answer(turn)          # or: EventSourceResponse(chat.events(turn))

Conversation history is not stored server-side yet: :meth:`ChatService.prepare` takes the
earlier turns as ``history`` (the seam for it) and the route passes none; the conversation id
is echoed (or minted) so clients can already thread their turns.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from bruno.generation.v1 import generation_pb2
from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import BrunoError, Internal
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.config import EdgeSettings
from bruno_edge.metrics import EdgeMetrics
from bruno_edge.schemas import (
    ChatDone,
    ChatRequest,
    ChatResponse,
    ChatTimings,
    Citation,
    Usage,
)

log = logging.getLogger(__name__)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


@dataclass
class ChatTurn:
    """One question with its retrieved passages, ready to be answered."""

    conversation_id: str
    generate_request: generation_pb2.GenerateRequest
    citations: list[Citation]
    started: float
    retrieval_seconds: float


@dataclass
class _Progress:
    """What the generation stream has produced so far."""

    started: float
    first_token_at: float | None = None
    tokens: list[str] = field(default_factory=list)


class ChatService:
    """Answers chat requests from retrieval and generation."""

    def __init__(
        self, downstreams: Downstreams, settings: EdgeSettings, metrics: EdgeMetrics
    ) -> None:
        self.downstreams = downstreams
        self.settings = settings
        self.metrics = metrics

    async def prepare(
        self, request: ChatRequest, *, history: Sequence[generation_pb2.ChatMessage] = ()
    ) -> ChatTurn:
        """Retrieve the passages for ``request`` (markers 1..n, best first)."""
        started = time.perf_counter()
        search = retrieval_pb2.SearchRequest(
            collection=request.collection,
            query=request.message,
            top_k=request.top_k or self.settings.default_top_k,
        )
        with rpc_errors("retrieval"):
            found = await self.downstreams.retrieval.Search(
                search, timeout=self.settings.request_timeout_seconds
            )
        retrieval_seconds = time.perf_counter() - started
        self.metrics.chat_stage_seconds.labels("retrieval").observe(retrieval_seconds)
        passages = [
            generation_pb2.Passage(
                marker=marker,
                document_id=hit.document_id,
                chunk_id=hit.chunk_id,
                title=hit.title,
                source=hit.source,
                text=hit.text,
                score=hit.score,
            )
            for marker, hit in enumerate(found.hits, start=1)
        ]
        citations = [
            Citation(
                document_id=hit.document_id,
                chunk_id=hit.chunk_id,
                title=hit.title,
                source=hit.source,
                score=round(hit.score, 6),
                text=hit.text,
            )
            for hit in found.hits
        ]
        return ChatTurn(
            conversation_id=request.conversation_id or uuid.uuid4().hex,
            generate_request=generation_pb2.GenerateRequest(
                question=request.message, passages=passages, history=list(history)
            ),
            citations=citations,
            started=started,
            retrieval_seconds=retrieval_seconds,
        )

    async def answer(self, turn: ChatTurn) -> ChatResponse:
        """The whole answer to ``turn`` at once."""
        progress = _Progress(started=time.perf_counter())
        done: generation_pb2.Done | None = None
        async with aclosing(self._generate(turn, progress)) as stream:
            async for item in stream:
                if isinstance(item, generation_pb2.Done):
                    done = item
        if done is None:  # pragma: no cover - _generate raises instead
            raise Internal("generation ended without a result")
        summary = self._finish(turn, progress, done)
        return ChatResponse(
            conversation_id=summary.conversation_id,
            answer="".join(progress.tokens),
            citations=turn.citations,
            model=summary.model,
            usage=summary.usage,
            timings_ms=summary.timings_ms,
            fallback=summary.fallback,
        )

    async def events(self, turn: ChatTurn) -> AsyncGenerator[dict[str, Any], None]:
        """Server-sent events for ``turn``: ``citations``, ``token``…, then ``done`` or ``error``.

        Closing this generator (the client went away) closes the generation call with it.
        """
        yield _event("citations", [c.model_dump() for c in turn.citations])
        progress = _Progress(started=time.perf_counter())
        try:
            async with aclosing(self._generate(turn, progress)) as stream:
                async for item in stream:
                    if isinstance(item, str):
                        yield _event("token", {"text": item})
                    else:
                        summary = self._finish(turn, progress, item)
                        yield _event("done", summary.model_dump(mode="json"))
        except BrunoError as error:
            log.warning("chat stream failed", extra={"error": error.detail})
            yield _event("error", error.problem())
        except Exception:
            log.exception("chat stream failed")
            yield _event("error", Internal("the answer could not be completed").problem())

    async def _generate(
        self, turn: ChatTurn, progress: _Progress
    ) -> AsyncGenerator[str | generation_pb2.Done, None]:
        """Token texts as generation streams them, then its ``Done``."""
        call = self.downstreams.generation.Generate(
            turn.generate_request, timeout=self.settings.chat_timeout_seconds
        )
        try:
            with rpc_errors("generation"):
                async for response in call:
                    kind = response.WhichOneof("event")
                    if kind == "token":
                        if progress.first_token_at is None:
                            progress.first_token_at = time.perf_counter()
                        progress.tokens.append(response.token.text)
                        yield response.token.text
                    elif kind == "done":
                        yield response.done
                        return
            raise Internal("generation ended its stream without a Done event")
        finally:
            # A no-op once the call has finished; otherwise (the client disconnected, or a
            # failure on our side) it stops the model from writing an answer nobody reads.
            call.cancel()

    def _finish(self, turn: ChatTurn, progress: _Progress, done: generation_pb2.Done) -> ChatDone:
        now = time.perf_counter()
        ttft = None if progress.first_token_at is None else progress.first_token_at - turn.started
        generation_seconds = now - progress.started
        stage = self.metrics.chat_stage_seconds
        stage.labels("generation").observe(generation_seconds)
        if ttft is not None:
            stage.labels("ttft").observe(ttft)
        self.metrics.chat_tokens.labels("prompt").inc(done.usage.prompt_tokens)
        self.metrics.chat_tokens.labels("completion").inc(done.usage.completion_tokens)
        self.metrics.chat_answers.labels(str(done.fallback).lower()).inc()
        return ChatDone(
            conversation_id=turn.conversation_id,
            model=done.model,
            usage=Usage(
                prompt_tokens=done.usage.prompt_tokens,
                completion_tokens=done.usage.completion_tokens,
            ),
            timings_ms=ChatTimings(
                retrieval_ms=_ms(turn.retrieval_seconds),
                generation_ms=_ms(generation_seconds),
                ttft_ms=None if ttft is None else _ms(ttft),
                total_ms=_ms(now - turn.started),
            ),
            fallback=done.fallback,
        )


def _event(name: str, data: Any) -> dict[str, Any]:
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}
