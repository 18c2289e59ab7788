"""Pages on chunks: a document sent with the segments of its paged original (a PDF) gives each
chunk the page it starts on, searches answer it, and tables from before pages migrate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lancedb
import pytest

from bruno_core import InvalidInput, LimitExceeded
from bruno_core.contract import MAX_DOCUMENT_PAGES
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import IngestOutcome, KnowledgeStore, SearchMode, TextSegment
from bruno_retrieval.knowledge.pages import check_segments, pages_at

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeSettings = Callable[..., RetrievalSettings]

PAGES = [
    "# Installation\n\nMount the router on the rack rails with four M6 screws.",
    "## Power\n\nThe router draws 45 watts at full load from its 12 volt input.",
    "## Reset\n\nHold the pinhole button for ten seconds to restore factory settings.",
]


def paged(pages: list[str]) -> tuple[str, list[TextSegment]]:
    """The text of ``pages`` joined as the extractor joins them, and their segments."""
    segments, offset = [], 0
    for number, page in enumerate(pages, start=1):
        segments.append(TextSegment(start=offset, page=number))
        offset += len(page) + 2
    return "\n\n".join(pages), segments


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_each_fact_is_found_on_its_own_page(store: KnowledgeStore, mode: SearchMode) -> None:
    text, segments = paged(PAGES)
    await store.ingest("default", text=text, document_id="router.pdf", segments=segments)

    found = {}
    for fact in ("M6 screws rack rails", "45 watts 12 volt", "pinhole button factory"):
        best = (await store.search("default", fact, top_k=1, mode=mode)).hits[0]
        found[fact] = best.page

    assert found == {"M6 screws rack rails": 1, "45 watts 12 volt": 2, "pinhole button factory": 3}


async def test_a_document_without_segments_has_no_pages(store: KnowledgeStore) -> None:
    await store.ingest("default", text="\n\n".join(PAGES), document_id="router.md")

    hits = (await store.search("default", "router", top_k=10)).hits

    assert hits
    assert {hit.page for hit in hits} == {None}


def test_a_chunk_gets_the_page_it_starts_on() -> None:
    segments = [TextSegment(0, 3), TextSegment(100, 4), TextSegment(250, 6)]

    assert pages_at([0, 99, 100, 180, 250, 999], segments) == [3, 3, 4, 4, 6, 6]
    assert pages_at([0, 5], []) == [None, None]


@pytest.mark.parametrize(
    ("segments", "problem"),
    [
        ([TextSegment(5, 1)], "offset 0"),
        ([TextSegment(0, 1), TextSegment(0, 2)], "strictly increase"),
        ([TextSegment(0, 1), TextSegment(10_000, 2)], "past the end"),
        ([TextSegment(0, 0)], "1-based"),
        ([TextSegment(0, MAX_DOCUMENT_PAGES + 1)], "at most"),
    ],
)
async def test_segments_that_do_not_fit_the_text_are_refused_and_nothing_is_written(
    store: KnowledgeStore, segments: list[TextSegment], problem: str
) -> None:
    text, _ = paged(PAGES)

    with pytest.raises(InvalidInput, match=problem):
        await store.ingest("default", text=text, document_id="router.pdf", segments=segments)

    assert (await store.list_documents("default")).documents == []


async def test_the_same_text_with_pages_replaces_a_version_without_them(
    store: KnowledgeStore, embedder: FakeEmbedder
) -> None:
    text, segments = paged(PAGES)
    await store.ingest("default", text=text, document_id="router.pdf")

    with_pages = await store.ingest(
        "default", text=text, document_id="router.pdf", segments=segments
    )
    again = await store.ingest("default", text=text, document_id="router.pdf", segments=segments)
    calls = embedder.document_calls
    without = await store.ingest("default", text=text, document_id="router.pdf")

    assert (with_pages.outcome, again.outcome) == (IngestOutcome.REPLACED, IngestOutcome.UNCHANGED)
    # Sending the text again without its pages keeps them, and embeds nothing.
    assert without.outcome is IngestOutcome.UNCHANGED
    assert embedder.document_calls == calls
    best = (await store.search("default", "pinhole button factory", top_k=1)).hits[0]
    assert best.page == 3


async def test_a_table_from_before_pages_gets_the_column_and_its_chunks_answer_no_page(
    make_settings: MakeSettings, make_embedder: Callable[..., FakeEmbedder]
) -> None:
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    embedder = make_embedder()
    store = await KnowledgeStore.open(settings, embedder)
    await store.ingest("default", text="Velero snapshots volumes nightly.", document_id="old")
    store.close()
    db = await lancedb.connect_async(settings.lancedb_uri)
    table: Any = await db.open_table("default")
    await table.drop_columns(["page"])
    assert "page" not in (await table.schema()).names
    table.close()

    reopened = await KnowledgeStore.open(settings, embedder)
    old = (await reopened.search("default", "velero snapshots", top_k=1)).hits[0]
    text, segments = paged(PAGES)
    await reopened.ingest("default", text=text, document_id="router.pdf", segments=segments)
    new = (await reopened.search("default", "45 watts 12 volt", top_k=1)).hits[0]
    reopened.close()

    assert (old.document_id, old.page) == ("old", None)
    assert (new.document_id, new.page) == ("router.pdf", 2)


async def test_a_reader_reaching_a_table_from_before_pages_reads_it_as_no_page_and_writes_nothing(
    make_settings: MakeSettings, make_embedder: Callable[..., FakeEmbedder]
) -> None:
    # During an upgrade a reader can open a collection before the new writer has given its
    # table the column: it must answer "no page", not fail, and leave the migration to the
    # writer.
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    embedder = make_embedder()
    writer = await KnowledgeStore.open(
        settings.model_copy(update={"retrieval_role": "writer"}), embedder
    )
    await writer.ingest("default", text="Velero snapshots volumes nightly.", document_id="old")
    writer.close()
    db = await lancedb.connect_async(settings.lancedb_uri)
    table: Any = await db.open_table("default")
    await table.drop_columns(["page"])
    version = await table.version()

    reader = await KnowledgeStore.open(
        settings.model_copy(
            update={"retrieval_role": "reader", "retrieval_read_consistency_seconds": 300.0}
        ),
        embedder,
    )
    found = {
        mode: (await reader.search("default", "velero snapshots", top_k=1, mode=mode)).hits[0]
        for mode in SearchMode
    }
    listed = (await reader.list_documents("default")).documents
    await table.checkout_latest()
    untouched = (await table.version(), "page" in (await table.schema()).names)

    # The new writer migrates the table; the reader, asked for that write, reads its page.
    writer = await KnowledgeStore.open(
        settings.model_copy(update={"retrieval_role": "writer"}), embedder
    )
    text, segments = paged(PAGES)
    router = await writer.ingest("default", text=text, document_id="router.pdf", segments=segments)
    writer.close()
    after = await reader.search("default", "45 watts 12 volt", top_k=1, at_least=router.committed)
    reader.close()
    table.close()

    assert {mode: (hit.document_id, hit.page) for mode, hit in found.items()} == dict.fromkeys(
        SearchMode, ("old", None)
    )
    assert [document.document_id for document in listed] == ["old"]
    assert untouched == (version, False)
    assert (after.hits[0].document_id, after.hits[0].page) == ("router.pdf", 2)


def test_more_segments_than_the_contract_allows_are_refused() -> None:
    segments = [TextSegment(start, 1) for start in range(MAX_DOCUMENT_PAGES + 1)]

    with pytest.raises(LimitExceeded, match="at most"):
        check_segments(segments, MAX_DOCUMENT_PAGES + 10)


async def test_a_reindex_keeps_every_chunk_on_its_page(
    make_settings: MakeSettings, make_embedder: Callable[..., FakeEmbedder]
) -> None:
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    first = await KnowledgeStore.open(settings, make_embedder(64, "model-a"))
    text, segments = paged(PAGES)
    await first.ingest("manuals", text=text, document_id="router.pdf", segments=segments)
    first.close()
    second = await KnowledgeStore.open(settings, make_embedder(32, "model-b"))

    await second.reindex("manuals")
    best = (await second.search("manuals", "pinhole button factory", top_k=1)).hits[0]
    second.close()

    assert (best.document_id, best.page) == ("router.pdf", 3)
