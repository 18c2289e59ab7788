"""Talking to an edge: where it is, the key, URLs built from encoded segments, and every
failure said in one line (:class:`CliError`), never a traceback.

    async with connect(url, api_key) as edge:
        response = await call(edge, "GET", api_path("collections"))
        body = expect_json(response, "collections")   # or CliError: not an Agent Bruno edge

A server that is not Bruno (a web page, another API on the same port: 8080 is also Open
WebUI's), one that does not answer and one that refuses the key each get a sentence saying so
and what to set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
API_PREFIX = "/api/v1"
TIMEOUT = httpx.Timeout(150.0, connect=5.0)
_JSON_TYPES = ("application/json", "application/problem+json")


class CliError(Exception):
    """A failure to report on stderr, in one line, with exit status 1."""


def path_segment(value: str) -> str:
    """``value`` as exactly one URL path segment.

    Every reserved character is encoded (a ``/`` too), and so is a segment of dots alone, which
    HTTP clients and servers would otherwise resolve: ``..`` must never climb out of the path.
    """
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in {".", ".."} else encoded


def api_path(*segments: str) -> str:
    """``/api/v1/`` and ``segments``, each encoded as one segment."""
    return "/".join([API_PREFIX, *(path_segment(segment) for segment in segments)])


@asynccontextmanager
async def connect(
    url: str, api_key: str | None, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the edge at ``url`` (``transport`` lets tests serve it in-process)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=TIMEOUT, transport=transport
    ) as client:
        yield client


async def call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a server that does not answer is a :class:`CliError`."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError as error:
        raise unreachable(client, error) from error


def unreachable(client: httpx.AsyncClient, error: httpx.TransportError) -> CliError:
    reason = "it does not answer" if isinstance(error, httpx.TimeoutException) else str(error)
    return CliError(
        f"cannot reach {client.base_url} ({reason or type(error).__name__}); is the edge "
        "running? Set BRUNO_URL or --url"
    )


def is_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in _JSON_TYPES


def not_bruno(response: httpx.Response) -> CliError:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return CliError(
        f"{response.request.url.copy_with(path='/', query=None)} does not look like an Agent "
        f"Bruno edge (it answered {response.request.url.path} with HTTP "
        f"{response.status_code}, {kind}); check BRUNO_URL or --url"
    )


def failure(response: httpx.Response) -> CliError:
    """What a refused request means, from the problem document Bruno answers with."""
    if not is_json(response):
        return not_bruno(response)
    try:
        body: Any = response.json()
    except ValueError:
        return not_bruno(response)
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str):
        return not_bruno(response)
    if response.status_code == 401:
        return CliError(
            f"the edge refused the API key ({body['detail']}); set BRUNO_API_KEY or --api-key"
        )
    return CliError(f"{response.status_code} {body.get('title', '')}: {body['detail']}")


def expect_json(response: httpx.Response, *keys: str) -> dict[str, Any]:
    """The JSON object a successful Bruno answer holds, with ``keys`` in it; anything else
    is a :class:`CliError` (a failure, or a server that is not Bruno)."""
    if not response.is_success:
        raise failure(response)
    if not is_json(response):
        raise not_bruno(response)
    try:
        body: Any = response.json()
    except ValueError:
        raise not_bruno(response) from None
    if not isinstance(body, dict) or any(key not in body for key in keys):
        raise not_bruno(response)
    return body
