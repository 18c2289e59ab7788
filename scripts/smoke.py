"""Build the four service images with Docker, run them together and chat through the edge.

    python scripts/smoke.py [--keep] [--no-build]
    python scripts/smoke.py --edge-url http://edge:8080   # only the chat check (Dagger's smoke)

What it proves, on a real Docker engine (started from Debian's docker.io when none runs):
every image builds from the one Dockerfile; the containers start read-only, without
capabilities, on one user-defined network; a document ingested through the edge is cited in
the answer to a chat request (Ollama is absent, so generation answers with its extractive
fallback); every container's Docker health check turns healthy; no container runs as root.

``BRUNO_SMOKE=skip`` skips it with a loud notice (for machines that cannot run Docker).
The engine and the base image are prepared by scripts/docker-engine.sh and
scripts/base-image.sh; build logs go to build/smoke/.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("edge", "embedding", "retrieval", "generation")
BASE_IMAGE = "python:3.11-slim-bookworm"
PORTS = {"embedding": 50051, "retrieval": 50052, "generation": 50053, "edge": 8080}
LOG_DIR = REPO / "build" / "smoke"
READY_TIMEOUT = 180.0
DOCUMENT = {
    "id": "smoke-lighthouse",
    "title": "The lighthouse keeper",
    "source": "smoke://lighthouse",
    "text": (
        "The lighthouse on Quillon Point is kept by Marguerite Osei. "
        "She climbs its 117 steps every evening at dusk to light the lamp. "
        "The lamp is visible for twenty nautical miles on a clear night."
    ),
}
QUESTION = "How many steps does Marguerite climb every evening?"


class SmokeError(RuntimeError):
    """A check failed; the message says which."""


def log(message: str) -> None:
    print(f"smoke: {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, check: bool = True, env: dict[str, str] | None = None) -> str:
    # Our own docker/git/script invocations, never user input.
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    if check and result.returncode != 0:
        msg = f"`{' '.join(argv)}` exited with {result.returncode}\n{result.stderr.strip()}"
        raise SmokeError(msg)
    return result.stdout.strip()


def image_tag(service: str) -> str:
    return f"bruno-{service}:smoke"


def prepare_engine() -> str:
    """The docker client to use, with an engine answering."""
    docker = run([str(REPO / "scripts" / "docker-engine.sh")]).splitlines()[-1]
    run([str(REPO / "scripts" / "base-image.sh"), BASE_IMAGE], env={**os.environ, "DOCKER": docker})
    return docker


def build_args() -> list[str]:
    """Label values like CI's, and the host's package index settings when it has any."""
    revision = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False) or "unknown"
    args = ["--build-arg", f"IMAGE_REVISION={revision}", "--build-arg", "IMAGE_VERSION=smoke"]
    # The build reaches PyPI the way the host does: proxies are passed through (Docker's
    # predefined build arguments, never stored in the image).
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(name):
            args += ["--build-arg", name]
    return args


def build(docker: str, service: str) -> float:
    """Build one target; returns the seconds it took. The log is in build/smoke/."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    logfile = LOG_DIR / f"build-{service}.log"
    argv = [docker, "build", "--network", "host", "--progress", "plain"]
    argv += [*build_args(), "--target", service, "-t", image_tag(service), str(REPO)]
    start = time.perf_counter()
    with logfile.open("w") as out:
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        code = subprocess.run(  # noqa: S603
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    if code != 0:
        tail = "\n".join(logfile.read_text().splitlines()[-30:])
        msg = f"building {service} failed ({logfile}):\n{tail}"
        raise SmokeError(msg)
    return time.perf_counter() - start


def build_all(docker: str) -> dict[str, float]:
    """Every image, built concurrently (BuildKit shares the common stages)."""
    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        futures = {service: pool.submit(build, docker, service) for service in SERVICES}
        return {service: future.result() for service, future in futures.items()}


class System:
    """The four containers on one network; removed on exit unless kept."""

    def __init__(self, docker: str, api_key: str) -> None:
        self.docker = docker
        self.api_key = api_key
        self.prefix = f"bruno-smoke-{os.getpid()}"
        self.network = self.prefix
        self.containers: dict[str, str] = {}

    def start(self) -> None:
        run([self.docker, "network", "create", self.network])
        addrs = {s: f"{s}:{PORTS[s]}" for s in ("embedding", "retrieval", "generation")}
        env = {
            "embedding": {},
            "retrieval": {"BRUNO_EMBEDDING_ADDR": addrs["embedding"]},
            # No Ollama on the network: generation falls back to extractive answers.
            "generation": {"BRUNO_GENERATION_BACKEND": "auto"},
            "edge": {
                "BRUNO_EMBEDDING_ADDR": addrs["embedding"],
                "BRUNO_RETRIEVAL_ADDR": addrs["retrieval"],
                "BRUNO_GENERATION_ADDR": addrs["generation"],
                # The edge binds 0.0.0.0, so it requires keys.
                "BRUNO_API_KEYS": self.api_key,
            },
        }
        for service in ("embedding", "retrieval", "generation", "edge"):
            name = f"{self.prefix}-{service}"
            argv = [self.docker, "run", "--detach", "--name", name, "--network", self.network]
            argv += ["--network-alias", service, "--read-only", "--tmpfs", "/tmp"]  # noqa: S108
            argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
            for key, value in env[service].items():
                argv += ["--env", f"{key}={value}"]
            if service == "edge":
                argv += ["--publish", f"127.0.0.1::{PORTS['edge']}"]
            run([*argv, image_tag(service)])
            self.containers[service] = name

    def edge_url(self) -> str:
        port = run([self.docker, "port", self.containers["edge"], str(PORTS["edge"])])
        host_port = port.splitlines()[0].rpartition(":")[2]
        return f"http://127.0.0.1:{host_port}"

    def logs(self) -> str:
        parts = []
        for service, name in self.containers.items():
            result = subprocess.run(  # noqa: S603
                [self.docker, "logs", "--tail", "15", name],
                capture_output=True,
                text=True,
                check=False,
            )
            parts.append(f"--- {service}\n{result.stdout}{result.stderr}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.containers:
            run([self.docker, "rm", "--force", "--volumes", *self.containers.values()], check=False)
        run([self.docker, "network", "rm", self.network], check=False)


def request(
    method: str, url: str, api_key: str, body: object | None = None
) -> tuple[int, dict[str, object]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (our own URL)
    req.add_header("Authorization", f"Bearer {api_key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_ready(url: str, api_key: str, logs: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, body = request("GET", f"{url}/ready", api_key)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        else:
            if status == 200:
                return
            last = body
        time.sleep(1)
    msg = f"the edge was not ready after {READY_TIMEOUT:.0f} s: {last}\n{logs()}"
    raise SmokeError(msg)


def chat_through_the_edge(url: str, api_key: str) -> str:
    """Ingest a document, then check a chat answer cites it; the answer's text."""
    status, ingested = request("POST", f"{url}/api/v1/documents", api_key, DOCUMENT)
    if status not in (200, 201):
        raise SmokeError(f"ingest answered {status}: {ingested}")
    status, _ = request("POST", f"{url}/api/v1/chat", "wrong-key", {"message": QUESTION})
    if status != 401:
        raise SmokeError(f"chat with a wrong key answered {status}, not 401")
    status, answer = request(
        "POST", f"{url}/api/v1/chat", api_key, {"message": QUESTION, "stream": False}
    )
    if status != 200:
        raise SmokeError(f"chat answered {status}: {answer}")
    citations = answer.get("citations")
    cited = (
        [c.get("document_id") for c in citations if isinstance(c, dict)]
        if isinstance(citations, list)
        else []
    )
    text = str(answer.get("answer", ""))
    if DOCUMENT["id"] not in cited or "117" not in text:
        raise SmokeError(f"the answer does not cite the ingested document: {answer}")
    return text


def check_health_and_users(system: System) -> dict[str, str]:
    """Wait for Docker's own health checks; return each container's uid."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = dict(system.containers)
    while pending and time.monotonic() < deadline:
        for service, name in list(pending.items()):
            state = run([system.docker, "inspect", "-f", "{{.State.Health.Status}}", name])
            if state == "healthy":
                del pending[service]
            elif state == "unhealthy":
                raise SmokeError(f"{service}'s health check failed\n{system.logs()}")
        if pending:
            time.sleep(2)
    if pending:
        raise SmokeError(f"not healthy after {READY_TIMEOUT:.0f} s: {', '.join(pending)}")
    uids = {}
    for service, name in system.containers.items():
        configured = run([system.docker, "inspect", "-f", "{{.Config.User}}", name])
        uid = run([system.docker, "exec", name, "id", "-u"])
        if uid == "0" or configured in ("", "0", "root") or configured.startswith(("0:", "root")):
            raise SmokeError(f"{service} runs as root (user {configured!r}, uid {uid})")
        uids[service] = uid
    return uids


def check_edge(url: str, api_key: str) -> int:
    try:
        wait_ready(url, api_key)
        answer = chat_through_the_edge(url, api_key)
    except SmokeError as exc:
        log(f"FAILED: {exc}")
        return 1
    log(f"chat through the edge cites the ingested document: {answer[:100]!r}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke.py", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    parser.add_argument("--no-build", action="store_true", help="reuse the bruno-*:smoke images")
    parser.add_argument(
        "--edge-url", help="only check a running edge (key in BRUNO_SMOKE_API_KEY); no Docker"
    )
    args = parser.parse_args(argv)
    if args.edge_url:
        return check_edge(args.edge_url, os.environ.get("BRUNO_SMOKE_API_KEY", ""))
    if os.environ.get("BRUNO_SMOKE", "").lower() == "skip":
        log("SKIPPED because BRUNO_SMOKE=skip: no image was built or run")
        return 0
    started = time.perf_counter()
    try:
        docker = prepare_engine()
        if not args.no_build:
            log("building " + ", ".join(SERVICES) + f" (logs in {LOG_DIR.relative_to(REPO)}/)")
            seconds = build_all(docker)
            log("built in " + ", ".join(f"{s} {t:.0f} s" for s, t in seconds.items()))
        system = System(docker, api_key=secrets.token_urlsafe(24))
        try:
            system.start()
            url = system.edge_url()
            wait_ready(url, system.api_key, system.logs)
            answer = chat_through_the_edge(url, system.api_key)
            log(f"chat through the edge cites the ingested document: {answer[:100]!r}")
            uids = check_health_and_users(system)
            log("healthy and non-root: " + ", ".join(f"{s} uid {u}" for s, u in uids.items()))
        finally:
            if args.keep:
                log(f"kept: network {system.network}, edge at {system.edge_url()}")
            else:
                system.stop()
    except SmokeError as exc:
        log(f"FAILED: {exc}")
        return 1
    log(f"passed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
