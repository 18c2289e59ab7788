"""The edge's HTTP/1.1 connections, held against slow and abusive clients: uvicorn's h11
protocol with deadlines for a request's headers and its body, a cap on open connections, and
no connection kept open with a request body left unread.

uvicorn has no request-receipt timeout: its keep-alive timer only runs between requests and is
reset by every byte, so a client that sends one header byte every few seconds, or a body that
trickles, holds a connection (and a file descriptor) forever. This subclass of its
``H11Protocol`` reads h11's own state after every chunk of data, which tells whether the
connection is waiting for headers (``IDLE``), reading a body (``SEND_BODY``) or has the whole
request; a timer per phase closes the connection when its phase runs over. Everything else is
uvicorn's.

    config = uvicorn.Config(app, http=guarded_protocol(settings))
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from bruno_edge.config import EdgeSettings

log = logging.getLogger(__name__)


def _plain_response(status: str, body: bytes, *extra_headers: bytes) -> bytes:
    """A whole HTTP/1.1 response that closes its connection, written before h11 has a request
    to answer (so past h11's own state machine)."""
    head = [
        b"HTTP/1.1 " + status.encode(),
        b"content-type: text/plain; charset=utf-8",
        b"connection: close",
        b"content-length: " + str(len(body)).encode(),
        *extra_headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_HEADERS_TIMED_OUT = _plain_response(
    "408 Request Timeout", b"the request headers did not arrive in time\n"
)
_TOO_MANY_CONNECTIONS = _plain_response(
    "503 Service Unavailable", b"the edge has too many open connections\n", b"retry-after: 1"
)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap (the class
    attributes, set by :func:`guarded_protocol`)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_connections: int = 1000

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("connection refused: too many open", extra={"open": len(self.connections)})
            self.transport.write(_TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_state()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read (a 401, 413, 429 …): the rest of the body would
            # be taken for the next request, so the connection ends with this answer.
            self._cancel_timers()
            self.transport.close()
            return
        super().on_response_complete()
        # Idle between requests, uvicorn's keep-alive timer governs; a next request that
        # starts arms the header timer again (_follow_state).
        self._cancel_timers()

    def _follow_state(self) -> None:
        """Arm or cancel the phase timers by what h11 has received of the request."""
        if self.transport.is_closing():
            self._cancel_timers()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Part of a request line or headers: the whole of them must come in time.
            self._arm_header_timer()
        elif state is h11.SEND_BODY:
            self._cancel(self._header_timer)
            self._header_timer = None
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._body_late)
        else:
            self._cancel_timers()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written; its end re-arms what is needed
        log.info("connection closed: headers too slow", extra={"client": _client(self)})
        self.transport.write(_HEADERS_TIMED_OUT)
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        log.info("connection closed: body too slow", extra={"client": _client(self)})
        # The app is reading the body: it sees the client gone (http.disconnect) and stops.
        self.transport.close()

    def _cancel_timers(self) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._body_timer)
        self._header_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()


def _client(protocol: H11Protocol) -> str:
    return protocol.client[0] if protocol.client else "unknown"


def guarded_protocol(settings: EdgeSettings) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's ``http`` option, with the deadlines and the cap of
    ``settings``."""
    return type(
        "EdgeH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )
