from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from bruno_core import GrpcServerSettings
from bruno_core.settings import ContractLimitSettings, environment_variables


def test_settings_read_the_bruno_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_GRPC_GRACE_SECONDS", "3.5")
    monkeypatch.setenv("BRUNO_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("GRPC_GRACE_SECONDS", "99")
    settings = GrpcServerSettings()
    assert settings.grpc_grace_seconds == 3.5
    assert settings.log_level == "DEBUG"


def test_invalid_settings_are_rejected_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_GRPC_MAX_MESSAGE_BYTES", "12")
    with pytest.raises(ValidationError):
        GrpcServerSettings()


def test_environment_variables_names_prefixed_fields_and_aliases() -> None:
    class Example(GrpcServerSettings):
        ollama_host: str = Field(default="", validation_alias="OLLAMA_HOST")
        retries: int = 3

    names = environment_variables(Example)
    assert {"OLLAMA_HOST", "BRUNO_RETRIES", "BRUNO_GRPC_GRACE_SECONDS"} <= names
    assert "BRUNO_OLLAMA_HOST" not in names


def test_the_contracts_settable_limits_are_read_once_and_checked_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRUNO_MAX_TOP_K", "7")
    assert ContractLimitSettings().max_top_k == 7
    with pytest.raises(ValidationError, match="BRUNO_DEFAULT_TOP_K must not exceed"):
        ContractLimitSettings(default_top_k=8)
