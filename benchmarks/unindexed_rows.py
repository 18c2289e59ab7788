"""What rows outside the keyword index cost a text query, and what folding them in costs.

    uv run python benchmarks/unindexed_rows.py

For tables of 1,000 and 10,000 indexed rows (60 words each), adds 0, 1, 20 and 100 rows one
write at a time, then times LanceDB's full-text query (p50 of 60) before and after
``optimize()`` and the optimize itself. It chose the writer's cadence (an optimize once 100
rows are unindexed, ``knowledge/writer.py``). A benchmark, not a test: it asserts nothing.
Results: docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.index import FTS

WORDS = [
    "velero",
    "backup",
    "restore",
    "volume",
    "snapshot",
    "retrieval",
    "table",
    "night",
    "cluster",
    "pod",
    "node",
    "dns",
    "flux",
    "helm",
    "ingress",
    "secret",
]
QUERY = "restore the velero volume"


def text(n: int) -> str:
    pick = random.Random(n)  # noqa: S311 - reproducible filler, not a secret
    return " ".join(pick.choice(WORDS) for _ in range(60)) + f" ticket{n}"


async def query_p50(table: Any, runs: int = 60) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await table.query().nearest_to_text(QUERY).select(["id", "_score"]).limit(10).to_arrow()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def main() -> None:
    print("| indexed rows | unindexed rows | text query p50 | after optimize | optimize took |")
    print("|---|---|---|---|---|")
    for indexed in (1_000, 10_000):
        for unindexed in (0, 1, 20, 100):
            db = await lancedb.connect_async(tempfile.mkdtemp())
            rows = {"id": list(range(indexed)), "text": [text(n) for n in range(indexed)]}
            table = await db.create_table("chunks", pa.table(rows))
            await table.create_index("text", config=FTS(with_position=True))
            for n in range(indexed, indexed + unindexed):
                await table.add(pa.table({"id": [n], "text": [text(n)]}))
            before = await query_p50(table)
            started = time.perf_counter()
            await table.optimize()
            took = (time.perf_counter() - started) * 1000
            after = await query_p50(table)
            print(
                f"| {indexed:,} | {unindexed} | {before:.2f} ms | {after:.2f} ms | {took:.0f} ms |"
            )


if __name__ == "__main__":
    asyncio.run(main())
