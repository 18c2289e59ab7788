"""Raw ASGI requests, for tests that drive an app's ``receive`` and ``send`` themselves (a
client hanging up mid-stream, what is held while each piece is sent), which httpx's ASGI
transport cannot do: it waits for the whole response."""

from __future__ import annotations

from typing import Any


def http_scope(method: str, path: str) -> dict[str, Any]:
    """The scope of a JSON ``method`` request to ``path`` from 127.0.0.1 to ``edge.test``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"edge.test")],
        "client": ("127.0.0.1", 50000),
        "server": ("edge.test", 80),
    }
