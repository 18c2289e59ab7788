"""``bruno ask``: a question answered as it is written, then the sources it cites.

The answer streams from ``POST /api/v1/chat`` (server-sent events): each ``token`` is printed
the moment it arrives, the ``citations`` that follow say which passages the answer cites, and
``done`` whether a language model wrote it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, TextIO

import httpx

from bruno_cli.connection import CliError, api_path, call_streamed, failure, not_bruno

EVENT_STREAM = "text/event-stream"


async def ask(
    client: httpx.AsyncClient,
    question: str,
    *,
    collection: str,
    top_k: int | None,
    out: TextIO,
) -> int:
    """Print the answer to ``question`` as it streams, then its sources; the exit status."""
    body: dict[str, Any] = {"message": question, "collection": collection, "stream": True}
    if top_k is not None:
        body["top_k"] = top_k
    headers = {"Accept": EVENT_STREAM}
    async with call_streamed(
        client, "POST", api_path("chat"), json=body, headers=headers
    ) as response:
        if not response.is_success:
            await response.aread()
            raise failure(response)
        if not response.headers.get("content-type", "").startswith(EVENT_STREAM):
            raise not_bruno(response)
        async for name, data in _events(response):
            _show(name, data, out)
    return 0


def _show(name: str, data: Any, out: TextIO) -> None:
    if name == "token":
        out.write(data["text"])
        out.flush()
    elif name == "citations":
        cited = [c for c in data if c.get("cited")]
        print(file=out)
        if cited:
            print("\nSources:", file=out)
        for citation in cited:
            source = f" ({citation['source']})" if citation["source"] else ""
            label = citation["title"] or citation["document_id"]
            print(f"[{citation['marker']}] {label}{source}", file=out)
    elif name == "done" and data.get("fallback"):
        print("\n(no language model answered: this is the extractive fallback)", file=out)
    elif name == "error":
        raise CliError(f"the answer failed: {data.get('detail', 'no reason given')}")


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, decoded data) for each server-sent event; keep-alive comments are skipped."""
    name, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, _decoded(response, "\n".join(data))
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))


def _decoded(response: httpx.Response, data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise not_bruno(response) from None
