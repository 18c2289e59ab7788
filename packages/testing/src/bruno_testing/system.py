"""The whole Agent Bruno system as real processes on free loopback ports, for end-to-end tests.

Each service runs as ``python -m bruno_<service>`` exactly as ``make run`` starts it, configured
only through its ``BRUNO_*`` environment, with LanceDB in a directory of the caller's choosing.

    with BrunoSystem(tmp_path, ollama_host=standin.url) as system:
        httpx.get(f"{system.edge_url}/ready")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

SERVICES = ("embedding", "retrieval", "generation", "edge")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BrunoSystem:
    """Starts, stops and restarts the four services; the edge is reached at :attr:`edge_url`."""

    def __init__(
        self,
        workdir: Path,
        *,
        ollama_host: str,
        env: dict[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.ports = {name: free_port() for name in SERVICES}
        self.edge_url = f"http://127.0.0.1:{self.ports['edge']}"
        self.env = {
            **os.environ,
            "BRUNO_LOG_FORMAT": "json",
            "BRUNO_EMBEDDING_LISTEN_ADDR": f"127.0.0.1:{self.ports['embedding']}",
            "BRUNO_RETRIEVAL_LISTEN_ADDR": f"127.0.0.1:{self.ports['retrieval']}",
            "BRUNO_GENERATION_LISTEN_ADDR": f"127.0.0.1:{self.ports['generation']}",
            "BRUNO_EMBEDDING_ADDR": f"127.0.0.1:{self.ports['embedding']}",
            "BRUNO_RETRIEVAL_ADDR": f"127.0.0.1:{self.ports['retrieval']}",
            "BRUNO_GENERATION_ADDR": f"127.0.0.1:{self.ports['generation']}",
            "BRUNO_EDGE_HOST": "127.0.0.1",
            "BRUNO_EDGE_PORT": str(self.ports["edge"]),
            "BRUNO_LANCEDB_URI": str(workdir / "lancedb"),
            "BRUNO_GRPC_GRACE_SECONDS": "2",
            "OLLAMA_HOST": ollama_host,
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_service(self, name: str) -> None:
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", f"bruno_{name}"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def stop_service(self, name: str, timeout: float = 15.0) -> int:
        """SIGTERM a service and wait for it to exit; returns its exit code."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise

    def kill_service(self, name: str) -> int:
        """SIGKILL a service, as a crash or an OOM kill ends it: no graceful stop."""
        process = self.processes.pop(name)
        process.kill()
        return process.wait()

    def start(self) -> None:
        for name in SERVICES:
            self.start_service(name)
        self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the edge's /ready answers 200, or fail with the services' logs."""
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")
            try:
                response = httpx.get(f"{self.edge_url}/ready", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.TransportError as error:
                last = repr(error)
            time.sleep(0.2)
        raise TimeoutError(f"system not ready: {last}\n{self.logs()}")

    def logs(self, tail: int = 30) -> str:
        out = []
        for name in SERVICES:
            path = self.log_path(name)
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> dict[str, int]:
        """Stop every running service; returns their exit codes."""
        return {name: self.stop_service(name) for name in reversed(list(self.processes))}

    def __enter__(self) -> BrunoSystem:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
