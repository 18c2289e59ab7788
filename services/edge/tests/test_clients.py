from __future__ import annotations

import grpc
import pytest
from bruno_core import BrunoError, DeadlineExceeded, Internal, NotFound, Unavailable
from bruno_edge.clients import rpc_errors


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "error_type", "detail"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable, "the retrieval service is unavailable"),
        (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            DeadlineExceeded,
            "the retrieval service did not answer in time",
        ),
        (grpc.StatusCode.INTERNAL, Internal, "the retrieval service failed"),
        (grpc.StatusCode.NOT_FOUND, NotFound, "ipv4:10.1.2.3:50052 no such document"),
    ],
)
def test_failed_calls_become_domain_errors_hiding_server_side_details(
    code: grpc.StatusCode, error_type: type[BrunoError], detail: str
) -> None:
    with pytest.raises(BrunoError) as raised, rpc_errors("retrieval"):
        raise rpc_error(code, "ipv4:10.1.2.3:50052 no such document")

    assert type(raised.value) is error_type
    assert raised.value.detail == detail
