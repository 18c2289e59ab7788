"""Reindexing a collection with the current embedding model: every document kept, searches,
deletes and ingests of the old model answering throughout, ingests of the new model refused
until the switch, the switch whole even when the caller gives up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import lancedb
import pytest

from bruno_core import NotFound
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    CATALOG_TABLE,
    IngestOutcome,
    KnowledgeStore,
    SearchMode,
)
from bruno_retrieval.knowledge.catalog import CatalogEntry, table_names
from bruno_retrieval.knowledge.reindex import CollectionReindexing, ReindexCancelled

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


# A write that waited for the reindex would wait forever here (its embeddings are held): this
# bounds the hang, it measures nothing.
_HANG_GUARD_SECONDS = 60


async def test_deletes_during_a_reindex_answer_at_once_and_stay_deleted_after_the_switch(
    notes: KnowledgeStore,
    make_embedder: MakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    hold_embeddings: HoldEmbeddings,
) -> None:
    store = notes
    monkeypatch.setattr("bruno_retrieval.knowledge.reindex._REINDEX_BATCH", 2)
    new = make_embedder(32, "model-b")  # the embedding service changed models
    copying, released = hold_embeddings(new, marker="Velero note")
    store._embedder = new
    reindex = store.start_reindex("default")
    await copying.wait()  # the first batch (n0, n1) is being copied; n2 to n4 are not yet

    async def meanwhile() -> None:
        await store.delete_document("default", "n0")  # copied by the batch held now
        await store.delete_document("default", "n3")  # in a batch still to come

    await asyncio.wait_for(meanwhile(), _HANG_GUARD_SECONDS)
    assert not reindex.done()
    released.set()
    result = await reindex
    await store.wait_for_background()

    assert (result.collection.embedding_model, result.collection.dimension) == ("model-b", 32)
    listed = (await store.list_documents("default")).documents
    assert [document.document_id for document in listed] == ["n1", "n2", "n4"]
    # One chunk each: nothing copied twice, nothing of the deleted documents left.
    assert (result.collection.documents, result.collection.chunks) == (3, 3)
    found = await store.search("default", "velero note 3", top_k=5, mode=SearchMode.VECTOR)
    assert {hit.document_id for hit in found.hits} == {"n1", "n2", "n4"}


async def test_an_ingest_of_the_new_model_during_a_reindex_is_refused_and_writes_nothing(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    new = make_embedder(32, "model-b")
    copying, released = hold_embeddings(new, marker="Velero note")
    store._embedder = new
    reindex = store.start_reindex("default")
    await copying.wait()

    with pytest.raises(CollectionReindexing) as refused:
        await asyncio.wait_for(
            store.ingest("default", text="Restic fresh note.", document_id="fresh"),
            _HANG_GUARD_SECONDS,
        )
    released.set()
    await reindex

    assert "being reindexed" in refused.value.detail
    assert not refused.value.retryable  # asking again at once cannot cure it
    # Refused before any embedding: the embedding service's time goes to the reindex.
    assert not any("Restic" in text for texts, _ in new.calls for text in texts)
    listed = (await store.list_documents("default")).documents
    assert "fresh" not in {document.document_id for document in listed}
    # After the switch the same ingest commits with the new model.
    added = await store.ingest("default", text="Restic fresh note.", document_id="fresh")
    assert added.outcome is IngestOutcome.CREATED


async def test_a_cancelled_reindex_leaves_the_collection_as_it_was_with_the_deletes_made_meanwhile(
    notes: KnowledgeStore,
    make_settings: MakeSettings,
    make_embedder: MakeEmbedder,
    hold_embeddings: HoldEmbeddings,
) -> None:
    store = notes
    new = make_embedder(32, "model-b")
    copying, released = hold_embeddings(new, marker="Velero note")
    store._embedder = new
    stop = asyncio.Event()
    reindex = store.start_reindex("default", stop=stop)
    await copying.wait()

    await asyncio.wait_for(store.delete_document("default", "n2"), _HANG_GUARD_SECONDS)
    stop.set()
    released.set()
    with pytest.raises(ReindexCancelled):
        await reindex

    info = await store.collection_info("default")
    assert (info.embedding_model, info.dimension, info.documents) == ("model-a", 64, 4)
    db = await lancedb.connect_async(make_settings().lancedb_uri)
    assert sorted((await db.list_tables()).tables) == [CATALOG_TABLE, "default"]
    store._embedder = make_embedder(64, "model-a")  # writes go to the old table alone again
    added = await store.ingest("default", text="Velero later note.", document_id="later")
    assert added.outcome is IngestOutcome.CREATED
    assert (await store.collection_info("default")).documents == 5


@pytest.mark.parametrize("under_lock", [32, 0], ids=["last-pass-only", "passes-outside-lock"])
async def test_writes_to_the_old_table_during_a_reindex_are_caught_up_before_the_switch(
    notes: KnowledgeStore,
    make_embedder: MakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    hold_embeddings: HoldEmbeddings,
    under_lock: int,
) -> None:
    store = notes
    monkeypatch.setattr("bruno_retrieval.knowledge.reindex._REINDEX_BATCH", 2)
    monkeypatch.setattr("bruno_retrieval.knowledge.reindex._CATCH_UP_UNDER_LOCK", under_lock)
    # The same model again (a rebuild for a newer table layout): writes meanwhile go to the
    # old table, and only the catch-up brings them into the new one.
    same = make_embedder(64, "model-a")
    copying, released = hold_embeddings(same, marker="Velero note")
    store._embedder = same
    reindex = store.start_reindex("default")
    await copying.wait()

    async def meanwhile() -> None:
        await store.ingest("default", text="Restic fresh note.", document_id="fresh")
        await store.ingest("default", text="Restic replaced note.", document_id="n3")
        await store.delete_document("default", "n4")

    await asyncio.wait_for(meanwhile(), _HANG_GUARD_SECONDS)
    released.set()
    result = await reindex

    assert (result.collection.documents, result.collection.chunks) == (5, 5)
    listed = (await store.list_documents("default")).documents
    assert [document.document_id for document in listed] == ["fresh", "n0", "n1", "n2", "n3"]
    found = await store.search("default", "restic replaced", top_k=1, mode=SearchMode.VECTOR)
    assert (found.hits[0].document_id, found.hits[0].text) == ("n3", "Restic replaced note.")
    assert store._catalog.entry("default") == CatalogEntry("default", "default.1", "model-a", 64)


async def test_a_delete_during_the_dimension_probe_of_a_reindex_answers_at_once(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    new = make_embedder(32, "model-b")
    # The embedding service is slow to answer the reindex's first call (busy with other
    # collections' batches): writes must not wait for it.
    probing, released = hold_embeddings(new, marker="dimension probe")
    store._embedder = new
    reindex = store.start_reindex("default")
    await probing.wait()

    deleted = await asyncio.wait_for(store.delete_document("default", "n0"), _HANG_GUARD_SECONDS)
    released.set()
    result = await reindex

    assert deleted.chunks == 1
    assert (result.collection.embedding_model, result.collection.documents) == ("model-b", 4)


async def test_a_collection_deleted_and_made_anew_during_its_reindex_keeps_the_new_writes(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    # The same model again: the collection made anew gets the very entry the old one had
    # (same table name, model and dimension) once the old table is dropped.
    same = make_embedder(64, "model-a")
    copying, released = hold_embeddings(same, marker="Velero note")
    store._embedder = same
    reindex = store.start_reindex("default")
    await copying.wait()  # the one batch (all five notes) is being copied

    async def meanwhile() -> None:
        running = set(store._tasks._tasks)
        await store.delete_collection("default")
        await asyncio.gather(*(store._tasks._tasks - running))  # the drop of its table
        assert "default" not in await table_names(store._catalog.db)
        await store.ingest("default", text="Restic fresh note.", document_id="fresh")

    await asyncio.wait_for(meanwhile(), _HANG_GUARD_SECONDS)
    released.set()
    with pytest.raises(NotFound, match="deleted during its reindex"):
        await reindex

    listed = (await store.list_documents("default")).documents
    assert [document.document_id for document in listed] == ["fresh"]


async def test_a_reindex_of_a_collection_of_no_recorded_model_switches_with_ingests_made_meanwhile(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store = notes
    entry = store._catalog.entry("default")
    assert entry is not None
    await store._catalog.record_model(entry, "")  # as a table adopted from before the catalog
    new = make_embedder(64, "model-b")
    copying, released = hold_embeddings(new, marker="Velero note")
    store._embedder = new
    reindex = store.start_reindex("default")
    await copying.wait()

    # The first ingest records its model, on the old table (the reindex copies it again).
    added = await asyncio.wait_for(
        store.ingest("default", text="Restic fresh note.", document_id="fresh"),
        _HANG_GUARD_SECONDS,
    )
    released.set()
    result = await reindex

    assert added.outcome is IngestOutcome.CREATED
    assert (result.collection.documents, result.collection.chunks) == (6, 6)
    assert store._catalog.entry("default") == CatalogEntry("default", "default.1", "model-b", 64)
    found = await store.search("default", "restic fresh", top_k=1, mode=SearchMode.VECTOR)
    assert found.hits[0].document_id == "fresh"


async def test_a_collection_deleted_during_its_reindex_ends_the_copy_at_the_next_batch(
    notes: KnowledgeStore,
    make_embedder: MakeEmbedder,
    monkeypatch: pytest.MonkeyPatch,
    hold_embeddings: HoldEmbeddings,
) -> None:
    store = notes
    monkeypatch.setattr("bruno_retrieval.knowledge.reindex._REINDEX_BATCH", 2)
    new = make_embedder(32, "model-b")
    copying, released = hold_embeddings(new, marker="Velero note")
    store._embedder = new
    reindex = store.start_reindex("default")
    await copying.wait()  # the first of three batches is being copied

    await asyncio.wait_for(store.delete_collection("default"), _HANG_GUARD_SECONDS)
    released.set()
    with pytest.raises(NotFound, match="deleted during its reindex"):
        await reindex

    # The embedding service's time is not spent on a collection nobody has any more.
    copied = [texts for texts, _ in new.calls if any("Velero note" in t for t in texts)]
    assert len(copied) == 1
