from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import REGISTRY

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import GrpcServer, GrpcServerSettings, check_health, create_channel

if TYPE_CHECKING:
    from conftest import Context, ScriptedEmbedding


async def test_started_server_reports_serving_overall_and_per_service(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, _, addr = served
    async with create_channel(addr) as channel:
        assert await check_health(channel) == "SERVING"
        assert await check_health(channel, "bruno.embedding.v1.EmbeddingService") == "SERVING"
        assert await check_health(channel, "no.such.Service") == "NOT_FOUND"


async def test_health_of_an_address_nobody_serves_is_unreachable() -> None:
    async with create_channel("127.0.0.1:1", timeout_seconds=1) as channel:
        assert await check_health(channel, timeout_seconds=0.5) == "UNREACHABLE"


async def test_reflection_lists_the_hosted_services(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, _, addr = served
    async with create_channel(addr) as channel:
        # The reflection stubs are typed for sync channels only; call the method by name.
        reflect = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )

        async def requests() -> Any:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        names: set[str] = set()
        async for response in reflect(requests()):
            names |= {s.name for s in response.list_services_response.service}
    assert {"bruno.embedding.v1.EmbeddingService", "grpc.health.v1.Health"} <= names


async def test_set_serving_false_flips_health_to_not_serving(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    server, _, addr = served
    await server.set_serving(False)
    async with create_channel(addr) as channel:
        assert await check_health(channel) == "NOT_SERVING"


async def test_stop_lets_an_in_flight_call_finish_and_reports_not_serving(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    server, servicer, addr = served
    started = asyncio.Event()

    async def slow(_call: int, _context: Context) -> None:
        started.set()
        await asyncio.sleep(0.3)

    servicer.behaviour = slow
    async with create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        in_flight = asyncio.ensure_future(stub.Embed(embedding_pb2.EmbedRequest(texts=["abc"])))
        await started.wait()
        stopping = asyncio.ensure_future(server.stop())
        await asyncio.sleep(0.05)
        # New connections are refused now, so ask the health servicer itself.
        during_stop = await server.health.Check(
            health_pb2.HealthCheckRequest(),
            None,  # type: ignore[arg-type]  # Check only touches the context on unknown services
        )
        response = await in_flight
        await stopping
    assert response.vectors[0].values == [3.0]
    assert during_stop.status == health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("settings", [GrpcServerSettings(grpc_max_message_bytes=4096)])
async def test_message_size_limit_is_enforced(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, _, addr = served
    async with create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x" * 10_000]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def handled(method: str, code: str) -> float:
    service = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
    labels = {"service": service, "method": method, "code": code}
    return REGISTRY.get_sample_value("bruno_grpc_server_handled_total", labels) or 0.0


async def test_unary_calls_are_counted_under_the_status_they_ended_with(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served
    before = {code: handled("Embed", code) for code in ("OK", "FAILED_PRECONDITION", "UNKNOWN")}

    async def refuse(call: int, context: Context) -> None:
        if call == 2:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")
        if call == 3:
            raise RuntimeError("a bug")

    servicer.behaviour = refuse
    async with create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        await stub.Embed(embedding_pb2.EmbedRequest(texts=["a"]))
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Embed(embedding_pb2.EmbedRequest(texts=["a"]))

    assert {code: handled("Embed", code) - before[code] for code in before} == {
        "OK": 1,
        "FAILED_PRECONDITION": 1,
        "UNKNOWN": 1,
    }


async def test_a_call_past_its_deadline_is_counted_as_deadline_exceeded(
    served: tuple[GrpcServer, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served
    before = handled("Embed", "DEADLINE_EXCEEDED")

    async def slow(call: int, context: Context) -> None:
        await asyncio.sleep(5)

    servicer.behaviour = slow
    async with create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["a"]), timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    for _ in range(100):  # the server gives up on the call at its deadline
        if handled("Embed", "DEADLINE_EXCEEDED") > before:
            break
        await asyncio.sleep(0.05)
    assert handled("Embed", "DEADLINE_EXCEEDED") == before + 1
