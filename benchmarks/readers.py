"""Search throughput of retrieval's readers: one reader against two, at a fixed concurrency,
with the CPU each search costs the readers, so scaling to more cores can be projected.

    uv run python benchmarks/readers.py [--seconds 20] [--concurrency 16] [--s3] [--no-write]

Starts the system as real processes (``bruno_testing.system``): retrieval's writer and two
readers of one knowledge base, a local directory by default or, with ``--s3``, moto's S3
server on loopback (``bruno_testing.s3_standin``, in this process: its CPU is this process's,
reported apart). Cranfield's 1,400 abstracts are ingested through the edge into the writer; each
reader is then warmed with every Cranfield query (its query-vector cache filled, so the
embedding service is out of the measurement: it scales on its own). Then, for ``--seconds``
each, ``--concurrency`` clients send hybrid searches (top 5) over gRPC to one reader, then
round-robin to both. Reported: searches per second, p50/p95 latency, the readers' CPU seconds
per search (user + system of their processes, psutil) and the other processes' CPU beside.
On a 2-core machine two readers cannot do more work than one: what scales is CPU per search.
The result block replaces the previous one in ``docs/benchmarks.md`` (``--no-write``: print
only). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil
from retrieval import DEFAULT_CRANFIELD, ingest_rest, load_cranfield

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import create_channel
from bruno_testing.background import InBackground
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.s3_standin import S3StandIn
from bruno_testing.system import BrunoSystem

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- make bench-readers: begin -->"
END = "<!-- make bench-readers: end -->"
READERS = ("retrieval-reader-1", "retrieval-reader-2")
COLLECTION = "cranfield"


@dataclass(frozen=True)
class Run:
    readers: int
    searches: int
    seconds: float
    p50_ms: float
    p95_ms: float
    reader_cpu: float  # seconds, the readers' processes together
    other_cpu: dict[str, float]  # seconds, per other process

    @property
    def rate(self) -> float:
        return self.searches / self.seconds

    @property
    def cpu_ms_per_search(self) -> float:
        return 1000 * self.reader_cpu / self.searches


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def measure(
    system: BrunoSystem,
    readers: tuple[str, ...],
    queries: list[str],
    *,
    seconds: float,
    concurrency: int,
) -> Run:
    target = "ipv4:" + ",".join(f"127.0.0.1:{system.ports[name]}" for name in readers)
    pids = {name: process.pid for name, process in system.processes.items()}
    pids["benchmark"] = os.getpid()
    latencies: list[float] = []
    async with create_channel(target, timeout_seconds=30) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        await stub.Search(retrieval_pb2.SearchRequest(collection=COLLECTION, query=queries[0]))
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        deadline = started + seconds

        async def client(offset: int) -> None:
            n = offset
            while time.perf_counter() < deadline:
                request = retrieval_pb2.SearchRequest(
                    collection=COLLECTION, query=queries[n % len(queries)], top_k=5
                )
                sent = time.perf_counter()
                await stub.Search(request)
                latencies.append(time.perf_counter() - sent)
                n += concurrency

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        spent = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    ordered = sorted(latencies)
    return Run(
        readers=len(readers),
        searches=len(latencies),
        seconds=elapsed,
        p50_ms=1000 * statistics.median(ordered),
        p95_ms=1000 * ordered[int(0.95 * (len(ordered) - 1))],
        reader_cpu=sum(spent[name] for name in readers),
        other_cpu={name: cpu for name, cpu in spent.items() if name not in READERS},
    )


async def warm(system: BrunoSystem, queries: list[str]) -> None:
    """Every query once through each reader: its query-vector cache filled, its tables open."""
    for name in READERS:
        async with create_channel(f"127.0.0.1:{system.ports[name]}", timeout_seconds=60) as ch:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(ch)
            for query in queries:
                await stub.Search(retrieval_pb2.SearchRequest(collection=COLLECTION, query=query))


def report(runs: list[Run], *, store: str, concurrency: int, chunks: int) -> str:
    one = runs[0]
    lines = [
        BEGIN,
        f"`make bench-readers` ({store}), {datetime.now(UTC):%Y-%m-%d}, "
        f"{platform.machine()} with {os.cpu_count()} cores (the readers, the writer, embedding, "
        f"generation, the edge and this client share them): Cranfield, {chunks:,} chunks, "
        f"hybrid top 5, {concurrency} concurrent gRPC clients, query vectors cached.",
        "",
        "| readers | searches/s | p50 | p95 | readers' CPU per search | vs one reader |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        lines.append(
            f"| {run.readers} | {run.rate:.0f} | {run.p50_ms:.1f} ms | {run.p95_ms:.1f} ms "
            f"| {run.cpu_ms_per_search:.2f} ms | {run.rate / one.rate:.2f} |"
        )
    others = ", ".join(
        f"{name} {1000 * cpu / runs[-1].searches:.2f} ms"
        for name, cpu in sorted(runs[-1].other_cpu.items())
        if cpu > 0.01
    )
    cores = os.cpu_count() or 1
    lines += [
        "",
        f"CPU per search elsewhere (two readers): {others}. A reader needs "
        f"~{one.cpu_ms_per_search:.1f} ms of CPU per search, so one core serves about "
        f"{1000 / one.cpu_ms_per_search:.0f} searches/s; with a core per reader, throughput "
        f"grows with the readers until the embedding service (uncached queries) or the "
        f"object store is the limit. Here {cores} cores bound both runs alike.",
        END,
    ]
    return "\n".join(lines)


def write(block: str) -> None:
    text = BENCHMARKS_DOC.read_text()
    if BEGIN in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Retrieval readers\n\n" + block + "\n"
    BENCHMARKS_DOC.write_text(text)


async def bench(args: argparse.Namespace) -> str:
    cranfield = load_cranfield(args.cranfield)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {"BRUNO_LANCEDB_URI": str(workdir / "lancedb"), "BRUNO_ANN_MIN_ROWS": "0"}
        store = "local directory"
        if args.s3:
            s3 = stack.enter_context(S3StandIn())
            env |= {**s3.env, "BRUNO_LANCEDB_URI": s3.uri("bench")}
            store = "moto's S3 server on loopback"
        ollama = stack.enter_context(InBackground(OllamaStandIn(models=["llama3.2"])))
        system = stack.enter_context(
            BrunoSystem(workdir, ollama_host=ollama.url, env=env, retrieval_readers=len(READERS))
        )
        chunks, _ = await ingest_rest(system.edge_url, cranfield, COLLECTION)
        await asyncio.sleep(2 * 1.0)  # the readers' lag: they see the last commit
        await warm(system, cranfield.queries)
        runs = [
            await measure(
                system,
                readers,
                cranfield.queries,
                seconds=args.seconds,
                concurrency=args.concurrency,
            )
            for readers in (READERS[:1], READERS)
        ]
    return report(runs, store=store, concurrency=args.concurrency, chunks=chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--s3", action="store_true", help="the knowledge base on moto's S3")
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    block = asyncio.run(bench(args))
    print(block)
    if not args.no_write:
        write(block)


if __name__ == "__main__":
    main()
