"""A model per collection: each collection asks the embedding service for the model it was
built with, a new one takes the service's default, a reindex moves a collection to the default
while its searches stay hybrid, and a model the service no longer serves says to reindex."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Conflict
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import KnowledgeStore, SearchMode

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]

NOTE = "Velero snapshots every persistent volume at night."


def queried_models(embedder: FakeEmbedder) -> list[str]:
    return [
        model
        for (_, kind), model in zip(embedder.calls, embedder.models_asked, strict=True)
        if kind == embedding_pb2.INPUT_TYPE_QUERY
    ]


async def two_models(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> tuple[KnowledgeStore, FakeEmbedder]:
    """``alpha`` built with model-a (64 dimensions); then the service's default became model-b
    (32), model-a still served."""
    store = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await store.ingest("alpha", text=NOTE, document_id="note")
    store._embedder = embedder = make_embedder(32, "model-b", {"model-a": 64})
    return store, embedder


async def test_two_collections_of_two_models_are_searched_each_with_its_own_model(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    store, embedder = await two_models(make_settings, make_embedder)
    await store.ingest("beta", text=NOTE, document_id="note")

    alpha = await store.search("alpha", NOTE, mode=SearchMode.VECTOR)
    beta = await store.search("beta", NOTE, mode=SearchMode.VECTOR)
    hybrid = await store.search("alpha", "velero volume", mode=SearchMode.HYBRID)

    assert queried_models(embedder) == ["model-a", "model-b", "model-a"]
    # The same text embedded by the collection's own model: the very vector it stored.
    assert alpha.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert beta.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert (hybrid.mode, hybrid.hits[0].document_id) == (SearchMode.HYBRID, "note")
    store.close()


async def test_a_new_collection_gets_the_default_model_and_an_old_one_keeps_its_own(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    store, embedder = await two_models(make_settings, make_embedder)

    await store.ingest("beta", text="Restic backs up to S3.", document_id="fresh")
    await store.ingest("alpha", text="Restic backs up to S3.", document_id="fresh")

    assert embedder.models_asked == ["", "model-a"]
    beta, alpha = await store.collection_info("beta"), await store.collection_info("alpha")
    assert (beta.embedding_model, beta.dimension, beta.documents) == ("model-b", 32, 1)
    assert (alpha.embedding_model, alpha.dimension, alpha.documents) == ("model-a", 64, 2)
    found = await store.search("alpha", "Restic backs up to S3.", mode=SearchMode.VECTOR)
    assert found.hits[0].document_id == "fresh"
    assert found.hits[0].score == pytest.approx(1.0, abs=1e-5)
    store.close()


async def test_a_model_no_longer_served_is_a_conflict_that_says_to_reindex(
    make_settings: MakeSettings, make_embedder: MakeEmbedder
) -> None:
    store = await KnowledgeStore.open(make_settings(), make_embedder(64, "model-a"))
    await store.ingest("alpha", text=NOTE, document_id="note")
    store._embedder = make_embedder(32, "model-b")  # model-a replaced, as in Ollama

    expected = (
        "collection 'alpha' was built with model-a, which the embedding service does not serve "
        "(it serves model-b); run `bruno reindex alpha` to rebuild it with the current model"
    )
    for mode in (SearchMode.HYBRID, SearchMode.VECTOR):
        with pytest.raises(Conflict) as refused:
            await store.search("alpha", "velero", mode=mode)
        assert refused.value.detail == expected
        assert refused.value.http_status == 409
    with pytest.raises(Conflict) as ingest:
        await store.ingest("alpha", text="Restic backs up to S3.", document_id="fresh")
    assert ingest.value.detail == expected
    # Keyword search needs no model.
    found = await store.search("alpha", "velero", mode=SearchMode.TEXT)
    assert found.hits[0].document_id == "note"
    store.close()


async def test_a_reindex_moves_a_collection_to_the_default_while_its_searches_stay_hybrid(
    make_settings: MakeSettings, make_embedder: MakeEmbedder, hold_embeddings: HoldEmbeddings
) -> None:
    store, embedder = await two_models(make_settings, make_embedder)
    copying, released = hold_embeddings(embedder, marker="persistent")  # the copy of "note"
    reindex = asyncio.create_task(store.reindex("alpha"))
    await asyncio.wait_for(copying.wait(), 30)

    during = await store.search("alpha", "velero volume", mode=SearchMode.HYBRID)
    written = await store.ingest("alpha", text="Restic backs up to S3.", document_id="fresh")
    released.set()
    result = await reindex

    assert (during.mode, during.hits[0].document_id) == (SearchMode.HYBRID, "note")
    assert written.chunks == 1  # embedded with the old model into the old table
    # The probe asks for the default; the question and the ingest for the old model; the copy
    # and the catch-up for the new one.
    assert embedder.models_asked == ["", "model-a", "model-a", "model-b", "model-b"]
    assert (result.previous_model, result.collection.embedding_model) == ("model-a", "model-b")
    assert (result.collection.dimension, result.collection.documents) == (32, 2)
    # The catch-up re-embedded the document written during the reindex with the new model.
    found = await store.search("alpha", "Restic backs up to S3.", mode=SearchMode.VECTOR)
    assert found.hits[0].document_id == "fresh"
    assert found.hits[0].score == pytest.approx(1.0, abs=1e-5)
    store.close()
