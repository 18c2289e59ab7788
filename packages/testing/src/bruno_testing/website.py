"""A real HTTP server on loopback serving fixed pages, for the tests of URL jobs.

    with Website({"/ups.html": Page(b"<h1>UPS</h1>", "text/html")}) as site:
        site.url("/ups.html")       # http://127.0.0.1:PORT/ups.html
        site.requests               # [("/ups.html", "127.0.0.1:PORT")]: path and Host header
        site.headers                # each request's headers, in the same order

``tls`` (a server-side ``ssl.SSLContext``) serves HTTPS instead: ``site.url`` is ``https://``.

A page is served with its status, content type and extra headers; a redirect is a page with a
``Location`` header; ``streamed`` leaves out ``Content-Length`` (the body ends when the
connection closes), as a server that does not know the size does. Unknown paths are 404. A
path given a list of pages answers them in turn, the last one from then on (a server busy at
first: ``[Page(b"", status=429, headers={"Retry-After": "1"}), Page(b"fine")]``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import ssl
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    content_type: str | None = None
    status: int = 200
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    streamed: bool = False


def redirect(location: str, status: int = 302) -> Page:
    return Page(b"", "text/plain", status, {"Location": location})


class Website:
    """The server (a thread; see the module docstring). ``pages`` may change while it runs."""

    def __init__(
        self, pages: Mapping[str, Page | Sequence[Page]], *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.pages = dict(pages)
        served: dict[str, int] = {}
        lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append((self.path, self.headers.get("Host", "")))
                site.headers.append(dict(self.headers.items()))
                with lock:
                    page = site.pages.get(self.path, Page(b"not here", "text/plain", 404))
                    if not isinstance(page, Page):
                        times = served[self.path] = served.get(self.path, 0) + 1
                        page = page[min(times, len(page)) - 1]
                self.send_response(page.status)
                if page.content_type is not None:
                    self.send_header("Content-Type", page.content_type)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                if page.streamed:
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                # The client may stop reading, as it should past its limit.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            # The handshake happens in the request's thread, on its first read.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._scheme = "https" if tls is not None else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self._scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Website:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
