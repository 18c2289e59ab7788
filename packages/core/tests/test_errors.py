from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

import bruno_core
from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core import errors
from bruno_core.errors import (
    BrunoError,
    Conflict,
    DeadlineExceeded,
    Internal,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Unauthenticated,
    Unavailable,
    abort_with,
    from_rpc_error,
)

if TYPE_CHECKING:
    from conftest import Context, ScriptedEmbedding


ALL_ERRORS = [
    Internal,
    InvalidInput,
    NotFound,
    Conflict,
    LimitExceeded,
    Unavailable,
    DeadlineExceeded,
    Unauthenticated,
]


def test_public_names_are_exported() -> None:
    assert sorted(bruno_core.__all__) == sorted(
        name for name in bruno_core.__all__ if hasattr(bruno_core, name)
    )
    assert {cls.__name__ for cls in ALL_ERRORS} <= set(bruno_core.__all__)


def test_every_error_maps_to_a_distinct_grpc_code_and_http_status() -> None:
    assert len({cls.grpc_code for cls in ALL_ERRORS}) == len(ALL_ERRORS)
    assert len({cls.http_status for cls in ALL_ERRORS}) == len(ALL_ERRORS)
    assert all(400 <= cls.http_status < 600 for cls in ALL_ERRORS)


def test_the_list_above_holds_every_error_of_the_tree() -> None:
    def subclasses(cls: type[BrunoError]) -> set[type[BrunoError]]:
        found = set(cls.__subclasses__())
        return found.union(*(subclasses(sub) for sub in found))

    in_core = {cls for cls in subclasses(BrunoError) if cls.__module__ == errors.__name__}
    assert in_core == set(ALL_ERRORS)


def test_problem_document_follows_rfc_9457() -> None:
    problem = NotFound("document 'x' is not in collection 'default'").problem(
        instance="/api/v1/documents/x"
    )
    assert problem == {
        "type": problem["type"],
        "title": "Not found",
        "status": 404,
        "detail": "document 'x' is not in collection 'default'",
        "instance": "/api/v1/documents/x",
    }
    assert problem["type"].endswith("#not-found")
    assert errors.PROBLEM_CONTENT_TYPE == "application/problem+json"


@pytest.mark.parametrize("error_class", ALL_ERRORS)
async def test_an_error_aborted_on_the_server_comes_back_as_the_same_class(
    served: tuple[object, ScriptedEmbedding, str], error_class: type[BrunoError]
) -> None:
    _, servicer, addr = served

    async def fail(_call: int, context: Context) -> None:
        await abort_with(context, error_class("it went wrong"))

    servicer.behaviour = fail
    # One attempt: a retried Unavailable's last attempt can meet a transport failure of its
    # own (it did once in CI), which is the runtime's status, not the one relayed here.
    async with bruno_core.create_channel(addr, max_attempts=1) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    error = from_rpc_error(caught.value, service="embedding")
    assert type(error) is error_class
    assert "it went wrong" in error.detail


async def test_an_unreachable_service_is_unavailable_and_named() -> None:
    async with bruno_core.create_channel("127.0.0.1:1", timeout_seconds=1) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    error = from_rpc_error(caught.value, service="embedding")
    # Refused until the retries use up the deadline: either way the service is named, and the
    # runtime's own words, which name the address, stay out of the public detail.
    assert isinstance(error, Unavailable)
    assert error.detail in (
        "the embedding service is unavailable",
        "the embedding service did not answer in time",
    )
    assert error.transport_detail


async def test_a_status_the_server_did_not_send_on_purpose_gets_a_plain_detail(
    served: tuple[object, ScriptedEmbedding, str],
) -> None:
    _, servicer, addr = served

    async def raw_abort(_call: int, context: Context) -> None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "internal table c_default at /data")

    servicer.behaviour = raw_abort
    async with bruno_core.create_channel(addr) as channel:
        stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    error = from_rpc_error(caught.value, service="embedding")
    assert isinstance(error, NotFound)
    assert "/data" not in error.detail
    assert error.transport_detail == "internal table c_default at /data"


def test_a_non_grpc_error_maps_to_internal() -> None:
    error = from_rpc_error(grpc.RpcError("boom"), service="x")
    assert isinstance(error, Internal)
    assert error.detail == "the x service failed"
