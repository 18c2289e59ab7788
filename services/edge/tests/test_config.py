from __future__ import annotations

import pytest
from pydantic import ValidationError

from bruno_edge.config import EdgeSettings, is_loopback


def test_api_keys_come_from_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_API_KEYS", " alpha, beta ,,alpha ")

    settings = EdgeSettings()

    assert {key.get_secret_value() for key in settings.api_keys} == {"alpha", "beta"}
    assert not settings.open_mode


def test_keys_never_appear_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_API_KEYS", "very-secret-key")

    assert "very-secret-key" not in repr(EdgeSettings())
    assert "very-secret-key" not in str(EdgeSettings().model_dump())


def test_no_keys_means_open_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUNO_API_KEYS", "")

    assert EdgeSettings().open_mode


def test_defaults_match_the_documented_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BRUNO_EDGE_HOST", "BRUNO_EDGE_PORT", "BRUNO_MAX_REQUEST_BYTES"):
        monkeypatch.delenv(name, raising=False)

    settings = EdgeSettings()

    assert (settings.edge_host, settings.edge_port) == ("127.0.0.1", 8080)
    assert settings.max_request_bytes == 4 * 1024 * 1024
    assert settings.max_document_bytes == 2 * 1024 * 1024
    assert (settings.default_top_k, settings.max_top_k) == (5, 50)


def test_a_chat_message_may_be_no_longer_than_retrieval_takes_a_query() -> None:
    assert EdgeSettings(max_message_chars=8000).max_message_chars == 8000
    with pytest.raises(ValidationError, match="max_message_chars"):
        EdgeSettings(max_message_chars=8001)


def test_default_top_k_may_not_exceed_the_maximum() -> None:
    with pytest.raises(ValidationError, match="BRUNO_DEFAULT_TOP_K"):
        EdgeSettings(default_top_k=10, max_top_k=5)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("edge.local", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
