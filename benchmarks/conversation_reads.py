"""What reading a conversation costs while its replaced revisions wait for the upkeep.

    uv run python benchmarks/conversation_reads.py [--before OLD_CONVERSATIONS_PY]
        [--revisions 100] [--chars 16000] [--reads 15]

Writes one conversation as ``--revisions`` revisions (100, the most the writer leaves between
two upkeeps, ``OPTIMIZE_EVERY_WRITES``; 1 is a conversation just reaped) of 50 turns of
``--chars`` characters each, beside 200 other conversations, then times a reader's ``get`` of
it (p50 and p90 of ``--reads``; a reader keeps nothing in memory, as the writer after its
memory dropped the conversation). With ``--before``, a file holding an older
``bruno_retrieval/conversations.py`` (``git show
REV:services/retrieval/src/bruno_retrieval/conversations.py``, one from before
``UPKEEP_FAILURES``: the same metric cannot be registered twice) is read the same way, the two
taking turns, on the same table in the same run. A benchmark, not a test: it asserts nothing.
Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import lancedb
import pyarrow as pa

from bruno_retrieval import conversations
from bruno_retrieval.config import RetrievalSettings

TURNS = 50
OTHERS = 200


def _module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("conversations_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _row(conversation_id: str, revision: int, turns: int, chars: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    content = [
        {"role": "user", "content": "x" * chars, "created_at": now.isoformat(), "chunk_ids": []}
    ] * turns
    return {
        "conversation_id": conversation_id,
        "turns": json.dumps(content),
        "created_at": now,
        "updated_at": now,
        "owner": None,
        "revision": revision,
    }


async def _fill(uri: str, revisions: int, chars: int) -> None:
    settings = RetrievalSettings(lancedb_uri=uri, conversation_max_turns=TURNS)
    writer = await conversations.ConversationStore.open(settings)  # the table and its index
    writer.close()
    with await (await lancedb.connect_async(uri)).open_table(conversations.TABLE) as table:
        others = [_row(f"other-{n}", 1, 4, 200) for n in range(OTHERS)]
        await table.add(pa.Table.from_pylist(others, schema=conversations._SCHEMA))
        await table.optimize()  # the others indexed; the hot conversation's rows are not yet
        for revision in range(1, revisions + 1):  # one write per revision, as appends make them
            row = _row("hot", revision, TURNS, chars)
            await table.add(pa.Table.from_pylist([row], schema=conversations._SCHEMA))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", help="an older conversations.py to compare with")
    parser.add_argument("--revisions", type=int, default=100)
    parser.add_argument("--chars", type=int, default=16_000)
    parser.add_argument("--reads", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        uri = f"{folder}/db"
        await _fill(uri, args.revisions, args.chars)
        settings = RetrievalSettings(
            lancedb_uri=uri, conversation_max_turns=TURNS, retrieval_role="reader"
        )
        modules = {"now": conversations}
        if args.before:
            modules = {"before": _module(args.before), **modules}
        stores = {name: await m.ConversationStore.open(settings) for name, m in modules.items()}
        times: dict[str, list[float]] = {name: [] for name in stores}
        for _ in range(args.reads):
            for name, store in stores.items():
                start = time.perf_counter()
                found = await store.get("hot")
                times[name].append((time.perf_counter() - start) * 1000)
                if (found.revision, len(found.turns)) != (args.revisions, TURNS):
                    raise SystemExit(f"{name} read revision {found.revision}, not the newest")
        for store in stores.values():
            store.close()
    mb = args.revisions * TURNS * args.chars / 1e6
    print(
        f"{args.revisions} revisions x {TURNS} turns x {args.chars} chars (~{mb:.0f} MB of turns)"
    )
    for name, samples in times.items():
        deciles = statistics.quantiles(samples, n=10)
        print(f"{name:>7}: p50 {statistics.median(samples):8.1f} ms  p90 {deciles[8]:8.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
