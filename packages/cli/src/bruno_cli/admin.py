"""``bruno collections`` and ``bruno reindex``: what the knowledge base holds, and re-embedding
a collection with the embedding service's current model."""

from __future__ import annotations

from typing import TextIO

import httpx

from bruno_cli.connection import api_path, call, expect_json


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
    # Re-embedding a whole collection takes as long as ingesting it did.
    response = await call(
        client,
        "POST",
        api_path("collections", name, "reindex"),
        timeout=httpx.Timeout(None, connect=5.0),
    )
    result = expect_json(response, "collection", "previous_model")
    info = result["collection"]
    print(
        f"reindexed {info['name']}: {info['documents']} documents, {info['chunks']} chunks, "
        f"{result['previous_model'] or '(model not recorded)'} -> {info['embedding_model']}",
        file=out,
    )
    return 0
