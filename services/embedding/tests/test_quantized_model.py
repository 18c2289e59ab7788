"""The dynamic-int8 model (the default): quantized once from the packaged weights into a cache
directory, reused while whole, rebuilt otherwise, and close to the packaged model's vectors.
Real onnxruntime, real files."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno_embedding.config import EmbeddingSettings
from bruno_embedding.embedders import InputType
from bruno_embedding.onnx_embedder import (
    DYNAMIC_INT8_MODEL_NAME,
    MODEL_NAME,
    OnnxMiniLMEmbedder,
    model_file,
)
from bruno_embedding.quantized_model import (
    MANIFEST_FILE,
    MODEL_FILE,
    default_cache_dir,
    dynamic_int8_model,
    file_sha256,
)
from bruno_embedding.server import create_server

TEXTS = [
    "How do I restart a Flux kustomization after changing the git source?",
    "the pod was OOMKilled",
    "Velero backs up persistent volumes every night at two o'clock.",
    "Grafana dashboards read the request latency histogram from Prometheus.",
    "restart",
]


@pytest.fixture
def cache_copy(dynamic_int8_cache: Path, tmp_path: Path) -> Path:
    """A private copy of the session's built cache, free to damage."""
    return Path(shutil.copytree(dynamic_int8_cache, tmp_path / "cache"))


def test_a_second_start_reuses_the_built_file(dynamic_int8_cache: Path) -> None:
    built = (dynamic_int8_cache / MODEL_FILE).stat()

    path = dynamic_int8_model(dynamic_int8_cache)

    again = path.stat()
    assert path == dynamic_int8_cache / MODEL_FILE
    # A rebuild renames a new file into place: another inode, another mtime.
    assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)


def test_the_build_leaves_only_the_model_and_its_manifest(dynamic_int8_cache: Path) -> None:
    assert sorted(p.name for p in dynamic_int8_cache.iterdir()) == sorted(
        [MODEL_FILE, MANIFEST_FILE]
    )
    manifest = json.loads((dynamic_int8_cache / MANIFEST_FILE).read_text())
    assert manifest["model_sha256"] == file_sha256(dynamic_int8_cache / MODEL_FILE)


@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "manifest missing"])
def test_a_damaged_cache_is_rebuilt_not_used(
    cache_copy: Path, dynamic_int8_cache: Path, damage: str
) -> None:
    model = cache_copy / MODEL_FILE
    whole = model.read_bytes()
    if damage == "truncated":  # e.g. a copy cut short
        model.write_bytes(whole[: len(whole) // 2])
    elif damage == "byte flipped":  # same size, other weights
        middle = len(whole) // 2
        model.write_bytes(whole[:middle] + bytes([whole[middle] ^ 0xFF]) + whole[middle + 1 :])
    else:  # a crash between renaming the model and its manifest into place
        (cache_copy / MANIFEST_FILE).unlink()

    path = dynamic_int8_model(cache_copy)

    assert file_sha256(path) == file_sha256(dynamic_int8_cache / MODEL_FILE)
    assert sorted(p.name for p in cache_copy.iterdir()) == sorted([MODEL_FILE, MANIFEST_FILE])


def test_a_manifest_of_another_packaged_model_means_a_rebuild(cache_copy: Path) -> None:
    manifest = cache_copy / MANIFEST_FILE
    recorded = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**recorded, "source_sha256": "0" * 64}))
    built = (cache_copy / MODEL_FILE).stat()

    dynamic_int8_model(cache_copy)

    assert (cache_copy / MODEL_FILE).stat().st_ino != built.st_ino
    assert json.loads(manifest.read_text()) == recorded


def test_a_built_file_in_a_read_only_directory_is_used_without_writing(cache_copy: Path) -> None:
    # As the image has it: built at image build time, read-only to the service's user.
    before = sorted((p.name, p.stat().st_mtime_ns) for p in cache_copy.iterdir())
    written = cache_copy.stat().st_mtime_ns
    cache_copy.chmod(0o555)
    try:
        path = dynamic_int8_model(cache_copy)
    finally:
        cache_copy.chmod(0o755)

    assert path == cache_copy / MODEL_FILE
    # Nothing created, renamed or removed there (root may write anyway; this would show it).
    assert cache_copy.stat().st_mtime_ns == written
    assert sorted((p.name, p.stat().st_mtime_ns) for p in cache_copy.iterdir()) == before


def test_the_cache_defaults_to_the_xdg_cache_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "bruno" / "embedding"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "bruno" / "embedding"


def test_the_packaged_model_needs_no_cache(tmp_path: Path) -> None:
    assert model_file(MODEL_NAME, tmp_path / "unused").name == "model.onnx"
    assert not (tmp_path / "unused").exists()


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        OnnxMiniLMEmbedder(model="all-MiniLM-L6-v2-fp16")  # type: ignore[arg-type]


async def test_its_vectors_are_close_to_the_packaged_models(
    minilm: OnnxMiniLMEmbedder, dynamic_minilm: OnnxMiniLMEmbedder
) -> None:
    packaged = np.asarray(await minilm.embed(TEXTS, InputType.DOCUMENT))
    dynamic = np.asarray(await dynamic_minilm.embed(TEXTS, InputType.DOCUMENT))

    np.testing.assert_allclose(np.linalg.norm(dynamic, axis=1), 1.0, atol=1e-5)
    cosines = (packaged * dynamic).sum(axis=1)
    assert cosines.min() >= 0.98
    # Not the same file run twice: int8 arithmetic moves every vector a little.
    assert cosines.max() < 0.99999


async def test_it_ranks_a_paraphrase_above_an_unrelated_sentence(
    minilm: OnnxMiniLMEmbedder, dynamic_minilm: OnnxMiniLMEmbedder
) -> None:
    texts = [
        "How do I restart a crashed pod?",
        "What is the way to reboot a pod that crashed?",
        "My grandmother bakes apple pie on Sundays.",
    ]
    for embedder in (minilm, dynamic_minilm):
        question, paraphrase, unrelated = np.asarray(await embedder.embed(texts, InputType.QUERY))
        assert question @ paraphrase > question @ unrelated + 0.4


@pytest.fixture
async def dynamic_service(cache_copy: Path) -> AsyncIterator[grpc.aio.Channel]:
    """The service built from settings alone, the dynamic-int8 model named its default."""
    settings = EmbeddingSettings.model_validate(
        {
            "embedding_listen_addr": "127.0.0.1:0",
            "embedding_onnx_model": DYNAMIC_INT8_MODEL_NAME,
            "embedding_cache_dir": cache_copy,
            "embedding_threads": 1,
            "grpc_grace_seconds": 0.5,
        }
    )
    server = await create_server(settings)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop()


async def test_the_service_reports_the_dynamic_model_by_its_own_name(
    dynamic_service: grpc.aio.Channel, dynamic_minilm: OnnxMiniLMEmbedder
) -> None:
    stub = embedding_pb2_grpc.EmbeddingServiceStub(dynamic_service)

    info = await stub.Info(embedding_pb2.InfoRequest())
    response = await stub.Embed(
        embedding_pb2.EmbedRequest(texts=TEXTS[:2], input_type=embedding_pb2.INPUT_TYPE_QUERY)
    )

    assert info.model == response.model == DYNAMIC_INT8_MODEL_NAME != MODEL_NAME
    served = np.asarray([list(vector.values) for vector in response.vectors])
    direct = np.asarray(await dynamic_minilm.embed(TEXTS[:2], InputType.QUERY))
    np.testing.assert_allclose(served, direct, atol=1e-5)
