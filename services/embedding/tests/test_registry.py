"""The models of one service by name: the default for a request naming none, the others loaded
on the first request naming them (once, however many ask at once; again after a failure).

The loading is a seam here (a model whose load waits at a gate, and can fail); the real ONNX
models loaded on demand are at the end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from bruno_core.errors import Conflict, Unavailable
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import Embedder, EmbedderInfo, InputType
from bruno_embedding.onnx_embedder import DYNAMIC_INT8_MODEL_NAME, MODEL_NAME, OnnxMiniLMEmbedder
from bruno_embedding.registry import EmbedderRegistry, OnDemandEmbedder
from bruno_embedding.server import build_embedders

SAFETY = 30.0  # seconds; a bound against hanging, never a measurement


class Model:
    """An embedder answering ``[len(text)]`` per text, under ``name``."""

    def __init__(self, name: str) -> None:
        self.model = name
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        return [[float(len(text))] for text in texts]

    async def info(self) -> EmbedderInfo:
        return EmbedderInfo(model=self.model, dimension=1, backend="test", max_input_tokens=9)

    async def aclose(self) -> None:
        self.closed = True


class Loader:
    """The blocking load of model ``name``: counts its runs, waits at a gate, fails on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loads = 0
        self.failures = 0  # how many of the next loads fail
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.loaded: list[Model] = []

    def __call__(self) -> Embedder:
        self.loads += 1
        self.entered.set()
        assert self.gate.wait(SAFETY)
        if self.failures:
            self.failures -= 1
            raise OSError("read-only file system: '/secret/cache/model.onnx'")
        model = Model(self.name)
        self.loaded.append(model)
        return model


async def loading(loader: Loader) -> None:
    """Return once the load has begun (every request made so far is waiting for it)."""
    assert await asyncio.to_thread(loader.entered.wait, SAFETY)


INFO = EmbedderInfo(model="other", dimension=1, backend="test", max_input_tokens=9)


@pytest.fixture
def loader() -> Loader:
    return Loader("other")


@pytest.fixture
def on_demand(loader: Loader) -> OnDemandEmbedder:
    return OnDemandEmbedder(INFO, loader)


def test_a_request_naming_no_model_gets_the_default(on_demand: OnDemandEmbedder) -> None:
    default = Model("default")
    registry = EmbedderRegistry(default, others=[on_demand])

    assert registry.get("") is default
    assert registry.get("default") is default
    assert registry.get("other") is on_demand
    assert registry.names == ["default", "other"]


def test_an_unknown_model_is_a_conflict_naming_the_served_ones(
    on_demand: OnDemandEmbedder,
) -> None:
    registry = EmbedderRegistry(Model("default"), others=[on_demand])

    with pytest.raises(Conflict, match=r"'elsewhere'; it serves: default, other"):
        registry.get("elsewhere")


def test_two_embedders_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="same model name"):
        EmbedderRegistry(Model("twin"), others=[Model("twin")])


async def test_starting_loads_the_default_not_the_others(
    loader: Loader, on_demand: OnDemandEmbedder
) -> None:
    default = Model("default")
    registry = EmbedderRegistry(default, others=[on_demand])

    await registry.start()
    infos = await registry.infos()

    assert default.started
    assert (loader.loads, on_demand.loaded) == (0, False)
    # Info describes every model without loading any.
    assert [info.model for info in infos] == ["default", "other"]
    assert loader.loads == 0


async def test_the_first_request_loads_and_starts_the_model_then_it_is_kept(
    loader: Loader, on_demand: OnDemandEmbedder
) -> None:
    assert await on_demand.embed(["abc"], InputType.QUERY) == [[3.0]]
    assert await on_demand.embed(["abcde"], InputType.DOCUMENT) == [[5.0]]

    assert loader.loads == 1
    assert on_demand.loaded
    (model,) = loader.loaded
    assert model.started
    await on_demand.aclose()
    assert model.closed


async def test_concurrent_first_requests_wait_for_one_load(
    loader: Loader, on_demand: OnDemandEmbedder
) -> None:
    loader.gate.clear()
    requests = [asyncio.create_task(on_demand.embed(["x" * n], InputType.QUERY)) for n in (1, 2)]
    await loading(loader)  # held at the gate
    assert not any(request.done() for request in requests)
    loader.gate.set()

    assert await asyncio.gather(*requests) == [[[1.0]], [[2.0]]]
    assert loader.loads == 1


async def test_a_caller_giving_up_does_not_stop_the_load_others_wait_for(
    loader: Loader, on_demand: OnDemandEmbedder
) -> None:
    loader.gate.clear()
    impatient = asyncio.create_task(on_demand.embed(["a"], InputType.QUERY))
    patient = asyncio.create_task(on_demand.embed(["bb"], InputType.QUERY))
    await loading(loader)
    impatient.cancel()
    loader.gate.set()

    assert await patient == [[2.0]]
    assert impatient.cancelled()
    assert loader.loads == 1


async def test_a_failed_load_fails_its_requests_and_a_later_request_loads_again(
    loader: Loader, on_demand: OnDemandEmbedder
) -> None:
    loader.failures = 1
    loader.gate.clear()
    waiting = [asyncio.create_task(on_demand.embed(["x"], InputType.QUERY)) for _ in range(2)]
    await loading(loader)
    loader.gate.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)

    assert loader.loads == 1
    for outcome in outcomes:
        assert isinstance(outcome, Unavailable)
        assert "'other' could not be loaded (OSError" in outcome.detail
        assert "secret" not in outcome.detail  # the cause (a path) goes to the log only
        assert not outcome.retryable
    assert not on_demand.loaded

    assert await on_demand.embed(["abc"], InputType.QUERY) == [[3.0]]
    assert loader.loads == 2


# --- the real models ----------------------------------------------------------------------------


async def test_the_onnx_backend_serves_the_other_built_in_model_loaded_on_first_use(
    dynamic_int8_cache: Path, minilm: OnnxMiniLMEmbedder
) -> None:
    settings = EmbeddingSettings(
        embedding_onnx_model=MODEL_NAME, embedding_cache_dir=dynamic_int8_cache, embedding_threads=1
    )
    registry = build_embedders(settings)
    await registry.start()
    try:
        other = registry.get(DYNAMIC_INT8_MODEL_NAME)
        assert registry.names == [MODEL_NAME, DYNAMIC_INT8_MODEL_NAME]
        assert isinstance(other, OnDemandEmbedder)
        loaded_at_start = other.loaded

        texts = ["how do I restore a velero backup?"]
        default_vectors = await registry.get("").embed(texts, InputType.QUERY)
        other_vectors = await other.embed(texts, InputType.QUERY)

        assert (loaded_at_start, other.loaded) == (False, True)
        assert default_vectors == await minilm.embed(texts, InputType.QUERY)
        assert other_vectors != default_vectors  # int8 arithmetic: close, not equal
    finally:
        await registry.aclose()
