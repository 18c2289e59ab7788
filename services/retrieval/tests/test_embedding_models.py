"""The embedding client and the knowledge store against an embedding service of two models,
over real gRPC (:class:`bruno_testing.fakes.FakeEmbedding`): every call names its model and
gets that model's vectors, coalesced batches and cached questions never mix two models, and a
model the service stops serving is refused by name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_core import create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.embedding_client import EmbeddingClient
from bruno_retrieval.knowledge import KnowledgeStore, ModelNotServed, SearchMode
from bruno_testing.fakes import FakeEmbedding, embedding_server

DOCUMENT = embedding_pb2.INPUT_TYPE_DOCUMENT
QUERY = embedding_pb2.INPUT_TYPE_QUERY
MAX_BATCH = 4


@pytest.fixture
async def service() -> AsyncIterator[tuple[FakeEmbedding, str]]:
    fake = FakeEmbedding({"model-a": 64, "model-b": 32}, max_batch_size=MAX_BATCH)
    server = embedding_server(fake)
    port = await server.start()
    yield fake, f"127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def make_client(
    service: tuple[FakeEmbedding, str],
) -> AsyncIterator[Callable[..., EmbeddingClient]]:
    clients: list[EmbeddingClient] = []

    def make(query_cache_size: int = 0) -> EmbeddingClient:
        channel = create_channel(service[1], timeout_seconds=5)
        clients.append(EmbeddingClient(channel, query_cache_size=query_cache_size))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


def asked(fake: FakeEmbedding, kind: int) -> list[tuple[str, list[str]]]:
    return [(model, texts) for model, input_type, texts in fake.requests if input_type == kind]


async def test_each_answer_names_the_model_that_made_its_vectors(
    service: tuple[FakeEmbedding, str], make_client: Callable[..., EmbeddingClient]
) -> None:
    fake, _ = service
    client = make_client()

    chosen = await client.embed(["velero"], DOCUMENT, "model-b")
    default = await client.embed(["velero"], DOCUMENT)

    assert (chosen.model, chosen.vectors) == ("model-b", [fake.vector("model-b", "velero")])
    assert (default.model, default.vectors) == ("model-a", [fake.vector("model-a", "velero")])
    assert [model for model, _ in asked(fake, DOCUMENT)] == ["model-b", ""]


async def test_a_model_the_service_does_not_serve_is_refused_naming_the_served_ones(
    service: tuple[FakeEmbedding, str], make_client: Callable[..., EmbeddingClient]
) -> None:
    client = make_client()

    for kind in (DOCUMENT, QUERY):
        with pytest.raises(ModelNotServed) as refused:
            await client.embed(["velero"], kind, "model-z")
        assert (refused.value.model, refused.value.served) == ("model-z", ("model-a", "model-b"))
        assert refused.value.http_status == 409


async def test_coalesced_document_batches_hold_the_texts_of_one_model(
    service: tuple[FakeEmbedding, str], make_client: Callable[..., EmbeddingClient]
) -> None:
    fake, _ = service
    client = make_client()
    wanted = [("model-a" if n % 2 else "model-b", f"note {n}") for n in range(12)]

    answers = await asyncio.gather(
        *(client.embed([text], DOCUMENT, model) for model, text in wanted)
    )

    for (model, text), answer in zip(wanted, answers, strict=True):
        assert (answer.model, answer.vectors) == (model, [fake.vector(model, text)])
    batches = asked(fake, DOCUMENT)
    assert len(batches) < 12  # coalesced, not one request per document
    for model, texts in batches:
        assert len(texts) <= MAX_BATCH
        assert set(texts) <= {text for name, text in wanted if name == model}


async def test_the_query_cache_keeps_each_models_vectors_apart(
    service: tuple[FakeEmbedding, str], make_client: Callable[..., EmbeddingClient]
) -> None:
    fake, _ = service
    client = make_client(query_cache_size=8)

    first = [await client.embed(["velero?"], QUERY, model) for model in ("model-a", "model-b")]
    again = [await client.embed(["velero?"], QUERY, model) for model in ("model-a", "model-b")]

    assert asked(fake, QUERY) == [("model-a", ["velero?"]), ("model-b", ["velero?"])]
    assert again == first
    assert [answer.vectors for answer in first] == [
        [fake.vector("model-a", "velero?")],
        [fake.vector("model-b", "velero?")],
    ]


async def test_a_model_no_longer_served_loses_its_cached_questions(
    service: tuple[FakeEmbedding, str], make_client: Callable[..., EmbeddingClient]
) -> None:
    fake, _ = service
    client = make_client(query_cache_size=8)
    await client.embed(["velero?"], QUERY, "model-a")
    del fake.models["model-a"]  # the service restarted without it

    with pytest.raises(ModelNotServed):
        await client.embed(["restic?"], QUERY, "model-a")
    with pytest.raises(ModelNotServed) as refused:
        await client.embed(["velero?"], QUERY, "model-a")  # not answered from the cache

    assert refused.value.served == ("model-b",)


async def test_two_collections_of_two_models_are_searched_over_the_wire(
    service: tuple[FakeEmbedding, str],
    make_client: Callable[..., EmbeddingClient],
    tmp_path: Path,
) -> None:
    fake, _ = service
    settings = RetrievalSettings(lancedb_uri=str(tmp_path / "lancedb"))
    store = await KnowledgeStore.open(settings, make_client(query_cache_size=8))
    note = "Velero snapshots every persistent volume at night."
    await store.ingest("alpha", text=note, document_id="note")
    fake.models = {"model-b": 32, "model-a": 64}  # restarted with model-b as its default
    await store.ingest("beta", text=note, document_id="note")

    alpha = await store.search("alpha", note, mode=SearchMode.VECTOR)
    beta = await store.search("beta", note, mode=SearchMode.HYBRID)

    infos = [await store.collection_info(name) for name in ("alpha", "beta")]
    assert [(info.embedding_model, info.dimension) for info in infos] == [
        ("model-a", 64),
        ("model-b", 32),
    ]
    assert [model for model, _ in asked(fake, QUERY)] == ["model-a", "model-b"]
    assert alpha.hits[0].score == pytest.approx(1.0, abs=1e-5)  # the very vector it stored
    assert (beta.mode, beta.hits[0].document_id) == (SearchMode.HYBRID, "note")
    store.close()
