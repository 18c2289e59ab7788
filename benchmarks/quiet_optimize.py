"""What the quiet optimize saves a search: retrieval's CPU per text and hybrid search of a
collection as a few ingests left it, then once the optimize the quiet timer runs has run.

    uv run python benchmarks/quiet_optimize.py [--documents 1 10 19] [--searches 600]

For each count of ``--documents`` (each of five chunks, one ingest each; 1: the overhead
bench's one-chunk document alone), a fresh ``KnowledgeStore`` in a temporary directory with the
quiet optimize held back ingests them one at a time: fewer than 20 writes and 100 rows, so the
periodic optimize never runs. Then ``--searches`` text and hybrid searches of one question (its
vector from a hashing embedder in-process: no model) are timed with ``time.process_time`` (the
whole process, LanceDB's threads included), three times alternating, before and after the
writer's optimize (what the quiet timer runs). Printed: the keyword index's unindexed rows and
the table's fragments, and CPU ms per search, each repetition. A benchmark, not a test: it
asserts nothing. Results: docs/benchmarks.md ("Tenth pass: retrieval's quiet optimize").
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import re
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from machine import footer, header
from restore_stack import DOCUMENT, QUERY

from bruno.embedding.v1 import embedding_pb2
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Embedded, KnowledgeStore, SearchMode
from bruno_retrieval.knowledge.keywords import text_index

DIMENSION = 384
CHUNKS_PER_DOCUMENT = 5
REPEATS = 3


class HashingEmbedder:
    """Bag-of-words vectors of hashed words: no model, the same vector for the same text."""

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        vectors = []
        for text in texts:
            vector = [0.0] * DIMENSION
            vector[0] = 0.01
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                vector[1 + int.from_bytes(digest) % (DIMENSION - 1)] += 1.0
            norm = math.sqrt(sum(value * value for value in vector))
            vectors.append([value / norm for value in vector])
        return Embedded(vectors, "hashing")


async def cpu_ms_per_search(store: KnowledgeStore, mode: SearchMode, searches: int) -> float:
    for _ in range(50):  # warm: the query vector cached, the table's caches
        await store.search("default", QUERY, top_k=5, mode=mode)
    started = time.process_time()
    for _ in range(searches):
        await store.search("default", QUERY, top_k=5, mode=mode)
    return (time.process_time() - started) * 1000 / searches


async def table_state(table: Any) -> str:
    index = await text_index(table)
    stats = None if index is None else await table.index_stats(index.name)
    unindexed = "?" if stats is None else stats.num_unindexed_rows
    fragments = (await table.stats())["fragment_stats"]["num_fragments"]
    rows = await table.count_rows()
    return f"{rows} rows, {unindexed} outside the keyword index, {fragments} fragments"


async def measure(documents: int, searches: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        # An hour: the optimize is run by hand below, not by the timer.
        settings = RetrievalSettings(
            lancedb_uri=directory,
            chunk_size_tokens=64,
            chunk_overlap_tokens=0,
            optimize_quiet_seconds=3600,
        )
        store = await KnowledgeStore.open(settings, HashingEmbedder())
        try:
            for n in range(documents):
                parts = [f"{DOCUMENT} Part {p} of note {n}." for p in range(CHUNKS_PER_DOCUMENT)]
                text = DOCUMENT if documents == 1 else "\n\n".join(parts)
                await store.ingest("default", text=text, document_id=f"note-{n}")
            entry = store._catalog.entry("default")
            assert entry is not None  # noqa: S101 - just written
            table = await store._catalog.table(entry)
            print(f"\n{documents} document(s), as ingested: {await table_state(table)}")
            before = {
                mode: [await cpu_ms_per_search(store, mode, searches) for _ in range(REPEATS)]
                for mode in (SearchMode.TEXT, SearchMode.HYBRID)
            }
            await store._writer._optimize("default")  # what the quiet timer runs
            print(f"after the optimize: {await table_state(table)}")
            after = {
                mode: [await cpu_ms_per_search(store, mode, searches) for _ in range(REPEATS)]
                for mode in (SearchMode.TEXT, SearchMode.HYBRID)
            }
        finally:
            store.close()
    print("\n| search | CPU ms as ingested | CPU ms optimized |")
    print("|---|---|---|")
    for mode in (SearchMode.TEXT, SearchMode.HYBRID):
        shown = [" / ".join(f"{ms:.2f}" for ms in values[mode]) for values in (before, after)]
        print(f"| {mode.value} | {shown[0]} | {shown[1]} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[1, 10, 19])
    parser.add_argument("--searches", type=int, default=600)
    args = parser.parse_args()
    print(header("quiet-optimize"))
    for documents in args.documents:
        await measure(documents, args.searches)
    print(footer())


if __name__ == "__main__":
    asyncio.run(main())
