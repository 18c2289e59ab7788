"""Reindexing a collection with the current embedding model: every document kept, searches
answering throughout, the switch whole even when the caller gives up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import lancedb
import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    CATALOG_TABLE,
    IngestOutcome,
    KnowledgeStore,
    SearchMode,
)

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


async def test_reindex_rebuilds_with_the_current_model_and_keeps_every_document(
    make_settings: MakeSettings, make_embedder: MakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = make_settings().lancedb_uri
    first = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    for n in range(5):
        await first.ingest(
            "homelab",
            text=f"# Note {n}\n\nVelero note {n} about volumes.",
            document_id=f"n{n}",
            metadata={"tags": "ops, k8s"},
        )
    first.close()
    second = await KnowledgeStore.open(make_settings(), make_embedder(32, "model-b"))
    # Rows stream in batches.
    monkeypatch.setattr("bruno_retrieval.knowledge.reindex._REINDEX_BATCH", 2)

    result = await second.reindex("homelab")
    await second.wait_for_background()

    assert result.previous_model == "model-a"
    assert (result.collection.embedding_model, result.collection.dimension) == ("model-b", 32)
    assert result.collection.documents == 5
    hits = (await second.search("homelab", "velero note 3", top_k=5, filters={"tags": "k8s"})).hits
    assert hits[0].document_id == "n3"
    assert hits[0].heading_path == "Note 3"
    second.close()
    db = await lancedb.connect_async(uri)
    assert sorted((await db.list_tables()).tables) == [CATALOG_TABLE, "homelab.1"]


@pytest.fixture
async def notes(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> AsyncIterator[KnowledgeStore]:
    """Five notes in ``default``, embedded by ``model-a`` (64 dimensions)."""
    store = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    for n in range(5):
        await store.ingest("default", text=f"Velero note {n} about volumes.", document_id=f"n{n}")
    yield store
    store.close()


async def test_a_reindex_whose_caller_gives_up_still_switches_over_whole(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    new = make_embedder(32, "model-b")
    embedding, released = hold_embeddings(new, queries_only=False)
    store._embedder = new
    caller = asyncio.create_task(store.reindex("default"))
    await embedding.wait()
    caller.cancel()  # the CLI's deadline passed while the collection was being re-embedded
    with pytest.raises(asyncio.CancelledError):
        await caller
    released.set()
    await store.wait_for_background()

    info = await store.collection_info("default")
    assert (info.embedding_model, info.dimension, info.documents) == ("model-b", 32, 5)
    found = await store.search("default", "velero note 3", top_k=1)
    assert (found.mode, found.hits[0].document_id) == (SearchMode.HYBRID, "n3")


async def test_searches_during_a_reindex_never_fail(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    store = await KnowledgeStore.open(settings, make_embedder(64, "model-a"))
    for n in range(20):
        await store.ingest("default", text=f"Velero note {n} about volumes.", document_id=f"n{n}")
    store._embedder = make_embedder(64, "model-b")  # the embedding service changed models
    done = asyncio.Event()
    outcomes: list[str] = []

    async def searcher(mode: SearchMode) -> None:
        while not done.is_set():
            try:
                found = await store.search("default", "velero note", top_k=3, mode=mode)
                outcomes.append("ok" if found.hits else "empty")
            except Exception as error:  # the assertion below reports it
                outcomes.append(repr(error))
            await asyncio.sleep(0)

    modes = [SearchMode.HYBRID, SearchMode.VECTOR, SearchMode.TEXT, SearchMode.HYBRID]
    searchers = [asyncio.create_task(searcher(mode)) for mode in modes]
    await store.reindex("default")
    for _ in range(20):  # keep searching across the drop of the old table
        await asyncio.sleep(0.005)
    done.set()
    await asyncio.gather(*searchers)
    await store.wait_for_background()

    assert outcomes
    assert set(outcomes) == {"ok"}
    after = await store.search("default", "velero note 7", top_k=1, mode=SearchMode.HYBRID)
    assert after.hits[0].document_id == "n7"
    store.close()


async def test_a_search_whose_query_is_embedded_across_the_switch_answers_by_keywords(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    new = make_embedder(64, "model-b")
    embedding, released = hold_embeddings(new)
    store._embedder = new
    # The search starts on the old table; its query comes back from the new model only after
    # the reindex has switched the collection over.
    search = asyncio.create_task(store.search("default", "velero note", top_k=3))
    await embedding.wait()
    await store.reindex("default")
    released.set()

    found = await search

    assert found.mode is SearchMode.TEXT
    assert found.hits


async def test_ingests_waiting_for_a_reindex_land_in_the_new_table(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    store = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await store.ingest("default", text="Velero first.", document_id="a")
    store._embedder = make_embedder(64, "model-b")

    _, added = await asyncio.gather(
        store.reindex("default"), store.ingest("default", text="Velero second.", document_id="b")
    )

    assert added.outcome is IngestOutcome.CREATED
    info = (await store.list_collections())[0]
    assert (info.documents, info.embedding_model) == (2, "model-b")
    store.close()
