"""The edge in front of a real retrieval server while a reindex of a collection is held up:
``POST /api/v1/documents`` into it answers 202 with the job it became, never a success for a
write not committed, and the job commits after the switch; a running reindex cancelled with
``DELETE`` of its job ends cancelled, leaves the collection as it was, and can be started again.

Both run in this process (the edge through its ASGI app, retrieval as a real gRPC server on
loopback over a real LanceDB) so that the reindex can be held at a chosen point: between
processes it would be a race against the reindex's speed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_edge import EdgeSettings, create_app
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Embedded, ModelNotServed
from bruno_retrieval.server import create_server
from bruno_testing.fakes import FakeServices
from bruno_testing.ollama_standin import hashed_embedding

FINISHED = {"succeeded", "failed", "cancelled"}


class SwitchingEmbedder:
    """An embedding service of one model that can be replaced by another, as an Ollama model
    is (the old one is served no more), and whose embedding of texts holding ``held`` waits
    for ``released`` (``holding`` is set once one waits)."""

    def __init__(self) -> None:
        self.name, self.dimension = "model-a", 64
        self.held = ""
        self.holding, self.released = asyncio.Event(), asyncio.Event()

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        if model and model != self.name:
            raise ModelNotServed(model, [self.name])
        if self.held and any(self.held in text for text in texts):
            self.holding.set()
            await self.released.wait()
        return Embedded([hashed_embedding(text, self.dimension) for text in texts], self.name)


@pytest.fixture
async def embedder() -> SwitchingEmbedder:
    return SwitchingEmbedder()


@pytest.fixture
async def edge(tmp_path: Path, embedder: SwitchingEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    settings = RetrievalSettings(
        retrieval_listen_addr="127.0.0.1:0",
        lancedb_uri=str(tmp_path / "lancedb"),
        grpc_grace_seconds=0,
    )
    retrieval = await create_server(settings, embedder=embedder)
    port = await retrieval.start()
    try:
        # Generation and embedding are not called here; the edge wants their addresses.
        async with FakeServices() as others:
            app = create_app(
                EdgeSettings(
                    retrieval_addr=f"127.0.0.1:{port}",
                    generation_addr=others.addr("generation"),
                    embedding_addr=others.addr("embedding"),
                    api_keys="",
                    edge_host="127.0.0.1",
                )
            )
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app, raise_app_exceptions=False),
                    base_url="http://edge.test",
                ) as client,
            ):
                yield client
    finally:
        embedder.released.set()
        await retrieval.stop()


@pytest.fixture
async def replaced(edge: httpx.AsyncClient, embedder: SwitchingEmbedder) -> httpx.AsyncClient:
    """The edge once ``homelab`` holds a note embedded by model-a and the embedding service
    serves model-b in its place (as an Ollama model is replaced)."""
    stored = await edge.post(
        "/api/v1/documents",
        json={"collection": "homelab", "id": "stored", "text": "Velero stored note."},
    )
    assert stored.status_code == 201, stored.text
    embedder.name, embedder.dimension = "model-b", 32
    return edge


async def held_reindex(edge: httpx.AsyncClient, embedder: SwitchingEmbedder) -> str:
    """Start reindexing ``homelab``, held while it embeds its copy of the stored note; its
    job's location."""
    embedder.held = "Velero"
    reindex = await edge.post("/api/v1/collections/homelab/reindex")
    assert reindex.status_code == 202, reindex.text
    await asyncio.wait_for(embedder.holding.wait(), 30)
    return reindex.headers["Location"]


async def until_finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    for _ in range(400):
        job: dict[str, Any] = (await client.get(location)).json()
        if job["state"] in FINISHED:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job at {location} did not finish")


async def test_an_ingest_into_a_collection_being_reindexed_answers_202_with_a_queued_job(
    replaced: httpx.AsyncClient, embedder: SwitchingEmbedder
) -> None:
    edge = replaced
    reindex_job = await held_reindex(edge, embedder)

    answer = await edge.post(
        "/api/v1/documents",
        json={"collection": "homelab", "id": "fresh", "text": "Restic fresh note."},
    )

    assert answer.status_code == 202, answer.text
    assert (answer.json()["kind"], answer.json()["state"]) == ("ingest", "queued")
    embedder.released.set()
    assert (await until_finished(edge, reindex_job))["state"] == "succeeded"
    done = await until_finished(edge, answer.headers["Location"])
    assert (done["state"], done["documents"]["done"]) == ("succeeded", 1)
    listed = (await edge.get("/api/v1/documents", params={"collection": "homelab"})).json()
    assert sorted(document["document_id"] for document in listed["documents"]) == [
        "fresh",
        "stored",
    ]


async def test_a_collection_whose_model_is_no_longer_served_answers_409_saying_to_reindex(
    replaced: httpx.AsyncClient,
) -> None:
    edge = replaced

    search = await edge.post("/api/v1/search", json={"query": "velero", "collection": "homelab"})
    ingest = await edge.post(
        "/api/v1/documents",
        json={"collection": "homelab", "id": "fresh", "text": "Restic fresh note."},
    )
    keywords = await edge.post(
        "/api/v1/search", json={"query": "velero", "collection": "homelab", "mode": "text"}
    )

    for refused in (search, ingest):
        assert refused.status_code == 409, refused.text
        assert refused.json()["detail"] == (
            "collection 'homelab' was built with model-a, which the embedding service does not "
            "serve (it serves model-b); run `bruno reindex homelab` to rebuild it with the "
            "current model"
        )
    assert keywords.status_code == 200, keywords.text
    assert [hit["document_id"] for hit in keywords.json()["results"]] == ["stored"]


async def test_a_running_reindex_cancelled_leaves_the_collection_as_it_was(
    replaced: httpx.AsyncClient, embedder: SwitchingEmbedder
) -> None:
    edge = replaced
    reindex_job = await held_reindex(edge, embedder)

    cancel = await edge.delete(reindex_job)
    embedder.released.set()

    assert cancel.status_code == 202, cancel.text
    assert (await until_finished(edge, reindex_job))["state"] == "cancelled"
    # Not switched: the collection still holds model-a's vectors, which nobody serves.
    search = await edge.post("/api/v1/search", json={"query": "velero", "collection": "homelab"})
    assert search.status_code == 409, search.text
    keywords = await edge.post(
        "/api/v1/search", json={"query": "velero", "collection": "homelab", "mode": "text"}
    )
    assert [hit["document_id"] for hit in keywords.json()["results"]] == ["stored"]

    embedder.held = ""
    again = await edge.post("/api/v1/collections/homelab/reindex")
    assert again.status_code == 202, again.text
    assert (await until_finished(edge, again.headers["Location"]))["state"] == "succeeded"
    search = await edge.post("/api/v1/search", json={"query": "velero", "collection": "homelab"})
    assert search.status_code == 200, search.text
    assert [hit["document_id"] for hit in search.json()["results"]] == ["stored"]
    assert search.json()["mode"] == "hybrid"
