"""The generation gRPC service: validation, backend choice and the wiring of the process.

``BRUNO_GENERATION_BACKEND`` picks who answers: ``ollama`` (Ollama or UNAVAILABLE),
``extractive`` (the passages quoted, no model at all) or ``auto``: Ollama, and when Ollama is
unreachable or lacks the model before it wrote a word, the extractive answer with
``Done.fallback`` set. Once tokens went out an answer cannot be swapped, so a failure then
ends the stream with UNAVAILABLE.

Before Ollama is asked, the passages are fitted to ``BRUNO_OLLAMA_NUM_CTX``, or to the model's
trained context length when Ollama's ``/api/show`` says it is smaller (lowest-ranked dropped
first, counted in ``Done.passages_dropped``); a question that cannot fit at all is
INVALID_ARGUMENT. A request's sampling options (temperature, ``max_tokens``, stop strings, a
JSON ``format`` …) reach Ollama as they are; the extractive fallback honours ``max_tokens``.
``Done.finish_reason`` is ``length`` when ``max_tokens`` cut the answer short.

``Converse`` is the plain model with none of the above: the client's messages go to the Ollama
model it names, for a client's own tasks (titles, tags) that must not be grounded in passages.
``ListModels`` names the models it can use. ``RewriteQuestion`` makes follow-ups standalone by
the same backend choice as answers, and ``Info`` says whether the configured model is there
(for the edge's readiness).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core.entrypoint import run_service
from bruno_core.errors import (
    BrunoError,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unavailable,
    abort_with,
)
from bruno_core.grpc_server import GrpcServer
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.budget import estimate_prompt, fit_passages
from bruno_generation.config import GenerationSettings
from bruno_generation.extractive import MODEL_NAME as EXTRACTIVE_MODEL
from bruno_generation.extractive import ExtractiveGenerator
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.prompting import ChatTurn
from bruno_generation.rewriting import clean_rewrite, rewrite_extractively, rewrite_messages
from bruno_generation.sampling import Sampling

log = logging.getLogger(__name__)

SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]
HISTORY_ROLES = frozenset({"user", "assistant"})
CONVERSE_ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_MODEL_NAME_CHARS = 200
PASSAGE_TRIM_MARKER = " […]"

TOKENS = Counter(
    "bruno_generation_tokens_total",
    "Answer tokens streamed to callers, by backend (ollama or extractive).",
    ["backend"],
)
FALLBACKS = Counter(
    "bruno_generation_fallbacks_total",
    "Answers given by the extractive fallback because Ollama could not answer, by reason.",
    ["reason"],
)
PASSAGES_TRIMMED = Counter(
    "bruno_generation_passages_trimmed_total",
    "Passages cut to BRUNO_GENERATION_MAX_PASSAGE_CHARS before the model read them.",
)
PASSAGES_DROPPED = Counter(
    "bruno_generation_passages_dropped_total",
    "Passages left out of a prompt so that it fits the model's context window.",
)
FIRST_TOKEN = Histogram(
    "bruno_generation_first_token_seconds",
    "Time from request to the first answer token, by backend.",
    ["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


def validate(request: generation_pb2.GenerateRequest, settings: GenerationSettings) -> None:
    """Raise the matching error for a request the service will not answer."""
    _validate_question(request.question, settings)
    if len(request.passages) > settings.generation_max_passages:
        raise LimitExceeded(
            f"{len(request.passages)} passages; the limit is {settings.generation_max_passages}"
        )
    _validate_conversation(request.history, request.model, settings)


def trim_passages(request: generation_pb2.GenerateRequest, max_chars: int) -> int:
    """Cut every passage longer than ``max_chars`` to that length, ending in
    ``PASSAGE_TRIM_MARKER`` so the model sees the text goes on; returns how many were cut.

    Passages come from the knowledge base, not from the person asking: one oversized chunk
    (stored before chunks had a character ceiling, or under a larger chunk budget) must not
    fail every question that retrieves it, so it is trimmed rather than refused.

        request = GenerateRequest(question="?", passages=[Passage(text="a" * 20_000)])
        trim_passages(request, 16_000)  # 1; the passage ends in " […]", 16,000 characters
    """
    keep = max_chars - len(PASSAGE_TRIM_MARKER)
    trimmed = 0
    for passage in request.passages:
        if len(passage.text) > max_chars:
            passage.text = passage.text[:keep].rstrip() + PASSAGE_TRIM_MARKER
            trimmed += 1
    return trimmed


def _validate_question(question: str, settings: GenerationSettings) -> None:
    if not question.strip():
        raise InvalidInput("question must not be empty")
    if len(question) > settings.generation_max_question_chars:
        raise LimitExceeded(
            f"question is {len(question)} characters; "
            f"the limit is {settings.generation_max_question_chars}"
        )


def _validate_conversation(
    history: Sequence[generation_pb2.ChatMessage], model: str, settings: GenerationSettings
) -> None:
    validate_history(history, settings)
    if len(model) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(f"model name is longer than {MAX_MODEL_NAME_CHARS} characters")


def validate_history(
    history: Sequence[generation_pb2.ChatMessage], settings: GenerationSettings
) -> None:
    """Raise the matching error for a conversation the service will not read."""
    if len(history) > settings.generation_max_history_messages:
        raise LimitExceeded(
            f"{len(history)} history messages; "
            f"the limit is {settings.generation_max_history_messages}"
        )
    for turn in history:
        if turn.role not in HISTORY_ROLES:
            raise InvalidInput(f'history role must be "user" or "assistant", not "{turn.role}"')
        if len(turn.content) > settings.generation_max_question_chars:
            raise LimitExceeded(
                f"a history message is {len(turn.content)} characters; "
                f"the limit is {settings.generation_max_question_chars}"
            )


def validate_rewrite(
    request: generation_pb2.RewriteQuestionRequest, settings: GenerationSettings
) -> None:
    """Raise the matching error for a rewrite request the service will not answer."""
    _validate_question(request.question, settings)
    _validate_conversation(request.history, request.model, settings)


def validate_converse(
    request: generation_pb2.ConverseRequest, settings: GenerationSettings
) -> None:
    """Raise the matching error for a plain chat the service will not pass on."""
    if not request.model:
        raise InvalidInput("model must name an Ollama model")
    if len(request.model) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(f"model name is longer than {MAX_MODEL_NAME_CHARS} characters")
    if not request.messages:
        raise InvalidInput("messages must not be empty")
    # The history limit, plus the message being answered.
    most = settings.generation_max_history_messages + 1
    if len(request.messages) > most:
        raise LimitExceeded(f"{len(request.messages)} messages; the limit is {most}")
    for message in request.messages:
        if message.role not in CONVERSE_ROLES:
            raise InvalidInput(
                f"message role must be one of {', '.join(sorted(CONVERSE_ROLES))}, "
                f'not "{message.role}"'
            )
        if len(message.content) > settings.generation_max_question_chars:
            raise LimitExceeded(
                f"a message is {len(message.content)} characters; "
                f"the limit is {settings.generation_max_question_chars}"
            )


def answer_reserve(settings: GenerationSettings, sampling: Sampling, window: int) -> int:
    """Tokens of ``window`` kept free for the answer: the setting, or the client's
    ``max_tokens`` when that is more, up to half the window (the prompt keeps the rest)."""
    return max(
        settings.generation_answer_reserve_tokens, min(sampling.max_tokens or 0, window // 2)
    )


def _token(text: str) -> generation_pb2.GenerateResponse:
    return generation_pb2.GenerateResponse(token=generation_pb2.Token(text=text))


def _done(finished: Finished) -> generation_pb2.GenerateResponse:
    return generation_pb2.GenerateResponse(
        done=generation_pb2.Done(
            model=finished.model,
            usage=generation_pb2.Usage(
                prompt_tokens=finished.prompt_tokens,
                completion_tokens=finished.completion_tokens,
            ),
            fallback=finished.fallback,
            passages_used=finished.passages_used,
            passages_dropped=finished.passages_dropped,
            finish_reason=finished.finish_reason,
        )
    )


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """Streams an answer to a question about the given passages."""

    def __init__(
        self,
        settings: GenerationSettings,
        *,
        ollama: OllamaGenerator | None = None,
        extractive: ExtractiveGenerator | None = None,
    ) -> None:
        self.settings = settings
        self.ollama = ollama or OllamaGenerator(
            host=settings.ollama_host,
            timeout_seconds=settings.ollama_timeout_seconds,
            connect_timeout_seconds=settings.ollama_connect_timeout_seconds,
            options={
                "temperature": settings.ollama_temperature,
                "num_ctx": settings.ollama_num_ctx,
            },
            keep_alive=settings.ollama_keep_alive,
        )
        self.extractive = extractive or ExtractiveGenerator()

    async def Generate(
        self,
        request: generation_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        try:
            validate(request, self.settings)
            trimmed = trim_passages(request, self.settings.generation_max_passage_chars)
            if trimmed:
                PASSAGES_TRIMMED.inc(trimmed)
                log.warning("passages trimmed to fit", extra={"passages": trimmed})
            sampling = Sampling.of(request.options)
            async with aclosing(self._answer(request, sampling)) as events:
                async for event in events:
                    yield event
        except BrunoError as error:
            log.warning("generation failed", extra={"error": error.detail})
            await abort_with(context, error)

    async def _answer(
        self, request: generation_pb2.GenerateRequest, sampling: Sampling
    ) -> AsyncGenerator[generation_pb2.GenerateResponse, None]:
        if self.settings.generation_backend == "extractive":
            async for event in self._stream("extractive", self._quote(request, sampling)):
                yield event
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
        answer = self.ollama.generate(
            fitted.messages, model=model, passages_used=fitted.used, sampling=sampling
        )
        sent = 0
        try:
            async for event in self._stream("ollama", answer, dropped=fitted.dropped):
                sent += 1
                yield event
        except (OllamaUnreachable, ModelNotFound) as error:
            if self.settings.generation_backend != "auto" or sent:
                raise
            self._note_fallback(error)
            async for event in self._stream("extractive", self._quote(request, sampling)):
                yield event

    async def Converse(
        self,
        request: generation_pb2.ConverseRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        try:
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
            answer = self.ollama.generate(
                messages, model=request.model, passages_used=0, sampling=sampling
            )
            async with aclosing(self._stream("ollama", answer)) as events:
                async for event in events:
                    yield event
        except ModelNotFound as error:
            # The caller named the model: its absence is the caller's to fix, not an outage.
            await abort_with(context, NotFound(error.detail))
        except BrunoError as error:
            log.warning("plain chat failed", extra={"error": error.detail})
            await abort_with(context, error)

    async def ListModels(
        self,
        request: generation_pb2.ListModelsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> generation_pb2.ListModelsResponse:
        if self.settings.generation_backend == "extractive":
            return generation_pb2.ListModelsResponse(reachable=True)
        models = await self.ollama.chat_models()
        if isinstance(models, str):
            return generation_pb2.ListModelsResponse(reachable=False, detail=models)
        return generation_pb2.ListModelsResponse(models=models, reachable=True)

    def _note_fallback(self, error: OllamaUnreachable | ModelNotFound) -> None:
        reason = "unreachable" if isinstance(error, OllamaUnreachable) else "model_missing"
        FALLBACKS.labels(reason).inc()
        log.warning("answering without a model", extra={"reason": error.detail})

    async def RewriteQuestion(
        self,
        request: generation_pb2.RewriteQuestionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> generation_pb2.RewriteQuestionResponse:
        try:
            validate_rewrite(request, self.settings)
            rewritten = await self._rewrite(request) if request.history else None
        except BrunoError as error:
            log.warning("rewriting failed", extra={"error": error.detail})
            await abort_with(context, error)
        if rewritten is None or rewritten == request.question.strip():
            return generation_pb2.RewriteQuestionResponse(question=request.question)
        return generation_pb2.RewriteQuestionResponse(question=rewritten, rewritten=True)

    async def _rewrite(self, request: generation_pb2.RewriteQuestionRequest) -> str | None:
        if self.settings.generation_backend == "extractive":
            return rewrite_extractively(request.question, request.history)
        messages = rewrite_messages(request.question, request.history)
        try:
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

    async def Info(
        self,
        request: generation_pb2.InfoRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> generation_pb2.InfoResponse:
        backend = self.settings.generation_backend
        if backend == "extractive":
            return generation_pb2.InfoResponse(
                backend=backend, model=EXTRACTIVE_MODEL, model_available=True
            )
        model = self.settings.ollama_model
        available, detail = await self.ollama.model_status(model)
        window = await self._context_window(model) if available else self.settings.ollama_num_ctx
        return generation_pb2.InfoResponse(
            backend=backend,
            model=model,
            model_available=available,
            context_window=window,
            detail=detail,
        )

    async def _context_window(self, model: str) -> int:
        window = await self.ollama.context_window(model)
        return self.settings.ollama_num_ctx if window is None else window

    async def close(self) -> None:
        """Close the pooled connections to Ollama (on shutdown, once calls have drained)."""
        await self.ollama.aclose()

    def _quote(self, request: generation_pb2.GenerateRequest, sampling: Sampling) -> AnswerStream:
        answer = self.extractive.generate(request.question, request.passages)
        return _at_most(answer, sampling.max_tokens)

    async def _stream(
        self, backend: str, answer: AnswerStream, *, dropped: int = 0
    ) -> AsyncGenerator[generation_pb2.GenerateResponse, None]:
        start = time.perf_counter()
        tokens = 0
        # aclosing: a cancelled call must close the answer (and its HTTP request) right away.
        async with aclosing(answer) as pieces:
            async for piece in pieces:
                if isinstance(piece, Finished):
                    yield _done(dataclasses.replace(piece, passages_dropped=dropped))
                    return
                if tokens == 0:
                    FIRST_TOKEN.labels(backend).observe(time.perf_counter() - start)
                tokens += 1
                TOKENS.labels(backend).inc()
                yield _token(piece)


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


async def create_server(
    settings: GenerationSettings, servicer: GenerationServicer | None = None
) -> GrpcServer:
    """A generation server with ``servicer`` added, not yet started; without one, a servicer
    for ``settings`` whose Ollama connections close when the server stops."""
    server = GrpcServer(
        "generation",
        settings,
        listen_addr=settings.generation_listen_addr,
        metrics_port=settings.generation_metrics_port,
    )
    if servicer is None:
        servicer = GenerationServicer(settings)
        server.on_stop(servicer.close)
    server.add_servicer(
        SERVICE, generation_pb2_grpc.add_GenerationServiceServicer_to_server, servicer
    )
    log.info(
        "generation backend",
        extra={
            "backend": settings.generation_backend,
            "ollama_host": settings.ollama_host,
            "model": settings.ollama_model,
        },
    )
    return server


def main() -> None:
    """Serve the generation service until SIGTERM or SIGINT."""
    run_service("generation", GenerationSettings(), create_server)
