"""Collections: created on first ingest, listed, deleted and created again, their embedding
model recorded and enforced, tables from before the catalog adopted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lancedb
import pyarrow as pa
import pytest

from bruno_core import Conflict, NotFound
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    IngestOutcome,
    KnowledgeStore,
    SearchMode,
)

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


async def test_collections_are_created_implicitly_and_listed(
    store: KnowledgeStore, embedder: FakeEmbedder
) -> None:
    assert await store.list_collections() == []
    await store.ingest("homelab", text="One.\n\nTwo.", document_id="a")
    await store.ingest("homelab", text="Three.", document_id="b")
    await store.ingest("default", text="Four.", document_id="c")

    listed = await store.list_collections()

    assert [(c.name, c.documents, c.embedding_model, c.dimension) for c in listed] == [
        ("default", 1, "hash-bow", embedder.dimension),
        ("homelab", 2, "hash-bow", embedder.dimension),
    ]
    assert listed[1].chunks >= 2


async def test_deleting_a_collection_removes_it_from_search_and_listing(
    store: KnowledgeStore,
) -> None:
    await store.ingest("homelab", text="Velero restore.", document_id="a")
    await store.ingest("homelab", text="Velero backup.", document_id="b")

    deleted = await store.delete_collection("homelab")
    await store.wait_for_background()

    assert deleted == 2
    assert await store.list_collections() == []
    with pytest.raises(NotFound):
        await store.search("homelab", "velero", top_k=5)
    with pytest.raises(NotFound):
        await store.delete_collection("homelab")
    again = await store.ingest("homelab", text="Velero again.", document_id="a")
    assert again.outcome is IngestOutcome.CREATED


async def test_unknown_collections_are_not_found_for_every_operation(
    store: KnowledgeStore,
) -> None:
    for operation in (
        store.delete_collection("nope"),
        store.reindex("nope"),
        store.collection_info("nope"),
        store.search("nope", "q", top_k=1),
        store.list_documents("nope", limit=1),
    ):
        with pytest.raises(NotFound):
            await operation


async def test_collections_survive_reopening_with_their_model(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    first = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await first.ingest("homelab", text="Velero restore.", document_id="a")
    first.close()

    second = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))

    assert [(c.name, c.embedding_model) for c in await second.list_collections()] == [
        ("homelab", "model-a")
    ]
    second.close()


async def test_another_model_of_the_same_dimension_is_a_conflict_naming_reindex(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    first = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await first.ingest("homelab", text="Velero restore.", document_id="a")
    first.close()
    second = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-b"))

    with pytest.raises(Conflict, match="bruno reindex homelab"):
        await second.ingest("homelab", text="Other text.", document_id="b")
    for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
        with pytest.raises(Conflict, match="model-a"):
            await second.search("homelab", "velero", top_k=5, mode=mode)
    text_hits = (await second.search("homelab", "velero", top_k=5, mode=SearchMode.TEXT)).hits
    assert [hit.document_id for hit in text_hits] == ["a"]
    page = await second.list_documents("homelab", limit=10)
    assert [d.document_id for d in page.documents] == ["a"]  # the refused ingest wrote nothing
    second.close()


async def test_a_deleted_collection_can_be_created_again_while_a_search_reads_the_old_one(
    store: KnowledgeStore, embedder: FakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    await store.ingest("kb", text="Old velero notes.", document_id="old")
    searching, released = hold_embeddings(embedder)
    reader = asyncio.create_task(store.search("kb", "velero notes", top_k=5))
    await searching.wait()
    await store.delete_collection("kb")

    # The old table is dropped once that search is done: the new collection must not wait.
    again = await store.ingest("kb", text="New velero notes.", document_id="new")
    released.set()

    assert again.outcome is IngestOutcome.CREATED
    assert {hit.document_id for hit in (await reader).hits} == {"old"}
    hits = (await store.search("kb", "velero notes", top_k=5)).hits
    assert {hit.document_id for hit in hits} == {"new"}
    await store.wait_for_background()
    assert [c.name for c in await store.list_collections()] == ["kb"]


async def test_a_collection_whose_creation_failed_can_be_created_on_the_next_ingest(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(table: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr("bruno_retrieval.knowledge.catalog.ensure_text_index", broken)
        with pytest.raises(OSError, match="disk full"):
            await store.ingest("kb", text="Velero notes.", document_id="a")

    created = await store.ingest("kb", text="Velero notes.", document_id="a")

    assert created.outcome is IngestOutcome.CREATED
    assert (await store.collection_info("kb")).documents == 1


async def test_tables_from_before_the_catalog_are_adopted_and_reindexed_for_filters(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    uri = make_settings().lancedb_uri
    db = await lancedb.connect_async(uri)
    legacy_schema = pa.schema(
        [
            ("chunk_id", pa.string()),
            ("document_id", pa.string()),
            ("chunk_index", pa.int32()),
            ("chunk_count", pa.int32()),
            ("title", pa.string()),
            ("source", pa.string()),
            ("text", pa.string()),
            ("heading_path", pa.string()),
            ("metadata", pa.string()),
            ("content_hash", pa.string()),
            ("ingested_at", pa.timestamp("us", tz="UTC")),
            ("vector", pa.list_(pa.float32(), 64)),
        ]
    )
    old: Any = await db.create_table("default", schema=legacy_schema)
    await old.add(
        pa.Table.from_pylist(
            [
                {
                    "chunk_id": "old:0",
                    "document_id": "old",
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "title": "",
                    "source": "",
                    "text": "Velero legacy note.",
                    "heading_path": "",
                    "metadata": '{"team": "ops"}',
                    "content_hash": "x",
                    "ingested_at": datetime.now(UTC),
                    "vector": [0.125] * 64,
                }
            ],
            schema=legacy_schema,
        )
    )
    old.close()
    store = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))

    assert [(c.name, c.embedding_model) for c in await store.list_collections()] == [
        ("default", "")
    ]
    with pytest.raises(Conflict, match="reindex"):
        await store.search("default", "velero", top_k=5, filters={"team": "ops"})
    await store.reindex("default")
    hits = (await store.search("default", "velero", top_k=5, filters={"team": "ops"})).hits
    assert [hit.document_id for hit in hits] == ["old"]
    store.close()


async def test_a_writer_drops_the_tables_a_restart_left_that_no_collection_uses(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    first = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await first.ingest("homelab", text="Velero restore.", document_id="a")
    first.close()
    # What a writer killed mid-reindex leaves: the shadow table, never switched to.
    db = await lancedb.connect_async(make_settings().lancedb_uri)
    source: Any = await db.open_table("homelab")
    leftover: Any = await db.create_table("homelab.1", data=await source.query().to_arrow())
    source.close()
    leftover.close()

    second = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await second.wait_for_background()

    assert "homelab.1" not in (await db.list_tables()).tables
    assert "homelab" in (await db.list_tables()).tables
    hits = (await second.search("homelab", "velero", top_k=5, mode=SearchMode.HYBRID)).hits
    assert [hit.document_id for hit in hits] == ["a"]
    second.close()
