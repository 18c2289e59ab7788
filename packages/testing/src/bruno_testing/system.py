"""The whole Agent Bruno system as real processes on free loopback ports, for end-to-end tests.

Each service runs as ``python -m bruno_<service>`` exactly as ``make run`` starts it, configured
only through its ``BRUNO_*`` environment, with LanceDB in a directory of the caller's choosing.

    with BrunoSystem(tmp_path, ollama_host=standin.url) as system:
        httpx.get(f"{system.edge_url}/ready")

A port chosen free can be taken before the service binds it (by a test run beside this one):
the service then cannot start, and :meth:`BrunoSystem.start` starts all four again on fresh
ports. :func:`free_port` makes that rare by choosing below the kernel's ephemeral range, where
no outgoing connection and no ``bind(0)`` of another process lands.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

SERVICES = ("embedding", "retrieval", "generation", "edge")
# What a service writes when its port is taken: uvicorn (the edge) and a metrics server say
# errno 98's text, grpcio raises "Failed to bind", bruno_core's gRPC server "cannot bind".
_BIND_FAILURES = ("address already in use", "failed to bind to address", "cannot bind")
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 15_000


class PortTaken(RuntimeError):
    """A service could not bind its port: another process took it after it was chosen."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Chosen at random below the kernel's ephemeral range: the kernel hands out ports from that
    range to every outgoing connection and ``bind(0)`` on the machine, so a port from it can be
    taken between this check and the service's bind far more often than one from below it.
    """
    try:
        first_ephemeral = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32_768  # Linux's default, when the range cannot be read
    candidates = range(_LOWEST_PORT, first_ephemeral)
    for _ in range(100):
        port = random.choice(candidates) if candidates else 0  # noqa: S311 - not a secret
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: another one
            chosen: int = sock.getsockname()[1]
            return chosen
    raise OSError("no free port below the ephemeral range after 100 tries")


class BrunoSystem:
    """Starts, stops and restarts the four services; the edge is reached at :attr:`edge_url`."""

    def __init__(
        self,
        workdir: Path,
        *,
        ollama_host: str,
        env: dict[str, str] | None = None,
        startup_timeout: float = 90.0,
        start_attempts: int = 3,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.workdir = workdir
        self.startup_timeout = startup_timeout
        self.start_attempts = start_attempts
        self._ollama_host = ollama_host
        self._extra_env = env or {}
        self._pick_port = pick_port
        self._log_offsets: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._assign_ports()

    def _assign_ports(self) -> None:
        """Choose the four ports and the environment that tells each service its own and the
        others'."""
        self.ports = {name: self._pick_port() for name in SERVICES}
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
            "BRUNO_LANCEDB_URI": str(self.workdir / "lancedb"),
            "BRUNO_GRPC_GRACE_SECONDS": "2",
            "OLLAMA_HOST": self._ollama_host,
            **self._extra_env,
        }

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_service(self, name: str) -> None:
        with self.log_path(name).open("ab") as log:
            self._log_offsets[name] = log.tell()
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

    def start(self) -> None:
        """Start the four services and wait until the edge is ready; when one could not bind its
        port, stop them all and start again on fresh ports (``start_attempts`` in all)."""
        for attempt in range(1, self.start_attempts + 1):
            for name in SERVICES:
                self.start_service(name)
            try:
                self.wait_ready()
                return
            except PortTaken:
                self.stop()
                if attempt == self.start_attempts:
                    raise
                self._assign_ports()

    def wait_ready(self) -> None:
        """Block until the edge's /ready answers 200, or fail with the services' logs."""
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    failure = PortTaken if self._could_not_bind(name) else RuntimeError
                    raise failure(f"{name} exited with {process.returncode}\n{self.logs()}")
            try:
                response = httpx.get(f"{self.edge_url}/ready", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.TransportError as error:
                last = repr(error)
            time.sleep(0.2)
        raise TimeoutError(f"system not ready: {last}\n{self.logs()}")

    def _could_not_bind(self, name: str) -> bool:
        """Whether the service's log since its last start says its port was taken."""
        with self.log_path(name).open("rb") as log:
            log.seek(self._log_offsets.get(name, 0))
            written = log.read().decode(errors="replace").lower()
        return any(failure in written for failure in _BIND_FAILURES)

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
