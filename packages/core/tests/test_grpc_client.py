from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import GrpcServer, Unavailable, create_channel, from_rpc_error
from bruno_core.grpc_client import service_config
from bruno_core.queueing import Priority, QueueFull

if TYPE_CHECKING:
    from conftest import Context, ScriptedEmbedding


async def failed_call(addr: str, **channel_options: Any) -> grpc.aio.AioRpcError:
    """The error an ``Embed`` call to ``addr`` ends with, through ``create_channel``'s policy
    (the test fails if the call succeeds)."""
    async with create_channel(addr, **channel_options) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["ab"]))
    return caught.value


async def test_unavailable_is_retried_by_the_channel_until_it_succeeds(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def fail_twice(call: int, context: Context) -> None:
        if call <= 2:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")

    servicer.behaviour = fail_twice
    async with create_channel(addr, max_attempts=4) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        response = await stub.Embed(embedding_pb2.EmbedRequest(texts=["ab"]))
    assert response.vectors[0].values == [2.0]
    assert servicer.calls == 3


async def test_retries_stop_after_max_attempts(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def always(_call: int, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")

    servicer.behaviour = always
    error = await failed_call(addr, max_attempts=3)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 3


async def test_one_attempt_means_no_retries_and_a_working_channel(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def fail_once(call: int, context: Context) -> None:
        if call == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down")

    servicer.behaviour = fail_once
    error = await failed_call(addr, max_attempts=1)
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, "down")
    assert servicer.calls == 1


def test_fewer_than_one_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        service_config(1.0, max_attempts=0)


async def test_other_failures_are_not_retried(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def invalid(_call: int, context: Context) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad")

    servicer.behaviour = invalid
    await failed_call(addr)
    assert servicer.calls == 1


async def test_a_call_without_its_own_timeout_gets_the_channel_deadline(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def hang(_call: int, _context: Context) -> None:
        await asyncio.sleep(5)

    servicer.behaviour = hang
    error = await failed_call(addr, timeout_seconds=0.2)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_a_full_queue_is_refused_once_and_not_retried(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def full(_call: int, _context: Context) -> None:
        raise QueueFull("embedding", Priority.INTERACTIVE, 32)

    servicer.behaviour = full
    error = await failed_call(addr, max_attempts=4)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls == 1


async def test_a_relayed_full_queue_stays_not_retryable_at_the_next_hop(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def full(_call: int, _context: Context) -> None:
        raise QueueFull("embedding", Priority.INTERACTIVE, 32)

    servicer.behaviour = full
    error = await failed_call(addr)
    relayed = from_rpc_error(error, service="embedding")
    assert isinstance(relayed, Unavailable)
    assert not relayed.retryable

    async def relay(_call: int, _context: Context) -> None:
        raise relayed  # what a servicer relaying the downstream refusal does

    servicer.behaviour = relay
    await failed_call(addr, max_attempts=4)
    assert servicer.calls == 2  # one each: neither hop retried
