"""One model, one answer at a time: interactive requests go before background ones, and a full
line is refused at once. Real gRPC, the Ollama stand-in holding the first answer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from prometheus_client import REGISTRY

from bruno.generation.v1 import generation_pb2
from bruno_testing.ollama_standin import OllamaStandIn

if TYPE_CHECKING:
    from conftest import Serve, Stub

HOLD = 60.0  # seconds before each token while an answer is held (it is cancelled long before)


def waiting(priority: str) -> float:
    labels = {"queue": "generation", "priority": priority}
    return REGISTRY.get_sample_value("bruno_queue_depth", labels) or 0.0


async def until_waiting(interactive: int, background: int) -> None:
    for _ in range(1000):  # a bound against hanging, not a timing
        if (waiting("interactive"), waiting("background")) == (interactive, background):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {interactive}/{background} waiting")


def title_task(priority: generation_pb2.Priority.ValueType) -> generation_pb2.ConverseRequest:
    return generation_pb2.ConverseRequest(
        model="mistral",
        messages=[generation_pb2.ChatMessage(role="user", content="Title for: Velero")],
        priority=priority,
    )


async def drain(call: Any) -> list[generation_pb2.GenerateResponse]:
    return [event async for event in call]


async def hold_the_model(stub: Stub, ollama: OllamaStandIn) -> Any:
    """A plain chat that has the only slot and keeps it until cancelled."""
    ollama.token_delay = HOLD
    call = stub.Converse(title_task(generation_pb2.PRIORITY_INTERACTIVE))
    for _ in range(1000):
        if ollama.chat_requests:
            return call
        await asyncio.sleep(0.01)
    raise AssertionError("the held answer never reached the stand-in")


async def test_a_chat_answer_goes_before_a_background_task_that_came_first(
    serve: Serve, ollama: OllamaStandIn, passages: list[generation_pb2.Passage]
) -> None:
    async with serve(ollama_host=ollama.url, ollama_parallel=1) as stub:
        held = await hold_the_model(stub, ollama)
        background = asyncio.create_task(
            drain(stub.Converse(title_task(generation_pb2.PRIORITY_BACKGROUND)))
        )
        await until_waiting(interactive=0, background=1)
        # No priority named: an answer is interactive.
        chat = asyncio.create_task(
            drain(stub.Generate(generation_pb2.GenerateRequest(question="How?", passages=passages)))
        )
        await until_waiting(interactive=1, background=1)
        ollama.token_delay = 0.0
        held.cancel()
        await asyncio.gather(chat, background)
    assert [body["model"] for body in ollama.chat_requests] == ["mistral", "llama3.2", "mistral"]


async def test_a_request_arriving_at_a_full_line_is_unavailable_at_once(
    serve: Serve, ollama: OllamaStandIn
) -> None:
    settings = {"generation_max_waiting_background": 1, "ollama_parallel": 1}
    async with serve(ollama_host=ollama.url, **settings) as stub:
        held = await hold_the_model(stub, ollama)
        waiting_task = asyncio.create_task(
            drain(stub.Converse(title_task(generation_pb2.PRIORITY_BACKGROUND)))
        )
        await until_waiting(interactive=0, background=1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await drain(stub.Converse(title_task(generation_pb2.PRIORITY_BACKGROUND)))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "generation queue is full (1 background requests waiting)" in (
            refused.value.details() or ""
        )
        ollama.token_delay = 0.0
        held.cancel()
        await waiting_task
    assert len(ollama.chat_requests) == 2  # the refused one never reached the model
