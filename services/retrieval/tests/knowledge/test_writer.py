"""Writes to a collection: concurrent ingests committed together, each document whole."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import lancedb
import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    IngestOutcome,
    KnowledgeStore,
)
from bruno_retrieval.knowledge.keywords import text_index

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


async def test_concurrent_ingests_are_committed_together_and_each_is_whole(
    store: KnowledgeStore,
) -> None:
    texts = {f"d{n}": "\n\n".join(f"Doc {n} part {p} velero." for p in range(6)) for n in range(30)}

    results = await asyncio.gather(
        *(store.ingest("default", text=text, document_id=doc) for doc, text in texts.items())
    )

    assert {r.outcome for r in results} == {IngestOutcome.CREATED}
    page = await store.list_documents("default", limit=100)
    assert {d.document_id: d.chunks for d in page.documents} == {
        r.document_id: r.chunks for r in results
    }


async def test_a_caller_giving_up_does_not_strand_the_documents_committed_with_its_own(
    store: KnowledgeStore,
) -> None:
    await store.ingest("default", text="Seed velero.", document_id="seed")
    lock = store._writer.lock("default")
    await lock.acquire()  # a commit in progress: the next two documents wait together
    first = asyncio.create_task(store.ingest("default", text="Alpha velero.", document_id="a"))
    second = asyncio.create_task(store.ingest("default", text="Beta velero.", document_id="b"))
    for _ in range(1000):  # until both wait in the queue
        if len(store._writer._commits["default"]._queue) == 2:
            break
        await asyncio.sleep(0.01)
    lock.release()
    for _ in range(1000):  # one commit has taken both
        if not store._writer._commits["default"]._queue:
            break
        await asyncio.sleep(0)
    first.cancel()  # its caller's deadline passed mid-commit

    result = await asyncio.wait_for(second, timeout=10)

    assert result.outcome is IngestOutcome.CREATED
    with pytest.raises(asyncio.CancelledError):
        await first
    await store.wait_for_background()
    page = await store.list_documents("default", limit=10)
    assert {d.document_id for d in page.documents} == {"seed", "a", "b"}


async def test_the_same_document_ingested_twice_at_once_ends_as_one_version(
    store: KnowledgeStore,
) -> None:
    first, second = await asyncio.gather(
        store.ingest("default", text="Version one velero.", document_id="d"),
        store.ingest("default", text="Version two velero.", document_id="d"),
    )

    assert {first.outcome, second.outcome} <= {IngestOutcome.CREATED, IngestOutcome.REPLACED}
    hits = (await store.search("default", "velero version", top_k=10)).hits
    assert len({hit.content_hash for hit in hits}) == 1


async def test_a_document_of_many_chunks_is_folded_into_the_keyword_index_without_more_writes(
    store: KnowledgeStore, make_settings: MakeSettings
) -> None:
    await store.ingest("default", text="Seed velero.", document_id="seed")  # builds the index
    long = "\n\n".join(
        f"Part {p} of the runbook: restart node{p} after patching." for p in range(300)
    )

    result = await store.ingest("default", text=long, document_id="long")
    await store.wait_for_background()

    table = await (await lancedb.connect_async(make_settings().lancedb_uri)).open_table("default")
    index = await text_index(table)
    assert index is not None
    stats = await table.index_stats(index.name)
    assert result.chunks >= 100
    assert stats is not None
    assert stats.num_unindexed_rows == 0
