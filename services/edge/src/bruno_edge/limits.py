"""Request limits: the body-size guard and the configured bounds the request models check.

:class:`LimitsMiddleware` is plain ASGI (``BaseHTTPMiddleware`` would buffer streaming
responses and swallow client disconnects). It refuses a body larger than
``BRUNO_MAX_REQUEST_BYTES`` (``BRUNO_MAX_UPLOAD_BYTES`` on the upload route, whose files are
larger than text) before the app sees it when ``Content-Length`` says so, and stops a
body without one as soon as the bytes received pass the limit; the 413 speaks the dialect of
its path (an OpenAI error object under ``/v1``, a problem document elsewhere). It also makes
the configured limits the request models validate against (:func:`current_limits`) those of
its app.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bruno_core import BrunoError, InvalidInput, LimitExceeded
from bruno_edge.config import EdgeSettings
from bruno_edge.problems import ProblemException, error_response


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


#: The route whose bodies may reach ``max_upload_bytes``.
UPLOAD_PATH = "/api/v1/documents/upload"
_DEFAULTS = Limits.from_settings(EdgeSettings.model_construct())
_current: ContextVar[Limits] = ContextVar("bruno_edge_limits", default=_DEFAULTS)


def current_limits() -> Limits:
    """The limits of the app serving the current request (the defaults outside a request)."""
    return _current.get()


class LimitsMiddleware:
    """Enforces ``max_request_bytes`` on request bodies and publishes the app's :class:`Limits`."""

    def __init__(self, app: ASGIApp, *, settings: EdgeSettings) -> None:
        self.app = app
        self.max_request_bytes = settings.max_request_bytes
        self.max_upload_bytes = settings.max_upload_bytes
        self.limits = Limits.from_settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if scope["path"] == UPLOAD_PATH else self.max_request_bytes
        try:
            declared = _content_length(scope)
        except InvalidInput as error:
            await _send_error(scope, receive, send, error)
            return
        if declared is not None and declared > limit:
            await _send_error(scope, receive, send, _too_large(limit))
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ProblemException(_too_large(limit))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        token = _current.set(self.limits)
        try:
            await self.app(scope, counting_receive, watching_send)
        except ProblemException as error:
            # Raised from counting_receive outside a route's body parsing (where the app's
            # own handler renders it); answer here unless a response is already on its way.
            if response_started:
                raise
            await _send_error(scope, receive, send, error.error)
        finally:
            _current.reset(token)


def _too_large(limit: int) -> LimitExceeded:
    return LimitExceeded(f"the request body exceeds {limit} bytes")


def _content_length(scope: Scope) -> int | None:
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


async def _send_error(scope: Scope, receive: Receive, send: Send, error: BrunoError) -> None:
    # The rest of the body stays unread, so the connection cannot serve another request.
    response = error_response(scope["path"], error, headers={"Connection": "close"})
    await response(scope, receive, send)
