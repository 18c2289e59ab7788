"""Shared fixtures: the MiniLM model loaded once, and the shared wire-level Ollama stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bruno_embedding.onnx_embedder import DYNAMIC_INT8_MODEL_NAME, OnnxMiniLMEmbedder
from bruno_embedding.quantized_model import dynamic_int8_model
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import free_port


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaStandIn]:
    """Ollama on a free loopback port, spoken to by the real client.

    Its ``/api/embed`` answers ``hashed_embedding(text, 8)`` stretched to length 2.5, so only
    an embedder that re-normalises hands back unit vectors.
    """
    async with OllamaStandIn(
        models=["nomic-embed-text:v1.5", "all-minilm"], embedding_dim=8, embedding_scale=2.5
    ) as standin:
        yield standin


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens (a port just released by the OS)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def minilm() -> Iterator[OnnxMiniLMEmbedder]:
    """The real model, loaded once for the whole session (batches of 4 to exercise batching)."""
    embedder = OnnxMiniLMEmbedder(batch_size=4, threads=1)
    yield embedder
    asyncio.run(embedder.aclose())


@pytest.fixture(scope="session")
def dynamic_int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the dynamic-int8 model (the default), quantized once for the
    session (~5 s). A service a test starts from settings is pointed here, so none builds one;
    tests that alter a cache work on a copy."""
    cache = tmp_path_factory.mktemp("embedding-cache")
    dynamic_int8_model(cache)
    return cache


@pytest.fixture(scope="session")
def dynamic_minilm(dynamic_int8_cache: Path) -> Iterator[OnnxMiniLMEmbedder]:
    """The dynamic-int8 model (the default), loaded once from the session's cache."""
    embedder = OnnxMiniLMEmbedder(
        model=DYNAMIC_INT8_MODEL_NAME, cache_dir=dynamic_int8_cache, batch_size=4, threads=1
    )
    yield embedder
    asyncio.run(embedder.aclose())
