"""The embedding settings: names and defaults the README table and the k8s manifests rely on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bruno_embedding.config import EmbeddingSettings


def test_defaults_serve_the_offline_model_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    settings = EmbeddingSettings()
    assert settings.embedding_listen_addr == "127.0.0.1:50051"
    assert settings.embedding_metrics_port is None
    assert settings.embedding_backend == "onnx"
    assert settings.embedding_ollama_model == "nomic-embed-text"
    assert (settings.embedding_batch_size, settings.embedding_max_texts) == (32, 256)
    assert settings.embedding_threads == 0
    assert settings.embedding_max_batch_tokens == 1024
    # The default for new collections; the packaged model still serves those it made.
    assert settings.embedding_onnx_model == "all-MiniLM-L6-v2-int8-dynamic"
    assert settings.embedding_cache_dir is None
    assert settings.ollama_host == "http://127.0.0.1:11434"


def test_settings_come_from_bruno_variables_and_ollama_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRUNO_EMBEDDING_BACKEND", "ollama")
    monkeypatch.setenv("BRUNO_EMBEDDING_BATCH_SIZE", "8")
    monkeypatch.setenv("BRUNO_EMBEDDING_MAX_TEXTS", "64")
    monkeypatch.setenv("BRUNO_EMBEDDING_THREADS", "2")
    monkeypatch.setenv("BRUNO_EMBEDDING_METRICS_PORT", "9101")
    monkeypatch.setenv("OLLAMA_HOST", "http://ollama.ai.svc:11434")
    monkeypatch.setenv("BRUNO_EMBEDDING_ONNX_MODEL", "all-MiniLM-L6-v2-int8")
    monkeypatch.setenv("BRUNO_EMBEDDING_CACHE_DIR", "/var/cache/bruno")
    settings = EmbeddingSettings()
    assert settings.embedding_onnx_model == "all-MiniLM-L6-v2-int8"
    assert str(settings.embedding_cache_dir) == "/var/cache/bruno"
    assert settings.embedding_backend == "ollama"
    assert (settings.embedding_batch_size, settings.embedding_max_texts) == (8, 64)
    assert settings.embedding_threads == 2
    assert settings.embedding_metrics_port == 9101
    assert settings.ollama_host == "http://ollama.ai.svc:11434"


def test_ollama_host_ignores_a_bruno_prefixed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setenv("BRUNO_OLLAMA_HOST", "http://elsewhere:1")
    assert EmbeddingSettings().ollama_host == "http://127.0.0.1:11434"


def test_ollama_host_is_given_in_code_by_its_variable_name() -> None:
    assert EmbeddingSettings(OLLAMA_HOST="http://127.0.0.1:1").ollama_host == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BRUNO_EMBEDDING_BACKEND", "pytorch"),
        ("BRUNO_EMBEDDING_ONNX_MODEL", "all-MiniLM-L6-v2"),
        ("BRUNO_EMBEDDING_BATCH_SIZE", "0"),
        ("BRUNO_EMBEDDING_MAX_TEXTS", "0"),
        ("BRUNO_EMBEDDING_THREADS", "-1"),
        ("BRUNO_EMBEDDING_MAX_BATCH_TOKENS", "255"),
    ],
)
def test_nonsense_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        EmbeddingSettings()
