"""Request limits: the configured bounds the request models check, and what the body-size
guard reads.

The guard itself is part of the edge's one middleware (:mod:`bruno_edge.middleware`): it
refuses a body larger than ``BRUNO_MAX_REQUEST_BYTES`` (``BRUNO_MAX_UPLOAD_BYTES`` on the
routes that take files, larger than text; :func:`body_limit`) before the app sees it when
``Content-Length`` says so, and stops a body without one as soon as the bytes received pass
the limit; the 413 speaks the dialect of its path (an OpenAI error object under ``/v1``, a
problem document elsewhere). It publishes the app's limits for each request
(:func:`publish_limits`), which the request models validate against (:func:`current_limits`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import Scope

from bruno_core import InvalidInput
from bruno_edge.config import EdgeSettings


@dataclass(frozen=True, slots=True)
class Limits:
    """The configurable bounds on request content (the fixed ones live in the models)."""

    max_message_chars: int
    max_document_bytes: int
    max_top_k: int
    default_top_k: int

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> Limits:
        return cls(
            max_message_chars=settings.max_message_chars,
            max_document_bytes=settings.max_document_bytes,
            max_top_k=settings.max_top_k,
            default_top_k=settings.default_top_k,
        )


#: The routes whose bodies may reach ``max_upload_bytes``: they take files.
UPLOAD_PATHS = frozenset(
    {"/api/v1/documents/upload", "/api/v1/ingest-jobs", "/api/v1/ingest-jobs/documents"}
)
_DEFAULTS = Limits.from_settings(EdgeSettings.model_construct())
_current: ContextVar[Limits] = ContextVar("bruno_edge_limits", default=_DEFAULTS)


def current_limits() -> Limits:
    """The limits of the app serving the current request (the defaults outside a request)."""
    return _current.get()


@contextmanager
def publish_limits(limits: Limits) -> Iterator[None]:
    """Make ``limits`` what :func:`current_limits` answers within the block (a request)."""
    token = _current.set(limits)
    try:
        yield
    finally:
        _current.reset(token)


def body_limit(settings: EdgeSettings, path: str) -> int:
    """The most bytes a request body to ``path`` may have."""
    return settings.max_upload_bytes if path in UPLOAD_PATHS else settings.max_request_bytes


def content_length(scope: Scope) -> int | None:
    """The request's declared ``Content-Length``; InvalidInput when it is not a byte count."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = -1
            if length < 0:
                raise InvalidInput("the Content-Length header is not a byte count")
            return length
    return None
