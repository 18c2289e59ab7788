"""The approximate (ANN) index of a collection's vectors: when one is built, which kind, how it
is searched, and replacing one of another kind than configured.

    indexes = VectorIndexes(AnnConfig.from_settings(settings), tasks)
    query = indexes.tune(query, table.name, limit=40, top_k=10)   # searched as its index needs
    indexes.grow(collection, table)   # after a write: build once past min_rows, in the background
"""

from __future__ import annotations

import dataclasses
import logging
import math
from enum import StrEnum
from typing import Any

from lancedb.index import IvfHnswSq, IvfPq

from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.commit_conflicts import retry_commit_conflicts
from bruno_retrieval.config import RetrievalSettings

log = logging.getLogger(__name__)

# Vectors per HNSW graph (IVF partition) of an HNSW_SQ index.
_HNSW_PARTITION_ROWS = 250_000


class AnnIndex(StrEnum):
    """The approximate index a collection's vectors get (see :class:`AnnConfig`)."""

    HNSW_SQ = "hnsw_sq"  # a graph over 8-bit scalar-quantised vectors
    IVF_PQ = "ivf_pq"  # inverted lists of product-quantised vectors


# Candidates re-ranked by exact distance, x top_k, unless configured: 8-bit scalar quantisation
# orders near neighbours almost right, product quantisation recalls 45% without it.
_REFINE_FACTORS = {AnnIndex.HNSW_SQ: 2, AnnIndex.IVF_PQ: 10}


@dataclasses.dataclass(frozen=True, slots=True)
class AnnConfig:
    """When the vector column gets an approximate index, which one and how it is searched.

    ``min_rows``: past this many chunks the index is built in the background (0 turns ANN
    off); exact search costs ~0.55 ms per 1,000 chunks of 384 dimensions on 2 cores, so
    ~11 ms at 20,000. ``index``: HNSW_SQ (the default) walks a graph of 8-bit quantised vectors
    keeping ``ef`` candidates in each of the ``nprobes`` nearest of its partitions (one per
    250,000 chunks present when it is built); IVF_PQ searches ``nprobes`` of its √n partitions
    of product-quantised vectors. Either way ``refine_factor`` x top_k candidates are re-ranked
    by exact distance (unset: 2 for HNSW_SQ, 10 for IVF_PQ), so scores are exact cosines —
    without it HNSW_SQ's distances are off by up to 0.28, which would move the fusion and the
    relevance threshold. Measured at 100,000 chunks (docs/benchmarks.md): recall@10 against
    exact search 1.000 for both with these defaults; HNSW_SQ answers in ~4 ms instead of 5-6
    and cuts hybrid search by ~13%, for a longer build (~1 min per 100,000 chunks on 2 cores,
    in the background, against seconds) and ten times the size (~0.6 KB per 384-dim chunk
    against ~0.06 KB). IVF_PQ suits a memory-tight host with millions of chunks."""

    min_rows: int
    index: AnnIndex
    ef: int
    nprobes: int
    refine_factor: int | None

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> AnnConfig:
        return cls(
            min_rows=settings.ann_min_rows,
            index=AnnIndex(settings.ann_index),
            ef=settings.ann_ef,
            nprobes=settings.ann_nprobes,
            refine_factor=settings.ann_refine_factor,
        )

    def index_config(self, rows: int, dimension: int) -> IvfHnswSq | IvfPq:
        """The LanceDB index to build over ``rows`` vectors of ``dimension``."""
        if self.index is AnnIndex.HNSW_SQ:
            # One graph per partition: a graph's build holds its vectors in memory.
            partitions = max(1, rows // _HNSW_PARTITION_ROWS)
            return IvfHnswSq(distance_type="cosine", num_partitions=partitions)
        return IvfPq(
            distance_type="cosine",
            num_partitions=max(1, int(math.sqrt(rows))),
            num_sub_vectors=_sub_vectors(dimension),
        )

    def tune(self, query: Any, index: AnnIndex, limit: int, top_k: int) -> Any:
        """``query`` (a vector query of ``limit`` rows answering ``top_k``) set up to search
        an ``index`` of this kind."""
        refine = self.refine_for(index, limit, top_k)
        # ef: the HNSW walk must keep at least the rows the refine step re-ranks. IVF-PQ
        # ignores it; set for both, a search stays valid while an index is being replaced by
        # one of the other kind.
        return query.nprobes(self.nprobes).refine_factor(refine).ef(max(self.ef, limit * refine))

    def refine_for(self, index: AnnIndex, limit: int, top_k: int) -> int:
        """The refine factor for a query of ``limit`` rows of which ``top_k`` are answered.

        Hybrid search asks the vector leg for more candidates than it answers (40 for a top 10)
        so the fusion can weigh them; re-ranking ``refine_factor`` x *candidates* rows by exact
        distance (400 for IVF_PQ) would multiply the rows read, the slowest part of an ANN
        query. The pool is ``refine_factor`` x top_k rounded up to a multiple of ``limit``
        (120), so the top_k come out as a plain vector search's would and the other candidates
        are ordered by exact distance within it. Measured at 100,000 chunks: the fused top 10
        equal an exact-vector hybrid's for every probe with either pool (docs/benchmarks.md).
        """
        factor = self.refine_factor or _REFINE_FACTORS[index]
        return max(1, -(-factor * top_k // limit))


class VectorIndexes:
    """Which table has which kind of vector index (or is having one built), and the builds.

    A table indexed under another ``BRUNO_ANN_INDEX`` keeps being searched the way its index
    needs while one of the configured kind is built beside it, in the background."""

    def __init__(self, config: AnnConfig, tasks: BackgroundTasks) -> None:
        self.config = config
        self._tasks = tasks
        self._kinds: dict[str, AnnIndex] = {}

    def tune(self, query: Any, table_name: str, limit: int, top_k: int) -> Any:
        """``query`` set up for the table's index; unchanged while it has none."""
        kind = self._kinds.get(table_name)
        return query if kind is None else self.config.tune(query, kind, limit, top_k)

    async def adopt(self, collection: str, table: Any, *, rebuild: bool = True) -> None:
        """Note the index a table was opened with; rebuild one of another kind than configured
        (unless not ``rebuild``: a reader only follows the writer's builds)."""
        kind = await vector_index_kind(table)
        if kind is None:
            return
        self._kinds[table.name] = kind
        if rebuild and self.config.min_rows and kind is not self.config.index:
            self._tasks.spawn(self._rebuild(collection, table, kind))

    def grow(self, collection: str, table: Any) -> None:
        """After a write: build the index in the background once the table is big enough."""
        if self.config.min_rows and table.name not in self._kinds:
            self._tasks.spawn(self.build_when_due(collection, table))

    async def build_when_due(self, collection: str, table: Any) -> None:
        """Build the index if the table has none and is past ``min_rows`` chunks (never when
        ``min_rows`` is 0)."""
        if not self.config.min_rows or table.name in self._kinds:
            return
        self._kinds[table.name] = self.config.index  # claimed: one build at a time
        try:
            if await table.count_rows() < self.config.min_rows:
                self._kinds.pop(table.name, None)
                return
            log.info(
                "building the vector index",
                extra={"collection": collection, "index": str(self.config.index)},
            )
            await self.build(table)
        except Exception:
            self._kinds.pop(table.name, None)
            log.exception("building the vector index failed", extra={"collection": collection})

    async def build(self, table: Any) -> None:
        """Build the configured index over the table's vectors now."""
        rows = await table.count_rows()
        dimension = (await table.schema()).field("vector").type.list_size
        config = self.config.index_config(rows, dimension)
        # A compaction committing meanwhile preempts the build, which is then done again.
        await retry_commit_conflicts(
            table,
            lambda: table.create_index("vector", config=config),
            "building the vector index",
        )
        self._kinds[table.name] = self.config.index

    def forget(self, table_name: str) -> None:
        self._kinds.pop(table_name, None)

    async def _rebuild(self, collection: str, table: Any, current: AnnIndex) -> None:
        log.info(
            "rebuilding the vector index as configured",
            extra={"collection": collection, "index": str(self.config.index), "was": str(current)},
        )
        try:
            await self.build(table)
        except Exception:
            log.exception("rebuilding the vector index failed", extra={"collection": collection})


async def vector_index_kind(table: Any) -> AnnIndex | None:
    """The kind of the table's vector index, if it has one."""
    for index in await table.list_indices():
        if index.columns == ["vector"]:
            return AnnIndex.HNSW_SQ if "Hnsw" in index.index_type else AnnIndex.IVF_PQ
    return None


def _sub_vectors(dimension: int) -> int:
    """PQ sub-vectors of 8 dimensions each (the refine step restores exact order)."""
    for width in (8, 4, 2, 1):
        if dimension % width == 0:
            return dimension // width
    return 1
