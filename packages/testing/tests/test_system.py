"""The end-to-end harness: ports that stay free, and a start that survives one taken."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_testing.system import SERVICES, BrunoSystem, PortTaken, free_port


def test_a_free_port_is_chosen_below_the_ephemeral_range() -> None:
    # The kernel gives ports from that range to every outgoing connection and bind(0), so a
    # port chosen there is the one most likely to be taken before the service binds it.
    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])

    ports = {free_port() for _ in range(20)}

    assert all(port < first_ephemeral for port in ports)
    assert len(ports) > 1  # chosen at random, so two harnesses side by side seldom agree


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process could have taken after it was chosen: something listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.slow  # starts the four services, twice
def test_a_service_whose_port_was_taken_is_started_again_on_fresh_ports(
    tmp_path: Path, taken_port: int
) -> None:
    picks = iter([taken_port if name == "edge" else free_port() for name in SERVICES])

    def pick_port() -> int:
        return next(picks, None) or free_port()

    dead_ollama = f"http://127.0.0.1:{free_port()}"
    with BrunoSystem(tmp_path, ollama_host=dead_ollama, pick_port=pick_port) as system:
        ready = httpx.get(f"{system.edge_url}/ready", timeout=30)

    assert ready.status_code == 200, ready.text
    assert taken_port not in system.ports.values()


@pytest.mark.slow  # starts a service
def test_a_grpc_service_that_cannot_bind_its_port_is_told_apart_from_a_crash(
    tmp_path: Path, taken_port: int
) -> None:
    system = BrunoSystem(tmp_path, ollama_host="http://127.0.0.1:9", pick_port=lambda: taken_port)
    system.start_service("retrieval")
    try:
        with pytest.raises(PortTaken, match="retrieval exited"):
            system.wait_ready()
    finally:
        system.stop()
