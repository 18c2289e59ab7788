"""Chunking benchmark: retrieval quality per chunk size and overlap, on Cranfield.

    uv run python benchmarks/chunking.py [--settings 100/20,200/40] [--cranfield DIR]

Runs in-process: for each chunk size / overlap a fresh ``KnowledgeStore`` in a temporary
directory, fed by the bundled ONNX MiniLM (the model the embedding service serves), ingests
two corpora and scores text, vector and hybrid (the service's default fusion) search:

1. Cranfield as retrieval.py builds it: one document per abstract (title + abstract);
   chunks are deduplicated to documents, nDCG@10 / recall@10 / MRR@10 over documents.
2. Long documents: the abstracts, in id order, concatenated ``--group`` at a time into one
   Markdown document (a ``#`` heading naming the part, then each abstract's title and text
   as plain paragraphs, no heading per abstract, so chunks can span two abstracts). Scored
   passage-level: a retrieved chunk stands for every abstract whose characters it contains
   (from character offsets recorded while building the documents), the one with the most
   characters in the chunk first; the ranking is cut at its first 10 distinct abstracts and
   scored against the abstract judgments as in 1.

Every search asks for the 50 best chunks (the service's max_top_k), so small chunks still
reach 10 distinct documents. This is a benchmark, not a test: it prints tables and asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retrieval import (
    DEFAULT_CRANFIELD,
    Corpus,
    Quality,
    load_cranfield,
    paired_noise,
    ranked_documents,
)

from bruno.embedding.v1 import embedding_pb2
from bruno_embedding.embedders import InputType
from bruno_embedding.onnx_embedder import MODEL_NAME, OnnxMiniLMEmbedder
from bruno_retrieval.chunking import chunk_text
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import Embedded, KnowledgeStore, SearchHit, SearchMode

DEFAULT_SETTINGS = "100/20,150/30,200/40,200/20,200/0,300/60,400/80"
# The service default the differences are measured against.
BASELINE = (RetrievalSettings().chunk_size_tokens, RetrievalSettings().chunk_overlap_tokens)
TOP_K = 50  # chunks asked for per search (the service's max_top_k)
INGEST_CONCURRENCY = 16
MODES = (SearchMode.HYBRID, SearchMode.VECTOR, SearchMode.TEXT)
CRANFIELD = "cranfield"
LONG = "long"


class MiniLMStoreEmbedder:
    """The store's embedder protocol over the in-process ONNX model."""

    def __init__(self, model: OnnxMiniLMEmbedder) -> None:
        self._model = model

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        kind = (
            InputType.QUERY if input_type == embedding_pb2.INPUT_TYPE_QUERY else InputType.DOCUMENT
        )
        return Embedded(await self._model.embed(texts, kind), MODEL_NAME)


@dataclass
class LongDocument:
    id: str
    title: str
    text: str
    spans: list[tuple[int, int, str]]  # start, end, abstract id


def long_documents(corpus: Corpus, group: int) -> list[LongDocument]:
    """The abstracts ``group`` at a time as Markdown documents, with each abstract's offsets."""
    documents = []
    for first in range(0, len(corpus.documents), group):
        members = corpus.documents[first : first + group]
        title = f"Cranfield abstracts {members[0]['id']} to {members[-1]['id']}"
        text = f"# {title}\n\n"
        spans = []
        for member in members:
            start = len(text)
            text += member["text"]
            spans.append((start, len(text), member["id"]))
            text += "\n\n"
        documents.append(LongDocument(f"long-{first // group + 1:03d}", title, text, spans))
    return documents


def chunk_abstracts(
    documents: list[LongDocument], size: int, overlap: int
) -> dict[tuple[str, int], tuple[str, list[str]]]:
    """(document id, chunk index) -> (chunk text, abstracts in it, most characters first).

    The store cuts with the same ``chunk_text``; chunk text is a verbatim slice of the
    document and chunks start strictly later one after another, so each is found by search.
    """
    attribution = {}
    for document in documents:
        cursor = 0
        for chunk in chunk_text(document.text, size_tokens=size, overlap_tokens=overlap):
            start = document.text.index(chunk.text, cursor)
            end = start + len(chunk.text)
            cursor = start + 1
            shares = [
                (min(end, b) - max(start, a), abstract)
                for a, b, abstract in document.spans
                if min(end, b) > max(start, a)
            ]
            shares.sort(key=lambda share: -share[0])  # stable: document order among equals
            attribution[(document.id, chunk.index)] = (
                chunk.text,
                [abstract for _, abstract in shares],
            )
    return attribution


def ranked_abstracts(
    hits: Sequence[SearchHit],
    attribution: dict[tuple[str, int], tuple[str, list[str]]],
    depth: int = 10,
) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        text, abstracts = attribution[(hit.document_id, hit.chunk_index)]
        if text != hit.text:
            raise RuntimeError(f"chunk {hit.chunk_id} differs from the local chunking")
        for abstract in abstracts:
            if abstract not in seen:
                seen.append(abstract)
            if len(seen) == depth:
                return seen
    return seen


@dataclass
class Outcome:
    chunks: dict[str, int]  # corpus -> chunks stored
    quality: dict[tuple[str, SearchMode], Quality]
    seconds: float


async def run_setting(
    workdir: Path,
    model: OnnxMiniLMEmbedder,
    settings: RetrievalSettings,
    cranfield: Corpus,
    long: list[LongDocument],
    size: int,
    overlap: int,
) -> Outcome:
    started = time.perf_counter()
    trial = settings.model_copy(
        update={
            "lancedb_uri": str(workdir / f"lancedb-{size}-{overlap}"),
            "chunk_size_tokens": size,
            "chunk_overlap_tokens": overlap,
        }
    )
    store = await KnowledgeStore.open(trial, MiniLMStoreEmbedder(model))
    semaphore = asyncio.Semaphore(INGEST_CONCURRENCY)
    chunks = {CRANFIELD: 0, LONG: 0}

    async def ingest(collection: str, document_id: str, title: str, text: str) -> None:
        async with semaphore:
            result = await store.ingest(collection, text=text, document_id=document_id, title=title)
            chunks[collection] += result.chunks

    try:
        await asyncio.gather(
            *(ingest(CRANFIELD, d["id"], d["title"], d["text"]) for d in cranfield.documents),
            *(ingest(LONG, d.id, d.title, d.text) for d in long),
        )
        await store.wait_for_background()
        attribution = chunk_abstracts(long, size, overlap)
        rankings: dict[tuple[str, SearchMode], list[list[str]]] = {}
        for query in cranfield.queries:
            for mode in MODES:
                found = await store.search(CRANFIELD, query, top_k=TOP_K, mode=mode)
                rankings.setdefault((CRANFIELD, mode), []).append(ranked_documents(found.hits))
                found = await store.search(LONG, query, top_k=TOP_K, mode=mode)
                ranking = ranked_abstracts(found.hits, attribution)
                rankings.setdefault((LONG, mode), []).append(ranking)
    finally:
        await store.wait_for_background()
        store.close()
    quality = {key: Quality.of(value, cranfield) for key, value in rankings.items()}
    return Outcome(chunks, quality, time.perf_counter() - started)


def parse_settings(value: str) -> list[tuple[int, int]]:
    pairs = []
    for item in value.split(","):
        size, _, overlap = item.strip().partition("/")
        pairs.append((int(size), int(overlap or 0)))
    return pairs


def print_table(
    corpus: str, heading: str, results: dict[tuple[int, int], Outcome], baseline: tuple[int, int]
) -> None:
    print(f"## {heading}\n")
    print(
        "| size / overlap | chunks | mode | nDCG@10 | recall@10 | MRR "
        f"| Δ nDCG@10 vs {baseline[0]}/{baseline[1]} (± 2 s.e.) |"
    )
    print("|---|---|---|---|---|---|---|")
    for (size, overlap), outcome in results.items():
        for mode in MODES:
            quality = outcome.quality[(corpus, mode)]
            if (size, overlap) == baseline or baseline not in results:
                delta = "—"
            else:
                base = results[baseline].quality[(corpus, mode)]
                diff, noise = paired_noise(quality.ndcg, base.ndcg)
                delta = f"{diff:+.3f} ± {noise:.3f}"
            print(
                f"| {size} / {overlap} | {outcome.chunks[corpus]} | {mode.value} "
                f"| {quality.row()} | {delta} |"
            )
    print()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument(
        "--settings",
        default=DEFAULT_SETTINGS,
        help=f"comma-separated size/overlap pairs in estimated tokens (default {DEFAULT_SETTINGS})",
    )
    parser.add_argument("--group", type=int, default=20, help="abstracts per long document")
    args = parser.parse_args()
    pairs = parse_settings(args.settings)
    settings = RetrievalSettings()
    cranfield = load_cranfield(args.cranfield)
    long = long_documents(cranfield, args.group)
    began = time.perf_counter()
    print(
        f"# make bench-chunking — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"model {MODEL_NAME} in-process (reads at most 256 word pieces); hybrid = "
        f"{settings.hybrid_fusion} w_vec={settings.hybrid_vector_weight}; service default "
        f"chunking {settings.chunk_size_tokens}/{settings.chunk_overlap_tokens}; "
        f"{len(cranfield.queries)} queries; {TOP_K} chunks per search, cut to the first 10 "
        "distinct documents (abstracts)\n"
    )
    model = OnnxMiniLMEmbedder(batch_size=32)
    await model.start()
    results: dict[tuple[int, int], Outcome] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bruno-bench-chunking-") as tmp:
            for size, overlap in pairs:
                outcome = await run_setting(
                    Path(tmp), model, settings, cranfield, long, size, overlap
                )
                results[(size, overlap)] = outcome
                print(
                    f"{size}/{overlap}: {outcome.chunks[CRANFIELD]} + {outcome.chunks[LONG]} "
                    f"chunks, {outcome.seconds:.0f} s",
                    file=sys.stderr,
                )
    finally:
        await model.aclose()

    baseline = BASELINE if BASELINE in results else pairs[0]
    print_table(
        CRANFIELD,
        f"Cranfield, one document per abstract ({len(cranfield.documents)} documents)",
        results,
        baseline,
    )
    print_table(
        LONG,
        f"Long documents ({len(long)} documents of {args.group} abstracts), scored per abstract",
        results,
        baseline,
    )
    print(
        "Attribution (long documents): each abstract's character span in its long document is "
        "recorded while building it; a chunk (found at its offset by re-running the store's "
        "chunk_text and checked against the stored text) counts for every abstract whose span "
        "it overlaps, the abstract with the most characters in the chunk first. The chunk "
        "ranking is then cut at the first 10 distinct abstracts.\n"
    )
    searches = len(cranfield.queries) * len(MODES) * 2
    print(f"| size / overlap | seconds (ingest both corpora, {searches} searches; noisy) |")
    print("|---|---|")
    for (size, overlap), outcome in results.items():
        print(f"| {size} / {overlap} | {outcome.seconds:.0f} |")
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
