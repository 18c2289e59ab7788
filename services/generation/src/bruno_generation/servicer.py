"""The generation service's gRPC face: each call handed to the :class:`Answerer` and its answer
translated back (:mod:`bruno_generation.converters`). Errors are raised, not caught: the
server's error policy (:mod:`bruno_core.grpc_server`) turns them into statuses, and an answer
that fails after tokens went out ends its stream with that status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_generation import converters
from bruno_generation.answering import Answerer

SERVICE = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]

Context = grpc.aio.ServicerContext[Any, Any]


class GenerationServicer(generation_pb2_grpc.GenerationServiceServicer):
    """``bruno.generation.v1.GenerationService`` over one :class:`Answerer`."""

    def __init__(self, answerer: Answerer) -> None:
        self._answerer = answerer

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        async with aclosing(self._answerer.answer(request)) as pieces:
            async for piece in pieces:
                yield converters.generate_response(piece)

    async def Converse(
        self, request: generation_pb2.ConverseRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        async with aclosing(self._answerer.converse(request)) as pieces:
            async for piece in pieces:
                yield converters.generate_response(piece)

    async def ListModels(
        self, request: generation_pb2.ListModelsRequest, context: Context
    ) -> generation_pb2.ListModelsResponse:
        return converters.list_models_response(await self._answerer.chat_models())

    async def RewriteQuestion(
        self, request: generation_pb2.RewriteQuestionRequest, context: Context
    ) -> generation_pb2.RewriteQuestionResponse:
        rewritten = await self._answerer.rewrite(request)
        return converters.rewrite_response(request.question, rewritten)

    async def Info(
        self, request: generation_pb2.InfoRequest, context: Context
    ) -> generation_pb2.InfoResponse:
        return converters.info_response(await self._answerer.info())
