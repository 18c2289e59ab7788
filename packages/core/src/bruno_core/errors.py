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

An error that asking again at once cannot cure (a full queue, :class:`~bruno_core.queueing.
QueueFull`) is not ``retryable``: its status carries gRPC's pushback trailer asking the caller's
retry policy not to retry (gRFC A6, a negative ``grpc-retry-pushback-ms``), and a caller that
relays it keeps the mark, so one full queue is one refusal, not four attempts at every hop.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

import grpc

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Trailing-metadata key that marks a status as sent on purpose by a Bruno server.
DOMAIN_ERROR_KEY = "bruno-error"
#: Trailing-metadata key of gRPC's retry pushback; a negative value means "do not retry".
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
_NO_RETRY = "-1"
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
        #: What the gRPC runtime said, for logs only (it may name internal addresses).
        self.transport_detail = ""
        #: Whether a caller's retry policy may ask again (see the module docstring).
        self.retryable = True

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
_BY_CODE[grpc.StatusCode.OUT_OF_RANGE] = InvalidInput
_BY_CODE[grpc.StatusCode.ALREADY_EXISTS] = Conflict


def from_rpc_error(error: grpc.RpcError, *, service: str) -> BrunoError:
    """The domain error a failed call to ``service`` stands for.

    A status that a Bruno server sent on purpose (through :func:`abort_with`, which marks it
    in the trailing metadata) keeps its detail: it was written for the caller. A status that the
    gRPC runtime made up (connection refused, deadline passed) gets a plain detail naming the
    service instead, since the runtime's text names internal addresses; that text stays on the
    error as ``transport_detail`` for the caller's log.
    """
    if not isinstance(error, grpc.aio.AioRpcError):
        mapped: BrunoError = Internal(f"the {service} service failed")
        mapped.transport_detail = str(error)
        return mapped
    cls = _BY_CODE.get(error.code(), Internal)
    if _is_domain_status(error):
        relayed = cls(error.details() or f"the {service} service failed")
        relayed.retryable = (RETRY_PUSHBACK_KEY, _NO_RETRY) not in _trailers(error)
        return relayed
    if issubclass(cls, DeadlineExceeded):
        mapped = cls(f"the {service} service did not answer in time")
    elif issubclass(cls, Unavailable):
        mapped = cls(f"the {service} service is unavailable")
    else:
        mapped = cls(f"the {service} service failed ({error.code().name})")
    mapped.transport_detail = error.details() or ""
    return mapped


def _is_domain_status(error: grpc.aio.AioRpcError) -> bool:
    return any(key == DOMAIN_ERROR_KEY for key, _ in _trailers(error))


def _trailers(error: grpc.aio.AioRpcError) -> list[tuple[str, str | bytes]]:
    return [(key, value) for key, value in error.trailing_metadata() or ()]


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: BrunoError) -> NoReturn:
    """End the current RPC with the status that ``error`` maps to, marked as a domain error."""
    trailers = [(DOMAIN_ERROR_KEY, error.slug)]
    if not error.retryable:
        trailers.append((RETRY_PUSHBACK_KEY, _NO_RETRY))
    await context.abort(error.grpc_code, error.detail, trailing_metadata=tuple(trailers))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
