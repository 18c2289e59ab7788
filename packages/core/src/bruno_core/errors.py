"""One domain error tree for every service, mapped once to gRPC status, once to HTTP problem.

    BrunoError                      INTERNAL             500
    ├── InvalidInput                INVALID_ARGUMENT     422
    ├── NotFound                    NOT_FOUND            404
    ├── Conflict                    FAILED_PRECONDITION  409
    ├── LimitExceeded               RESOURCE_EXHAUSTED   413
    ├── Unavailable                 UNAVAILABLE          503
    │   └── DeadlineExceeded        DEADLINE_EXCEEDED    504
    └── Unauthenticated             UNAUTHENTICATED      401

Servers raise these; :func:`abort_with` turns one into a status on the wire, and
:func:`from_rpc_error` turns the status back into the same class on the client side, so the
edge can render it as ``application/problem+json`` with :meth:`BrunoError.problem`.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

import grpc

PROBLEM_CONTENT_TYPE = "application/problem+json"
_PROBLEM_TYPE_BASE = "https://github.com/agent-bruno/agent-bruno/blob/main/docs/errors.md#"


class BrunoError(Exception):
    """Base of every error a Bruno service reports on purpose."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    http_status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": _PROBLEM_TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.http_status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        return body


class Internal(BrunoError):
    """Something broke that the caller cannot fix."""


class InvalidInput(BrunoError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 422
    title = "Invalid input"
    slug = "invalid-input"


class NotFound(BrunoError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(BrunoError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409
    title = "Conflict"
    slug = "conflict"


class LimitExceeded(BrunoError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 413
    title = "Limit exceeded"
    slug = "limit-exceeded"


class Unavailable(BrunoError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    title = "Service unavailable"
    slug = "unavailable"


class DeadlineExceeded(Unavailable):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504
    title = "Deadline exceeded"
    slug = "deadline-exceeded"


class Unauthenticated(BrunoError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    title = "Unauthenticated"
    slug = "unauthenticated"


_BY_CODE: dict[grpc.StatusCode, type[BrunoError]] = {
    cls.grpc_code: cls
    for cls in (
        Internal,
        InvalidInput,
        NotFound,
        Conflict,
        LimitExceeded,
        Unavailable,
        DeadlineExceeded,
        Unauthenticated,
    )
}
# Codes no Bruno server sends on purpose but the gRPC runtime can produce.
_BY_CODE[grpc.StatusCode.CANCELLED] = Unavailable
_BY_CODE[grpc.StatusCode.UNKNOWN] = Internal
_BY_CODE[grpc.StatusCode.INVALID_ARGUMENT] = InvalidInput
_BY_CODE[grpc.StatusCode.OUT_OF_RANGE] = InvalidInput
_BY_CODE[grpc.StatusCode.ALREADY_EXISTS] = Conflict


def from_rpc_error(error: grpc.RpcError, *, service: str) -> BrunoError:
    """The domain error a failed call to ``service`` stands for."""
    if isinstance(error, grpc.aio.AioRpcError):
        code, details = error.code(), error.details() or ""
    else:
        code, details = grpc.StatusCode.UNKNOWN, str(error)
    cls = _BY_CODE.get(code, Internal)
    if cls in (Unavailable, DeadlineExceeded):
        return cls(f"{service} service: {details or code.name.lower()}")
    return cls(details or f"{service} service failed ({code.name})")


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BrunoError) -> NoReturn:
    """End the current RPC with the status that ``error`` maps to."""
    await context.abort(error.grpc_code, error.detail)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
