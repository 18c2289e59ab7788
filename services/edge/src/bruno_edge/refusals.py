"""The refusals the edge makes itself, before any service is asked: a scope the key lacks
(403), too many requests from one key or address (429), and load it sheds or cannot take while
it stops (503). Each is a :class:`~bruno_core.BrunoError`, so it speaks the dialect of its path
(:mod:`bruno_edge.problems`); the last two say when to come back (``Retry-After``).

    raise RateLimited("the key 'family' sent more than 60 requests a minute", retry_after=12)
"""

from __future__ import annotations

import math
from typing import ClassVar

import grpc

from bruno_core import BrunoError, Unavailable


class Forbidden(BrunoError):
    """The key is valid but lacks the scope the route needs."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.PERMISSION_DENIED
    http_status: ClassVar[int] = 403
    title: ClassVar[str] = "Forbidden"
    slug: ClassVar[str] = "forbidden"


class RateLimited(BrunoError):
    """Too many requests (or concurrent chats) for one key, or failed keys from one address."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status: ClassVar[int] = 429
    title: ClassVar[str] = "Too many requests"
    slug: ClassVar[str] = "rate-limit-exceeded"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = whole_seconds(retry_after)


class Overloaded(Unavailable):
    """The edge sheds this request (no slot in time) or is stopping."""

    title: ClassVar[str] = "Overloaded"
    slug: ClassVar[str] = "overloaded"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = whole_seconds(retry_after)


def whole_seconds(seconds: float) -> int:
    """``Retry-After`` counts whole seconds (RFC 9110); at least one."""
    return max(1, math.ceil(seconds))


def retry_after_headers(error: BrunoError) -> dict[str, str]:
    """``Retry-After`` for an error that says when to come back, else nothing."""
    retry_after = getattr(error, "retry_after", None)
    return {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else {}
