"""Retrieval's CPU per search in-process, from the question to the ``SearchResponse`` message,
against a base tree in the same run: what the search's own Python costs, without gRPC (#14).

    uv run python benchmarks/ranked_rows.py [--rounds 5] [--searches 400] [--before DIR]

Each tree (this one, and with ``--before DIR`` DIR's ``packages/core/src`` and
``services/retrieval/src`` first on ``PYTHONPATH``, e.g. ``git archive`` of main unpacked) runs
in a child process of its own: a ``KnowledgeStore`` in a temporary directory ingests
``--documents`` Cranfield abstracts (embedded by a hashing embedder in-process, no model;
each question's vector is then cached, so no search embeds), optimizes, and answers
``--searches`` searches of Cranfield's questions per kind (text, hybrid, vector; ``top_k`` 5)
each turned into the servicer's message (``converters.search_response``). CPU is
``time.process_time`` (the whole process, LanceDB's threads included) and ``time.thread_time``
of the main thread (the Python a search runs: LanceDB executes its queries on threads of its
own). Each round runs every kind in both children, alternating which goes first; printed: CPU
ms per search per round and kind, the median, and the per-round ratio this tree / DIR. A
benchmark, not a test: it asserts nothing. Results: docs/benchmarks.md ("Eleventh pass:
retrieval's ranked rows kept columnar").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from machine import footer, header
from quiet_optimize import HashingEmbedder
from retrieval import DEFAULT_CRANFIELD, load_cranfield

from bruno.embedding.v1 import embedding_pb2
from bruno_retrieval import converters
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Embedded, KnowledgeStore, SearchMode

KINDS = {"text": SearchMode.TEXT, "hybrid": SearchMode.HYBRID, "vector": SearchMode.VECTOR}
ROOT = Path(__file__).resolve().parent.parent


class CachedEmbedder(HashingEmbedder):
    """The hashing embedder with every text's vector kept: a search embeds nothing."""

    def __init__(self) -> None:
        self._vectors: dict[str, list[float]] = {}

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        missing = [text for text in texts if text not in self._vectors]
        if missing:
            embedded = await super().embed(missing, input_type, model)
            self._vectors.update(zip(missing, embedded.vectors, strict=True))
        return Embedded([self._vectors[text] for text in texts], "hashing")


async def child(args: argparse.Namespace) -> None:
    """Set up a store, say ``ready``, then answer each kind named on stdin with CPU ms a
    search."""
    corpus = load_cranfield(args.cranfield)
    with tempfile.TemporaryDirectory() as directory:
        # The optimize is run by hand once everything is written, not by the timer.
        settings = RetrievalSettings(lancedb_uri=directory, optimize_quiet_seconds=3600)
        store = await KnowledgeStore.open(settings, CachedEmbedder())
        try:
            for document in corpus.documents[: args.documents]:
                await store.ingest("cranfield", text=document["text"], document_id=document["id"])
            await store._writer._optimize("cranfield")  # one fragment, every row indexed
            await store.wait_for_background()
            queries = corpus.queries[: args.queries]
            for query in queries:  # warm: every question's vector cached, every code path run
                for mode in KINDS.values():
                    await store.search("cranfield", query, top_k=5, mode=mode)
            print("ready", flush=True)
            for line in sys.stdin:
                mode = KINDS[line.strip()]
                started, thread_started = time.process_time(), time.thread_time()
                for n in range(args.searches):
                    found = await store.search(
                        "cranfield", queries[n % len(queries)], top_k=5, mode=mode
                    )
                    converters.search_response(found)
                spent = time.process_time() - started
                in_thread = time.thread_time() - thread_started
                print(f"{spent * 1000 / args.searches:.4f} {in_thread * 1000 / args.searches:.4f}")
                sys.stdout.flush()
        finally:
            store.close()


def start(tree: Path | None, args: argparse.Namespace) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if tree is not None:
        paths = [str(tree / "packages/core/src"), str(tree / "services/retrieval/src")]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    return subprocess.Popen(  # noqa: S603 - this script, as a child
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )


def ask(process: subprocess.Popen[str], kind: str) -> tuple[float, float]:
    assert process.stdin is not None  # noqa: S101
    assert process.stdout is not None  # noqa: S101
    process.stdin.write(kind + "\n")
    process.stdin.flush()
    spent, in_thread = process.stdout.readline().split()
    return float(spent), float(in_thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--searches", type=int, default=400)
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--before", type=Path, help="a source tree to compare against")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        return
    print(header("ranked rows"))
    trees = {"this tree": start(None, args)}
    if args.before is not None:
        trees["before"] = start(args.before.resolve(), args)
    for process in trees.values():
        assert process.stdout is not None  # noqa: S101
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("a child did not start")
    spent: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for kind in KINDS:
            for name in order:
                spent.setdefault((name, kind), []).append(ask(trees[name], kind))
    for process in trees.values():
        assert process.stdin is not None  # noqa: S101
        process.stdin.close()
        process.wait()
    for which, title in enumerate(("the whole process", "its main thread (LanceDB's excluded)")):
        print(f"\nCPU ms per search, {title}: median (each round)\n")
        table({key: [pair[which] for pair in values] for key, values in spent.items()}, list(trees))
    print(footer())


def table(spent: dict[tuple[str, str], list[float]], columns: list[str]) -> None:
    ratio = "before" in columns
    print("| kind | " + " | ".join(columns) + (" | ratio, per round |" if ratio else " |"))
    print("|---" * (len(columns) + 1 + ratio) + "|")
    for kind in KINDS:
        cells = []
        for name in columns:
            values = spent[(name, kind)]
            rounds = ", ".join(f"{value:.3f}" for value in values)
            cells.append(f"{statistics.median(values):.3f} ({rounds})")
        if ratio:
            pairs = zip(spent[("this tree", kind)], spent[("before", kind)], strict=True)
            ratios = sorted(after / before for after, before in pairs)
            cells.append(f"{statistics.median(ratios):.3f} ({ratios[0]:.3f}-{ratios[-1]:.3f})")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
