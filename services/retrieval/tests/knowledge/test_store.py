"""The knowledge store's documents: ingest, search, list and delete, against a real LanceDB
in tmp_path and a deterministic embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from bruno_core import Conflict, InvalidInput, NotFound, Unavailable
from bruno_core.contract import content_hash
from bruno_retrieval.chunking import max_chunk_chars
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    IngestOutcome,
    KnowledgeStore,
    SearchHit,
    SearchMode,
    SearchResult,
    reads,
)

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


RUNBOOK = (
    "# Backups\n\n"
    "Velero snapshots every persistent volume at night. Snapshots are kept for thirty days.\n\n"
    "## Restore\n\n"
    "To restore a namespace, pick the latest snapshot and run velero restore create. "
    "Check that the pods come back and the volumes are mounted.\n\n"
    "# Certificates\n\n"
    "Cert-manager renews certificates thirty days before they expire.\n"
)


def versioned_text(version: int, paragraphs: int = 8) -> str:
    """A document whose every chunk names its version, so a mix of versions is visible."""
    return "\n\n".join(
        f"Paragraph {n} of release{version}: the cluster upgrade notes say release{version} "
        f"changes ingress routing and storage classes."
        for n in range(paragraphs)
    )


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_ingested_document_is_found_by_search(
    store: KnowledgeStore, mode: SearchMode
) -> None:
    await store.ingest("default", text=RUNBOOK, document_id="runbook.md", title="Runbook")
    await store.ingest("default", text="Grafana dashboards show latency.", document_id="other")

    result = await store.search("default", "velero restore namespace snapshot", top_k=3, mode=mode)

    assert result.mode is mode
    best = result.hits[0]
    assert (best.document_id, best.title, best.heading_path) == (
        "runbook.md",
        "Runbook",
        "Backups > Restore",
    )
    assert "velero restore create" in best.text
    assert [hit.score for hit in result.hits] == sorted(
        (hit.score for hit in result.hits), reverse=True
    )


async def test_a_hybrid_search_starts_its_keyword_leg_once_the_question_is_on_its_way(
    store: KnowledgeStore, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grpc.aio call is sent by a task it schedules, as the fake embedder's work waits one turn
    # of the loop: the keyword leg, scheduled before it, must let it go first, else the
    # question reaches the embedding service only after the keyword query is built.
    await store.ingest("default", text=RUNBOOK, document_id="runbook.md")
    text_hits = reads.text_hits
    embeddings_begun: list[int] = []

    async def keyword_leg(*args: Any, **kwargs: Any) -> list[SearchHit]:
        embeddings_begun.append(len(embedder.calls))
        return await text_hits(*args, **kwargs)

    monkeypatch.setattr(reads, "text_hits", keyword_leg)
    before = len(embedder.calls)

    result = await store.search("default", "velero restore", top_k=3, mode=SearchMode.HYBRID)

    assert result.mode is SearchMode.HYBRID
    assert result.hits
    assert embeddings_begun == [before + 1]


async def test_ingest_reports_created_and_stores_every_chunk(store: KnowledgeStore) -> None:
    result = await store.ingest("default", text=RUNBOOK, document_id="runbook.md")

    assert result.outcome is IngestOutcome.CREATED
    assert result.chunks > 1
    assert result.content_hash == content_hash(RUNBOOK)
    page = await store.list_documents("default", limit=10)
    assert [(d.document_id, d.chunks) for d in page.documents] == [("runbook.md", result.chunks)]


async def test_reingesting_same_text_is_a_noop(
    store: KnowledgeStore, embedder: FakeEmbedder
) -> None:
    first = await store.ingest("default", text=RUNBOOK, document_id="runbook.md")
    before = await store.list_documents("default", limit=10)
    calls = len(embedder.calls)

    again = await store.ingest("default", text=RUNBOOK, document_id="runbook.md", title="New")

    assert again.outcome is IngestOutcome.UNCHANGED
    assert (again.chunks, again.content_hash) == (first.chunks, first.content_hash)
    assert len(embedder.calls) == calls
    assert await store.list_documents("default", limit=10) == before


async def test_changed_text_replaces_every_old_chunk(store: KnowledgeStore) -> None:
    old = await store.ingest("default", text=versioned_text(1, paragraphs=8), document_id="notes")
    new = await store.ingest("default", text=versioned_text(2, paragraphs=2), document_id="notes")

    assert new.outcome is IngestOutcome.REPLACED
    assert new.chunks < old.chunks
    for mode in SearchMode:
        result = await store.search("default", "release1 upgrade notes", top_k=50, mode=mode)
        assert result.hits, mode
        assert all("release1" not in hit.text for hit in result.hits)
        assert {hit.chunk_index for hit in result.hits} == set(range(new.chunks))
    page = await store.list_documents("default", limit=10)
    assert [(d.chunks, d.content_hash) for d in page.documents] == [(new.chunks, new.content_hash)]


async def test_embedding_failure_writes_nothing(
    store: KnowledgeStore, embedder: FakeEmbedder
) -> None:
    embedder.failing = True

    with pytest.raises(Unavailable):
        await store.ingest("default", text=RUNBOOK, document_id="runbook.md")

    embedder.failing = False
    assert (await store.list_documents("default", limit=10)).documents == []
    assert (await store.search("default", "velero", top_k=5, mode=SearchMode.TEXT)).hits == []


async def test_embedding_failure_during_a_replace_keeps_the_previous_version(
    store: KnowledgeStore, embedder: FakeEmbedder
) -> None:
    old = await store.ingest("default", text=versioned_text(1), document_id="notes")
    embedder.failing = True

    with pytest.raises(Unavailable):
        await store.ingest("default", text=versioned_text(2), document_id="notes")

    embedder.failing = False
    result = await store.search("default", "release1", top_k=50, mode=SearchMode.TEXT)
    assert len(result.hits) == old.chunks
    assert all("release1" in hit.text for hit in result.hits)
    again = await store.ingest("default", text=versioned_text(1), document_id="notes")
    assert again.outcome is IngestOutcome.UNCHANGED


async def test_deleted_document_is_gone_from_every_search(store: KnowledgeStore) -> None:
    created = await store.ingest("default", text=RUNBOOK, document_id="runbook.md")
    await store.ingest("default", text="Velero is also mentioned here.", document_id="keep")

    assert (await store.delete_document("default", "runbook.md")).chunks == created.chunks

    for mode in SearchMode:
        result = await store.search("default", "velero snapshot restore", top_k=50, mode=mode)
        assert {hit.document_id for hit in result.hits} == {"keep"}, mode
    with pytest.raises(NotFound):
        await store.delete_document("default", "runbook.md")


async def test_deleting_in_an_unknown_collection_is_not_found(store: KnowledgeStore) -> None:
    with pytest.raises(NotFound):
        await store.delete_document("nowhere", "runbook.md")


async def test_list_documents_pages_through_ids_in_order(store: KnowledgeStore) -> None:
    ids = ["d7", "a1", "c3", "b2", "g9", "e5", "f6"]
    for document_id in ids:
        await store.ingest("notes", text=f"Text of {document_id}.", document_id=document_id)

    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await store.list_documents("notes", limit=3, cursor=cursor)
        seen += [document.document_id for document in page.documents]
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids)
    assert pages == 3


async def test_list_documents_summarises_each_document(store: KnowledgeStore) -> None:
    before = datetime.now(UTC)
    created = await store.ingest(
        "default",
        text=RUNBOOK,
        document_id="runbook.md",
        title="Runbook",
        source="git://ops/runbook.md",
        metadata={"team": "platform", "lang": "en"},
    )

    [summary] = (await store.list_documents("default", limit=10)).documents

    assert (summary.title, summary.source, summary.chunks, summary.content_hash) == (
        "Runbook",
        "git://ops/runbook.md",
        created.chunks,
        created.content_hash,
    )
    assert summary.metadata == {"team": "platform", "lang": "en"}
    assert before <= summary.ingested_at <= datetime.now(UTC)


async def test_search_hits_carry_the_document_metadata(store: KnowledgeStore) -> None:
    await store.ingest("default", text=RUNBOOK, document_id="r", metadata={"team": "platform"})

    result = await store.search("default", "certificates", top_k=1, mode=SearchMode.VECTOR)

    assert result.hits[0].metadata == {"team": "platform"}


async def test_empty_document_id_is_derived_from_the_content_hash(store: KnowledgeStore) -> None:
    result = await store.ingest("default", text=RUNBOOK)

    assert result.document_id == content_hash(RUNBOOK)[:16]
    again = await store.ingest("default", text=RUNBOOK)
    assert (again.document_id, again.outcome) == (result.document_id, IngestOutcome.UNCHANGED)


async def test_collections_are_separate(store: KnowledgeStore) -> None:
    await store.ingest("team-a", text=RUNBOOK, document_id="runbook.md")

    assert (await store.search("default", "velero", top_k=5)).hits == []
    assert (await store.search("team-a", "velero", top_k=5)).hits


async def test_unknown_named_collection_is_not_found_but_default_starts_empty(
    store: KnowledgeStore,
) -> None:
    assert (await store.search("", "anything", top_k=5)).hits == []
    assert (await store.list_documents("default", limit=5)).documents == []
    with pytest.raises(NotFound):
        await store.search("missing", "anything", top_k=5)
    with pytest.raises(NotFound):
        await store.list_documents("missing", limit=5)


@pytest.mark.parametrize("name", ["Default", "a" * 64, "-lead", "has space", "../up", "ü"])
async def test_invalid_collection_names_are_rejected(store: KnowledgeStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        await store.ingest(name, text="text", document_id="d")
    with pytest.raises(InvalidInput):
        await store.search(name, "text", top_k=1)


@pytest.mark.parametrize("document_id", ["a" * 201, "line\nbreak", " padded", "nul\x00", "it's"])
async def test_invalid_document_ids_are_rejected(store: KnowledgeStore, document_id: str) -> None:
    with pytest.raises(InvalidInput):
        await store.ingest("default", text="text", document_id=document_id)


@pytest.mark.parametrize(
    "document_id",
    ["..", ".", "../collections/default", "docs/../x", "docs/./x", "a//b", "/a", "a/"],
)
async def test_a_document_id_that_could_address_something_else_is_refused(
    store: KnowledgeStore, document_id: str
) -> None:
    with pytest.raises(InvalidInput, match="segments"):
        await store.ingest("default", text="text", document_id=document_id)
    with pytest.raises(InvalidInput, match="segments"):
        await store.delete_document("default", document_id)
    assert (await store.list_documents("default")).documents == []


async def test_a_path_like_document_id_is_stored_and_deleted_as_itself(
    store: KnowledgeStore,
) -> None:
    await store.ingest("default", text="Restore the volume.", document_id="docs/backups/restore.md")
    await store.ingest("default", text="Back up the volume.", document_id="docs/backups")

    assert (await store.delete_document("default", "docs/backups/restore.md")).chunks == 1
    page = await store.list_documents("default")
    assert [document.document_id for document in page.documents] == ["docs/backups"]


async def test_blank_text_and_blank_query_are_rejected(store: KnowledgeStore) -> None:
    with pytest.raises(InvalidInput):
        await store.ingest("default", text=" \n ", document_id="d")
    with pytest.raises(InvalidInput):
        await store.search("default", "  ", top_k=5)


async def test_an_embedding_model_of_another_dimension_is_a_conflict(
    make_settings: MakeSettings, make_embedder: Callable[[int], FakeEmbedder]
) -> None:
    first = await KnowledgeStore.open(make_settings(), make_embedder(64))
    await first.ingest("default", text=RUNBOOK, document_id="runbook.md")
    first.close()
    second = await KnowledgeStore.open(make_settings(), make_embedder(32))

    with pytest.raises(Conflict):
        await second.ingest("default", text="Other text.", document_id="other")
    with pytest.raises(Conflict):
        await second.search("default", "velero", top_k=5, mode=SearchMode.VECTOR)
    assert (await second.search("default", "velero", top_k=5, mode=SearchMode.TEXT)).hits
    second.close()


async def test_documents_survive_reopening_the_store(
    make_settings: MakeSettings, make_embedder: Callable[[int], FakeEmbedder]
) -> None:
    first = await KnowledgeStore.open(make_settings(), make_embedder(64))
    await first.ingest("default", text=RUNBOOK, document_id="runbook.md")
    first.close()
    embedder = make_embedder(64)
    second = await KnowledgeStore.open(make_settings(), embedder)

    again = await second.ingest("default", text=RUNBOOK, document_id="runbook.md")
    hits = (await second.search("default", "velero restore", top_k=1)).hits

    assert again.outcome is IngestOutcome.UNCHANGED
    assert embedder.document_calls == 0
    assert hits[0].document_id == "runbook.md"
    second.close()


async def test_concurrent_searches_during_replaces_never_mix_versions(
    store: KnowledgeStore,
) -> None:
    await store.ingest("default", text="Unrelated ingress notes.", document_id="bystander")
    first = await store.ingest("default", text=versioned_text(0), document_id="notes")
    chunk_counts = {"release0": first.chunks}
    replaces_done = asyncio.Event()
    results: list[SearchResult] = []

    async def search_until_done(mode: SearchMode) -> None:
        while not replaces_done.is_set():
            query = "release upgrade notes ingress routing storage"
            results.append(await store.search("default", query, top_k=50, mode=mode))

    async def replace_several_times() -> None:
        for version in range(1, 7):
            # Alternate lengths so replaces both add and remove chunks.
            paragraphs = 8 if version % 2 else 3
            text = versioned_text(version, paragraphs)
            result = await store.ingest("default", text=text, document_id="notes")
            chunk_counts[f"release{version}"] = result.chunks
            await asyncio.sleep(0)
        replaces_done.set()

    await asyncio.gather(
        replace_several_times(), *(search_until_done(mode) for mode in SearchMode for _ in range(2))
    )

    versions_seen: set[frozenset[str]] = set()
    for result in results:
        hits = [hit for hit in result.hits if hit.document_id == "notes"]
        versions = frozenset(
            word
            for hit in hits
            for word in hit.text.replace(":", " ").split()
            if word.startswith("release") and word[7:].isdigit()
        )
        hashes = {hit.content_hash for hit in hits}
        # Exactly one version: never a mix, and never a moment without the document.
        assert len(versions) == 1, versions
        assert len(hashes) == 1
        # All of that version's chunks, not a part of them.
        [version] = versions
        assert sorted(hit.chunk_index for hit in hits) == list(range(chunk_counts[version]))
        versions_seen.add(versions)
    # The searches really ran while the document changed underneath them.
    assert len(versions_seen) >= 2


@pytest.mark.parametrize("mode", [SearchMode.TEXT, SearchMode.HYBRID])
async def test_a_chunk_longer_than_todays_ceiling_is_cut_in_search_answers(
    make_settings: Callable[..., RetrievalSettings], embedder: FakeEmbedder, mode: SearchMode
) -> None:
    # A chunk stored under a larger budget (or before the ceiling existed) is longer than any
    # chunk made now; the search answer still holds at most max_chunk_chars of it.
    wide = await KnowledgeStore.open(
        make_settings(chunk_size_tokens=8192, chunk_overlap_tokens=0), embedder
    )
    await wide.ingest("default", text="velero " + "a" * 60_000, document_id="blob")
    wide.close()
    settings = make_settings()
    store = await KnowledgeStore.open(settings, embedder)
    try:
        found = await store.search("default", "velero", mode=mode)
    finally:
        store.close()

    [hit] = found.hits
    assert len(hit.text) == max_chunk_chars(settings.chunk_size_tokens)
    assert hit.text.startswith("velero aaa")
    assert hit.text.endswith("a…")


async def test_collection_counts_follow_every_write_though_they_are_counted_once_per_version(
    store: KnowledgeStore,
) -> None:
    async def counts() -> tuple[int, int]:
        info = await store.collection_info("default")
        return info.documents, info.chunks

    await store.ingest("default", text=RUNBOOK, document_id="runbook.md")
    first = await counts()
    assert await counts() == first
    await store.ingest("default", text="Grafana dashboards show latency.", document_id="other")
    assert await counts() == (2, first[1] + 1)
    await store.delete_document("default", "runbook.md")
    assert await counts() == (1, 1)
    await store.delete_collection("default")
    await store.ingest("default", text="A new default collection.", document_id="new")
    assert await counts() == (1, 1)
    assert [c.documents for c in await store.list_collections()] == [1]


async def test_a_page_of_documents_follows_every_write_though_it_is_read_once_per_version(
    store: KnowledgeStore,
) -> None:
    async def ids() -> list[str]:
        page = await store.list_documents("default", limit=10)
        return [document.document_id for document in page.documents]

    await store.ingest("default", text=RUNBOOK, document_id="runbook.md")
    assert await ids() == await ids() == ["runbook.md"]
    await store.ingest("default", text="Grafana dashboards show latency.", document_id="b")
    assert await ids() == ["b", "runbook.md"]
    await store.delete_document("default", "b")
    assert await ids() == ["runbook.md"]
