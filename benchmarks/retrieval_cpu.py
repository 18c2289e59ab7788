"""CPU the retrieval process spends per search and per chat's retrieval, over gRPC, at one
and sixteen calls at once; optionally against a base tree in the same run (#14).

    uv run python benchmarks/retrieval_cpu.py [--rounds 5] [--requests 160] [--before DIR]
    uv run --with py-spy python benchmarks/retrieval_cpu.py --py-spy DIR

Starts the four services as processes (``bruno_testing.BrunoSystem``, embedded defaults) and
ingests ``--documents`` Cranfield abstracts straight into retrieval; with ``--before DIR`` (a
source tree, e.g. ``git archive`` of main unpacked) a second system runs beside it with DIR's
``packages/core/src`` and ``services/retrieval/src`` first on its ``PYTHONPATH``, and each round
measures both, alternating which goes first. The kinds, each ``--requests`` calls: text and
hybrid searches of Cranfield's questions (their vectors cached by a warm-up), sequential and
sixteen at once; a chat's retrieval (a hybrid search of a new question, so embedded, then the
``AppendTurns`` that starts its conversation), sequential and sixteen at once. Reported: the
retrieval process's CPU (user + system from ``/proc/<pid>/stat``, psutil) per call of each
kind, median and range over the rounds, and with ``--before`` the ratio of the two in each
round. With ``--py-spy DIR`` the (first) system's retrieval is sampled during each kind of
the last round, one raw file per kind. A benchmark, not a test: it asserts nothing. Results:
docs/benchmarks.md ("Sixth pass: retrieval per search").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import psutil
from retrieval import DEFAULT_CRANFIELD, load_cranfield

from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import create_channel
from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

COLLECTION = "cranfield"
THREADS = os.environ.get("RETRIEVAL_CPU_THREADS") == "1"
KINDS = ("text c=1", "hybrid c=1", "text c=16", "hybrid c=16", "chat c=1", "chat c=16")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``, summed by thread name (``/proc/<pid>/task``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = name.rstrip("0123456789-_ ") or name
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def py_spy(raw: Path, pid: int, native: bool) -> subprocess.Popen[bytes]:
    executable = shutil.which("py-spy")
    if executable is None:
        raise SystemExit("--py-spy needs py-spy: uv run --with py-spy python ...")
    return subprocess.Popen(  # noqa: S603 - py-spy on our own child process
        [executable, "record", "-r", "200", "-f", "raw"]
        + (["--native"] if native else ["--nonblocking"])  # native stacks need the pauses
        + ["-o", str(raw), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Target:
    """One running system, reached over gRPC at its retrieval service."""

    def __init__(self, name: str, system: BrunoSystem) -> None:
        self.name = name
        self.system = system
        self.pid = system.processes["retrieval"].pid
        self.embedding_pid = system.processes["embedding"].pid
        self.address = f"127.0.0.1:{system.ports['retrieval']}"


async def ingest(target: Target, documents: list[dict[str, str]]) -> None:
    async with create_channel(target.address, timeout_seconds=120) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        # One at a time: every system's table then ends in the same state (one commit per
        # document, the writer's optimize after every 20th), whatever the timing. Ingested
        # concurrently, the commits grouped differently and one system's table kept rows
        # outside its keyword index that every text query scanned: 1.4-1.7x the CPU per search.
        for document in documents:
            await stub.IngestDocument(
                retrieval_pb2.IngestDocumentRequest(
                    collection=COLLECTION,
                    document_id=document["id"],
                    title=document["title"][:500],
                    text=document["text"],
                )
            )
        await asyncio.sleep(5)  # the last optimize, in the background, done


async def measure(
    target: Target, kind: str, queries: list[str], requests: int, round_: int
) -> tuple[float, float]:
    """CPU ms per call of ``kind`` in retrieval and in embedding."""
    concurrency = 16 if kind.endswith("c=16") else 1
    mode = kind.split()[0]
    async with create_channel(target.address, timeout_seconds=60) as channel:
        search = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        talks = conversations_pb2_grpc.ConversationServiceStub(channel)
        hybrid = retrieval_pb2.SEARCH_MODE_HYBRID
        text = retrieval_pb2.SEARCH_MODE_TEXT

        async def call(n: int) -> None:
            if mode == "chat":
                question = f"{queries[n % len(queries)]} ({kind} {round_} {n})"
                await search.Search(
                    retrieval_pb2.SearchRequest(
                        collection=COLLECTION, query=question, top_k=5, mode=hybrid
                    )
                )
                await talks.AppendTurns(
                    conversations_pb2.AppendTurnsRequest(
                        conversation_id=str(uuid.uuid4()),
                        turns=[
                            conversations_pb2.Turn(role="user", content=question),
                            conversations_pb2.Turn(role="assistant", content="It is [1]."),
                        ],
                        create=True,
                        owner="bench",
                    )
                )
                return
            await search.Search(
                retrieval_pb2.SearchRequest(
                    collection=COLLECTION,
                    query=queries[n % len(queries)],
                    top_k=5,
                    mode=text if mode == "text" else hybrid,
                )
            )

        await call(0)  # the channel connected
        before = cpu_seconds(target.pid), cpu_seconds(target.embedding_pid)
        threads_before = thread_seconds(target.pid)
        counter = iter(range(requests))

        async def worker() -> None:
            for n in counter:
                await call(n)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        after = cpu_seconds(target.pid), cpu_seconds(target.embedding_pid)
        threads_after = thread_seconds(target.pid)
    if THREADS:
        spent = {
            name: 1000 * (seconds - threads_before.get(name, 0.0)) / requests
            for name, seconds in threads_after.items()
        }
        busy = sorted(spent.items(), key=lambda item: -item[1])
        print(
            f"  {target.name} {kind}: "
            + ", ".join(f"{name} {ms:.2f}" for name, ms in busy if ms >= 0.05),
            flush=True,
        )
    return (1000 * (after[0] - before[0]) / requests, 1000 * (after[1] - before[1]) / requests)


async def warm(target: Target, queries: list[str]) -> None:
    """Every question once: its vector cached, the table's handle open."""
    async with create_channel(target.address, timeout_seconds=60) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for query in queries:
            await stub.Search(retrieval_pb2.SearchRequest(collection=COLLECTION, query=query))


def run(args: argparse.Namespace) -> None:
    corpus = load_cranfield(args.cranfield)
    documents = corpus.documents[: args.documents]
    queries = corpus.queries[: args.queries]
    questions = list(queries)
    standin = OllamaStandIn(models=["llama3.2"], token_delay=0, reply="It is [1].")
    env = {"BRUNO_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        ollama = stack.enter_context(InBackground(standin))
        targets = []
        builds = [("branch", None)] + ([("before", args.before)] if args.before else [])
        for name, tree in builds:
            extra = dict(env)
            if tree is not None:
                paths = [tree / "packages/core/src", tree / "services/retrieval/src"]
                extra["PYTHONPATH"] = os.pathsep.join(str(path) for path in paths)
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            system = stack.enter_context(BrunoSystem(workdir, ollama_host=ollama.url, env=extra))
            targets.append(Target(name, system))
        for target in targets:
            asyncio.run(ingest(target, documents))
            asyncio.run(warm(target, questions))
        results: dict[tuple[str, str], list[float]] = {}
        embedding: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            order = targets if round_ % 2 == 0 else targets[::-1]
            for kind in KINDS:
                for target in order:
                    spy = None
                    if args.py_spy and round_ == args.rounds - 1 and target is targets[0]:
                        raw = Path(args.py_spy) / f"{kind.replace(' ', '-').replace('=', '')}.txt"
                        spy = py_spy(raw, target.pid, args.native)
                        asyncio.run(asyncio.sleep(2))
                    ms, embed_ms = asyncio.run(
                        measure(target, kind, questions, args.requests, round_)
                    )
                    if spy is not None:
                        spy.send_signal(2)
                        spy.wait(timeout=60)
                    results.setdefault((target.name, kind), []).append(ms)
                    embedding.setdefault((target.name, kind), []).append(embed_ms)
            load = os.getloadavg()[0]
            print(f"round {round_ + 1} done, load {load:.2f}", flush=True)
    report(targets, results, embedding, args)


def report(
    targets: list[Target],
    results: dict[tuple[str, str], list[float]],
    embedding: dict[tuple[str, str], list[float]],
    args: argparse.Namespace,
) -> None:
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    names = [target.name for target in targets]
    header = "| kind | " + " | ".join(f"retrieval CPU ms/call, {name}" for name in names)
    header += " | after / before, per round |" if len(names) == 2 else " |"
    print("\n" + header)
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for kind in KINDS:
        cells = [spread(results[(name, kind)]) for name in names]
        if len(names) == 2:
            ratios = [
                a / b
                for a, b in zip(results[("branch", kind)], results[("before", kind)], strict=True)
            ]
            cells.append(spread(ratios))
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("\nembedding CPU ms/call (chat kinds): ", end="")
    print(
        ", ".join(
            f"{name} {kind} {statistics.median(embedding[(name, kind)]):.2f}"
            for name in names
            for kind in KINDS
            if kind.startswith("chat")
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--before", type=Path, help="a source tree to compare against")
    parser.add_argument("--py-spy", default="", help="a directory for py-spy's raw profiles")
    parser.add_argument("--native", action="store_true", help="py-spy --native")
    args = parser.parse_args()
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"# retrieval CPU {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    run(args)
    load = os.getloadavg()
    print(f"\nload at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
