"""`make run` is supervisord over `supervisord.conf`: the system it starts serves, a service
killed outright is started again while the others keep serving, and SIGTERM stops all cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import SERVICES, BrunoSystem

ROOT = Path(__file__).resolve().parents[2]
_SPAWNED = re.compile(r"spawned: '(\w+)' with pid (\d+)")


class Supervised:
    """supervisord started as `make run` starts it, its output collected line by line."""

    def __init__(self, system: BrunoSystem) -> None:
        (ROOT / "data").mkdir(exist_ok=True)  # where the config keeps its pid file
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(ROOT / "supervisord.conf")],
            env=system.env,
            cwd=system.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        # Drained continuously: a full pipe would block supervisord and every service with it.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def pid(self, name: str) -> int:
        """The pid supervisord last started ``name`` with."""
        pids = [int(m[2]) for m in map(_SPAWNED.search, self.lines) if m and m[1] == name]
        assert pids, f"{name} was never spawned:\n{self.output[-3000:]}"
        return pids[-1]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"supervisord did not stop within 60 s of SIGTERM:\n{self.output[-3000:]}")
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def supervised(tmp_path: Path, standin: OllamaStandIn) -> Iterator[tuple[BrunoSystem, Supervised]]:
    system = BrunoSystem(tmp_path, ollama_host=standin.url)  # its ports and environment only
    running = Supervised(system)
    try:
        system.wait_ready()
        yield system, running
    finally:
        if running.process.poll() is None:
            running.stop()


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _ready(edge: httpx.Client) -> httpx.Response | None:
    try:
        return edge.get("/ready", timeout=2)
    except httpx.TransportError:
        return None  # the edge itself is down


def test_make_run_serves_names_each_services_lines_and_stops_all_cleanly(
    supervised: tuple[BrunoSystem, Supervised],
) -> None:
    _, running = supervised
    assert running.stop() == 0
    records = [json.loads(line) for line in running.lines if line.startswith("{")]
    for name in SERVICES:
        assert any(record.get("service") == name for record in records), name
        assert f"stopped: {name} (exit status 0)" in running.output, running.output[-3000:]
    # The edge goes first, so no request reaches a service that is already gone.
    stopped = [m[1] for m in re.finditer(r"stopped: (\w+) ", running.output)]
    assert stopped[0] == "edge"


def _kill_and_see_it_come_back(name: str, running: Supervised, edge: httpx.Client) -> None:
    old = running.pid(name)
    os.kill(old, signal.SIGKILL)
    if name == "edge":
        # Nothing answers for the edge itself until it is back.
        _eventually(lambda: _ready(edge) is None, "the edge to go down")
    else:
        # The edge stays up and names the service that is missing.
        def names_it() -> bool:
            answer = _ready(edge)
            return answer is not None and answer.status_code == 503 and name in answer.text

        _eventually(names_it, f"/ready to name {name}")
    _eventually(lambda: running.pid(name) != old, f"{name} to be started again")

    def ready() -> bool:
        answer = _ready(edge)
        return answer is not None and answer.status_code == 200

    _eventually(ready, f"/ready after {name} came back")


def test_a_killed_service_comes_back_while_the_others_keep_serving(
    supervised: tuple[BrunoSystem, Supervised], demo_dir: Path
) -> None:
    system, running = supervised
    with httpx.Client(base_url=system.edge_url, timeout=60) as edge:
        text = (demo_dir / "ollama-models.md").read_text()
        stored = edge.post("/api/v1/documents", json={"id": "ollama-models.md", "text": text})
        assert stored.status_code == 201, stored.text
        for name in SERVICES:
            _kill_and_see_it_come_back(name, running, edge)
            question = {"message": "Which GPU does the Ollama node have?"}
            chat = edge.post("/api/v1/chat", json=question)
            assert chat.status_code == 200, (name, chat.text)
            assert chat.json()["citations"], name
    assert re.search(r"exited: embedding \(terminated by SIGKILL; not expected\)", running.output)
