from __future__ import annotations

import pytest
from pydantic import ValidationError

from bruno_core import GrpcServerSettings


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
