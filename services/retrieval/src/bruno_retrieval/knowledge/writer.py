"""Writing a collection's table: one lock per collection that every writer takes, document
versions committed in groups, and the upkeep that follows writes.

    writer = Writer(catalog, indexes, tasks, QuietOptimize.from_settings(settings))
    outcome, chunks = await writer.commit("default", version)   # with whatever else waits
    async with writer.lock("default"):                          # a delete, a switch
        ...

While a collection is rebuilt (:mod:`.reindex`), writes of the old table's model go on into
the old table, and the :class:`.shadow.Shadow` log tells the rebuild which documents to copy
again before it switches; a version of another model is refused as for any collection (the
store tells its caller to wait for the switch, :class:`.reindex.CollectionReindexing`).

A version replaces its document's old chunks in the same ``merge_insert`` commit that inserts
its own, so readers see the whole old version or the whole new one. Every 20th write, or
sooner once 100 rows have been written since the last time, compacts the table and folds new
rows into its indexes, in the background; the ANN index is built once the table is big enough
(:class:`.ann.VectorIndexes`). A collection that then goes quiet — a few documents ingested,
then only questions — would keep its last writes' rows unindexed and its fragments apart for
good, scanned by every query: once no write has come for a while, the same optimize runs
(:class:`QuietOptimize`). Every optimize takes the collection's lock, so it never runs beside a
write or a rebuild's copy, catch-up or switch, and one whose collection was switched to another
table (a reindex) or deleted meanwhile does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter, defaultdict
from time import monotonic
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from lancedb.expr import col

from bruno_core import Conflict
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.commit_conflicts import retry_commit_conflicts
from bruno_retrieval.group_commit import GroupCommit, Pending
from bruno_retrieval.knowledge import reads
from bruno_retrieval.knowledge.ann import VectorIndexes
from bruno_retrieval.knowledge.catalog import Catalog, CatalogEntry
from bruno_retrieval.knowledge.results import Committed, IngestOutcome
from bruno_retrieval.knowledge.shadow import Shadow

if TYPE_CHECKING:
    from bruno_retrieval.config import RetrievalSettings

log = logging.getLogger(__name__)

# LanceDB advises optimizing (compaction, folding new rows into indexes) every ~20 writes.
_OPTIMIZE_EVERY_WRITES = 20
# Rows outside the keyword index are scanned by every text query: at 10,000 indexed rows,
# 20 such rows made a query 1.6-2.7x slower and 100 of them 3.5-7x, while an optimize there
# took 0.2-0.35 s of background work (benchmarks/unindexed_rows.py, docs/benchmarks.md).
# Documents of many chunks reach this long before their 20th write.
_OPTIMIZE_AFTER_ROWS = 100
# One group commit writes at most this many documents.
_MAX_DOCUMENTS_PER_COMMIT = 256

# The outcome, the chunks the document has now and the table version that holds them.
Written = tuple[IngestOutcome, int, Committed]


@dataclasses.dataclass(frozen=True, slots=True)
class QuietOptimize:
    """When a collection left alone after writes is optimized: ``seconds`` after its last write
    (0: never), at most once per ``interval_seconds`` (a later one waits for the rest of the
    interval) unless more than ``max_rows`` rows were written since the last one."""

    seconds: float = 0.0
    interval_seconds: float = 600.0
    max_rows: int = 2000

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> QuietOptimize:
        return cls(
            seconds=settings.optimize_quiet_seconds,
            interval_seconds=settings.optimize_quiet_interval_seconds,
            max_rows=settings.optimize_quiet_max_rows,
        )


@dataclasses.dataclass(slots=True)
class _QuietState:
    """One collection's quiet optimize: when it was last written to, the rows written since
    its last quiet optimize, when that one started, and the task waiting for the next (woken
    by every write, as a write can bring it closer)."""

    last_write: float = 0.0
    rows_since: int = 0
    last_run: float | None = None
    timer: asyncio.Task[None] | None = None
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentVersion:
    """A document's new text, chunked and embedded: its rows, waiting for their commit."""

    document_id: str
    digest: str  # the content hash of its text
    model: str  # the embedding model that made its vectors
    dimension: int
    rows: pa.Table
    paged: bool = False  # its chunks know their pages


class Writer:
    """The writes to every collection's table (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        indexes: VectorIndexes,
        tasks: BackgroundTasks,
        quiet: QuietOptimize | None = None,
    ) -> None:
        self._catalog = catalog
        self._indexes = indexes
        self._tasks = tasks
        self._quiet = quiet or QuietOptimize()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._commits: dict[str, GroupCommit[DocumentVersion, Written]] = {}
        self._writes_since_optimize: Counter[str] = Counter()
        self._rows_since_optimize: Counter[str] = Counter()
        self._shadows: dict[str, Shadow] = {}
        # The quiet optimize (QuietOptimize), per collection.
        self._quiet_states: defaultdict[str, _QuietState] = defaultdict(_QuietState)

    def lock(self, collection: str) -> asyncio.Lock:
        """The lock every writer of ``collection``'s table holds while it writes."""
        return self._locks[collection]

    def shadow(self, collection: str) -> Shadow | None:
        """The table ``collection`` is being rebuilt into, if a rebuild runs."""
        return self._shadows.get(collection)

    def start_shadow(self, collection: str, shadow: Shadow) -> None:
        """From now on (the caller holds the lock), log the writes ``shadow`` must catch up."""
        self._shadows[collection] = shadow

    def end_shadow(self, collection: str) -> None:
        """The rebuild switched over or gave up (the caller holds the lock)."""
        self._shadows.pop(collection, None)

    async def commit(self, collection: str, version: DocumentVersion) -> Written:
        """Write ``version`` (creating the collection if need be); UNCHANGED when the stored
        document has the same text by then, Conflict when another model made the
        collection's vectors."""
        if collection not in self._commits:
            self._commits[collection] = GroupCommit(
                self._locks[collection],
                lambda batch: self._write(collection, batch),
                self._tasks,
                max_batch=_MAX_DOCUMENTS_PER_COMMIT,
                key=lambda waiting: waiting.document_id,
            )
        return await self._commits[collection].submit(version)

    def after_write(
        self, collection: str, entry: CatalogEntry, table: Any, *, rows: int = 0
    ) -> None:
        """Start the upkeep a write may call for (the caller has written ``rows`` new rows to
        ``table``)."""
        self._writes_since_optimize[collection] += 1
        self._rows_since_optimize[collection] += rows
        self._quiet_states[collection].rows_since += rows
        if (
            self._writes_since_optimize[collection] >= _OPTIMIZE_EVERY_WRITES
            or self._rows_since_optimize[collection] >= _OPTIMIZE_AFTER_ROWS
        ):
            self._writes_since_optimize[collection] = 0
            self._rows_since_optimize[collection] = 0
            self._tasks.spawn(self._optimize(collection, entry, table))
        else:
            self._indexes.grow(collection, table)
            self._wait_for_quiet(collection)

    def quiet_timer(self, collection: str) -> asyncio.Task[None] | None:
        """The task waiting to optimize ``collection`` once it is quiet, if one waits."""
        state = self._quiet_states.get(collection)
        timer = None if state is None else state.timer
        return None if timer is None or timer.done() else timer

    def _wait_for_quiet(self, collection: str) -> None:
        """Optimize ``collection``, written to just now, once it is quiet (unless off)."""
        if not self._quiet.seconds:
            return
        state = self._quiet_states[collection]
        state.last_write = monotonic()
        if self.quiet_timer(collection) is None:
            state.timer = self._tasks.spawn(self._when_quiet(collection), timer=True)
        else:
            state.wake.set()

    def _quiet_due(self, collection: str) -> float | None:
        """When ``collection``'s quiet optimize is due (monotonic time); None once an optimize
        has taken in every write so far."""
        if not self._writes_since_optimize[collection]:
            return None
        state = self._quiet_states[collection]
        due = state.last_write + self._quiet.seconds
        if state.last_run is not None and state.rows_since <= self._quiet.max_rows:
            due = max(due, state.last_run + self._quiet.interval_seconds)
        return due

    async def _when_quiet(self, collection: str) -> None:
        """Wait until ``collection``'s quiet optimize is due and run it, again while writes
        come that no optimize took in (see QuietOptimize)."""
        state = self._quiet_states[collection]
        while (due := self._quiet_due(collection)) is not None:
            state.wake.clear()
            delay = due - monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.wake.wait(), delay)
                continue
            state.last_run = monotonic()
            state.rows_since = 0
            self._writes_since_optimize[collection] = 0
            self._rows_since_optimize[collection] = 0
            # A task of its own, so that wait() (tests, benchmarks) waits for it.
            await self._tasks.spawn(self._optimize(collection))

    async def _write(self, collection: str, batch: list[Pending[DocumentVersion, Written]]) -> None:
        """Write the versions of ``batch`` in one commit (the collection's lock held)."""
        entry = self._catalog.entry(collection)
        first = batch[0].item
        if entry is None:
            entry = await self._catalog.create(collection, first.model, first.dimension)
        elif not entry.model:
            entry = await self._catalog.record_model(entry, first.model)
        writable = []
        for pending in batch:
            try:
                entry.check_model(pending.item.model, pending.item.dimension)
            except Conflict as error:
                pending.settle(error)
                continue
            writable.append(pending)
        if not writable:
            return
        table = await self._catalog.table(entry)
        current = await reads.versions(table, [p.item.document_id for p in writable])
        read_at = Committed(entry.table, await table.version())
        changed = []
        for pending in writable:
            stored = current.get(pending.item.document_id)
            if stored is not None and stored.covers(pending.item.digest, paged=pending.item.paged):
                pending.settle((IngestOutcome.UNCHANGED, stored.chunks, read_at))
            else:
                changed.append(pending)
        if not changed:
            return
        names = (await table.schema()).names
        rows = pa.concat_tables([p.item.rows for p in changed]).select(names)
        ids = [p.item.document_id for p in changed]
        merged = await (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(col("document_id").isin(ids))
            .execute(rows)
        )
        if (shadow := self._shadows.get(collection)) is not None:
            shadow.changed_in_old(ids)  # a rebuild copies them again before it switches
        committed = Committed(entry.table, merged.version)
        for pending in changed:
            replaced = pending.item.document_id in current
            outcome = IngestOutcome.REPLACED if replaced else IngestOutcome.CREATED
            pending.settle((outcome, pending.item.rows.num_rows, committed))
        self.after_write(collection, entry, table, rows=rows.num_rows)

    async def _optimize(
        self, collection: str, entry: CatalogEntry | None = None, table: Any = None
    ) -> None:
        """Fold new rows into the indexes and compact small fragments, in the background:
        ``entry``'s ``table`` unless the collection has moved on from it since; without them
        (a quiet optimize), the collection's table by then, if it still exists."""
        try:
            async with self._locks[collection]:
                current = self._catalog.entry(collection)
                if current is None or (entry is not None and current != entry):
                    return
                if table is None:
                    table = await self._catalog.table(current)
                # An index build (not under the lock) committing meanwhile preempts it.
                await retry_commit_conflicts(table, table.optimize, "optimizing the collection")
            await self._indexes.build_when_due(collection, table)
        except Exception:
            log.exception("optimizing collection failed", extra={"collection": collection})
