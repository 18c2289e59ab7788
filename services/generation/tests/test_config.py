"""Generation settings come from BRUNO_* variables, and Ollama's address from OLLAMA_HOST."""

from __future__ import annotations

import pydantic
import pytest

from bruno_generation.config import GenerationSettings


def test_defaults_answer_on_loopback_with_llama_and_auto_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OLLAMA_HOST", "BRUNO_GENERATION_BACKEND", "BRUNO_OLLAMA_MODEL"):
        monkeypatch.delenv(name, raising=False)

    settings = GenerationSettings()

    assert settings.generation_listen_addr == "127.0.0.1:50053"
    assert settings.generation_backend == "auto"
    assert settings.ollama_model == "llama3.2"
    assert settings.ollama_host == "http://127.0.0.1:11434"
    assert settings.ollama_timeout_seconds == 120
    assert settings.ollama_connect_timeout_seconds == 2


def test_ollama_host_is_read_without_the_bruno_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://ollama.ai.svc:11434")
    monkeypatch.setenv("BRUNO_GENERATION_BACKEND", "extractive")
    monkeypatch.setenv("BRUNO_OLLAMA_MODEL", "qwen3:4b")

    settings = GenerationSettings()

    assert settings.ollama_host == "http://ollama.ai.svc:11434"
    assert settings.generation_backend == "extractive"
    assert settings.ollama_model == "qwen3:4b"


def test_an_unknown_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_GENERATION_BACKEND", "openai")

    with pytest.raises(pydantic.ValidationError):
        GenerationSettings()


def test_ollama_knobs_have_grounded_defaults_and_the_reserve_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = GenerationSettings()

    assert (settings.ollama_num_ctx, settings.ollama_keep_alive) == (4096, "5m")
    assert settings.ollama_temperature == 0.2
    with pytest.raises(pydantic.ValidationError):
        GenerationSettings(ollama_num_ctx=1024, generation_answer_reserve_tokens=600)
    monkeypatch.setenv("BRUNO_OLLAMA_KEEP_ALIVE", "forever")
    with pytest.raises(pydantic.ValidationError):
        GenerationSettings()
