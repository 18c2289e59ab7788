"""Settings of the retrieval service (environment variables ``BRUNO_*``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from bruno_core.settings import (
    DEFAULT_EMBEDDING_ADDR,
    DEFAULT_RETRIEVAL_ADDR,
    GrpcServerSettings,
)
from bruno_extract import ExtractionSettings
from bruno_retrieval.chunking import DEFAULT_OVERLAP_TOKENS, DEFAULT_SIZE_TOKENS
from bruno_retrieval.fetching import AddressPolicy, FetchLimits


class RetrievalSettings(GrpcServerSettings, ExtractionSettings):
    """Where retrieval listens, where its vectors live and how it cuts documents."""

    retrieval_listen_addr: str = DEFAULT_RETRIEVAL_ADDR
    retrieval_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    embedding_addr: str = DEFAULT_EMBEDDING_ADDR
    embedding_timeout_seconds: float = Field(default=60.0, gt=0)
    # Vectors of recent search queries, by model and text (0: off). A repeated question (a chat
    # UI's "regenerate", the same FAQ from several people) skips the model; 1,024 vectors take
    # 1.5 MiB plus their query texts (at most 8,000 characters each, typically a few dozen).
    query_cache_size: int = Field(default=1024, ge=0, le=1_000_000)
    # A local directory by default; object-store URIs (s3://bucket/prefix) are passed to
    # LanceDB unchanged so several readers can share one knowledge base.
    lancedb_uri: str = "data/lancedb"
    # all: one process does everything (the default). On object storage the work splits:
    # one writer (ingest, deletes, reindex, the catalog, conversations, background upkeep) and
    # any number of readers (search, listings, conversation reads) that follow its commits
    # within `retrieval_read_consistency_seconds` (bruno_retrieval.roles).
    retrieval_role: Literal["all", "writer", "reader"] = "all"
    retrieval_read_consistency_seconds: float = Field(default=1.0, gt=0, le=300)
    # Defaults chosen by measurement: see bruno_retrieval.chunking.
    chunk_size_tokens: int = Field(default=DEFAULT_SIZE_TOKENS, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(default=DEFAULT_OVERLAP_TOKENS, ge=0)
    # Turns kept per conversation (oldest dropped first); the edge reads the latest few.
    conversation_max_turns: int = Field(default=50, ge=2, le=1000)
    # Hybrid fusion, chosen by measurement (docs/benchmarks.md): cosine | rrf | minmax | zscore,
    # and the vector leg's share of the weight (the text leg gets the rest).
    hybrid_fusion: Literal["cosine", "rrf", "minmax", "zscore"] = "cosine"
    hybrid_vector_weight: float = Field(default=0.92, ge=0.0, le=1.0)
    # The vector leg's share when the query names an identifier (a version, an address, a
    # model number, an acronym: bruno_retrieval.knowledge.fusion.identifiers).
    hybrid_identifier_vector_weight: float = Field(default=0.80, ge=0.0, le=1.0)
    # Past this many chunks a collection's vectors get an approximate index, built in the
    # background (0: never): hnsw_sq (searched keeping `ann_ef` candidates) or ivf_pq
    # (smaller, slower), both over `ann_nprobes` partitions and re-ranking
    # `ann_refine_factor` x top_k by exact distance (unset: 2 for hnsw_sq, 10 for ivf_pq).
    # Chosen by measurement: see bruno_retrieval.knowledge.ann.AnnConfig.
    ann_min_rows: int = Field(default=20_000, ge=0)
    ann_index: Literal["hnsw_sq", "ivf_pq"] = "hnsw_sq"
    ann_ef: int = Field(default=80, ge=1, le=10_000)
    ann_nprobes: int = Field(default=20, ge=1, le=4096)
    ann_refine_factor: int | None = Field(default=None, ge=1, le=1000)
    # A collection written to and then left alone for `optimize_quiet_seconds` (0: off) is
    # optimized then (compacted, its new rows folded into its keyword and vector indexes), as
    # every 20th write or 100th row does anyway: rows outside the keyword index are scanned by
    # every query, so a few documents ingested and then only asked about stay slower for good
    # without it (bruno_retrieval.knowledge.writer). Such a quiet optimize runs at most once per
    # `optimize_quiet_interval_seconds` per collection (a later one waits for the rest of that
    # time), unless more than `optimize_quiet_max_rows` rows were written since the last one:
    # next to that much writing one more optimize is cheap.
    optimize_quiet_seconds: float = Field(default=2.0, ge=0, le=3600)
    optimize_quiet_interval_seconds: float = Field(default=600.0, ge=0, le=86_400)
    optimize_quiet_max_rows: int = Field(default=2000, ge=0)
    # Optional cross-encoder reranker with Hugging Face TEI's `POST /rerank` shape; off when
    # unset. It re-scores the best `reranker_candidates` fused hits within the timeout (and the
    # search deadline), else the fused order stands.
    reranker_url: str | None = None
    reranker_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    reranker_candidates: int = Field(default=20, ge=1, le=200)

    # Ingestion jobs (bruno_retrieval.jobs): the documents one job may hold, and how long a
    # finished job is kept (forgotten when retrieval starts after that).
    job_max_documents: int = Field(default=10_000, ge=1, le=1_000_000)
    job_retention_days: int = Field(default=30, ge=1, le=3650)
    # URL jobs (bruno_retrieval.fetching): public addresses only, unless a network (CIDR) or a
    # host name (".home.arpa": every name under it) is allowed here, comma-separated; the
    # time to connect, between bytes, and in all for one URL (what it fetched read included).
    # A fetched body is bounded like an upload: BRUNO_MAX_FILE_BYTES for PDF and Word,
    # BRUNO_MAX_DOCUMENT_BYTES for text.
    fetch_allowed_networks: Annotated[frozenset[str], NoDecode] = frozenset()
    fetch_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    fetch_read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    fetch_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)

    @field_validator("fetch_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = frozenset(entry.strip() for entry in value.split(",") if entry.strip())
        AddressPolicy.parse(value)  # ValueError names the entry it cannot read
        return value

    @property
    def fetch_policy(self) -> AddressPolicy:
        return AddressPolicy.parse(self.fetch_allowed_networks)

    @property
    def fetch_limits(self) -> FetchLimits:
        return FetchLimits(
            connect_seconds=self.fetch_connect_timeout_seconds,
            read_seconds=self.fetch_read_timeout_seconds,
            total_seconds=self.fetch_timeout_seconds,
        )

    @model_validator(mode="after")
    def _check_bounds(self) -> Self:
        if self.chunk_overlap_tokens * 2 > self.chunk_size_tokens:
            raise ValueError("chunk_overlap_tokens must be at most half of chunk_size_tokens")
        return self
