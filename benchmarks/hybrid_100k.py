"""Hybrid search at 100,000 chunks with the question's vector cached: where each ms goes, and
this tree against another through gRPC (#14).

    uv run python benchmarks/hybrid_100k.py [--lancedb DIR] [--rounds 3] [--before TREE]

1. builds ``benchmarks/retrieval.py``'s synthetic 100,000-chunk collection (its HNSW-SQ index)
   in ``--lancedb`` once, and reuses it on later runs (~3 min to build on 2 cores);
2. in-process, the parts of one hybrid search (top_k 10, 40 candidates a leg) for 100
   Cranfield questions, each part timed in turn per question, ``--rounds`` times: each leg
   reading every result column (as the search does), only fusion's columns (chunk id, document
   id, content hash) and the row id, only the row id and score; both legs at once; the fusion;
   a take of the fused 10 by row id, every result column (what late materialization would add);
   the store's whole search. Vectors are fixed per question (the query cache's hit);
3. with ``--before TREE`` (a source tree with its own ``.venv``, e.g. ``git archive`` of the
   old commit and ``uv sync --frozen --all-packages`` there): one embedding service and a
   retrieval service of each tree on that table, the questions' vectors cached by a first
   search; then searches alternate between the two, and their answers are compared.

A benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md ("Eleventh pass").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import retrieval as bench  # the 100k collection and corpora of bench-retrieval
from lancedb.query import FullTextQuery

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    AnnIndex,
    Embedded,
    KnowledgeStore,
    SearchHit,
    SearchMode,
    fuse,
    reads,
)
from bruno_retrieval.knowledge.schema import Ranking
from bruno_testing.system import free_port

TOP_K, CANDIDATES, QUESTIONS = 10, 40, 100
# What fusion needs of a candidate: its key and its document's version.
FUSION_COLUMNS = ["chunk_id", "document_id", "content_hash"]


class FixedVectors:
    """One synthetic vector per question, the same every time: a cached question."""

    def __init__(self) -> None:
        self._vectors = bench.SyntheticEmbedder(seed=3)
        self._cache: dict[str, list[float]] = {}

    async def embed(self, texts: Any, input_type: Any, model: str = "") -> Embedded:
        vector = self._cache.get(texts[0])
        if vector is None:
            vector = self._cache[texts[0]] = self._vectors.vectors(1).tolist()[0]
        return Embedded([vector], bench.MODEL_NAME)


async def build_once(lancedb: Path, vocabulary: list[str]) -> None:
    if (lancedb / f"{bench.SYNTHETIC}.lance").exists():
        print(f"reusing {lancedb}", file=sys.stderr)
        return
    built = await bench.build_synthetic(lancedb, vocabulary, AnnIndex.HNSW_SQ)
    print(f"built {built['chunks']} chunks in {lancedb}", file=sys.stderr)


def p50_p95(times: list[float]) -> str:
    ordered = sorted(times)
    return f"{statistics.median(ordered):.2f} / {ordered[int(0.95 * len(ordered)) - 1]:.2f}"


async def parts(lancedb: Path, questions: list[str], rounds: int) -> None:
    settings = RetrievalSettings(lancedb_uri=str(lancedb), ann_min_rows=0, query_cache_size=0)
    vectors = FixedVectors()
    store = await KnowledgeStore.open(settings, vectors)
    entry = store._catalog.entry(bench.SYNTHETIC)
    if entry is None:
        raise SystemExit(f"no {bench.SYNTHETIC} collection in {lancedb}")
    table = await store._catalog.table(entry)
    await store._indexes.adopt(bench.SYNTHETIC, table, rebuild=False)
    columns = await store._paged_tables.result_columns(table)
    indexes = store._indexes

    async def keywords(q: str) -> FullTextQuery:
        return await store._catalog.keywords.query(table, q)

    async def vector(q: str) -> list[float]:
        return (await vectors.embed([q], 0)).vectors[0]

    async def text_ids(q: str) -> Any:
        search = table.query().nearest_to_text(await keywords(q)).select(["_score"])
        return await reads.ranked_columns(search.with_row_id().limit(CANDIDATES))

    async def vector_ids(q: str) -> Any:
        search = table.query().nearest_to(await vector(q)).distance_type("cosine")
        search = indexes.tune(search, table.name, CANDIDATES, TOP_K).select(["_distance"])
        return await reads.ranked_columns(search.with_row_id().limit(CANDIDATES))

    async def text_all(q: str) -> Any:
        return await reads.text_ranking(table, await keywords(q), CANDIDATES, None, columns)

    async def vector_all(q: str) -> Any:
        return await reads.vector_ranking(
            table, await vector(q), CANDIDATES, None, indexes, columns, TOP_K
        )

    async def text_fusion(q: str) -> dict[str, list[Any]]:
        search = table.query().nearest_to_text(await keywords(q))
        search = search.select([*FUSION_COLUMNS, "_score"]).with_row_id()
        return await reads.ranked_columns(search.limit(CANDIDATES))

    async def vector_fusion(q: str) -> dict[str, list[Any]]:
        search = table.query().nearest_to(await vector(q)).distance_type("cosine")
        search = indexes.tune(search, table.name, CANDIDATES, TOP_K)
        search = search.select([*FUSION_COLUMNS, "_distance"]).with_row_id()
        return await reads.ranked_columns(search.limit(CANDIDATES))

    async def both_all(q: str) -> Any:
        return await asyncio.gather(text_all(q), vector_all(q))

    async def both_fusion(q: str) -> Any:
        return await asyncio.gather(text_fusion(q), vector_fusion(q))

    legs: dict[str, tuple[Ranking, Ranking]] = {}
    for q in questions:
        legs[q] = await both_all(q)

    async def fusion(q: str) -> list[SearchHit]:
        by_text, by_vector = legs[q]
        return fuse(by_vector, by_text, TOP_K, store._fusion.for_query(q))

    every = (await table.query().select(["chunk_id"]).with_row_id().to_arrow()).to_pylist()
    row_id = {row["chunk_id"]: row["_rowid"] for row in every}
    # Where the fused 10 were found, as legs reading row ids would know.
    rows_of = {q: [row_id[hit.chunk_id] for hit in await fusion(q)] for q in questions}

    async def take(q: str) -> Any:
        return await reads.ranked_columns(table.take_row_ids(rows_of[q]).select(columns))

    async def search(q: str) -> Any:
        return await store.search(bench.SYNTHETIC, q, top_k=TOP_K, mode=SearchMode.HYBRID)

    variants: dict[str, Callable[[str], Awaitable[Any]]] = {
        "keyword leg, every result column": text_all,
        "keyword leg, fusion's columns + row id": text_fusion,
        "keyword leg, row id + score only": text_ids,
        "vector leg, every result column": vector_all,
        "vector leg, fusion's columns + row id": vector_fusion,
        "vector leg, row id + score only": vector_ids,
        "both legs at once, every result column (the search's)": both_all,
        "both legs at once, fusion's columns + row id": both_fusion,
        "fusion (fuse, 80 candidates)": fusion,
        "take the fused 10 by row id, every result column": take,
        "the store's hybrid search": search,
    }
    for q in questions:  # warm
        for run in variants.values():
            await run(q)
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for q in questions:
            for name, run in variants.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                await run(q)
                times[name].append((time.perf_counter() - started) * 1000)
                cpu[name].append((time.process_time() - cpu_started) * 1000)
    print(f"\n## Parts, in-process ({len(questions)} questions x {rounds} rounds)\n")
    print("| part | ms p50 / p95 | CPU ms p50 |")
    print("|---|---|---|")
    for name in variants:
        print(f"| {name} | {p50_p95(times[name])} | {statistics.median(cpu[name]):.2f} |")
    store.close()


def start(python: str, module: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 - our own interpreters and modules
            [python, "-m", module], env={**os.environ, **env}, stdout=out, stderr=out
        )


async def through_grpc(lancedb: Path, before: Path, questions: list[str], rounds: int) -> None:
    ports = {name: free_port() for name in ("embedding", "before", "now")}
    common = {
        "BRUNO_LOG_LEVEL": "WARNING",
        "BRUNO_LANCEDB_URI": str(lancedb),
        "BRUNO_ANN_INDEX": AnnIndex.HNSW_SQ.value,
        "BRUNO_EMBEDDING_LISTEN_ADDR": f"127.0.0.1:{ports['embedding']}",
        "BRUNO_EMBEDDING_ADDR": f"127.0.0.1:{ports['embedding']}",
    }
    pythons = {"before": str(before / ".venv/bin/python"), "now": sys.executable}
    logs = lancedb.parent
    processes = [start(sys.executable, "bruno_embedding", logs / "embedding.log", common)]
    for name, python in pythons.items():
        env = {**common, "BRUNO_RETRIEVAL_LISTEN_ADDR": f"127.0.0.1:{ports[name]}"}
        processes.append(start(python, "bruno_retrieval", logs / f"retrieval-{name}.log", env))
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{ports[name]}") for name in pythons}
    try:
        stubs = {name: retrieval_pb2_grpc.RetrievalServiceStub(c) for name, c in channels.items()}

        def request(q: str) -> retrieval_pb2.SearchRequest:
            mode = retrieval_pb2.SEARCH_MODE_HYBRID
            return retrieval_pb2.SearchRequest(
                collection=bench.SYNTHETIC, query=q, top_k=TOP_K, mode=mode
            )

        for stub in stubs.values():
            await stub.Search(request("warm"), wait_for_ready=True, timeout=120)
        same = 0
        for q in questions:  # caches each question's vector in both
            answers = [(await stub.Search(request(q))).hits for stub in stubs.values()]
            same += answers[0] == answers[1]
        times: dict[str, list[float]] = {name: [] for name in stubs}
        for round_ in range(rounds):
            for i, q in enumerate(questions):
                order = list(stubs) if (i + round_) % 2 else list(reversed(stubs))
                for name in order:
                    started = time.perf_counter()
                    await stubs[name].Search(request(q))
                    times[name].append((time.perf_counter() - started) * 1000)
        ratios = sorted(n / b for n, b in zip(times["now"], times["before"], strict=True))
        print(f"\n## gRPC Search, hybrid, vector cached, alternating ({len(times['now'])} each)\n")
        print(f"identical answers (every field of every hit): {same}/{len(questions)}\n")
        print("| tree | ms p50 / p95 |")
        print("|---|---|")
        for name, taken in times.items():
            print(f"| {name} | {p50_p95(taken)} |")
        print(f"\nnow / before, paired per question: median {statistics.median(ratios):.3f}")
    finally:
        for channel in channels.values():
            await channel.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lancedb",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bruno-hybrid-100k" / "lancedb",
    )
    parser.add_argument("--cranfield", type=Path, default=bench.DEFAULT_CRANFIELD)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another source tree, with its .venv")
    parser.add_argument("--skip-parts", action="store_true", help="only the gRPC comparison")
    args = parser.parse_args()
    cranfield = bench.load_cranfield(args.cranfield)
    words = " ".join(document["text"].lower() for document in cranfield.documents)
    print(f"# hybrid_100k.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}")
    await build_once(args.lancedb, re.findall(r"[a-z]{3,}", words))
    questions = cranfield.queries[:QUESTIONS]
    if not args.skip_parts:
        await parts(args.lancedb, questions, args.rounds)
    if args.before:
        await through_grpc(args.lancedb, args.before.resolve(), questions, args.rounds)
    print(f"\nload {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
