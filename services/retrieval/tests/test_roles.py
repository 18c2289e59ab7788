"""Retrieval's roles: a writer and readers of the same LanceDB, each a real store (readers also
served over gRPC). A reader refuses every write before it starts, follows the writer's commits
and catalog within its lag, and a read naming a write's version sees it at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import lancedb
import pytest

from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import Conflict, NotFound, Unavailable, create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import ConversationStore, StoredTurn
from bruno_retrieval.knowledge import Committed, KnowledgeStore, SearchMode
from bruno_retrieval.knowledge.schema import table_schema
from bruno_retrieval.server import create_server

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeSettings = Callable[..., RetrievalSettings]
MakeEmbedder = Callable[..., "FakeEmbedder"]

RUNBOOK = "# Backups\n\nVelero snapshots every volume at night; restore with velero restore.\n"
# Long enough that no read refreshes on its own during a test: what a reader sees then comes
# only from asking for a version (or from a forced look at the catalog).
NEVER_SECONDS = 300.0
# Short, for the tests that wait for a reader to follow by itself.
LAG_SECONDS = 0.1


async def eventually(check: Callable[[], Awaitable[bool]], *, attempts: int = 200) -> bool:
    """Whether ``check`` comes true within ``attempts`` looks 50 ms apart (a bound far above
    the lag, so a slow machine does not fail the test; the assertion is on the outcome)."""
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def writer(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> AsyncIterator[KnowledgeStore]:
    store = await KnowledgeStore.open(make_settings(retrieval_role="writer"), embedder)
    yield store
    store.close()


def reader_settings(make_settings: MakeSettings, lag: float) -> RetrievalSettings:
    return make_settings(retrieval_role="reader", retrieval_read_consistency_seconds=lag)


async def test_a_reader_refuses_every_write_and_writes_nothing(
    make_settings: MakeSettings, embedder: FakeEmbedder, tmp_path: Path
) -> None:
    settings = reader_settings(make_settings, LAG_SECONDS).model_copy(
        update={"retrieval_listen_addr": "127.0.0.1:0", "grpc_grace_seconds": 0}
    )
    server = await create_server(settings, embedder=embedder)
    port = await server.start()
    refusals: list[grpc.aio.AioRpcError] = []
    try:
        async with create_channel(f"127.0.0.1:{port}", timeout_seconds=10) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            talks = conversations_pb2_grpc.ConversationServiceStub(channel)
            writes: list[Callable[[], Awaitable[Any]]] = [
                lambda: stub.IngestDocument(
                    retrieval_pb2.IngestDocumentRequest(document_id="a", text=RUNBOOK)
                ),
                lambda: stub.DeleteDocument(retrieval_pb2.DeleteDocumentRequest(document_id="a")),
                lambda: stub.DeleteCollection(
                    retrieval_pb2.DeleteCollectionRequest(collection="default")
                ),
                lambda: stub.ReindexCollection(
                    retrieval_pb2.ReindexCollectionRequest(collection="default")
                ),
                lambda: talks.AppendTurns(
                    conversations_pb2.AppendTurnsRequest(
                        conversation_id="c1",
                        turns=[conversations_pb2.Turn(role="user", content="hi")],
                        create=True,
                    )
                ),
                lambda: talks.DeleteConversation(
                    conversations_pb2.DeleteConversationRequest(conversation_id="c1")
                ),
            ]
            for write in writes:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await write()
                refusals.append(refused.value)
            found = await stub.Search(retrieval_pb2.SearchRequest(query="velero"))
    finally:
        await server.stop()

    assert {r.code() for r in refusals} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert all("reader" in (r.details() or "") for r in refusals)
    assert list(found.hits) == []  # reads answer: an empty default collection
    assert not (tmp_path / "lancedb").exists() or not any((tmp_path / "lancedb").iterdir())
    assert embedder.document_calls == 0  # refused before anything, the model included


async def test_a_reader_follows_ingests_and_deletes_within_its_lag(
    make_settings: MakeSettings, embedder: FakeEmbedder, writer: KnowledgeStore
) -> None:
    # Opened before the writer has made anything: it must find the catalog later.
    reader = await KnowledgeStore.open(reader_settings(make_settings, LAG_SECONDS), embedder)
    try:
        assert (await reader.search("default", "velero")).hits == []
        await writer.ingest("default", text=RUNBOOK, document_id="runbook.md")

        async def listed() -> bool:
            page = await reader.list_documents("default")
            return [d.document_id for d in page.documents] == ["runbook.md"]

        async def found() -> bool:
            hits = (await reader.search("default", "velero")).hits
            return [h.document_id for h in hits][:1] == ["runbook.md"]

        seen = await eventually(listed) and await eventually(found)
        await writer.ingest("default", text=RUNBOOK + "More.\n", document_id="other.md")

        async def counted() -> bool:
            infos = await reader.list_collections()
            return [(i.name, i.documents) for i in infos] == [("default", 2)]

        counts_followed = await eventually(counted)
        await writer.delete_document("default", "runbook.md")

        async def gone() -> bool:
            hits = (await reader.search("default", "velero")).hits
            page = await reader.list_documents("default")
            return "runbook.md" not in {h.document_id for h in hits} | {
                d.document_id for d in page.documents
            }

        deletion_followed = await eventually(gone)
    finally:
        reader.close()

    assert seen
    assert counts_followed  # the listings memo is not stuck at the version it first read
    assert deletion_followed


async def test_a_read_asking_for_a_writes_version_sees_it_at_once(
    make_settings: MakeSettings, embedder: FakeEmbedder, writer: KnowledgeStore
) -> None:
    await writer.ingest("default", text="# Intro\n\nNothing here yet.\n", document_id="intro.md")
    reader = await KnowledgeStore.open(reader_settings(make_settings, NEVER_SECONDS), embedder)
    try:
        await reader.search("default", "velero")  # the table is open, at this version
        ingested = await writer.ingest("default", text=RUNBOOK, document_id="runbook.md")
        committed = ingested.committed
        assert committed is not None
        stale = await reader.search("default", "velero")
        fresh = await reader.search("default", "velero", at_least=committed)
        page = await reader.list_documents("default", at_least=committed)
    finally:
        reader.close()

    assert "runbook.md" not in {hit.document_id for hit in stale.hits}
    assert fresh.hits[0].document_id == "runbook.md"
    assert [d.document_id for d in page.documents] == ["intro.md", "runbook.md"]


async def test_a_read_asking_for_a_new_collections_write_finds_the_collection(
    make_settings: MakeSettings, embedder: FakeEmbedder, writer: KnowledgeStore
) -> None:
    await writer.ingest("default", text=RUNBOOK, document_id="runbook.md")
    reader = await KnowledgeStore.open(reader_settings(make_settings, NEVER_SECONDS), embedder)
    try:
        ingested = await writer.ingest("homelab", text=RUNBOOK, document_id="nas.md")
        assert ingested.committed is not None
        with pytest.raises(NotFound):  # not yet looked for: its lag is long
            await reader.search("homelab", "velero")
        found = await reader.search("homelab", "velero", at_least=ingested.committed)
    finally:
        reader.close()

    assert found.hits[0].document_id == "nas.md"


async def test_a_reader_that_cannot_see_a_version_within_its_lag_answers_unavailable(
    make_settings: MakeSettings, embedder: FakeEmbedder, writer: KnowledgeStore
) -> None:
    ingested = await writer.ingest("default", text=RUNBOOK, document_id="runbook.md")
    assert ingested.committed is not None
    ahead = Committed(ingested.committed.table, ingested.committed.version + 100)
    reader = await KnowledgeStore.open(reader_settings(make_settings, LAG_SECONDS), embedder)
    try:
        with pytest.raises(Unavailable, match="ask the writer"):
            await reader.search("default", "velero", at_least=ahead)
    finally:
        reader.close()


async def test_a_reader_follows_a_reindex_and_a_deleted_collection_without_restart(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    first = make_embedder(64, "model-a")
    writer = await KnowledgeStore.open(make_settings(retrieval_role="writer"), first)
    await writer.ingest("homelab", text=RUNBOOK, document_id="nas.md")
    reader = await KnowledgeStore.open(reader_settings(make_settings, LAG_SECONDS), first)
    rebuilt = await KnowledgeStore.open(make_settings(retrieval_role="writer"), first)
    try:
        before = await reader.search("homelab", "velero")
        result = await rebuilt.reindex("homelab")
        assert result.committed is not None
        switched_table = result.committed.table

        async def switched() -> bool:
            entry = reader._catalog.entry("homelab")  # which table it reads
            found = await reader.search("homelab", "velero")
            return entry is not None and entry.table == switched_table and bool(found.hits)

        followed_switch = await eventually(switched)
        await rebuilt.delete_collection("homelab")

        async def deleted() -> bool:
            try:
                await reader.search("homelab", "velero")
            except NotFound:
                return True
            return False

        followed_deletion = await eventually(deleted)
        listed = await reader.list_collections()
    finally:
        reader.close()
        rebuilt.close()
        writer.close()

    assert before.hits[0].document_id == "nas.md"
    assert switched_table != "homelab"
    assert followed_switch
    assert followed_deletion
    assert listed == []


async def test_a_reader_reads_conversations_the_writer_keeps(make_settings: MakeSettings) -> None:
    reader = await ConversationStore.open(reader_settings(make_settings, LAG_SECONDS))
    writer = await ConversationStore.open(make_settings(retrieval_role="writer"))
    try:
        with pytest.raises(NotFound):
            await reader.get("c1")
        await writer.append("c1", [StoredTurn("user", "How do I restore?")], create=True)

        async def seen(turns: int) -> bool:
            try:
                return len((await reader.get("c1")).turns) == turns
            except NotFound:
                return False

        followed = await eventually(lambda: seen(1))
        await writer.append("c1", [StoredTurn("assistant", "From the backup.")])
        # The reader keeps no conversation in memory: the writer's next revision reaches it.
        followed_again = await eventually(lambda: seen(2))
        with pytest.raises(Conflict, match="reader"):
            await reader.append("c1", [StoredTurn("user", "And then?")])
    finally:
        reader.close()
        writer.close()

    assert followed
    assert followed_again


async def test_a_reader_answers_by_keywords_while_a_reindex_to_a_new_model_runs_elsewhere(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    writer = await KnowledgeStore.open(
        make_settings(retrieval_role="writer"), make_embedder(64, "model-a")
    )
    await writer.ingest("homelab", text=RUNBOOK, document_id="nas.md")
    # The embedding service serves the next model already; the writer has not switched yet.
    reader = await KnowledgeStore.open(
        reader_settings(make_settings, LAG_SECONDS), make_embedder(32, "model-b")
    )
    try:
        with pytest.raises(Conflict):  # no reindex under way: the mismatch is the answer
            await reader.search("homelab", "velero")
        db = await lancedb.connect_async(make_settings().lancedb_uri)
        await db.create_table("homelab.1", schema=table_schema(32))  # the writer's shadow
        during = await reader.search("homelab", "velero")
    finally:
        reader.close()
        writer.close()

    assert during.mode is SearchMode.TEXT
    assert during.hits[0].document_id == "nas.md"


async def test_a_writer_with_readers_leaves_a_retired_table_for_their_searches(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> None:
    writer = await KnowledgeStore.open(make_settings(retrieval_role="writer"), embedder)
    await writer.ingest("homelab", text=RUNBOOK, document_id="nas.md")
    db = await lancedb.connect_async(make_settings().lancedb_uri)
    try:
        await writer.delete_collection("homelab")
        # Time for a drop that does not wait: no search of this process reads the table.
        await asyncio.sleep(0.5)
        names = (await db.list_tables()).tables
    finally:
        writer.close()

    assert "homelab" in names  # readers elsewhere may still be searching it
