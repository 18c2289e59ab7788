"""The real edge process stopping and facing slow clients: SIGTERM lets streams finish within
the grace period or ends them with an error event; connections whose headers or body never
arrive are cut and their file descriptors released; an early answer closes its connection;
open connections are capped."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.sse import read_events
from bruno_testing.system import BrunoSystem

pytestmark = pytest.mark.integration

ANSWER = " ".join(["Restart"] * 19 + ["[1]."])
RUNBOOK = {"id": "crashloop", "text": "To fix a crashloop restart the pod and read its logs."}
QUESTION = "How do I fix a crashloop? Restart the pod?"
STREAMS = 5
HEADER_TIMEOUT = 2


@pytest.fixture(scope="module")
def slow_model() -> Iterator[OllamaStandIn]:
    with InBackground(OllamaStandIn(models=["llama3.2"], reply=ANSWER)) as ollama:
        yield ollama


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, slow_model: OllamaStandIn
) -> Iterator[BrunoSystem]:
    env = {
        "BRUNO_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "BRUNO_BODY_TIMEOUT_SECONDS": "2",
        "BRUNO_MAX_CONNECTIONS": "12",
        "BRUNO_MAX_REQUEST_BYTES": "4096",
        "BRUNO_CONCURRENT_CHATS": str(STREAMS),
        # The streams must run at once: the stand-in answers them all together.
        "BRUNO_OLLAMA_PARALLEL": str(STREAMS),
    }
    workdir = tmp_path_factory.mktemp("bruno-lifecycle")
    with BrunoSystem(workdir, ollama_host=slow_model.url, env=env) as running:
        httpx.post(
            f"{running.edge_url}/api/v1/documents", json=RUNBOOK, timeout=60
        ).raise_for_status()
        yield running


def restart_edge(system: BrunoSystem, **env: str) -> None:
    if "edge" in system.processes:
        system.stop_service("edge")
    system.env.update(env)
    system.start_service("edge")
    system.wait_ready()


def stream_chat(url: str, body: dict[str, Any], started: threading.Barrier) -> list[str]:
    """The lines of one streamed answer; waits at ``started`` once its first token came."""
    lines: list[str] = []
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        assert response.status_code == 200
        waited = False
        for line in response.iter_lines():
            lines.append(line)
            if not waited and line.startswith("data:"):
                started.wait(timeout=30)
                waited = True
    return lines


def five_streams(
    system: BrunoSystem, pool: ThreadPoolExecutor, started: threading.Barrier
) -> list[Future[list[str]]]:
    """Three REST chats and two OpenAI completions, streamed."""
    rest = (f"{system.edge_url}/api/v1/chat", {"message": QUESTION, "stream": True})
    openai = (
        f"{system.edge_url}/v1/chat/completions",
        {"model": "bruno", "stream": True, "messages": [{"role": "user", "content": QUESTION}]},
    )
    return [
        pool.submit(stream_chat, url, body, started)
        for url, body in [rest, rest, rest, openai, openai]
    ]


def last_event(lines: list[str]) -> tuple[str, Any]:
    if any(line == "data: [DONE]" for line in lines):
        return ("done", None)
    return read_events(lines)[-1]


def exit_code_after_sigterm(system: BrunoSystem, timeout: float = 30.0) -> int:
    """The edge's exit code once it has shut down after the SIGTERM it was sent. Not
    ``stop_service``: a second SIGTERM during the shutdown would race its end (a process whose
    handlers are already restored dies of it, -15)."""
    process = system.processes.pop("edge")
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()  # it did not shut down by itself: fail, leaving nothing behind
        process.wait()
        raise


def sigterm_after_first_tokens(system: BrunoSystem, started: threading.Barrier) -> int:
    started.wait(timeout=60)
    process = system.processes["edge"]
    process.send_signal(signal.SIGTERM)
    return process.pid


def test_streams_in_flight_at_sigterm_finish_within_the_grace_period(
    system: BrunoSystem, slow_model: OllamaStandIn
) -> None:
    restart_edge(system, BRUNO_SHUTDOWN_GRACE_SECONDS="20")
    slow_model.token_delay = 0.1  # 20 tokens: about two seconds an answer
    started = threading.Barrier(STREAMS + 1)

    with ThreadPoolExecutor(STREAMS) as pool:
        streams = five_streams(system, pool, started)
        sigterm_after_first_tokens(system, started)
        try:
            refused = httpx.get(f"{system.edge_url}/ready", timeout=5).status_code
        except httpx.TransportError:
            refused = 0  # no longer accepting at all
        endings = [last_event(stream.result(timeout=60)) for stream in streams]
    code = exit_code_after_sigterm(system)

    assert refused in (0, 503)
    for name, data in endings[:3]:
        assert name == "done", data
    assert endings[3:] == [("done", None), ("done", None)]
    assert code == 0


def test_streams_that_cannot_finish_in_time_end_with_an_error_event(
    system: BrunoSystem, slow_model: OllamaStandIn
) -> None:
    restart_edge(system, BRUNO_SHUTDOWN_GRACE_SECONDS="3")
    slow_model.token_delay = 1.0  # 20 tokens: twenty seconds an answer
    started = threading.Barrier(STREAMS + 1)

    with ThreadPoolExecutor(STREAMS) as pool:
        streams = five_streams(system, pool, started)
        sigterm_after_first_tokens(system, started)
        endings = [last_event(stream.result(timeout=60)) for stream in streams]
    code = exit_code_after_sigterm(system)
    slow_model.token_delay = 0.0

    for name, data in endings[:3]:
        assert name == "error", data
        assert data["status"] == 503
        assert "shutting down" in data["detail"]
    for name, data in endings[3:]:
        assert name == "message", data  # an OpenAI error object, and no [DONE]
        assert "shutting down" in data["error"]["message"]
    assert code == 0


def open_fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def connect(system: BrunoSystem) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", system.ports["edge"]), timeout=30)
    sock.settimeout(30)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def test_connections_whose_headers_never_finish_are_cut_and_released(
    system: BrunoSystem,
) -> None:
    restart_edge(system)
    pid = system.processes["edge"].pid
    before = open_fds(pid)
    slow = [connect(system) for _ in range(8)]
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: edge\r\n")  # and never the blank line

    answers = [read_until_closed(sock) for sock in slow]
    for sock in slow:
        sock.close()

    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert open_fds(pid) <= before
    assert httpx.get(f"{system.edge_url}/health").status_code == 200


def keep_sending(sock: socket.socket, piece: bytes, *, times: int) -> tuple[bool, bytes]:
    """Send ``piece`` every 0.2 s, up to ``times`` times, until the server closes the
    connection; whether it did, and what it answered meanwhile."""
    received = b""
    for _ in range(times):
        sock.settimeout(0.2)
        try:
            while chunk := sock.recv(4096):
                received += chunk
            return True, received  # the server closed it
        except TimeoutError:
            pass
        except OSError:
            return True, received
        try:
            sock.sendall(piece)
        except OSError:
            return True, received
    return False, received


def test_a_body_that_trickles_is_cut_before_it_ends(system: BrunoSystem) -> None:
    sock = connect(system)
    sock.sendall(
        b"POST /api/v1/search HTTP/1.1\r\nHost: edge\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{"
    )

    # One byte every 0.2 s: the body would take over three minutes; 100 bytes is 20 s.
    closed, _ = keep_sending(sock, b" ", times=100)
    sock.close()

    assert closed


def test_an_early_413_closes_a_chunked_bodys_connection(system: BrunoSystem) -> None:
    sock = connect(system)
    sock.sendall(
        b"POST /api/v1/documents HTTP/1.1\r\nHost: edge\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 1024
    piece = b"%x\r\n%s\r\n" % (len(chunk), chunk)

    # Past BRUNO_MAX_REQUEST_BYTES=4096 after five pieces; the client goes on sending.
    closed, answer = keep_sending(sock, piece, times=100)
    sock.close()

    assert answer.startswith(b"HTTP/1.1 413 ")
    assert closed


def test_connections_past_the_cap_get_503_and_are_closed(system: BrunoSystem) -> None:
    held = [connect(system) for _ in range(12 + 1)]  # BRUNO_MAX_CONNECTIONS=12
    try:
        answer = read_until_closed(held[-1])
    finally:
        for sock in held:
            sock.close()

    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 1" in answer


def test_a_keys_file_that_cannot_be_used_stops_the_edge_naming_the_line(
    system: BrunoSystem, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys.ops]\nhash = "sha256:00"\nscopes = ["read", "root"]\n')
    system.stop_service("edge")
    system.env["BRUNO_API_KEYS_FILE"] = str(keys)
    try:
        system.start_service("edge")
        code = system.processes["edge"].wait(timeout=30)
        log = system.log_path("edge").read_text()
    finally:
        del system.env["BRUNO_API_KEYS_FILE"]
        system.processes.pop("edge", None)
        restart_edge(system)

    assert code == 2
    assert f"{keys}:2" in log
