"""Collections, filters, embedding-model safety, reindexing, group commits and the ANN index,
against a real LanceDB in tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lancedb
import pyarrow as pa
import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict, InvalidInput, NotFound
from bruno_retrieval.store import (
    CATALOG_TABLE,
    AnnConfig,
    AnnIndex,
    Fusion,
    FusionConfig,
    IngestOutcome,
    KnowledgeStore,
    SearchHit,
    SearchMode,
    filter_terms,
    fuse,
)

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]


@pytest.fixture
async def tagged(store: KnowledgeStore) -> KnowledgeStore:
    await store.ingest(
        "default",
        text="Velero restores volumes from the nightly snapshot.",
        document_id="velero.md",
        title="Velero",
        source="runbooks/velero.md",
        metadata={"team": "ops", "tags": "backup, k8s"},
    )
    await store.ingest(
        "default",
        text="Velero schedules are defined per namespace.",
        document_id="schedules.md",
        title="Schedules",
        source="runbooks/schedules.md",
        metadata={"team": "dev's", "tags": "k8s"},
    )
    return store


@pytest.mark.parametrize("mode", list(SearchMode))
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"team": "ops"}, ["velero.md"]),
        ({"team": "dev's"}, ["schedules.md"]),
        ({"tags": "backup"}, ["velero.md"]),
        ({"tags": "k8s"}, ["schedules.md", "velero.md"]),
        ({"tags": "backup, k8s"}, ["velero.md"]),
        ({"source": "runbooks/schedules.md"}, ["schedules.md"]),
        ({"title": "Velero"}, ["velero.md"]),
        ({"document_id": "velero.md", "tags": "k8s"}, ["velero.md"]),
        ({"team": "ops", "tags": "nope"}, []),
        ({"team": "op"}, []),
        ({"missing": "x"}, []),
    ],
)
async def test_filters_keep_only_matching_documents_in_every_mode(
    tagged: KnowledgeStore, mode: SearchMode, filters: dict[str, str], expected: list[str]
) -> None:
    result = await tagged.search("default", "velero", top_k=10, mode=mode, filters=filters)

    assert sorted({hit.document_id for hit in result.hits}) == expected


@pytest.mark.parametrize("mode", list(SearchMode))
async def test_a_filter_value_is_matched_literally_whatever_quotes_it_holds(
    tagged: KnowledgeStore, mode: SearchMode
) -> None:
    await tagged.ingest("default", text="Velero quoting notes.", document_id="it\\'s")

    # A value crafted to close the string literal must not widen the filter.
    for value in ("x\\' OR true) --", "x' OR true) --", "x\\"):
        crafted = {"source": "runbooks/velero.md", "document_id": value}
        assert (
            await tagged.search("default", "velero", top_k=5, mode=mode, filters=crafted)
        ).hits == []
    exact = await tagged.search(
        "default", "velero", top_k=5, mode=mode, filters={"document_id": "it\\'s"}
    )
    assert [hit.document_id for hit in exact.hits] == ["it\\'s"]


async def test_bad_filters_are_invalid_input(tagged: KnowledgeStore) -> None:
    for filters in ({"": "x"}, {f"k{n}": "v" for n in range(17)}, {"k\n": "v"}):
        with pytest.raises(InvalidInput):
            await tagged.search("default", "velero", top_k=5, filters=filters)


def test_filter_terms_include_each_item_of_a_comma_separated_value() -> None:
    assert filter_terms({"tags": "a, b", "x": "1"}) == [
        '["tags", "a"]',
        '["tags", "a, b"]',
        '["tags", "b"]',
        '["x", "1"]',
    ]


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
    tmp_path: Path, make_embedder: MakeEmbedder
) -> None:
    uri = str(tmp_path / "lancedb")
    first = await KnowledgeStore.open(uri, make_embedder(64, "model-a"))
    await first.ingest("homelab", text="Velero restore.", document_id="a")
    first.close()

    second = await KnowledgeStore.open(uri, make_embedder(64, "model-a"))

    assert [(c.name, c.embedding_model) for c in await second.list_collections()] == [
        ("homelab", "model-a")
    ]
    second.close()


async def test_another_model_of_the_same_dimension_is_a_conflict_naming_reindex(
    tmp_path: Path, make_embedder: MakeEmbedder
) -> None:
    uri = str(tmp_path / "lancedb")
    first = await KnowledgeStore.open(uri, make_embedder(64, "model-a"))
    await first.ingest("homelab", text="Velero restore.", document_id="a")
    first.close()
    second = await KnowledgeStore.open(uri, make_embedder(64, "model-b"))

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


async def test_reindex_rebuilds_with_the_current_model_and_keeps_every_document(
    tmp_path: Path, make_embedder: MakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "lancedb")
    first = await KnowledgeStore.open(uri, make_embedder(64, "model-a"))
    for n in range(5):
        await first.ingest(
            "homelab",
            text=f"# Note {n}\n\nVelero note {n} about volumes.",
            document_id=f"n{n}",
            metadata={"tags": "ops, k8s"},
        )
    first.close()
    second = await KnowledgeStore.open(uri, make_embedder(32, "model-b"))
    monkeypatch.setattr("bruno_retrieval.store._REINDEX_BATCH", 2)  # rows stream in batches

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
async def notes(tmp_path: Path, make_embedder: MakeEmbedder) -> AsyncIterator[KnowledgeStore]:
    """Five notes in ``default``, embedded by ``model-a`` (64 dimensions)."""
    store = await KnowledgeStore.open(str(tmp_path / "db"), make_embedder(64, "model-a"))
    for n in range(5):
        await store.ingest("default", text=f"Velero note {n} about volumes.", document_id=f"n{n}")
    yield store
    store.close()


def hold_embeddings(
    embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch, *, queries_only: bool = True
) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold ``embedder``'s calls (search queries only, or all) until the second event is set;
    the first is set once a call is being held."""
    holding, released = asyncio.Event(), asyncio.Event()
    embed = embedder.embed

    async def held(
        texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType
    ) -> list[list[float]]:
        if input_type == embedding_pb2.INPUT_TYPE_QUERY or not queries_only:
            holding.set()
            await released.wait()
        return await embed(texts, input_type)

    monkeypatch.setattr(embedder, "embed", held)
    return holding, released


async def test_a_reindex_whose_caller_gives_up_still_switches_over_whole(
    notes: KnowledgeStore, make_embedder: MakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = notes
    new = make_embedder(32, "model-b")
    embedding, released = hold_embeddings(new, monkeypatch, queries_only=False)
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
    tmp_path: Path, make_embedder: MakeEmbedder
) -> None:
    uri = str(tmp_path / "lancedb")
    store = await KnowledgeStore.open(
        uri, make_embedder(64, "model-a"), chunk_size_tokens=32, chunk_overlap_tokens=8
    )
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
    notes: KnowledgeStore, make_embedder: MakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = notes
    new = make_embedder(64, "model-b")
    embedding, released = hold_embeddings(new, monkeypatch)
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


async def test_a_deleted_collection_can_be_created_again_while_a_search_reads_the_old_one(
    store: KnowledgeStore, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.ingest("kb", text="Old velero notes.", document_id="old")
    searching, released = hold_embeddings(embedder, monkeypatch)
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
        patched.setattr("bruno_retrieval.store._ensure_text_index", broken)
        with pytest.raises(OSError, match="disk full"):
            await store.ingest("kb", text="Velero notes.", document_id="a")

    created = await store.ingest("kb", text="Velero notes.", document_id="a")

    assert created.outcome is IngestOutcome.CREATED
    assert (await store.collection_info("kb")).documents == 1


async def test_ingests_waiting_for_a_reindex_land_in_the_new_table(
    tmp_path: Path, make_embedder: MakeEmbedder
) -> None:
    store = await KnowledgeStore.open(str(tmp_path / "db"), make_embedder(64, "model-a"))
    await store.ingest("default", text="Velero first.", document_id="a")
    store._embedder = make_embedder(64, "model-b")

    _, added = await asyncio.gather(
        store.reindex("default"), store.ingest("default", text="Velero second.", document_id="b")
    )

    assert added.outcome is IngestOutcome.CREATED
    info = (await store.list_collections())[0]
    assert (info.documents, info.embedding_model) == (2, "model-b")
    store.close()


async def test_tables_from_before_the_catalog_are_adopted_and_reindexed_for_filters(
    tmp_path: Path, make_embedder: MakeEmbedder
) -> None:
    uri = str(tmp_path / "lancedb")
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
    store = await KnowledgeStore.open(uri, make_embedder(64, "model-a"))

    assert [(c.name, c.embedding_model) for c in await store.list_collections()] == [
        ("default", "")
    ]
    with pytest.raises(Conflict, match="reindex"):
        await store.search("default", "velero", top_k=5, filters={"team": "ops"})
    await store.reindex("default")
    hits = (await store.search("default", "velero", top_k=5, filters={"team": "ops"})).hits
    assert [hit.document_id for hit in hits] == ["old"]
    store.close()


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
    lock = store._write_locks["default"]
    await lock.acquire()  # a commit in progress: the next two documents wait together
    first = asyncio.create_task(store.ingest("default", text="Alpha velero.", document_id="a"))
    second = asyncio.create_task(store.ingest("default", text="Beta velero.", document_id="b"))
    for _ in range(1000):  # until both wait in the queue
        if len(store._pending["default"]) == 2:
            break
        await asyncio.sleep(0.01)
    lock.release()
    for _ in range(1000):  # one commit has taken both
        if not store._pending["default"]:
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


INDEX_TYPES = {AnnIndex.HNSW_SQ: "IvfHnswSq", AnnIndex.IVF_PQ: "IvfPq"}


async def open_indexed(path: Path, embedder: FakeEmbedder, index: AnnIndex) -> KnowledgeStore:
    return await KnowledgeStore.open(
        str(path / "lancedb"),
        embedder,
        chunk_size_tokens=16,
        chunk_overlap_tokens=0,
        ann=AnnConfig(min_rows=300, index=index, nprobes=20, refine_factor=10),
    )


async def fill_past_threshold(store: KnowledgeStore) -> None:
    for n in range(40):
        text = "\n\n".join(
            f"Topic{n} paragraph {p} is about subject{n * 10 + p} and nothing else at all."
            for p in range(10)
        )
        await store.ingest(
            "default", text=text, document_id=f"d{n}", metadata={"parity": str(n % 2)}
        )
    await store.wait_for_background()


async def exact_scores(path: Path, vector: list[float], top_k: int) -> dict[str, float]:
    """Chunk id -> cosine similarity of the exact nearest ``top_k`` (the index bypassed)."""
    db = await lancedb.connect_async(str(path / "lancedb"))
    table = await db.open_table("default")
    rows = await (
        table.query()
        .nearest_to(vector)
        .distance_type("cosine")
        .bypass_vector_index()
        .select(["chunk_id", "_distance"])
        .limit(top_k)
        .to_arrow()
    )
    return {row["chunk_id"]: 1.0 - row["_distance"] for row in rows.to_pylist()}


async def vector_index_type(path: Path) -> str:
    db = await lancedb.connect_async(str(path / "lancedb"))
    table = await db.open_table("default")
    types = [i.index_type for i in await table.list_indices() if i.columns == ["vector"]]
    return types[0] if types else ""


@pytest.mark.parametrize("index", list(AnnIndex))
async def test_past_the_threshold_the_vector_column_gets_the_configured_index(
    index: AnnIndex, tmp_path: Path, embedder: FakeEmbedder
) -> None:
    store = await open_indexed(tmp_path, embedder, index)
    try:
        await fill_past_threshold(store)
        assert (await store.collection_info("default")).chunks >= 300

        assert await vector_index_type(tmp_path) == INDEX_TYPES[index]
        query = "topic17 subject175"
        for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
            hits = (await store.search("default", query, top_k=3, mode=mode)).hits
            assert hits[0].document_id == "d17"
        # Scores are exact cosines, as without the index: quantised distances would shift the
        # fusion and the relevance threshold.
        found = await store.search("default", query, top_k=5, mode=SearchMode.VECTOR)
        (vector,) = await embedder.embed([query], embedding_pb2.INPUT_TYPE_QUERY)
        exact = await exact_scores(tmp_path, vector, 5)
        assert [hit.chunk_id for hit in found.hits] == list(exact)
        assert [hit.score for hit in found.hits] == pytest.approx(list(exact.values()), abs=1e-5)
        # Large answers: the index keeps enough candidates for every row asked for.
        for mode in (SearchMode.VECTOR, SearchMode.HYBRID):
            assert len((await store.search("default", query, top_k=50, mode=mode)).hits) == 50
        # Filters apply before ranking, however few rows pass: half of them, or one document.
        even = await store.search("default", query, top_k=3, filters={"parity": "0"})
        assert len(even.hits) == 3
        assert all(hit.metadata["parity"] == "0" for hit in even.hits)
        one = await store.search(
            "default", query, top_k=3, mode=SearchMode.VECTOR, filters={"document_id": "d4"}
        )
        assert [hit.document_id for hit in one.hits] == ["d4"] * 3
    finally:
        store.close()


async def test_an_index_of_another_kind_is_rebuilt_as_configured_while_searches_go_on(
    tmp_path: Path, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await open_indexed(tmp_path, embedder, AnnIndex.IVF_PQ)
    await fill_past_threshold(first)
    first.close()
    searched_as: list[AnnIndex] = []
    tune = AnnConfig.tune

    def spy(self: AnnConfig, query: Any, index: AnnIndex, limit: int, top_k: int) -> Any:
        searched_as.append(index)
        return tune(self, query, index, limit, top_k)

    monkeypatch.setattr(AnnConfig, "tune", spy)

    # BRUNO_ANN_INDEX changed to hnsw_sq: the first search opens the table, finds IVF-PQ,
    # searches with it and starts the rebuild; searches keep answering throughout.
    reopened = await open_indexed(tmp_path, embedder, AnnIndex.HNSW_SQ)
    query = "topic17 subject175"
    try:
        first_hits = (await reopened.search("default", query, top_k=3)).hits
        assert searched_as[0] is AnnIndex.IVF_PQ
        rebuild = asyncio.ensure_future(reopened.wait_for_background())
        during = []
        while not rebuild.done():
            during.append((await reopened.search("default", query, top_k=3)).hits)
        await rebuild
        after = (await reopened.search("default", query, top_k=3)).hits
    finally:
        reopened.close()

    assert await vector_index_type(tmp_path) == "IvfHnswSq"
    assert searched_as[-1] is AnnIndex.HNSW_SQ
    for hits in [first_hits, *during, after]:
        assert hits[0].document_id == "d17"


@pytest.mark.parametrize(("limit", "top_k"), [(10, 10), (40, 10), (20, 5), (50, 50), (200, 3)])
def test_the_ann_refine_pool_is_refine_factor_times_top_k_however_many_candidates(
    limit: int, top_k: int
) -> None:
    ann = AnnConfig(refine_factor=10)

    refine = ann.refine_for(AnnIndex.IVF_PQ, limit, top_k)

    # At least as many exactly re-ranked rows as a plain top_k search gets, and not a whole
    # candidate's worth more: hybrid's extra candidates must not multiply the rows read.
    assert refine * limit >= 10 * top_k
    assert (refine - 1) * limit < 10 * top_k or refine == 1
    assert ann.refine_for(AnnIndex.IVF_PQ, top_k, top_k) == 10


def test_unless_configured_each_index_kind_re_ranks_its_own_default_pool() -> None:
    ann = AnnConfig()

    assert ann.refine_for(AnnIndex.HNSW_SQ, 10, 10) == 2
    assert ann.refine_for(AnnIndex.IVF_PQ, 10, 10) == 10
    assert AnnConfig(refine_factor=4).refine_for(AnnIndex.HNSW_SQ, 10, 10) == 4


def hit(chunk_id: str, score: float) -> SearchHit:
    return SearchHit(chunk_id, f"{chunk_id}:0", 0, "", "", "", "", score, "h")


@pytest.mark.parametrize("method", list(Fusion))
def test_every_fusion_puts_a_chunk_both_legs_rank_first_on_top(method: Fusion) -> None:
    by_vector = [hit("a", 0.9), hit("b", 0.5), hit("c", 0.1)]
    by_text = [hit("a", 12.0), hit("d", 3.0), hit("b", 1.0)]

    fused = fuse(by_vector, by_text, 3, FusionConfig(method, 0.6))

    assert fused[0].chunk_id == "a:0"
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_the_default_fusion_keeps_the_cosine_scale_plus_a_keyword_bonus() -> None:
    by_vector = [hit("a", 0.8), hit("b", 0.5), hit("c", 0.2)]
    by_text = [hit("b", 9.0), hit("d", 5.0), hit("a", 1.0)]

    fused = {h.chunk_id: h.score for h in fuse(by_vector, by_text, 4)}

    assert fused["a:0"] == pytest.approx(0.92 * 0.8 + 0.08 * 0.0)
    assert fused["b:0"] == pytest.approx(0.92 * 0.5 + 0.08 * 1.0)
    assert fused["c:0"] == pytest.approx(0.92 * 0.2)
    assert fused["d:0"] == pytest.approx(0.92 * 0.2 + 0.08 * 0.5)  # missing: the lowest cosine


def test_minmax_fusion_scores_lie_between_zero_and_one() -> None:
    fused = fuse(
        [hit("a", 0.9), hit("b", 0.2)],
        [hit("c", 7.0), hit("b", 2.0)],
        3,
        FusionConfig(Fusion.MINMAX, 0.6),
    )

    assert fused[0].score == pytest.approx(0.6)  # a: top of the vector leg only
    assert all(0.0 <= h.score <= 1.0 for h in fused)


def test_the_vector_weight_decides_between_legs_that_disagree() -> None:
    by_vector, by_text = [hit("v", 0.9), hit("t", 0.1)], [hit("t", 9.0), hit("v", 1.0)]

    assert fuse(by_vector, by_text, 1, FusionConfig(Fusion.MINMAX, 0.8))[0].chunk_id == "v:0"
    assert fuse(by_vector, by_text, 1, FusionConfig(Fusion.MINMAX, 0.2))[0].chunk_id == "t:0"


def test_a_fusion_weight_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="vector_weight"):
        FusionConfig(Fusion.RRF, 1.5)
