"""Chat orchestration: read the conversation, make a follow-up standalone, retrieve passages,
ask generation for a grounded answer, record the turn; whole or as server-sent events.

    turn = await chat.prepare(request, owner=caller.name)  # history, rewrite, retrieval
    response = await chat.answer(turn)          # or: EventSourceResponse(chat.events(turn))

Streamed, the answer's tokens come first and its citations after them, when it is known which
of them the answer cites. Generation is asked as soon as the passages are known, in
``prepare``: the model's first token is on its way while the edge builds the citations and
starts the response (docs/benchmarks.md, "Seventh pass").

Passages scoring below ``BRUNO_MIN_RELEVANCE_SCORE`` are not given to the model; when none is
left the answer is a fixed "I don't know" and no model is asked, so nothing is guessed. The
passages keep markers 1..n in retrieval order; the answer's ``[n]`` markers say which it cites.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import grpc

from bruno.generation.v1 import generation_pb2
from bruno.retrieval.v1 import conversations_pb2, retrieval_pb2
from bruno_core import BrunoError, Internal
from bruno_core.contract import DEFAULT_COLLECTION
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.config import EdgeSettings
from bruno_edge.consistency import read
from bruno_edge.metrics import EdgeMetrics
from bruno_edge.pages import page_link
from bruno_edge.schemas import (
    ChatDone,
    ChatRequest,
    ChatResponse,
    ChatTimings,
    Citation,
    Usage,
)

log = logging.getLogger(__name__)

NO_ANSWER = (
    "I don't know: nothing in the knowledge base is relevant enough to this question for me "
    "to answer it from the documents."
)
NO_ANSWER_MODEL = "none"
_MARKER_GROUP = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def cited_markers(answer: str, passages: int) -> list[int]:
    """The passage markers ``answer`` cites ([2], [1, 3]), in order of first mention."""
    found: list[int] = []
    for group in _MARKER_GROUP.findall(answer):
        for number in (int(n) for n in group.split(",")):
            if 1 <= number <= passages and number not in found:
                found.append(number)
    return found


@dataclass
class ChatTurn:
    """One question with its retrieved passages, ready to be answered."""

    conversation_id: str
    question: str
    search_query: str
    generate_request: generation_pb2.GenerateRequest
    citations: list[Citation]
    started: float
    retrieval_seconds: float
    # Record the question and answer in the conversation; create it first when it is new.
    record: bool = True
    new_conversation: bool = False
    # The API key's name the stored conversation belongs to.
    owner: str = ""
    # The Generate call, started by ChatService._retrieve (None: the answer needs no model);
    # read by ChatService._generate, which cancels it when the answer is not read to the end.
    call: Any = None

    @property
    def knows_nothing(self) -> bool:
        return not self.citations

    def cited_citations(self, cited: Sequence[int]) -> list[Citation]:
        """The passages given to the model, each marked with whether the answer cites it."""
        markers = set(cited)
        return [c.model_copy(update={"cited": c.marker in markers}) for c in self.citations]


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
        self,
        request: ChatRequest,
        *,
        owner: str,
        at_least: retrieval_pb2.Committed | None = None,
    ) -> ChatTurn:
        """The turn for a ``/api/v1/chat`` request: a stored conversation's history (NotFound
        when the given ``conversation_id`` is unknown or not ``owner``'s), a standalone
        question, the passages (seeing the write ``at_least`` names, as a search does:
        :mod:`bruno_edge.consistency`)."""
        started = time.perf_counter()
        history: list[generation_pb2.ChatMessage] = []
        if request.conversation_id:
            history = await self.history(request.conversation_id, owner=owner)
        turn = await self._retrieve(
            started,
            question=request.message,
            history=history,
            collection=request.collection,
            top_k=request.top_k,
            conversation_id=request.conversation_id or uuid.uuid4().hex,
            record=True,
            new_conversation=request.conversation_id is None,
            at_least=at_least,
        )
        turn.owner = owner
        return turn

    async def prepare_stateless(
        self,
        question: str,
        history: Sequence[generation_pb2.ChatMessage],
        *,
        model: str = "",
        collection: str = DEFAULT_COLLECTION,
        top_k: int | None = None,
        conversation_id: str = "",
        options: generation_pb2.SamplingOptions | None = None,
        at_least: retrieval_pb2.Committed | None = None,
    ) -> ChatTurn:
        """The turn for a client that sends the whole conversation itself (the OpenAI API),
        with the sampling ``options`` it asked for; its passages see ``at_least``."""
        return await self._retrieve(
            time.perf_counter(),
            question=question,
            history=list(history),
            collection=collection,
            top_k=top_k,
            conversation_id=conversation_id,
            record=False,
            model=model,
            options=options,
            at_least=at_least,
        )

    async def history(
        self, conversation_id: str, *, owner: str
    ) -> list[generation_pb2.ChatMessage]:
        """The latest turns of ``owner``'s stored conversation, oldest first."""
        with rpc_errors("retrieval"):
            conversation = await self.downstreams.conversations.GetConversation(
                conversations_pb2.GetConversationRequest(
                    conversation_id=conversation_id,
                    max_turns=self.settings.chat_history_turns or 1,
                    owner=owner,
                ),
                timeout=self.settings.request_timeout_seconds,
            )
        if not self.settings.chat_history_turns:
            return []
        return [
            generation_pb2.ChatMessage(role=turn.role, content=turn.content)
            for turn in conversation.turns
        ]

    async def _retrieve(
        self,
        started: float,
        *,
        question: str,
        history: list[generation_pb2.ChatMessage],
        collection: str,
        top_k: int | None,
        conversation_id: str,
        record: bool,
        new_conversation: bool = False,
        model: str = "",
        options: generation_pb2.SamplingOptions | None = None,
        at_least: retrieval_pb2.Committed | None = None,
    ) -> ChatTurn:
        query = question
        if history:
            with rpc_errors("generation"):
                rewritten = await self.downstreams.generation.RewriteQuestion(
                    generation_pb2.RewriteQuestionRequest(
                        question=question, history=history, model=model
                    ),
                    timeout=self.settings.request_timeout_seconds,
                )
            query = rewritten.question or question
        search = retrieval_pb2.SearchRequest(
            collection=collection,
            query=query,
            top_k=top_k or self.settings.default_top_k,
            at_least=at_least,
        )
        with rpc_errors("retrieval"):
            found = await read(
                self.downstreams,
                lambda stub: stub.Search(search, timeout=self.settings.request_timeout_seconds),
            )
        retrieval_seconds = time.perf_counter() - started
        self.metrics.chat_stage_seconds.labels("retrieval").observe(retrieval_seconds)
        relevant = [hit for hit in found.hits if hit.score >= self.settings.min_relevance_score]
        generate_request = generation_pb2.GenerateRequest(
            # The model reads the history itself; the rewrite served retrieval.
            question=question,
            passages=[
                generation_pb2.Passage(
                    marker=marker,
                    document_id=hit.document_id,
                    chunk_id=hit.chunk_id,
                    title=hit.title,
                    source=hit.source,
                    text=hit.text,
                    score=hit.score,
                    page=hit.page,
                )
                for marker, hit in enumerate(relevant, start=1)
            ],
            history=history,
            model=model,
            options=options,
        )
        call = None
        if relevant:
            # Asked now, before the citations and the response are made, so generation and
            # the model work on it meanwhile; _generate reads it.
            call = self.downstreams.generation.Generate(
                generate_request, timeout=self.settings.chat_timeout_seconds
            )
        try:
            if call is not None:
                # grpc.aio sends a call from a task of its own: let it run now, not at the
                # response's first wait.
                await asyncio.sleep(0)
            turn = ChatTurn(
                conversation_id=conversation_id,
                question=question,
                search_query=query,
                generate_request=generate_request,
                citations=[
                    Citation(
                        marker=marker,
                        document_id=hit.document_id,
                        chunk_id=hit.chunk_id,
                        title=hit.title,
                        source=hit.source,
                        page=hit.page or None,
                        link=page_link(hit.source, hit.page),
                        score=round(hit.score, 6),
                        text=hit.text,
                    )
                    for marker, hit in enumerate(relevant, start=1)
                ],
                started=started,
                retrieval_seconds=retrieval_seconds,
                record=record,
                new_conversation=new_conversation,
                call=call,
            )
        except BaseException:  # cancelled (the client left) before the turn could hold it
            if call is not None:
                call.cancel()
            raise
        if call is not None:
            _cancel_when_dropped(turn, call)
        return turn

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
        summary = await self._finish(turn, progress, done)
        return ChatResponse(
            **summary.model_dump(),
            answer="".join(progress.tokens),
            citations=turn.cited_citations(summary.cited),
        )

    async def events(self, turn: ChatTurn) -> AsyncGenerator[dict[str, Any], None]:
        """Server-sent events for ``turn``: ``token``…, ``citations``, then ``done``; or an
        ``error`` once something fails.

        Closing this generator (the client went away) closes the generation call with it.
        """
        try:
            async for item in self.stream(turn):
                if isinstance(item, str):
                    yield _event("token", {"text": item})
                else:
                    citations = turn.cited_citations(item.cited)
                    yield _event("citations", [c.model_dump() for c in citations])
                    yield _event("done", item.model_dump(mode="json"))
        except BrunoError as error:
            log.warning("chat stream failed", extra={"error": error.detail})
            yield _event("error", error.problem())
        except Exception:
            log.exception("chat stream failed")
            yield _event("error", Internal("the answer could not be completed").problem())

    async def stream(self, turn: ChatTurn) -> AsyncGenerator[str | ChatDone, None]:
        """The answer's pieces as they come, then its :class:`ChatDone` (the turn recorded)."""
        progress = _Progress(started=time.perf_counter())
        async with aclosing(self._generate(turn, progress)) as stream:
            async for item in stream:
                if isinstance(item, str):
                    yield item
                else:
                    yield await self._finish(turn, progress, item)

    async def _generate(
        self, turn: ChatTurn, progress: _Progress
    ) -> AsyncGenerator[str | generation_pb2.Done, None]:
        """Token texts as generation streams them, then its ``Done``."""
        if turn.knows_nothing:
            progress.first_token_at = time.perf_counter()
            progress.tokens.append(NO_ANSWER)
            yield NO_ANSWER
            yield generation_pb2.Done(model=NO_ANSWER_MODEL, fallback=True)
            return
        call, turn.call = turn.call, None  # read once
        if call is None:
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

    async def _record(self, turn: ChatTurn, answer: str, cited: list[int]) -> None:
        """Add the question and the answer to the turn's conversation."""
        chunk_ids = [turn.citations[marker - 1].chunk_id for marker in cited]
        request = conversations_pb2.AppendTurnsRequest(
            conversation_id=turn.conversation_id,
            turns=[
                conversations_pb2.Turn(role="user", content=turn.question),
                conversations_pb2.Turn(role="assistant", content=answer, chunk_ids=chunk_ids),
            ],
            create=turn.new_conversation,
            owner=turn.owner,
        )
        with rpc_errors("retrieval"):
            await self.downstreams.conversations.AppendTurns(
                request, timeout=self.settings.request_timeout_seconds
            )

    async def _finish(
        self, turn: ChatTurn, progress: _Progress, done: generation_pb2.Done
    ) -> ChatDone:
        generation_seconds = time.perf_counter() - progress.started
        answer = "".join(progress.tokens)
        cited = cited_markers(answer, len(turn.citations))
        if turn.record:
            await self._record(turn, answer, cited)
        now = time.perf_counter()
        ttft = None if progress.first_token_at is None else progress.first_token_at - turn.started
        stage = self.metrics.chat_stage_seconds
        stage.labels("generation").observe(generation_seconds)
        if ttft is not None:
            stage.labels("ttft").observe(ttft)
        stage.labels("total").observe(now - turn.started)
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
            passages_used=done.passages_used,
            passages_dropped=done.passages_dropped,
            cited=cited,
            finish_reason="length" if done.finish_reason == "length" else "stop",
            search_query=turn.search_query,
        )


def _cancel_when_dropped(turn: ChatTurn, call: grpc.aio.Call) -> None:
    """Cancel ``call`` once ``turn`` is dropped: a client that leaves before its response
    begins leaves a turn nobody reads (an event stream never started runs no ``finally``),
    and the model must not go on writing for nobody. A no-op for a call that has finished."""
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        # Whichever thread drops the turn, the call is cancelled on its loop.
        with contextlib.suppress(RuntimeError):  # the loop has closed, and the call with it
            loop.call_soon_threadsafe(call.cancel)

    weakref.finalize(turn, cancel).atexit = False


def _event(name: str, data: Any) -> dict[str, Any]:
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}
