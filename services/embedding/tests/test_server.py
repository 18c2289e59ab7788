"""The embedding service over real gRPC on loopback: Embed, Info, models by name, bad input,
health, process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_core.grpc_client import check_health
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import EmbedderInfo, InputType
from bruno_embedding.onnx_embedder import DYNAMIC_INT8_MODEL_NAME, MODEL_NAME, OnnxMiniLMEmbedder
from bruno_embedding.registry import EmbedderRegistry
from bruno_embedding.server import create_server
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import free_port as pick_free_port

if TYPE_CHECKING:
    from bruno.embedding.v1.embedding_pb2_grpc import EmbeddingServiceAsyncStub as Stub

MAX_TEXTS = 4
SERVICE_NAME = "bruno.embedding.v1.EmbeddingService"


def _settings(**overrides: object) -> EmbeddingSettings:
    values: dict[str, object] = {
        "embedding_listen_addr": "127.0.0.1:0",
        "embedding_max_texts": MAX_TEXTS,
        "grpc_grace_seconds": 0.5,
        **overrides,
    }
    return EmbeddingSettings.model_validate(values)


async def _serve(
    settings: EmbeddingSettings, embedders: EmbedderRegistry | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    server = await create_server(settings, embedders=embedders)
    port = await server.start()
    # A plain channel without retries, so a status reaches the test as the server sent it.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop()


@pytest.fixture
async def channel(
    dynamic_minilm: OnnxMiniLMEmbedder, minilm: OnnxMiniLMEmbedder
) -> AsyncIterator[grpc.aio.Channel]:
    """The service as the settings' defaults make it: the dynamic-int8 model the default, the
    packaged one served by name (both already loaded, once for the session)."""
    async for channel in _serve(_settings(), EmbedderRegistry(dynamic_minilm, others=[minilm])):
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return embedding_pb2_grpc.EmbeddingServiceStub(channel)


def _vectors(response: embedding_pb2.EmbedResponse) -> np.ndarray:
    return np.asarray([list(vector.values) for vector in response.vectors])


async def test_embed_returns_one_unit_vector_per_text_in_input_order(
    stub: Stub, dynamic_minilm: OnnxMiniLMEmbedder
) -> None:
    texts = ["a short one", "a considerably longer text about restarting flux", "mid length"]
    response = await stub.Embed(
        embedding_pb2.EmbedRequest(texts=texts, input_type=embedding_pb2.INPUT_TYPE_QUERY)
    )
    # No model named: the default's vectors, under its name.
    assert (response.model, response.dimension) == ("all-MiniLM-L6-v2-int8-dynamic", 384)
    vectors = _vectors(response)
    direct = np.asarray(await dynamic_minilm.embed(texts, InputType.QUERY))
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("model", [MODEL_NAME, DYNAMIC_INT8_MODEL_NAME])
async def test_a_request_naming_a_model_gets_that_models_vectors(
    stub: Stub, minilm: OnnxMiniLMEmbedder, dynamic_minilm: OnnxMiniLMEmbedder, model: str
) -> None:
    texts = ["how do I restore a velero backup?", "the pod was OOMKilled"]
    response = await stub.Embed(embedding_pb2.EmbedRequest(texts=texts, model=model))

    embedder = minilm if model == MODEL_NAME else dynamic_minilm
    assert (response.model, response.dimension) == (model, 384)
    direct = np.asarray(await embedder.embed(texts, InputType.DOCUMENT))
    np.testing.assert_allclose(_vectors(response), direct, atol=1e-6)


async def test_a_model_the_service_does_not_serve_is_refused_naming_those_it_does(
    stub: Stub,
) -> None:
    request = embedding_pb2.EmbedRequest(texts=["x"], model="nomic-embed-text")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Embed(request)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = caught.value.details() or ""
    assert "'nomic-embed-text'" in details
    assert MODEL_NAME in details
    assert DYNAMIC_INT8_MODEL_NAME in details


async def test_texts_are_counted_by_backend_and_model(stub: Stub) -> None:
    def counted(model: str) -> float:
        labels = {"backend": "onnx", "model": model}
        return REGISTRY.get_sample_value("bruno_embedding_texts_total", labels) or 0.0

    before = {model: counted(model) for model in (MODEL_NAME, DYNAMIC_INT8_MODEL_NAME)}
    await stub.Embed(embedding_pb2.EmbedRequest(texts=["one", "two"], model=MODEL_NAME))
    await stub.Embed(embedding_pb2.EmbedRequest(texts=["three"]))

    assert counted(MODEL_NAME) - before[MODEL_NAME] == 2
    assert counted(DYNAMIC_INT8_MODEL_NAME) - before[DYNAMIC_INT8_MODEL_NAME] == 1


async def test_info_describes_the_default_every_model_and_the_request_limit(stub: Stub) -> None:
    info = await stub.Info(embedding_pb2.InfoRequest())
    assert info.model == "all-MiniLM-L6-v2-int8-dynamic"
    assert (info.backend, info.dimension, info.max_input_tokens) == ("onnx", 384, 256)
    assert info.max_batch_size == MAX_TEXTS
    assert [(m.name, m.dimension, m.max_input_tokens) for m in info.models] == [
        ("all-MiniLM-L6-v2-int8-dynamic", 384, 256),
        ("all-MiniLM-L6-v2-int8", 384, 256),
    ]


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    assert await check_health(channel) == "SERVING"
    assert await check_health(channel, SERVICE_NAME) == "SERVING"


@pytest.mark.parametrize(
    ("texts", "input_type", "code"),
    [
        ([], 0, grpc.StatusCode.INVALID_ARGUMENT),
        (["fine", ""], 0, grpc.StatusCode.INVALID_ARGUMENT),
        (["fine", " \n\t"], 0, grpc.StatusCode.INVALID_ARGUMENT),
        (["fine"], 7, grpc.StatusCode.INVALID_ARGUMENT),
        (["t"] * (MAX_TEXTS + 1), 0, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=["no-texts", "empty-text", "blank-text", "unknown-input-type", "too-many-texts"],
)
async def test_bad_requests_get_the_matching_status(
    stub: Stub, texts: list[str], input_type: int, code: grpc.StatusCode
) -> None:
    request = embedding_pb2.EmbedRequest(texts=texts, input_type=input_type)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Embed(request)
    assert caught.value.code() == code


async def test_exactly_the_limit_of_texts_is_accepted(stub: Stub) -> None:
    response = await stub.Embed(embedding_pb2.EmbedRequest(texts=["t"] * MAX_TEXTS))
    assert len(response.vectors) == MAX_TEXTS


async def test_create_server_loads_the_configured_model_itself(dynamic_int8_cache: Path) -> None:
    settings = _settings(embedding_threads=1, embedding_cache_dir=dynamic_int8_cache)
    async for channel in _serve(settings):
        stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        response = await stub.Embed(embedding_pb2.EmbedRequest(texts=["hello"]))
        assert (response.model, response.dimension) == (DYNAMIC_INT8_MODEL_NAME, 384)


async def test_ollama_backend_serves_vectors_of_the_models_dimension(
    ollama: OllamaStandIn,
) -> None:
    settings = _settings(
        embedding_backend="ollama", embedding_ollama_model="all-minilm", OLLAMA_HOST=ollama.url
    )
    async for channel in _serve(settings):
        stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        response = await stub.Embed(embedding_pb2.EmbedRequest(texts=["one", "two"]))
        info = await stub.Info(embedding_pb2.InfoRequest())
    assert response.dimension == ollama.embedding_dim == 8
    assert [len(vector.values) for vector in response.vectors] == [8] * 2
    assert (info.backend, info.model, info.dimension) == ("ollama", "all-minilm", 8)
    assert [(m.name, m.dimension, m.max_input_tokens) for m in info.models] == [
        ("all-minilm", 8, 0)
    ]


async def test_the_ollama_backend_serves_only_its_configured_model(
    ollama: OllamaStandIn,
) -> None:
    settings = _settings(
        embedding_backend="ollama", embedding_ollama_model="all-minilm", OLLAMA_HOST=ollama.url
    )
    async for channel in _serve(settings):
        stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        named = await stub.Embed(embedding_pb2.EmbedRequest(texts=["one"], model="all-minilm"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            # A model the Ollama server has, but not the one this service was configured with.
            await stub.Embed(
                embedding_pb2.EmbedRequest(texts=["one"], model="nomic-embed-text:v1.5")
            )
    assert named.model == "all-minilm"
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'nomic-embed-text:v1.5'" in (caught.value.details() or "")
    assert "it serves: all-minilm" in (caught.value.details() or "")


async def test_ollama_down_answers_unavailable(closed_port_url: str) -> None:
    settings = _settings(embedding_backend="ollama", OLLAMA_HOST=closed_port_url)
    async for channel in _serve(settings):
        stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        for call in (
            stub.Embed(embedding_pb2.EmbedRequest(texts=["x"])),
            stub.Info(embedding_pb2.InfoRequest()),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not reachable" in (caught.value.details() or "")


class BrokenEmbedder:
    """An Embedder whose model fails in a way nobody planned for."""

    model = "broken"

    async def start(self) -> None:
        return None

    async def embed(self, texts: Sequence[str], input_type: InputType) -> list[list[float]]:
        raise RuntimeError("onnxruntime exploded at /secret/path/model.onnx")

    async def info(self) -> EmbedderInfo:
        return EmbedderInfo(model="broken", dimension=1, backend="onnx", max_input_tokens=1)

    async def aclose(self) -> None:
        return None


async def test_an_unexpected_failure_is_internal_without_its_details() -> None:
    async for channel in _serve(_settings(), EmbedderRegistry(BrokenEmbedder())):
        stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"]))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (caught.value.details() or "")


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


@pytest.mark.slow  # starts the service as a process
async def test_the_process_serves_until_sigterm_then_exits_cleanly(
    free_port: int, dynamic_int8_cache: Path
) -> None:
    env = {
        **os.environ,
        "BRUNO_EMBEDDING_LISTEN_ADDR": f"127.0.0.1:{free_port}",
        # The session's built model: the process loads it, never builds it here.
        "BRUNO_EMBEDDING_CACHE_DIR": str(dynamic_int8_cache),
        "BRUNO_EMBEDDING_THREADS": "1",
        "BRUNO_GRPC_GRACE_SECONDS": "1",
        "BRUNO_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bruno_embedding",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port}") as channel:
            for _ in range(300):
                if await check_health(channel, SERVICE_NAME, timeout_seconds=0.5) == "SERVING":
                    break
                await asyncio.sleep(0.1)
            stub: Stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
            response = await stub.Embed(embedding_pb2.EmbedRequest(texts=["hello"]), timeout=10)
            assert (response.model, response.dimension) == (DYNAMIC_INT8_MODEL_NAME, 384)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b'"service": "embedding"' in stderr
