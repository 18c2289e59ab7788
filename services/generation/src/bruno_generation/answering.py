"""What the generation service does, with no gRPC in it: answers, plain chats, rewrites, the
model list and the backend's state, by the backend ``BRUNO_GENERATION_BACKEND`` names.

``ollama`` answers with Ollama or is UNAVAILABLE, ``extractive`` quotes the passages with no
model at all, and ``auto`` asks Ollama and, when Ollama is unreachable or lacks the model before
it wrote a word, quotes instead (``Finished.fallback`` set). Once words went out an answer
cannot be swapped, so a failure then ends it with UNAVAILABLE.

Before Ollama is asked, the passages are fitted to ``BRUNO_OLLAMA_NUM_CTX``, or to the model's
trained context length when Ollama's ``/api/show`` says it is smaller (lowest-ranked dropped
first, counted in ``Finished.passages_dropped``); a question that cannot fit at all is
InvalidInput. A request's sampling options reach Ollama as they are; the extractive answer
honours ``max_tokens`` too, and ``Finished.finish_reason`` is ``length`` when it cut one short.

Every call that asks Ollama for words (answers, plain chats, rewrites) first takes one of
``BRUNO_OLLAMA_PARALLEL`` slots from a :class:`~bruno_core.queueing.PriorityGate`: a request's
``priority`` (interactive unless it says background) decides who goes next, and a full line
is UNAVAILABLE at once. The extractive backend asks no model and never waits.

    answerer = Answerer(settings, ollama=OllamaGenerator(host=settings.ollama_host))
    async for piece in answerer.answer(request):
        ...  # str pieces of the answer, then one Finished
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from bruno.generation.v1 import generation_pb2
from bruno_core.errors import InvalidInput, NotFound, Unavailable
from bruno_core.queueing import Bounds, Priority, PriorityGate
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.budget import estimate_prompt, fit_passages, trim_passages
from bruno_generation.config import GenerationSettings
from bruno_generation.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from bruno_generation.extractive import ExtractiveGenerator
from bruno_generation.metrics import (
    FALLBACKS,
    FIRST_TOKEN,
    PASSAGES_DROPPED,
    PASSAGES_TRIMMED,
    TOKENS,
)
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.prompting import ChatTurn
from bruno_generation.rewriting import clean_rewrite, rewrite_extractively, rewrite_messages
from bruno_generation.sampling import Sampling
from bruno_generation.validation import validate, validate_converse, validate_rewrite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendInfo:
    """Who answers and whether its model is there (for the edge's readiness)."""

    backend: str
    model: str
    model_available: bool
    context_window: int = 0  # 0: no model window to budget (the extractive backend)
    detail: str = ""  # why the model is not available


def answer_reserve(settings: GenerationSettings, sampling: Sampling, window: int) -> int:
    """Tokens of ``window`` kept free for the answer: the setting, or the client's
    ``max_tokens`` when that is more, up to half the window (the prompt keeps the rest)."""
    return max(
        settings.generation_answer_reserve_tokens, min(sampling.max_tokens or 0, window // 2)
    )


def priority_of(priority: generation_pb2.Priority.ValueType) -> Priority:
    """A request's priority: interactive unless it says background (a person may be waiting,
    and older callers name none)."""
    if priority == generation_pb2.PRIORITY_BACKGROUND:
        return Priority.BACKGROUND
    return Priority.INTERACTIVE


class Answerer:
    """The generation service's domain: every call checked, then answered by the configured
    backend (see the module docstring for the choice and the fallback)."""

    def __init__(
        self,
        settings: GenerationSettings,
        *,
        ollama: OllamaGenerator,
        extractive: ExtractiveGenerator | None = None,
    ) -> None:
        self.settings = settings
        self.ollama = ollama
        self.extractive = extractive or ExtractiveGenerator()
        self.gate = PriorityGate(
            "generation",
            slots=settings.ollama_parallel,
            max_waiting=Bounds(
                interactive=settings.generation_max_waiting_interactive,
                background=settings.generation_max_waiting_background,
            ),
        )

    async def answer(self, request: generation_pb2.GenerateRequest) -> AnswerStream:
        """The answer to ``request.question`` from its passages: pieces, then one Finished."""
        validate(request, self.settings)
        trimmed = trim_passages(request, self.settings.generation_max_passage_chars)
        if trimmed:
            PASSAGES_TRIMMED.inc(trimmed)
            log.warning("passages trimmed to fit", extra={"passages": trimmed})
        sampling = Sampling.of(request.options)
        async with aclosing(self._answer(request, sampling)) as pieces:
            async for piece in pieces:
                yield piece

    async def _answer(
        self, request: generation_pb2.GenerateRequest, sampling: Sampling
    ) -> AnswerStream:
        if self.settings.generation_backend == "extractive":
            async for piece in self._stream("extractive", self._quote(request, sampling)):
                yield piece
            return
        model = request.model or self.settings.ollama_model
        window = await self._context_window(model)
        fitted = fit_passages(
            request.question,
            request.passages,
            request.history,
            context_window=window,
            reserve=answer_reserve(self.settings, sampling, window),
        )
        if fitted.dropped:
            PASSAGES_DROPPED.inc(fitted.dropped)
        answer = self._in_turn(
            priority_of(request.priority),
            self.ollama.generate(
                fitted.messages, model=model, passages_used=fitted.used, sampling=sampling
            ),
        )
        sent = 0
        try:
            async for piece in self._stream("ollama", answer, dropped=fitted.dropped):
                sent += 1
                yield piece
        except (OllamaUnreachable, ModelNotFound) as error:
            if self.settings.generation_backend != "auto" or sent:
                raise
            self._note_fallback(error)
            async for piece in self._stream("extractive", self._quote(request, sampling)):
                yield piece

    async def converse(self, request: generation_pb2.ConverseRequest) -> AnswerStream:
        """The plain model's answer to ``request.messages`` as they are: no passages, no
        grounding prompt, no fallback. A model Ollama lacks is NotFound: the caller named it."""
        validate_converse(request, self.settings)
        sampling = Sampling.of(request.options)
        if self.settings.generation_backend == "extractive":
            raise Unavailable("no language model answers here (the backend is extractive)")
        messages: list[ChatTurn] = [
            {"role": m.role, "content": m.content} for m in request.messages
        ]
        window = await self._context_window(request.model)
        reserve = answer_reserve(self.settings, sampling, window)
        needed = estimate_prompt(messages)
        if needed + reserve > window:
            raise InvalidInput(
                f"the messages need about {needed} tokens, more than the "
                f"{window - reserve} that the model's context window of {window} leaves "
                f"after {reserve} kept for the answer"
            )
        answer = self._in_turn(
            priority_of(request.priority),
            self.ollama.generate(messages, model=request.model, passages_used=0, sampling=sampling),
        )
        try:
            async with aclosing(self._stream("ollama", answer)) as pieces:
                async for piece in pieces:
                    yield piece
        except ModelNotFound as error:
            # The caller named the model: its absence is the caller's to fix, not an outage.
            raise NotFound(error.detail) from error

    async def chat_models(self) -> list[str] | str:
        """The chat models Ollama has pulled (none for the extractive backend), or why Ollama
        could not be asked."""
        if self.settings.generation_backend == "extractive":
            return []
        return await self.ollama.chat_models()

    async def rewrite(self, request: generation_pb2.RewriteQuestionRequest) -> str | None:
        """``request.question`` made standalone from its history, or None when it stands as
        it is (no history, or the rewrite changed nothing)."""
        validate_rewrite(request, self.settings)
        rewritten = await self._rewrite(request) if request.history else None
        if rewritten is None or rewritten == request.question.strip():
            return None
        return rewritten

    async def _rewrite(self, request: generation_pb2.RewriteQuestionRequest) -> str | None:
        if self.settings.generation_backend == "extractive":
            return rewrite_extractively(request.question, request.history)
        messages = rewrite_messages(request.question, request.history)
        try:
            async with self.gate.slot(priority_of(request.priority)):
                text = await self.ollama.complete(
                    messages, model=request.model or self.settings.ollama_model
                )
        except (OllamaUnreachable, ModelNotFound) as error:
            if self.settings.generation_backend != "auto":
                raise
            self._note_fallback(error)
            return rewrite_extractively(request.question, request.history)
        limit = self.settings.generation_max_question_chars
        return clean_rewrite(text, limit=limit) or request.question

    async def info(self) -> BackendInfo:
        """The configured backend and model, and whether the model is there."""
        backend = self.settings.generation_backend
        if backend == "extractive":
            return BackendInfo(backend=backend, model=EXTRACTIVE_MODEL, model_available=True)
        model = self.settings.ollama_model
        available, detail = await self.ollama.model_status(model)
        window = await self._context_window(model) if available else self.settings.ollama_num_ctx
        return BackendInfo(
            backend=backend,
            model=model,
            model_available=available,
            context_window=window,
            detail=detail,
        )

    def _note_fallback(self, error: OllamaUnreachable | ModelNotFound) -> None:
        reason = "unreachable" if isinstance(error, OllamaUnreachable) else "model_missing"
        FALLBACKS.labels(reason).inc()
        log.warning("answering without a model", extra={"reason": error.detail})

    async def _context_window(self, model: str) -> int:
        window = await self.ollama.context_window(model)
        return self.settings.ollama_num_ctx if window is None else window

    async def _in_turn(self, priority: Priority, answer: AnswerStream) -> AnswerStream:
        """``answer``, asked of Ollama once a slot is free; the slot is held until it ends."""
        async with self.gate.slot(priority), aclosing(answer) as pieces:
            async for piece in pieces:
                yield piece

    def _quote(self, request: generation_pb2.GenerateRequest, sampling: Sampling) -> AnswerStream:
        answer = self.extractive.generate(request.question, request.passages)
        return _at_most(answer, sampling.max_tokens)

    async def _stream(
        self, backend: str, answer: AnswerStream, *, dropped: int = 0
    ) -> AsyncGenerator[str | Finished, None]:
        start = time.perf_counter()
        tokens = 0
        # aclosing: a cancelled call must close the answer (and its HTTP request) right away.
        async with aclosing(answer) as pieces:
            async for piece in pieces:
                if isinstance(piece, Finished):
                    yield dataclasses.replace(piece, passages_dropped=dropped)
                    return
                if tokens == 0:
                    FIRST_TOKEN.labels(backend).observe(time.perf_counter() - start)
                tokens += 1
                TOKENS.labels(backend).inc()
                yield piece


async def _at_most(answer: AnswerStream, max_tokens: int | None) -> AnswerStream:
    """``answer`` cut after ``max_tokens`` pieces, as a model with ``num_predict`` stops.

    For answers written here (the extractive fallback): the rest is read and not sent, so the
    :class:`Finished` that ends it still says who wrote it and what it read.
    """
    sent = 0
    async with aclosing(answer) as pieces:
        async for piece in pieces:
            if isinstance(piece, Finished):
                if max_tokens is not None and sent == max_tokens and piece.completion_tokens > sent:
                    piece = dataclasses.replace(
                        piece, completion_tokens=sent, finish_reason="length"
                    )
                yield piece
                return
            if max_tokens is None or sent < max_tokens:
                sent += 1
                yield piece
