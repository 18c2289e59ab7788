from __future__ import annotations

import pytest

from bruno_edge import server
from bruno_edge.config import EdgeSettings


def test_main_refuses_a_public_host_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRUNO_EDGE_HOST", "0.0.0.0")
    monkeypatch.setenv("BRUNO_API_KEYS", "")
    monkeypatch.setenv("BRUNO_LOG_FORMAT", "text")

    with pytest.raises(SystemExit) as stopped:
        server.main([])

    assert stopped.value.code == 2
    assert "BRUNO_API_KEYS" in capsys.readouterr().err


def test_main_reports_invalid_settings_without_their_values(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRUNO_EDGE_PORT", "not-a-port")

    with pytest.raises(SystemExit) as stopped:
        server.main([])

    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "BRUNO_EDGE_PORT" in err
    assert "not-a-port" not in err


@pytest.mark.parametrize(
    ("host", "keys", "allowed"),
    [
        ("127.0.0.1", "", True),
        ("0.0.0.0", "k", True),
        ("0.0.0.0", "", False),
        ("192.168.1.2", "", False),
    ],
)
def test_an_open_api_is_served_only_on_loopback(host: str, keys: str, allowed: bool) -> None:
    settings = EdgeSettings(edge_host=host, api_keys=keys)

    assert (server.exposure_problem(settings) is None) is allowed
