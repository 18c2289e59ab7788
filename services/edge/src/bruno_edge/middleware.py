"""The edge's one request middleware: the request's span, metrics, the drain and the body limit
in a single ASGI pass.

Four middlewares did this before (OpenTelemetry's ASGI instrumentation one of them), each a
layer every request went through (a call, a closure per ``send`` and ``receive`` and a scope
check each); folded together, a request pays for one. What each does is unchanged:

- tracing: every request but probes and scrapes is a server span continuing the caller's
  trace, current while the app answers it (:mod:`bruno_edge.request_tracing`);

- metrics: every answer is timed (streams until their last byte) under its route template,
  method and status, the 413s and the refusals of a stopping edge included
  (:mod:`bruno_edge.metrics`);
- drain: while the edge stops, every request but ``/health`` and ``/metrics`` is refused with
  503, ``Retry-After`` and ``Connection: close`` (:class:`bruno_edge.admission.Drain`);
- admission: the slots a route's guard took (:func:`bruno_edge.api.deps.guarded`) are given
  back once the app is done with the request: its response sent (a stream's last byte
  included), its client gone or its exception on the way out
  (:func:`bruno_edge.admission.held_until_answered`);
- body limit: a body larger than ``BRUNO_MAX_REQUEST_BYTES`` (``BRUNO_MAX_UPLOAD_BYTES`` on the
  upload route) is refused before the app sees it
  when ``Content-Length`` says so, and stopped as soon as the bytes received pass the limit
  otherwise; the configured limits the request models check are published for the request
  (:mod:`bruno_edge.limits`).

Plain ASGI: ``BaseHTTPMiddleware`` would buffer streaming responses and swallow client
disconnects.

    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics, drain=drain)
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bruno_core import BrunoError, InvalidInput, LimitExceeded
from bruno_edge.admission import HELD_KEY, Drain, Release
from bruno_edge.config import EdgeSettings
from bruno_edge.limits import Limits, body_limit, content_length, publish_limits
from bruno_edge.metrics import EdgeMetrics, RequestTimer
from bruno_edge.problems import ProblemException, error_response
from bruno_edge.refusals import Overloaded
from bruno_edge.request_tracing import end_request_span, start_request_span

#: Where no request span is opened.
_NO_SPAN = nullcontext()

#: Answered while the edge stops: liveness and the last scrapes.
DRAIN_EXEMPT = frozenset({"/health", "/metrics"})


class EdgeMiddleware:
    """Times every request, refuses new ones while draining, bounds request bodies and gives
    back the admission slots a request held once it is answered."""

    def __init__(
        self, app: ASGIApp, *, settings: EdgeSettings, metrics: EdgeMetrics, drain: Drain
    ) -> None:
        self.app = app
        self.settings = settings
        self.limits = Limits.from_settings(settings)
        self.timer = RequestTimer(metrics)
        self.metrics = metrics
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        limit = body_limit(self.settings, scope["path"])
        status = 500
        response_started = False
        received = 0

        async def recording_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ProblemException(_too_large(limit))
            return message

        held: list[Release] = []
        scope[HELD_KEY] = held
        self.timer.started()
        span = start_request_span(scope)
        try:
            with trace.use_span(span, end_on_exit=False) if span else _NO_SPAN:
                refusal = self._refusal(scope, limit)
                if refusal is not None:
                    await _send_error(scope, receive, recording_send, refusal)
                    return
                with publish_limits(self.limits):
                    try:
                        await self.app(scope, counting_receive, recording_send)
                    except ProblemException as error:
                        # Raised from counting_receive outside a route's body parsing (where
                        # the app's own handler renders it); answered here unless a response
                        # is already on its way.
                        if response_started:
                            raise
                        await _send_error(scope, receive, recording_send, error.error)
        finally:
            while held:
                held.pop()()  # the last taken first
            if span is not None:
                end_request_span(span, scope, status)
            self.timer.finished(scope, status, time.perf_counter() - start)

    def _refusal(self, scope: Scope, limit: int) -> BrunoError | None:
        """Why the request is answered here without the app, or None."""
        if self.drain.draining and scope["path"] not in DRAIN_EXEMPT:
            self.metrics.refusals.labels("draining").inc()
            return Overloaded("the edge is shutting down", retry_after=self.drain.grace_seconds)
        try:
            declared = content_length(scope)
        except InvalidInput as error:
            return error
        if declared is not None and declared > limit:
            return _too_large(limit)
        return None


def _too_large(limit: int) -> LimitExceeded:
    return LimitExceeded(f"the request body exceeds {limit} bytes")


async def _send_error(scope: Scope, receive: Receive, send: Send, error: BrunoError) -> None:
    # A refused body stays unread, and a stopping edge takes no more requests on this
    # connection: either way it is closed.
    response = error_response(scope["path"], error, headers={"Connection": "close"})
    await response(scope, receive, send)
