"""The Ollama backend: the real ``ollama`` client against a wire-level stand-in of /api/embed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from bruno_core.errors import Unavailable
from bruno_embedding.embedders import InputType
from bruno_embedding.ollama_embedder import OllamaEmbedder
from bruno_testing.ollama_standin import OllamaStandIn, hashed_embedding


@pytest.fixture
async def embedder(ollama: OllamaStandIn) -> AsyncIterator[OllamaEmbedder]:
    embedder = OllamaEmbedder(host=ollama.url, model="all-minilm", batch_size=2)
    yield embedder
    await embedder.aclose()


async def test_vectors_come_back_in_input_order_at_unit_length(
    embedder: OllamaEmbedder, ollama: OllamaStandIn
) -> None:
    texts = [
        "restart the flux controller",
        "velero backs up volumes nightly",
        "grafana reads prometheus",
        "the pod was oomkilled",
        "lancedb keeps its tables on s3",
    ]
    expected = [hashed_embedding(t, ollama.embedding_dim) for t in texts]
    # Distinct rows, so a permutation could not pass; and Ollama's vectors are not unit length.
    assert len({tuple(np.round(row, 6)) for row in expected}) == len(texts)
    assert ollama.embedding_scale != 1.0
    vectors = np.asarray(await embedder.embed(texts, InputType.DOCUMENT))
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


async def test_texts_are_sent_in_batches_of_batch_size(
    embedder: OllamaEmbedder, ollama: OllamaStandIn
) -> None:
    await embedder.embed(["a", "b", "c", "d", "e"], InputType.DOCUMENT)
    assert [request.path for request in ollama.requests] == ["/api/embed"] * 3
    assert [request.body["input"] for request in ollama.requests] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert {request.body["model"] for request in ollama.requests} == {"all-minilm"}


async def test_dimension_is_learnt_from_the_model(
    embedder: OllamaEmbedder, ollama: OllamaStandIn
) -> None:
    info = await embedder.info()
    assert (info.model, info.backend, info.dimension) == ("all-minilm", "ollama", 8)
    assert info.dimension == ollama.embedding_dim
    assert len(ollama.requests) == 1  # one probe, then remembered
    await embedder.info()
    assert len(ollama.requests) == 1


async def test_start_probes_the_dimension(embedder: OllamaEmbedder, ollama: OllamaStandIn) -> None:
    await embedder.start()
    assert len(ollama.requests) == 1
    assert (await embedder.info()).dimension == ollama.embedding_dim == 8
    assert len(ollama.requests) == 1


async def test_nomic_embed_text_gets_its_task_prefixes(ollama: OllamaStandIn) -> None:
    embedder = OllamaEmbedder(host=ollama.url, model="nomic-embed-text:v1.5")
    await embedder.embed(["where is flux?"], InputType.QUERY)
    await embedder.embed(["flux lives in flux-system"], InputType.DOCUMENT)
    await embedder.aclose()
    assert [request.body["input"] for request in ollama.requests] == [
        ["search_query: where is flux?"],
        ["search_document: flux lives in flux-system"],
    ]


async def test_a_model_ollama_lacks_is_unavailable_with_the_pull_command(
    ollama: OllamaStandIn,
) -> None:
    embedder = OllamaEmbedder(host=ollama.url, model="bge-m3")
    with pytest.raises(Unavailable, match="ollama pull bge-m3"):
        await embedder.embed(["x"], InputType.DOCUMENT)
    await embedder.aclose()


async def test_unreachable_ollama_is_unavailable(closed_port_url: str) -> None:
    embedder = OllamaEmbedder(host=closed_port_url, model="all-minilm")
    with pytest.raises(Unavailable, match="not reachable") as caught:
        await embedder.embed(["x"], InputType.DOCUMENT)
    assert closed_port_url not in caught.value.detail  # the host goes to the log only
    with pytest.raises(Unavailable):
        await embedder.info()
    await embedder.aclose()


async def test_start_does_not_fail_when_ollama_is_down(closed_port_url: str) -> None:
    embedder = OllamaEmbedder(host=closed_port_url, model="all-minilm")
    await embedder.start()  # serving UNAVAILABLE beats crash-looping until Ollama is up
    await embedder.aclose()


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        OllamaEmbedder(host="http://127.0.0.1:11434", model="all-minilm", batch_size=0)
