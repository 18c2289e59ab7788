"""The generation service's first answer after a start, beside its next ones: what a restart
costs the first person to chat.

    uv run python benchmarks/first_chat.py [--restarts 7] [--warm 5] [--token-delay 0.02]

Serves the wire-level Ollama stand-in here, then ``--restarts`` times: starts the generation
service as a process (``python -m bruno_generation``, as ``make run`` starts it) pointed at the
stand-in, waits until its gRPC health says SERVING (on the channel the answers then use, so
the client's connection is already up), and times to the first token of ``Generate``: the
first request, then ``--warm`` more one after another; then stops the process with SIGTERM.

It prints each start's first and warm (median) times to first token and the medians over the
starts: the first request's extra is what the service does only once (clients, connections,
look-ups). It also prints the start's spawn-to-SERVING time, where work moved out of the first
request lands. A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from machine import footer, header

from bruno.generation.v1 import generation_pb2, generation_pb2_grpc
from bruno_core import check_health, create_channel
from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import free_port

if TYPE_CHECKING:  # the async stub type exists for type checkers only
    from bruno.generation.v1.generation_pb2_grpc import GenerationServiceAsyncStub

MODEL = "llama3.2"
PASSAGES = [
    generation_pb2.Passage(
        marker=1,
        document_id="velero",
        chunk_id="velero#0",
        title="Velero",
        source="runbooks/velero.md",
        text="Velero backs up the cluster nightly. Restore a backup with velero restore create.",
        score=0.9,
    )
]


@dataclass(frozen=True)
class Start:
    serving: float  # spawn to health SERVING, seconds
    first: float  # the first Generate's time to first token
    warm: float  # the median of the next ones'


async def time_to_first_token(stub: GenerationServiceAsyncStub, n: int) -> float:
    request = generation_pb2.GenerateRequest(
        question=f"How do I restore a Velero backup? ({n})", passages=PASSAGES
    )
    started = time.perf_counter()
    first: float | None = None
    async for event in stub.Generate(request):
        if first is None and event.WhichOneof("event") == "token":
            first = time.perf_counter()
    if first is None:
        raise RuntimeError("the answer had no token")
    return first - started


async def measure(port: int, spawned: float, warm: int) -> Start:
    async with create_channel(f"127.0.0.1:{port}", timeout_seconds=30) as channel:
        deadline = time.monotonic() + 60
        while await check_health(channel, "", timeout_seconds=0.5) != "SERVING":
            if time.monotonic() > deadline:
                raise RuntimeError("the generation service did not start within 60 s")
            await asyncio.sleep(0.01)
        serving = time.perf_counter() - spawned
        stub: GenerationServiceAsyncStub = generation_pb2_grpc.GenerationServiceStub(channel)
        first = await time_to_first_token(stub, 0)
        rest = [await time_to_first_token(stub, n) for n in range(1, warm + 1)]
    return Start(serving=serving, first=first, warm=statistics.median(rest))


def one_start(ollama_url: str, warm: int) -> Start:
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": ollama_url,
        "BRUNO_GENERATION_LISTEN_ADDR": f"127.0.0.1:{port}",
        "BRUNO_LOG_LEVEL": "WARNING",
    }
    spawned = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "bruno_generation"], env=env)
    try:
        return asyncio.run(measure(port, spawned, warm))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--restarts", type=int, default=7)
    parser.add_argument("--warm", type=int, default=5, help="requests after the first, per start")
    parser.add_argument("--token-delay", type=float, default=0.02)
    args = parser.parse_args()
    print(header("first chat after a start"))
    standin = OllamaStandIn(models=[MODEL], token_delay=args.token_delay, reply="It is [1].")
    with InBackground(standin) as ollama:
        starts = []
        print("\n| start | spawn → SERVING ms | first TTFT ms | warm TTFT ms (median) |")
        print("|---|---|---|---|")
        for number in range(1, args.restarts + 1):
            start = one_start(ollama.url, args.warm)
            starts.append(start)
            print(
                f"| {number} | {start.serving * 1000:.0f} | {start.first * 1000:.1f} "
                f"| {start.warm * 1000:.1f} |"
            )
    extra = [s.first - s.warm for s in starts]
    print(
        f"\nmedians over {len(starts)} starts: spawn → SERVING "
        f"{statistics.median(s.serving for s in starts) * 1000:.0f} ms, first TTFT "
        f"{statistics.median(s.first for s in starts) * 1000:.1f} ms, warm TTFT "
        f"{statistics.median(s.warm for s in starts) * 1000:.1f} ms, the first's extra "
        f"{statistics.median(extra) * 1000:.1f} ms"
    )
    print(footer())


if __name__ == "__main__":
    main()
