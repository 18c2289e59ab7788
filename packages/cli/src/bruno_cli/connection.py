"""Talking to an edge: where it is, the key, URLs built from encoded segments, and every
failure said in one line (:class:`CliError`), never a traceback.

    async with connect(url, api_key) as edge:
        response = await call(edge, "GET", api_path("collections"))
        body = expect_json(response, "collections")   # or CliError: not an Agent Bruno edge

A server that is not Bruno (a web page, another API on the same port: 8080 is also Open
WebUI's), one that does not answer and one that refuses the key each get a sentence saying so
and what to set. A busy edge (``429`` past the key's rate limit, ``503`` when it sheds load)
says when to come back in ``Retry-After``; the CLI waits that long and tries again, a few
times, so a large ``bruno ingest`` slows down instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import httpx

from bruno_core.retry_after import retry_after_seconds

DEFAULT_URL = "http://127.0.0.1:8080"
API_PREFIX = "/api/v1"
TIMEOUT = httpx.Timeout(150.0, connect=5.0)
_JSON_TYPES = ("application/json", "application/problem+json")
#: Tries of a request the edge refused as busy, the first included; then its refusal is reported.
BUSY_TRIES = 5
#: The longest ``Retry-After`` honoured: a longer one is reported rather than waited out.
MAX_RETRY_AFTER_SECONDS = 60.0


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
    """One request, read whole, tried again while the edge says it is busy
    (:func:`call_streamed`); a server that does not answer is a :class:`CliError`."""
    async with call_streamed(client, method, url, **kwargs) as response:
        await response.aread()
    return response


@asynccontextmanager
async def call_streamed(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """One request with its response open for streaming, tried again while the edge says it is
    busy (:func:`busy_for`), at most :data:`BUSY_TRIES` times; the last refusal is yielded
    for the caller to report. A server that does not answer, or stops answering while the
    response is read, is a :class:`CliError`.

        async with call_streamed(edge, "POST", api_path("chat"), json=body) as response:
            async for line in response.aiter_lines():
                ...
    """
    for tries_left in range(BUSY_TRIES - 1, -1, -1):
        try:
            async with client.stream(method, url, **kwargs) as response:
                wait = busy_for(response)
                if wait is None or not tries_left:
                    yield response
                    return
        except httpx.TransportError as error:
            raise unreachable(client, error) from error
        await asyncio.sleep(wait)


def busy_for(response: httpx.Response) -> float | None:
    """Seconds to wait before trying ``response``'s request again, or None when it is not a
    busy refusal worth waiting for: a ``429``/``503`` whose ``Retry-After`` (seconds or an
    HTTP date, RFC 9110) is at most :data:`MAX_RETRY_AFTER_SECONDS`.

    The edge refuses such requests before doing any of their work, so trying again repeats
    nothing; without ``Retry-After`` a ``503`` is an outage to report, not to wait out.
    """
    if response.status_code not in (429, 503):
        return None
    seconds = retry_after_seconds(response.headers.get("retry-after"))
    return seconds if seconds is not None and seconds <= MAX_RETRY_AFTER_SECONDS else None


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
