"""``bruno collections`` and ``bruno reindex``: what the knowledge base holds, and re-embedding
a collection with the embedding service's current model."""

from __future__ import annotations

from typing import Any, TextIO

import httpx

from bruno_cli.connection import CliError, api_path, call, expect_json
from bruno_cli.jobs import watch_quietly


async def collections(client: httpx.AsyncClient, out: TextIO) -> int:
    response = await call(client, "GET", api_path("collections"))
    for item in expect_json(response, "collections")["collections"]:
        print(
            f"{item['name']:<24} {item['documents']:>7} documents {item['chunks']:>9} chunks  "
            f"{item['embedding_model'] or '(model not recorded)'} ({item['dimension']}d)",
            file=out,
        )
    return 0


async def reindex(client: httpx.AsyncClient, name: str, out: TextIO) -> int:
    """Start the reindex job (or join the one running) and wait for it to end."""
    before = await _collection(client, name)
    response = await call(client, "POST", api_path("collections", name, "reindex"))
    job = await watch_quietly(client, expect_json(response, "id", "state")["id"])
    if job["state"] != "succeeded":
        raise CliError(
            f"reindexing {name} {job['state']}: {job.get('reason') or 'no reason given'}"
        )
    info = await _collection(client, name) or {"documents": 0, "chunks": 0, "embedding_model": ""}
    previous = (before or {}).get("embedding_model") or "(model not recorded)"
    print(
        f"reindexed {name}: {info['documents']} documents, {info['chunks']} chunks, "
        f"{previous} -> {info['embedding_model']}",
        file=out,
    )
    return 0


async def _collection(client: httpx.AsyncClient, name: str) -> dict[str, Any] | None:
    response = await call(client, "GET", api_path("collections"))
    found = expect_json(response, "collections")["collections"]
    return next((item for item in found if item["name"] == name), None)
