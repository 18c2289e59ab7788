"""The generation gRPC service: validation, backend choice and the wiring of the process.

``BRUNO_GENERATION_BACKEND`` picks who answers: ``ollama`` (Ollama or UNAVAILABLE),
``extractive`` (the passages quoted, no model at all) or ``auto``: Ollama, and when Ollama is
unreachable or lacks the model before it wrote a word, the extractive answer with
``Done.fallback`` set. Once tokens went out an answer cannot be swapped, so a failure then
ends the stream with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core.errors import BrunoError, InvalidInput, LimitExceeded, abort_with
from bruno_core.grpc_server import GrpcServer
from bruno_core.logs import configure_logging
from bruno_core.telemetry import configure_tracing
from bruno_generation.answer import AnswerStream, Finished
from bruno_generation.config import GenerationSettings
from bruno_generation.extractive import ExtractiveGenerator
from bruno_generation.ollama_generator import ModelNotFound, OllamaGenerator, OllamaUnreachable
from bruno_generation.prompting import build_messages

log = logging.getLogger(__name__)

SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]
HISTORY_ROLES = frozenset({"user", "assistant"})
MAX_MODEL_NAME_CHARS = 200

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
FIRST_TOKEN = Histogram(
    "bruno_generation_first_token_seconds",
    "Time from request to the first answer token, by backend.",
    ["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


def validate(request: generation_pb2.GenerateRequest, settings: GenerationSettings) -> None:
    """Raise the matching error for a request the service will not answer."""
    if not request.question.strip():
        raise InvalidInput("question must not be empty")
    if len(request.question) > settings.generation_max_question_chars:
        raise LimitExceeded(
            f"question is {len(request.question)} characters; "
            f"the limit is {settings.generation_max_question_chars}"
        )
    if len(request.passages) > settings.generation_max_passages:
        raise LimitExceeded(
            f"{len(request.passages)} passages; the limit is {settings.generation_max_passages}"
        )
    for position, passage in enumerate(request.passages, start=1):
        if len(passage.text) > settings.generation_max_passage_chars:
            raise LimitExceeded(
                f"passage {position} is {len(passage.text)} characters; "
                f"the limit is {settings.generation_max_passage_chars}"
            )
    if len(request.history) > settings.generation_max_history_messages:
        raise LimitExceeded(
            f"{len(request.history)} history messages; "
            f"the limit is {settings.generation_max_history_messages}"
        )
    for turn in request.history:
        if turn.role not in HISTORY_ROLES:
            raise InvalidInput(f'history role must be "user" or "assistant", not "{turn.role}"')
        if len(turn.content) > settings.generation_max_question_chars:
            raise LimitExceeded(
                f"a history message is {len(turn.content)} characters; "
                f"the limit is {settings.generation_max_question_chars}"
            )
    if len(request.model) > MAX_MODEL_NAME_CHARS:
        raise InvalidInput(f"model name is longer than {MAX_MODEL_NAME_CHARS} characters")


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
        )
        self.extractive = extractive or ExtractiveGenerator()

    async def Generate(
        self,
        request: generation_pb2.GenerateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        try:
            validate(request, self.settings)
            async with aclosing(self._answer(request)) as events:
                async for event in events:
                    yield event
        except BrunoError as error:
            log.warning("generation failed", extra={"error": error.detail})
            await abort_with(context, error)

    async def _answer(
        self, request: generation_pb2.GenerateRequest
    ) -> AsyncGenerator[generation_pb2.GenerateResponse, None]:
        if self.settings.generation_backend == "extractive":
            async for event in self._stream("extractive", self._quote(request)):
                yield event
            return
        model = request.model or self.settings.ollama_model
        messages = build_messages(request.question, request.passages, request.history)
        answer = self.ollama.generate(messages, model=model, passages_used=len(request.passages))
        sent = 0
        try:
            async for event in self._stream("ollama", answer):
                sent += 1
                yield event
        except (OllamaUnreachable, ModelNotFound) as error:
            if self.settings.generation_backend != "auto" or sent:
                raise
            reason = "unreachable" if isinstance(error, OllamaUnreachable) else "model_missing"
            FALLBACKS.labels(reason).inc()
            log.warning("answering without a model", extra={"reason": error.detail})
            async for event in self._stream("extractive", self._quote(request)):
                yield event

    def _quote(self, request: generation_pb2.GenerateRequest) -> AnswerStream:
        return self.extractive.generate(request.question, request.passages)

    async def _stream(
        self, backend: str, answer: AnswerStream
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        start = time.perf_counter()
        tokens = 0
        # aclosing: a cancelled call must close the answer (and its HTTP request) right away.
        async with aclosing(answer) as pieces:
            async for piece in pieces:
                if isinstance(piece, Finished):
                    yield _done(piece)
                    return
                if tokens == 0:
                    FIRST_TOKEN.labels(backend).observe(time.perf_counter() - start)
                tokens += 1
                TOKENS.labels(backend).inc()
                yield _token(piece)


async def create_server(settings: GenerationSettings) -> GrpcServer:
    """A generation server with its servicer added, not yet started."""
    server = GrpcServer(
        "generation",
        settings,
        listen_addr=settings.generation_listen_addr,
        metrics_port=settings.generation_metrics_port,
    )
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(
        GenerationServicer(settings), server.grpc
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


async def _serve(settings: GenerationSettings) -> None:
    server = await create_server(settings)
    await server.run(services=[SERVICE])


def main() -> None:
    """Serve the generation service until SIGTERM or SIGINT."""
    settings = GenerationSettings()
    configure_logging("generation", level=settings.log_level, fmt=settings.log_format)
    configure_tracing("generation")
    asyncio.run(_serve(settings))
