from __future__ import annotations

import grpc
import pytest

from bruno_core import BrunoError, DeadlineExceeded, Internal, NotFound, Unavailable
from bruno_core.errors import DOMAIN_ERROR_KEY
from bruno_edge.clients import rpc_errors


def rpc_error(code: grpc.StatusCode, details: str, *, domain: bool = False) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((DOMAIN_ERROR_KEY, "x")) if domain else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=details)


@pytest.mark.parametrize(
    ("code", "error_type", "detail"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable, "the retrieval service is unavailable"),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            DeadlineExceeded,
            "the retrieval service did not answer in time",
        ),
        (grpc.StatusCode.INTERNAL, Internal, "the retrieval service failed (INTERNAL)"),
        (grpc.StatusCode.NOT_FOUND, NotFound, "the retrieval service failed (NOT_FOUND)"),
    ],
)
def test_runtime_failures_become_domain_errors_hiding_their_details(
    code: grpc.StatusCode, error_type: type[BrunoError], detail: str
) -> None:
    with pytest.raises(BrunoError) as raised, rpc_errors("retrieval"):
        raise rpc_error(code, "ipv4:10.1.2.3:50052 no such document")

    assert type(raised.value) is error_type
    assert raised.value.detail == detail


@pytest.mark.parametrize(
    ("code", "error_type"),
    [(grpc.StatusCode.NOT_FOUND, NotFound), (grpc.StatusCode.UNAVAILABLE, Unavailable)],
)
def test_failures_a_service_sent_on_purpose_keep_their_detail(
    code: grpc.StatusCode, error_type: type[BrunoError]
) -> None:
    with pytest.raises(BrunoError) as raised, rpc_errors("retrieval"):
        raise rpc_error(code, "the embedding service is unavailable", domain=True)

    assert type(raised.value) is error_type
    assert raised.value.detail == "the embedding service is unavailable"
