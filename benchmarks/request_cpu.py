"""CPU each service's process spends on one request, per kind of request: a measure a busy
machine inflates much less than wall time (#14).

    uv run python benchmarks/request_cpu.py [--requests 300] [--chats 75]
    uv run --with py-spy python benchmarks/request_cpu.py --py-spy DIR

Starts the four services as processes (``bruno_testing.BrunoSystem``, embedded defaults, one
API key) beside the Ollama stand-in without token delay, ingests one document, then sends
sequential requests through the edge, one kind after another: text searches and hybrid
searches of one question (its vector cached by retrieval after the warm-up), streamed chats
with distinct questions that each start a conversation, follow-up chats that each continue
one (the conversation read, the question rewritten, the turns appended), and hybrid searches
of distinct questions sixteen at once (the edge sheds some by design; they count as requests).
For each kind it prints the CPU (user + system, ``/proc``) each process spent per request. With
``--py-spy DIR`` retrieval is sampled by py-spy during each kind, one raw file per kind in DIR,
for shares by library. A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md
("Third pass: retrieval").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from machine import cpu_seconds, footer, header
from restore_stack import KEY, MODEL, QUERY, pids, restore_stack

from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

SERVICES = ("edge", "retrieval", "embedding", "generation")


async def chat(client: httpx.AsyncClient, body: dict[str, str]) -> str:
    """One streamed chat read to its end; the conversation id it was recorded under."""
    conversation = ""
    async with client.stream("POST", "/api/v1/chat", json={**body, "stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("event: error"):
                raise RuntimeError("the edge answered with an error event")
            if line.startswith("data: {") and '"conversation_id"' in line:
                conversation = json.loads(line[len("data: ") :])["conversation_id"]
    return conversation


def py_spy(raw: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` into ``raw`` until interrupted (``uv run --with py-spy`` puts
    it on the PATH)."""
    executable = shutil.which("py-spy")
    if executable is None:
        raise SystemExit("--py-spy needs py-spy: uv run --with py-spy python ...")
    command = [executable, "record", "-r", "200", "-f", "raw"]
    return subprocess.Popen(  # noqa: S603 - py-spy on our own child process
        [*command, "-o", str(raw), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure(system: BrunoSystem, args: argparse.Namespace) -> None:
    processes = pids(system)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=system.edge_url, headers=headers, timeout=60) as edge:

        async def search(mode: str) -> None:
            body = {"query": QUERY, "mode": mode}
            (await edge.post("/api/v1/search", json=body)).raise_for_status()

        shed: list[int] = []

        async def sixteen(n: int) -> None:
            """Sixteen hybrid searches at once of distinct questions (each embedded); those
            the edge sheds (503, by design past its in-flight bound) are counted."""
            bodies = [{"query": f"{QUERY} ({16 * n + k})"} for k in range(16)]
            answers = await asyncio.gather(*(edge.post("/api/v1/search", json=b) for b in bodies))
            for answer in answers:
                if answer.status_code == 503:
                    shed.append(n)
                else:
                    answer.raise_for_status()

        started: list[str] = []

        async def new_chat(n: int) -> None:
            started.append(await chat(edge, {"message": f"question {n}: how do I restore?"}))

        async def follow_up(n: int) -> None:
            body = {"message": f"and step {n}?", "conversation_id": started[n]}
            await chat(edge, body)

        kinds: dict[str, tuple[int, Callable[[int], Awaitable[None]]]] = {
            "text search": (args.requests, lambda n: search("text")),
            "hybrid search": (args.requests, lambda n: search("hybrid")),
            "chat, new conversation": (args.chats, new_chat),
            "chat, follow-up": (args.chats, follow_up),
            "hybrid search, 16 at once, distinct questions": (args.requests // 16, sixteen),
        }
        for _ in range(5):  # warm: connections, the query vector, the tables' handles
            await search("text")
            await search("hybrid")
        print("| request | n | " + " | ".join(SERVICES) + " |")
        print("|---|---|" + "---|" * len(SERVICES))
        for kind, (count, call) in kinds.items():
            spy = None
            if args.py_spy:
                raw = Path(args.py_spy) / f"{kind.replace(' ', '-').replace(',', '')}.txt"
                spy = py_spy(raw, processes["retrieval"])
                await asyncio.sleep(3)  # py-spy attached
            before = cpu_seconds(processes)
            for n in range(count):
                await call(n)
            after = cpu_seconds(processes)
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
                spy.wait(timeout=60)
            requests = count * 16 if "16 at once" in kind else count
            per = [1000 * (after[s] - before[s]) / requests for s in SERVICES]
            print(f"| {kind} | {requests} | " + " | ".join(f"{ms:.2f} ms" for ms in per) + " |")
        print(f"\n16 at once: {len(shed)} of {16 * (args.requests // 16)} shed (503)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--chats", type=int, default=75)
    parser.add_argument("--py-spy", default="", help="a directory for py-spy's raw profiles")
    args = parser.parse_args()
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    print(header("request CPU") + "\n")
    standin = OllamaStandIn(models=[MODEL], token_delay=0, reply="It is [1].")
    with (
        InBackground(standin) as ollama,
        tempfile.TemporaryDirectory() as tmp,
        restore_stack(Path(tmp), ollama.url) as system,
    ):
        asyncio.run(measure(system, args))
    print(footer())


if __name__ == "__main__":
    main()
