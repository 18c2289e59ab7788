"""The approximate vector index: built past the threshold, searched with exact scores, rebuilt
when its kind changes, and the size of its exact re-ranking pool."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lancedb
import pyarrow as pa
import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    AnnConfig,
    AnnIndex,
    KnowledgeStore,
    SearchMode,
)
from bruno_retrieval.knowledge.ann import VectorIndexes

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


DEFAULT = AnnConfig.from_settings(RetrievalSettings.model_construct())
INDEX_TYPES = {AnnIndex.HNSW_SQ: "IvfHnswSq", AnnIndex.IVF_PQ: "IvfPq"}


async def open_indexed(path: Path, embedder: FakeEmbedder, index: AnnIndex) -> KnowledgeStore:
    settings = RetrievalSettings(
        lancedb_uri=str(path / "lancedb"),
        chunk_size_tokens=16,
        chunk_overlap_tokens=0,
        ann_min_rows=300,
        ann_index=index.value,
        ann_nprobes=20,
        ann_refine_factor=10,
    )
    return await KnowledgeStore.open(settings, embedder)


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
@pytest.mark.slow  # builds vector indexes
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
        (vector,) = (await embedder.embed([query], embedding_pb2.INPUT_TYPE_QUERY)).vectors
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


@pytest.mark.slow  # builds vector indexes
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
    ann = dataclasses.replace(DEFAULT, refine_factor=10)

    refine = ann.refine_for(AnnIndex.IVF_PQ, limit, top_k)

    # At least as many exactly re-ranked rows as a plain top_k search gets, and not a whole
    # candidate's worth more: hybrid's extra candidates must not multiply the rows read.
    assert refine * limit >= 10 * top_k
    assert (refine - 1) * limit < 10 * top_k or refine == 1
    assert ann.refine_for(AnnIndex.IVF_PQ, top_k, top_k) == 10


def test_unless_configured_each_index_kind_re_ranks_its_own_default_pool() -> None:
    ann = DEFAULT

    assert ann.refine_for(AnnIndex.HNSW_SQ, 10, 10) == 2
    assert ann.refine_for(AnnIndex.IVF_PQ, 10, 10) == 10
    assert dataclasses.replace(ann, refine_factor=4).refine_for(AnnIndex.HNSW_SQ, 10, 10) == 4


async def test_with_min_rows_zero_no_index_is_ever_built_not_even_by_the_periodic_optimize(
    tmp_path: Path, embedder: FakeEmbedder
) -> None:
    settings = RetrievalSettings(lancedb_uri=str(tmp_path / "lancedb"), ann_min_rows=0)
    store = await KnowledgeStore.open(settings, embedder)
    try:
        for n in range(21):  # the 20th write starts the periodic optimize
            await store.ingest("default", text=f"Velero note {n}.", document_id=f"n{n}")
        await store.wait_for_background()
    finally:
        store.close()

    assert await vector_index_type(tmp_path) == ""


@pytest.mark.slow  # builds a vector index
async def test_a_build_preempted_by_a_compaction_from_another_handle_is_done_again(
    tmp_path: Path,
) -> None:
    db = await lancedb.connect_async(str(tmp_path / "lancedb"))
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 8))])
    table: Any = await db.create_table("default", schema=schema)  # lancedb's close() is untyped
    for batch in range(30):  # thirty fragments for the compaction to rewrite
        rows = [{"vector": [float(batch), float(n), *([1.0] * 6)]} for n in range(10)]
        await table.add(pa.Table.from_pylist(rows, schema=schema))
    compactor: Any = await db.open_table("default")
    await compactor.optimize()  # committed after `table` last read the version
    compactor.close()
    indexes = VectorIndexes(dataclasses.replace(DEFAULT, min_rows=1), BackgroundTasks())
    try:
        await indexes.build(table)
    finally:
        table.close()

    assert await vector_index_type(tmp_path) == INDEX_TYPES[DEFAULT.index]
