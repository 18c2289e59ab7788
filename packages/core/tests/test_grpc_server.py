from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import REGISTRY

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core import GrpcServer, GrpcServerSettings, check_health, create_channel
from bruno_core.errors import (
    BrunoError,
    Conflict,
    Internal,
    InvalidInput,
    NotFound,
    Unavailable,
    abort_with,
    from_rpc_error,
)

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
    before = {code: handled("Embed", code) for code in ("OK", "FAILED_PRECONDITION", "INTERNAL")}

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
        "INTERNAL": 1,
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


# --- the error policy: one interceptor instead of a try/except in every servicer -------------


@pytest.mark.parametrize("error_class", [InvalidInput, NotFound, Conflict, Unavailable, Internal])
async def test_a_domain_error_a_servicer_raises_becomes_its_status_with_its_detail(
    served: tuple[GrpcServer, ScriptedEmbedding, str], error_class: type[BrunoError]
) -> None:
    _, servicer, addr = served

    async def fail(_call: int, _context: Context) -> None:
        raise error_class("collection 'x' is not there")

    servicer.behaviour = fail
    # One attempt: a retried Unavailable's last attempt can meet a transport failure of its
    # own (it did once in CI), which is the runtime's status, not the one relayed here.
    async with create_channel(addr, max_attempts=1) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    assert caught.value.code() == error_class.grpc_code
    error = from_rpc_error(caught.value, service="embedding")
    assert type(error) is error_class
    assert error.detail == "collection 'x' is not there"


async def test_an_unexpected_exception_is_one_logged_internal_that_names_no_internals(
    served: tuple[GrpcServer, ScriptedEmbedding, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, servicer, addr = served

    async def crash(_call: int, _context: Context) -> None:
        raise OSError("lance: cannot open /data/lancedb/default.lance")

    servicer.behaviour = crash
    with caplog.at_level(logging.ERROR, logger="bruno_core.grpc_server"):
        async with create_channel(addr) as channel:
            stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == "the embedding service failed; the cause is in its logs"
    error = from_rpc_error(caught.value, service="embedding")
    assert isinstance(error, Internal)
    assert "/data" not in error.detail
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert "/data/lancedb" in str(logged[0].exc_info[1])


async def test_a_status_the_servicer_aborts_with_passes_unchanged_and_is_no_error(
    served: tuple[GrpcServer, ScriptedEmbedding, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, servicer, addr = served

    async def refuse(_call: int, context: Context) -> None:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, "not yours", trailing_metadata=(("why", "scope"),)
        )

    servicer.behaviour = refuse
    async with create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == "not yours"
    assert ("why", "scope") in tuple(caught.value.trailing_metadata() or ())
    assert "bruno-error" not in dict(caught.value.trailing_metadata() or ())
    assert not [r for r in caplog.records if r.name == "bruno_core.grpc_server"]


GENERATION = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"]


class ScriptedGeneration:
    """Generation's streaming ``Generate`` alone: one token, then it ends the way ``ending``
    says (raise, abort or finish)."""

    def __init__(self) -> None:
        self.ending: Callable[[Context], Awaitable[None]] | None = None

    async def Generate(
        self, request: generation_pb2.GenerateRequest, context: Context
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        yield generation_pb2.GenerateResponse(token=generation_pb2.Token(text="Velero"))
        if self.ending is not None:
            await self.ending(context)
        yield generation_pb2.GenerateResponse(done=generation_pb2.Done(model="scripted"))


def add_generate(servicer: ScriptedGeneration, server: grpc.aio.Server) -> None:
    """Register ``Generate`` alone: the other methods of the service play no part here."""
    handler = grpc.unary_stream_rpc_method_handler(
        servicer.Generate,
        request_deserializer=generation_pb2.GenerateRequest.FromString,
        response_serializer=generation_pb2.GenerateResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(GENERATION.full_name, {"Generate": handler}),)
    )


@pytest.fixture
async def streaming() -> AsyncIterator[tuple[ScriptedGeneration, str]]:
    server = GrpcServer("generation", GrpcServerSettings(), listen_addr="127.0.0.1:0")
    servicer = ScriptedGeneration()
    server.add_servicer(GENERATION, add_generate, servicer)
    port = await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.grpc.stop(None)


async def stream_until_it_fails(addr: str) -> tuple[list[str], grpc.aio.AioRpcError]:
    tokens: list[str] = []

    async def listen() -> None:
        async for event in stub.Generate(generation_pb2.GenerateRequest(question="q")):
            tokens.append(event.token.text)

    async with create_channel(addr) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await listen()
    return tokens, caught.value


async def test_a_stream_that_fails_midway_keeps_what_it_sent_then_ends_with_the_mapped_status(
    streaming: tuple[ScriptedGeneration, str],
) -> None:
    servicer, addr = streaming

    async def unavailable(_context: Context) -> None:
        raise Unavailable("Ollama stopped answering")

    async def crash(_context: Context) -> None:
        raise KeyError("message")

    servicer.ending = unavailable
    tokens, error = await stream_until_it_fails(addr)
    assert (tokens, error.code(), error.details()) == (
        ["Velero"],
        grpc.StatusCode.UNAVAILABLE,
        "Ollama stopped answering",
    )
    servicer.ending = crash
    tokens, error = await stream_until_it_fails(addr)
    assert (tokens, error.code()) == (["Velero"], grpc.StatusCode.INTERNAL)
    assert "message" not in (error.details() or "")


async def test_a_stream_the_servicer_aborts_itself_ends_with_its_own_status(
    streaming: tuple[ScriptedGeneration, str], caplog: pytest.LogCaptureFixture
) -> None:
    servicer, addr = streaming

    async def abort(context: Context) -> None:
        # What the generation servicer does with a domain error it caught.
        await abort_with(context, Unavailable("the model is not pulled"))

    servicer.ending = abort
    tokens, error = await stream_until_it_fails(addr)
    assert tokens == ["Velero"]
    assert type(from_rpc_error(error, service="generation")) is Unavailable
    assert error.details() == "the model is not pulled"
    assert not [r for r in caplog.records if r.name == "bruno_core.grpc_server"]


async def test_stop_closes_what_the_server_was_given_last_first_even_when_one_fails() -> None:
    server = GrpcServer("embedding", GrpcServerSettings(), listen_addr="127.0.0.1:0")
    closed: list[str] = []

    def closer(name: str, *, fails: bool = False) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            closed.append(name)
            if fails:
                raise RuntimeError(f"{name} would not close")

        return close

    server.on_stop(closer("embedding client"))
    server.on_stop(closer("store", fails=True))
    server.on_stop(closer("reranker"))
    await server.start()
    with pytest.raises(RuntimeError, match="store would not close"):
        await server.stop()
    assert closed == ["reranker", "store", "embedding client"]
