"""A scripted ``GenerationService`` for tests of its callers: fixed tokens then one ``Done``,
told to fail or hang after a number of tokens. What a caller can see (the events' order, the
``Done``'s fields, ``max_tokens`` and ``finish_reason``, NOT_FOUND for an unknown model, the
rewrite's shape) follows the real service, checked by
``packages/testing/tests/test_fakes_match_services.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from typing_extensions import override

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core import InvalidInput, NotFound

Context = grpc.aio.ServicerContext[Any, Any]
MODEL = "fake-llm"


def _token(text: str) -> generation_pb2.GenerateResponse:
    return generation_pb2.GenerateResponse(token=generation_pb2.Token(text=text))


class FakeGeneration(generation_pb2_grpc.GenerationServiceServicer):
    """Streams fixed tokens then a Done, stopping at ``options.max_tokens`` as a model does;
    can fail or hang after a given number of tokens. ``Converse`` streams ``plain_tokens``
    from any of ``models``."""

    def __init__(self) -> None:
        self.tokens = ["Restart ", "the ", "pod ", "[1]."]
        self.plain_tokens = ["Pod ", "restarts"]
        self.models = [f"{MODEL}:latest", "mistral:7b"]
        self.models_reachable = True
        self.conversed: list[generation_pb2.ConverseRequest] = []
        self.requests: list[generation_pb2.GenerateRequest] = []
        self.fail_after: int | None = None
        self.hang_after: int | None = None
        self.skip_done = False
        self.cancelled = asyncio.Event()
        self.generating = asyncio.Event()
        self.rewrites: list[generation_pb2.RewriteQuestionRequest] = []
        self.info = generation_pb2.InfoResponse(
            backend="auto", model=MODEL, model_available=True, context_window=4096
        )

    @override
    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        self.requests.append(request)
        self.generating.set()
        if not request.question.strip():
            raise InvalidInput("question must not be empty")
        limit = request.options.max_tokens if request.options.HasField("max_tokens") else None
        tokens = self.tokens[:limit]
        try:
            for sent, text in enumerate(tokens):
                if sent == self.fail_after:
                    # As when the generation process goes away: a status from the gRPC
                    # runtime, not one the service sent on purpose.
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "model server went away")
                if sent == self.hang_after:
                    await asyncio.Event().wait()
                yield _token(text)
            if self.skip_done:
                return
            yield generation_pb2.GenerateResponse(
                done=generation_pb2.Done(
                    model=MODEL,
                    usage=generation_pb2.Usage(
                        prompt_tokens=len(request.question.split()) + len(request.passages),
                        completion_tokens=len(tokens),
                    ),
                    fallback=False,
                    passages_used=len(request.passages),
                    finish_reason="length" if len(tokens) < len(self.tokens) else "stop",
                )
            )
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    @override
    async def Converse(
        self, request: generation_pb2.ConverseRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        self.conversed.append(request)
        if request.model not in self.models:
            raise NotFound(f"no model {request.model!r}")
        for text in self.plain_tokens:
            yield _token(text)
        yield generation_pb2.GenerateResponse(
            done=generation_pb2.Done(
                model=request.model,
                usage=generation_pb2.Usage(
                    prompt_tokens=7, completion_tokens=len(self.plain_tokens)
                ),
                finish_reason="stop",
            )
        )

    @override
    async def ListModels(
        self, request: generation_pb2.ListModelsRequest, context: Context
    ) -> generation_pb2.ListModelsResponse:
        if not self.models_reachable:
            return generation_pb2.ListModelsResponse(
                reachable=False, detail="Ollama is not reachable"
            )
        return generation_pb2.ListModelsResponse(models=self.models, reachable=True)

    @override
    async def RewriteQuestion(
        self, request: generation_pb2.RewriteQuestionRequest, context: Context
    ) -> generation_pb2.RewriteQuestionResponse:
        """Appends the previous user question in brackets, like the extractive rewrite."""
        self.rewrites.append(request)
        previous = [m.content for m in request.history if m.role == "user"]
        if not previous:
            return generation_pb2.RewriteQuestionResponse(question=request.question)
        rewritten = f"{request.question} ({previous[-1]})"
        return generation_pb2.RewriteQuestionResponse(question=rewritten, rewritten=True)

    @override
    async def Info(
        self, request: generation_pb2.InfoRequest, context: Context
    ) -> generation_pb2.InfoResponse:
        return self.info
