"""Retrieval benchmark: quality per search mode and fusion, latency, ANN recall, ingest throughput.

    uv run python benchmarks/retrieval.py [--skip-100k | --quality-only] [--ann-index KIND]
                                          [--cranfield DIR]

Runs the real services (embedding with the bundled ONNX MiniLM, retrieval, edge) as processes
on loopback, in one run:

1. builds a 100,000-chunk synthetic collection (clustered random vectors, words drawn from the
   Cranfield vocabulary) straight through the knowledge store, builds the ANN index
   (``--ann-index``, default the service's), measures its recall@10 against exact search for
   a few search settings (ef for HNSW-SQ; nprobes / refine factor for IVF-PQ);
2. measures the model's raw throughput on the Cranfield chunks (in-process, batches of 32);
3. ingests Cranfield through ``POST /api/v1/documents`` and reports chunks per second, then
   measures the raw throughput again (the machine's load may change meanwhile: the ratio is
   taken against the mean of the two, and both are printed);
4. ingests the paraphrase corpus (benchmarks/data/paraphrase.jsonl) and the identifier corpus
   (benchmarks/data/identifiers.jsonl, written by benchmarks/identifier_corpus.py);
5. scores text, vector and several fusions (offline, from the same two legs the service
   fuses) and the service's own hybrid on the three corpora: nDCG@10, recall@10, MRR@10,
   with the share of identifier and acronym questions each mode answers in its top 5; then
   the held-out FAQ questions (benchmarks/data/faq.jsonl) with the service's default mode
   only: recall@5 and MRR@10;
6. times gRPC searches per mode at Cranfield size and at 100,000 chunks (p50 / p95); then, on
   a second start of the services with the query-vector cache on, hybrid at 100,000 chunks
   with each question embedded (first asked), vector and hybrid with the vectors cached, and
   each question's ``Embed`` alone, straight to the embedding service: rows of one start,
   which compare with each other (the first start's also ingested and scored the corpora).

This is a benchmark, not a test: it prints tables and asserts nothing. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import numpy as np

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_retrieval.chunking import chunk_text
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    AnnConfig,
    AnnIndex,
    Embedded,
    Fusion,
    FusionConfig,
    KnowledgeStore,
    SearchHit,
    fuse,
)
from bruno_testing.system import BrunoSystem

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
PARAPHRASE = DATA / "paraphrase.jsonl"
IDENTIFIERS = DATA / "identifiers.jsonl"
FAQ = DATA / "faq.jsonl"
DEFAULT_CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIMENSION = 384
SYNTHETIC = "synthetic"
SYNTHETIC_CHUNKS = 100_000
LATENCY_SEARCHES = 200
CANDIDATES = 80  # what the service fetches per leg for top_k=20
RANK_DEPTH = 20  # chunks asked for; metrics use the first 10 distinct documents
INGEST_CONCURRENCY = 16  # documents in flight through the REST API
FUSIONS = [
    FusionConfig(Fusion.RRF, 0.5),
    FusionConfig(Fusion.RRF, 0.8),
    FusionConfig(Fusion.MINMAX, 0.5),
    FusionConfig(Fusion.ZSCORE, 0.5),
    FusionConfig(Fusion.ZSCORE, 0.75),
    FusionConfig(Fusion.COSINE, 0.8),
    FusionConfig(Fusion.COSINE, 0.88),
    FusionConfig(Fusion.COSINE, 0.92),
    # The vector leg's share drops to the second weight for a query naming an identifier.
    FusionConfig(Fusion.COSINE, 0.92, 0.7),
    FusionConfig(Fusion.COSINE, 0.92, 0.75),
    FusionConfig(Fusion.COSINE, 0.92, 0.8),
    FusionConfig(Fusion.COSINE, 0.92, 0.85),
]


@dataclass
class Corpus:
    name: str
    documents: list[dict[str, str]]  # id, title, text
    queries: list[str]
    judgments: list[dict[str, int]]  # per query: document id -> gain
    kinds: list[str] = field(default_factory=list)  # per query, where the corpus marks them


# --- corpora ------------------------------------------------------------------------------


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        if re.match(r"^\.[A-Z]\b", line):
            current = line[1]
            fields[current] = line[2:].strip()
        elif current:
            fields[current] += "\n" + line
    return {key: value.strip() for key, value in fields.items()}


def load_cranfield(directory: Path) -> Corpus:
    raw_docs = (directory / "cran.all.1400").read_text(encoding="utf-8", errors="replace")
    documents = []
    for block in re.split(r"^\.I\s+", raw_docs, flags=re.M)[1:]:
        number, _, rest = block.partition("\n")
        fields = _fields(rest)
        title, abstract = fields.get("T", ""), fields.get("W", "")
        text = f"{title}\n\n{abstract}".strip()
        if text:  # a few records are empty
            documents.append({"id": number.strip(), "title": title, "text": text})
    raw_queries = (directory / "cran.qry").read_text(encoding="utf-8", errors="replace")
    # cranqrel numbers queries 1..225 by position, not by the .I labels (see the README).
    queries = [
        " ".join(_fields(block.partition("\n")[2]).get("W", "").split())
        for block in re.split(r"^\.I\s+", raw_queries, flags=re.M)[1:]
    ]
    judgments: list[dict[str, int]] = [{} for _ in queries]
    gains = {1: 4, 2: 3, 3: 2, 4: 1, -1: 1}  # lower code = more relevant; -1 counted as 1
    for line in (directory / "cranqrel").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            query, document, code = int(parts[0]), parts[1], int(parts[2])
            if 1 <= query <= len(queries):
                judgments[query - 1][document] = gains.get(code, 1)
    return Corpus("Cranfield", documents, queries, judgments)


def load_paraphrase(path: Path) -> Corpus:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    documents = [{"id": r["id"], "title": "", "text": r["text"]} for r in rows]
    questions = [r["question"] for r in rows]
    return Corpus("paraphrase", documents, questions, [{r["id"]: 1} for r in rows])


def load_identifiers(path: Path) -> Corpus:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    documents = [{"id": r["id"], "title": "", "text": r["text"]} for r in rows]
    asked = [(r["id"], q) for r in rows for q in r["questions"]]
    return Corpus(
        "identifiers",
        documents,
        [q["question"] for _, q in asked],
        [{passage: 1} for passage, _ in asked],
        [q["kind"] for _, q in asked],
    )


def load_faq(path: Path) -> Corpus:
    """The held-out FAQ questions; they ask about the identifier corpus's passages."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    judgments = [{r["id"]: 1} for r in rows]
    return Corpus("FAQ", [], [r["question"] for r in rows], judgments, [r["kind"] for r in rows])


# --- metrics ------------------------------------------------------------------------------


def ranked_documents(
    hits: Sequence[SearchHit | retrieval_pb2.SearchHit], depth: int = 10
) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        if hit.document_id not in seen:
            seen.append(hit.document_id)
        if len(seen) == depth:
            break
    return seen


def metrics(ranking: list[str], gains: dict[str, int]) -> tuple[float, float, float]:
    """nDCG@10, recall@10 and reciprocal rank (within 10) of one ranking."""
    dcg = sum(gains.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:10]))
    ideal = sorted(gains.values(), reverse=True)[:10]
    idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
    found = sum(1 for doc in ranking[:10] if doc in gains)
    rr = next((1 / (rank + 1) for rank, doc in enumerate(ranking[:10]) if doc in gains), 0.0)
    return (dcg / idcg if idcg else 0.0), found / len(gains), rr


@dataclass
class Quality:
    ndcg: list[float]
    recall: list[float]
    mrr: list[float]
    found_in_5: list[bool]  # a relevant document among the first 5

    @classmethod
    def of(cls, rankings: list[list[str]], corpus: Corpus) -> Quality:
        pairs = list(zip(rankings, corpus.judgments, strict=True))
        scored = [metrics(r, g) for r, g in pairs]
        in_5 = [any(doc in g for doc in r[:5]) for r, g in pairs]
        return cls([s[0] for s in scored], [s[1] for s in scored], [s[2] for s in scored], in_5)

    def top5_share(self, kinds: list[str], kind: str) -> float:
        """The share of questions of ``kind`` with a relevant document in the first 5."""
        picked = [hit for hit, k in zip(self.found_in_5, kinds, strict=True) if k == kind]
        return sum(picked) / len(picked)

    def row(self) -> str:
        mean = statistics.fmean
        return f"{mean(self.ndcg):.3f} | {mean(self.recall):.3f} | {mean(self.mrr):.3f}"


def paired_noise(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and twice its standard error (a rough 95% interval)."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    return statistics.fmean(diffs), 2 * statistics.stdev(diffs) / math.sqrt(len(diffs))


# --- synthetic 100k collection and ANN recall --------------------------------------------


class SyntheticEmbedder:
    """Clustered random unit vectors named like the real model, so the service accepts them."""

    def __init__(self, seed: int = 7, clusters: int = 2_000) -> None:
        self.rng = np.random.default_rng(seed)
        self.centroids = self.rng.standard_normal((clusters, DIMENSION)).astype(np.float32)

    def vectors(self, count: int) -> np.ndarray:
        picks = self.rng.integers(0, len(self.centroids), count)
        noise = self.rng.standard_normal((count, DIMENSION)).astype(np.float32)
        vectors: np.ndarray = self.centroids[picks] + 0.6 * noise
        unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit

    async def embed(
        self, texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        result: list[list[float]] = self.vectors(len(texts)).tolist()
        return Embedded(result, MODEL_NAME)


def ann_sweep(index: AnnIndex) -> list[tuple[str, AnnConfig]]:
    """The search settings whose recall the benchmark measures for an index of this kind."""
    service = replace(AnnConfig.from_settings(RetrievalSettings.model_construct()), index=index)
    if index is AnnIndex.HNSW_SQ:
        return [
            (f"ef {ef}, refine {refine}", replace(service, ef=ef, refine_factor=refine))
            for ef in (40, 80, 160)
            for refine in (1, 2)
        ]
    return [
        (
            f"nprobes {nprobes}, refine {refine}",
            replace(service, nprobes=nprobes, refine_factor=refine),
        )
        for nprobes in (10, 20, 40)
        for refine in (1, 5, 10)
    ]


async def build_synthetic(
    lancedb_dir: Path, vocabulary: list[str], index: AnnIndex
) -> dict[str, object]:
    embedder = SyntheticEmbedder()
    # Each synthetic chunk is one ~40-word paragraph; 100 per document. The index is built
    # once, after loading, and timed (min_rows 0: none in the background meanwhile).
    settings = RetrievalSettings(
        lancedb_uri=str(lancedb_dir),
        chunk_size_tokens=48,
        chunk_overlap_tokens=0,
        ann_min_rows=0,
        ann_index=index.value,
    )
    store = await KnowledgeStore.open(settings, embedder)
    rng = random.Random(11)  # noqa: S311 - synthetic text, not secrets
    per_document = 100
    started = time.perf_counter()

    async def one(number: int) -> None:
        paragraphs = [" ".join(rng.choices(vocabulary, k=40)) for _ in range(per_document)]
        await store.ingest(SYNTHETIC, text="\n\n".join(paragraphs), document_id=f"syn-{number}")

    documents = SYNTHETIC_CHUNKS // per_document
    for start in range(0, documents, 50):
        await asyncio.gather(*(one(n) for n in range(start, min(start + 50, documents))))
    load_seconds = time.perf_counter() - started
    await store.wait_for_background()
    info = await store.collection_info(SYNTHETIC)
    entry = store._catalog.entry(SYNTHETIC)
    assert entry is not None  # noqa: S101 - just loaded
    table = await store._catalog.table(entry)
    await table.optimize()  # compaction, not timed: the index build alone is
    started = time.perf_counter()
    await store._indexes.build(table)
    index_seconds = time.perf_counter() - started

    # Recall@10 of the ANN index against exact search, for queries near stored vectors.
    probes = embedder.vectors(100)
    exact_ids = []
    exact_ms = []
    for vector in probes:
        t0 = time.perf_counter()
        rows = await (
            table.query()
            .nearest_to(vector)
            .distance_type("cosine")
            .bypass_vector_index()
            .select(["chunk_id", "_distance"])
            .limit(10)
            .to_arrow()
        )
        exact_ms.append((time.perf_counter() - t0) * 1000)
        exact_ids.append(set(rows.column("chunk_id").to_pylist()))
    # Each setting searches the way the service does (AnnConfig.tune), top 10.
    recall: dict[str, tuple[float, float]] = {}
    for label, config in ann_sweep(index):
        found, times = 0, []
        for vector, truth in zip(probes, exact_ids, strict=True):
            query = table.query().nearest_to(vector).distance_type("cosine")
            query = config.tune(query, index, 10, 10).select(["chunk_id", "_distance"])
            t0 = time.perf_counter()
            rows = await query.limit(10).to_arrow()
            times.append((time.perf_counter() - t0) * 1000)
            found += len(truth & set(rows.column("chunk_id").to_pylist()))
        recall[label] = (found / (10 * len(probes)), statistics.median(times))
    store.close()
    return {
        "chunks": info.chunks,
        "load_seconds": load_seconds,
        "index_seconds": index_seconds,
        "exact_ms": statistics.median(exact_ms),
        "recall": recall,
    }


# --- throughput ---------------------------------------------------------------------------


def cranfield_chunks(corpus: Corpus, settings: RetrievalSettings) -> list[str]:
    texts = []
    for document in corpus.documents:
        for chunk in chunk_text(
            document["text"],
            size_tokens=settings.chunk_size_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        ):
            heading = chunk.heading_path
            texts.append(f"{heading}\n\n{chunk.text}" if heading else chunk.text)
    return texts


async def raw_model_throughput(texts: list[str]) -> float:
    from bruno_embedding.embedders import InputType
    from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder(batch_size=32)
    await embedder.start()
    started = time.perf_counter()
    await embedder.embed(texts, InputType.DOCUMENT)
    seconds = time.perf_counter() - started
    await embedder.aclose()
    return len(texts) / seconds


async def ingest_rest(
    edge_url: str, corpus: Corpus, collection: str, concurrency: int = INGEST_CONCURRENCY
) -> tuple[int, float]:
    semaphore = asyncio.Semaphore(concurrency)
    chunks = 0

    async def one(client: httpx.AsyncClient, document: dict[str, str]) -> None:
        nonlocal chunks
        async with semaphore:
            body = {
                "id": document["id"],
                "title": document["title"][:500],
                "text": document["text"],
                "collection": collection,
            }
            response = await client.post("/api/v1/documents", json=body)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{document['id']}: {response.status_code} {response.text}")
            chunks += response.json()["chunks"]

    async with httpx.AsyncClient(base_url=edge_url, timeout=300) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one(client, document) for document in corpus.documents))
        seconds = time.perf_counter() - started
    return chunks, seconds


# --- quality and latency over gRPC --------------------------------------------------------


async def quality(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, corpus: Corpus, collection: str
) -> dict[str, Quality]:
    rankings: dict[str, list[list[str]]] = {}

    def add(name: str, ranking: list[str]) -> None:
        rankings.setdefault(name, []).append(ranking)

    for query in corpus.queries:
        legs = {}
        for mode, name in (
            (retrieval_pb2.SEARCH_MODE_VECTOR, "vector"),
            (retrieval_pb2.SEARCH_MODE_TEXT, "text"),
        ):
            request = retrieval_pb2.SearchRequest(
                collection=collection, query=query, top_k=CANDIDATES, mode=mode
            )
            found = await stub.Search(request)
            legs[name] = [_as_hit(hit) for hit in found.hits]
            add(name, ranked_documents(legs[name]))
        for config in FUSIONS:
            fused = fuse(legs["vector"], legs["text"], RANK_DEPTH, config.for_query(query))
            add(_fusion_name(config), ranked_documents(fused))
        request = retrieval_pb2.SearchRequest(
            collection=collection,
            query=query,
            top_k=RANK_DEPTH,
            mode=retrieval_pb2.SEARCH_MODE_HYBRID,
        )
        found = await stub.Search(request)
        add("hybrid (service default)", ranked_documents(found.hits))
    return {name: Quality.of(r, corpus) for name, r in rankings.items()}


async def default_mode_quality(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, corpus: Corpus, collection: str
) -> Quality:
    """The service's own answers, in its default mode (hybrid), to a corpus's questions."""
    rankings = []
    for query in corpus.queries:
        request = retrieval_pb2.SearchRequest(collection=collection, query=query, top_k=RANK_DEPTH)
        rankings.append(ranked_documents((await stub.Search(request)).hits))
    return Quality.of(rankings, corpus)


def print_quality(
    results: dict[str, dict[str, Quality]], identifiers: Corpus, held_out: Quality, faq: Corpus
) -> None:
    mean = statistics.fmean
    corpora = list(results)
    names = list(results[corpora[0]])
    print("## Quality (nDCG@10 | recall@10 | MRR@10; chunks deduplicated to documents)\n")
    print("| ranking | " + " | ".join(f"{c} nDCG@10 | recall@10 | MRR" for c in corpora) + " |")
    print("|---" * (1 + 3 * len(corpora)) + "|")
    for name in names:
        print(f"| {name} | " + " | ".join(results[c][name].row() for c in corpora) + " |")
    print("\nGain over the best single mode (nDCG@10, mean of per-query differences ± 2 s.e.):\n")
    print("| ranking | " + " | ".join(corpora) + " |")
    print("|---" * (1 + len(corpora)) + "|")
    for name in names:
        if name in ("vector", "text"):
            continue
        cells = []
        for corpus in corpora:
            by = results[corpus]
            best = max(("vector", "text"), key=lambda n: mean(by[n].ndcg))
            diff, noise = paired_noise(by[name].ndcg, by[best].ndcg)
            relative = diff / mean(by[best].ndcg) * 100
            cells.append(f"{relative:+.1f}% vs {best} ({diff:+.3f} ± {noise:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    kinds = sorted(set(identifiers.kinds))
    print("\nIdentifier corpus: questions answered in the top 5, by kind of question\n")
    print("| ranking | " + " | ".join(f"{k} ({identifiers.kinds.count(k)})" for k in kinds) + " |")
    print("|---" * (1 + len(kinds)) + "|")
    for name in names:
        ranked = results["identifiers"][name]
        print(
            f"| {name} | "
            + " | ".join(f"{ranked.top5_share(identifiers.kinds, k):.3f}" for k in kinds)
            + " |"
        )
    print(
        f"\nHeld-out FAQ ({len(faq.queries)} questions, service default mode): "
        f"recall@5 {mean(held_out.found_in_5):.3f}, MRR@10 {mean(held_out.mrr):.3f}\n"
    )


def _fusion_name(config: FusionConfig) -> str:
    name = f"{config.method.value} w_vec={config.vector_weight:g}"
    if config.identifier_vector_weight is not None:
        name += f", {config.identifier_vector_weight:g} with identifiers"
    return name


def _as_hit(hit: retrieval_pb2.SearchHit) -> SearchHit:
    return SearchHit(
        document_id=hit.document_id,
        chunk_id=hit.chunk_id,
        chunk_index=hit.chunk_index,
        title=hit.title,
        source=hit.source,
        text="",
        heading_path=hit.heading_path,
        score=hit.score,
        content_hash="",
    )


MODES = {
    "text": retrieval_pb2.SEARCH_MODE_TEXT,
    "vector": retrieval_pb2.SEARCH_MODE_VECTOR,
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
}


async def latency(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
    collection: str,
    queries: list[str],
    modes: Sequence[str] = tuple(MODES),
) -> dict[str, tuple[float, float]]:
    result = {}
    for name in modes:
        mode = MODES[name]
        times = []
        for i in range(LATENCY_SEARCHES + 10):
            request = retrieval_pb2.SearchRequest(
                collection=collection, query=queries[i % len(queries)], top_k=10, mode=mode
            )
            started = time.perf_counter()
            await stub.Search(request)
            if i >= 10:  # the first few warm caches
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        result[name] = (statistics.median(times), times[int(0.95 * len(times)) - 1])
    return result


async def embedding_alone(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub, queries: list[str]
) -> tuple[float, float]:
    """p50 / p95 ms of each question's ``Embed`` straight to the embedding service, as
    :func:`latency` asks them: what the model and one gRPC hop cost a search."""
    times = []
    for i in range(LATENCY_SEARCHES + 10):
        request = embedding_pb2.EmbedRequest(
            texts=[queries[i % len(queries)]], input_type=embedding_pb2.INPUT_TYPE_QUERY
        )
        started = time.perf_counter()
        await stub.Embed(request)
        if i >= 10:
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times)) - 1]


# --- main ---------------------------------------------------------------------------------


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--skip-100k", action="store_true", help="skip the 100,000-chunk part")
    parser.add_argument(
        "--ann-index",
        choices=[index.value for index in AnnIndex],
        help="the index built over the 100,000 chunks (default: BRUNO_ANN_INDEX's)",
    )
    parser.add_argument(
        "--quality-only",
        action="store_true",
        help="search quality alone: no 100,000 chunks, model throughput or latency",
    )
    args = parser.parse_args()
    settings = RetrievalSettings()
    ann_index = AnnIndex(args.ann_index or settings.ann_index)
    cranfield = load_cranfield(args.cranfield)
    paraphrase = load_paraphrase(PARAPHRASE)
    identifiers = load_identifiers(IDENTIFIERS)
    faq = load_faq(FAQ)
    began = time.perf_counter()
    print(
        f"# make bench-retrieval — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"chunking: {settings.chunk_size_tokens} tokens, overlap {settings.chunk_overlap_tokens}; "
        f"hybrid default: {settings.hybrid_fusion} w_vec={settings.hybrid_vector_weight} "
        f"({settings.hybrid_identifier_vector_weight} with identifiers); "
        f"ANN past {settings.ann_min_rows} chunks: {ann_index} at 100k, "
        f"nprobes {settings.ann_nprobes}, ef {settings.ann_ef}, "
        f"refine {settings.ann_refine_factor or 'per kind (2 HNSW-SQ, 10 IVF-PQ)'}\n"
    )
    with tempfile.TemporaryDirectory(prefix="bruno-bench-") as tmp:
        workdir = Path(tmp)
        synthetic: dict[str, object] | None = None
        if not (args.skip_100k or args.quality_only):
            words = " ".join(d["text"].lower() for d in cranfield.documents)
            synthetic = await build_synthetic(
                workdir / "lancedb", re.findall(r"[a-z]{3,}", words), ann_index
            )
            print(
                f"synthetic: {synthetic['chunks']} chunks loaded in "
                f"{synthetic['load_seconds']:.0f} s, "
                f"ANN index in {synthetic['index_seconds']:.0f} s",
                file=sys.stderr,
            )

        texts = cranfield_chunks(cranfield, settings)
        raw_before = raw_after = 0.0
        if not args.quality_only:
            raw_before = await raw_model_throughput(texts)
            print(f"raw model: {raw_before:.0f} chunks/s, {len(texts)} chunks", file=sys.stderr)

        # Latency runs the same queries over both collections: without the query-vector cache,
        # so every search embeds its query ("query embedding included").
        env = {
            "BRUNO_MAX_TOP_K": "200",
            "BRUNO_LOG_LEVEL": "WARNING",
            "BRUNO_QUERY_CACHE_SIZE": "0",
            # The service would rebuild an index of another kind than it is configured for.
            "BRUNO_ANN_INDEX": ann_index.value,
            # The corpora go in as fast as the edge takes them: the per-key limit (50/s by
            # default) would refuse the paraphrase corpus's hundreds of small documents.
            "BRUNO_RATE_LIMIT": "100000/second",
        }
        with BrunoSystem(workdir, ollama_host="http://127.0.0.1:9", env=env) as system:
            chunks, seconds = await ingest_rest(system.edge_url, cranfield, "cranfield")
            print(f"ingest: {chunks} chunks in {seconds:.1f} s", file=sys.stderr)
            if not args.quality_only:
                raw_after = await raw_model_throughput(texts)  # the services idle meanwhile
                print(f"raw model again: {raw_after:.0f} chunks/s", file=sys.stderr)
            await ingest_rest(system.edge_url, paraphrase, "paraphrase")
            await ingest_rest(system.edge_url, identifiers, "identifiers")
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{system.ports['retrieval']}")
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            results = {
                "Cranfield": await quality(stub, cranfield, "cranfield"),
                "paraphrase": await quality(stub, paraphrase, "paraphrase"),
                "identifiers": await quality(stub, identifiers, "identifiers"),
            }
            held_out = await default_mode_quality(stub, faq, "identifiers")
            small = {} if args.quality_only else await latency(stub, "cranfield", cranfield.queries)
            large = await latency(stub, SYNTHETIC, cranfield.queries) if synthetic else None
            await channel.close()
        cached: dict[str, tuple[float, float]] = {}
        paired: dict[str, tuple[float, float]] = {}
        if synthetic:
            # The same searches with the query vectors already cached: the search without the
            # model, to tell the model's share of the latency from the rest's. All three rows
            # come from this one start of the services, so they compare with each other: the
            # hybrid searches with every question embedded (each asked for the first time;
            # they fill the cache), the cached ones, and each question's Embed alone, straight
            # to the embedding service (model and one gRPC hop, no search).
            env["BRUNO_QUERY_CACHE_SIZE"] = str(LATENCY_SEARCHES + 10)
            with BrunoSystem(workdir, ollama_host="http://127.0.0.1:9", env=env) as system:
                channel = grpc.aio.insecure_channel(f"127.0.0.1:{system.ports['retrieval']}")
                stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
                paired = await latency(stub, SYNTHETIC, cranfield.queries, ["hybrid"])
                cached = await latency(stub, SYNTHETIC, cranfield.queries, ["vector", "hybrid"])
                await channel.close()
                async with grpc.aio.insecure_channel(
                    f"127.0.0.1:{system.ports['embedding']}"
                ) as embedding_channel:
                    paired["embed"] = await embedding_alone(
                        embedding_pb2_grpc.EmbeddingServiceStub(embedding_channel),
                        cranfield.queries,
                    )

    print_quality(results, identifiers, held_out, faq)
    if args.quality_only:
        print(f"total run time {time.perf_counter() - began:.0f} s")
        return

    print("\n## Latency of one gRPC search, top_k=10 (ms, p50 / p95; query embedding included)\n")
    print("| mode | Cranfield (" + str(len(texts)) + " chunks) | 100,000 synthetic chunks |")
    print("|---|---|---|")
    for mode in ("text", "vector", "hybrid"):
        at_large = f"{large[mode][0]:.1f} / {large[mode][1]:.1f}" if large else "skipped"
        print(f"| {mode} | {small[mode][0]:.1f} / {small[mode][1]:.1f} | {at_large} |")
    for mode, (p50, p95) in cached.items():
        print(f"| {mode}, query vector cached (no model call) | | {p50:.1f} / {p95:.1f} |")
    if paired:
        p50, p95 = paired["hybrid"]
        label = "hybrid, question embedded, same start as the cached rows"
        print(f"| {label} | | {p50:.1f} / {p95:.1f} |")
        p50, p95 = paired["embed"]
        print(f"| the question's `Embed` alone (no search), same start | | {p50:.1f} / {p95:.1f} |")
    if synthetic:
        recall = synthetic["recall"]
        if not isinstance(recall, dict):
            raise TypeError("recall")
        print(
            f"\n## ANN ({ann_index}) recall@10 against exact search at "
            f"{synthetic['chunks']} chunks\n"
        )
        print(
            f"exact search: {synthetic['exact_ms']:.1f} ms median; index build "
            f"{synthetic['index_seconds']:.0f} s\n"
        )
        print("| search setting | recall@10 | median ms |")
        print("|---|---|---|")
        for label, (value, ms) in recall.items():
            print(f"| {label} | {value:.3f} | {ms:.1f} |")

    print("\n## Ingestion\n")
    print("| path | chunks/s |")
    print("|---|---|")
    raw = (raw_before + raw_after) / 2
    print(
        f"| model alone (in-process ONNX, batches of 32, {len(texts)} chunks), before / after "
        f"the REST ingest | {raw_before:.0f} / {raw_after:.0f} |"
    )
    rate = chunks / seconds
    print(
        f"| REST `POST /api/v1/documents`, {INGEST_CONCURRENCY} concurrent, embedding included "
        f"| {rate:.0f} "
        f"({rate / raw * 100:.0f}% of the model's mean) |"
    )
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
