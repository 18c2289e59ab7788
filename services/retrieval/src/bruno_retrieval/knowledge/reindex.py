"""Rebuilding a collection with the embedding service's default model, while ingests and
deletes into it go on.

The rebuild copies a snapshot (a table version) of the collection into a shadow table,
re-embedding it in batches without the collection's write lock, so a large collection is never
held in memory whole and a write waits at most for one batch to be added. From the snapshot on,
the writer logs which documents change (:mod:`.shadow`): a delete, or a write (embedded with
the old table's model, as every ingest asks for its collection's model), goes to the old table
and marks the document stale. Catch-up passes copy the stale documents again — outside the lock
while there are many, then one last pass under it — and the catalog switches the collection
over in the same hold, so nothing written meanwhile is lost or doubled. A failure or a cancel
at any point drops the shadow and leaves the collection as it was.

When the service no longer serves the old model (an Ollama model replaced), a write cannot be
embedded for the old table, and it is not committed during the rebuild
(:class:`CollectionReindexing`): a write that only the shadow held would be lost with it if the
rebuild were cancelled, failed or cut short by a restart — after it had been acknowledged. The
job runner (:mod:`bruno_retrieval.jobs.runner`) turns such an ingest into a job queued behind
the rebuild instead: it commits after the switch, or, if the collection keeps its old model,
fails visibly per document; nothing acknowledged is lost either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from lancedb.expr import col

from bruno.embedding.v1 import embedding_pb2
from bruno_core import NotFound, Unavailable
from bruno_retrieval.knowledge.ann import VectorIndexes
from bruno_retrieval.knowledge.catalog import Catalog, CatalogEntry
from bruno_retrieval.knowledge.embedding import Embedder, check_vectors, embedding_input
from bruno_retrieval.knowledge.keywords import ensure_text_index
from bruno_retrieval.knowledge.reads import row_batches
from bruno_retrieval.knowledge.schema import reindexed_rows, table_schema
from bruno_retrieval.knowledge.shadow import Shadow
from bruno_retrieval.knowledge.writer import Writer

log = logging.getLogger(__name__)

_REINDEX_BATCH = 256
# Catch-up passes run outside the lock until at most this many documents are left to copy
# again; the last pass, under the lock, then holds writes up for about one batch's embedding.
_CATCH_UP_UNDER_LOCK = 32
# ... or until this many passes have run: writes faster than the catch-up must not keep a
# reindex from ever switching (the last pass then holds them up for longer).
_CATCH_UP_PASSES_OUTSIDE_LOCK = 4


class ReindexCancelled(Exception):
    """A reindex stopped on request before its switch; the collection is as it was."""


class CollectionReindexing(Unavailable):
    """A document written while its collection is rebuilt, whose old model the embedding
    service no longer serves: not committed.
    Asking again at once cannot cure it (no retry pushback: ``retryable`` is false); asking
    after the reindex, or through a job that waits for it, can."""

    def __init__(self, collection: str) -> None:
        super().__init__(
            f"collection {collection!r} is being reindexed, and the embedding service no longer "
            "serves its old model; a document is written after the switch: submit it as an "
            "ingest job (it waits for the reindex), or send it again once the reindex job of "
            f"{collection!r} has ended (`bruno jobs`)"
        )
        self.retryable = False


async def rebuild(
    collection: str,
    catalog: Catalog,
    embedder: Embedder,
    indexes: VectorIndexes,
    writer: Writer,
    *,
    stop: asyncio.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> CatalogEntry:
    """Re-embed ``collection`` and switch it to the new table; the entry it had before.
    Takes the collection's write lock only briefly (see the module docstring); one rebuild per
    collection at a time is the caller's to ensure. ``stop``, once set, ends it between
    batches (:class:`ReindexCancelled`); ``progress`` hears the chunks re-embedded so far."""
    snapshot: Any = None
    shadow: Shadow | None = None
    name = ""
    try:
        if catalog.entry(collection) is None:
            raise NotFound(f"collection {collection!r} not found")
        # The service's default model (asked for by naming none) and its dimension. Asked
        # before the lock: the embedding service may take long to answer (busy with other
        # batches), and writes must not wait for it.
        probe = await embedder.embed(["dimension probe"], embedding_pb2.INPUT_TYPE_DOCUMENT)
        dimension, model = check_vectors(probe.vectors, 1), probe.model
        # Taken first, so that writes from now on find the shadow ready (or came before).
        async with writer.lock(collection):
            entry = catalog.entry(collection)
            if entry is None:
                raise NotFound(f"collection {collection!r} was deleted before its reindex began")
            # The shadow exists before the snapshot is taken, so the writer logs every change
            # from there on.
            name = await catalog.shadow_name(entry)
            target = CatalogEntry(collection, name, model, dimension)
            table = await catalog.db.create_table(name, schema=table_schema(dimension))
            shadow = Shadow(target, table)
            writer.start_shadow(collection, shadow)
            old = await catalog.table(entry)
            columns = [column for column in (await old.schema()).names if column != "vector"]
            version = await old.version()
        snapshot = await catalog.db.open_table(entry.table)
        await snapshot.checkout(version)
        copied = 0
        async for batch in row_batches(snapshot, columns, _REINDEX_BATCH):
            _check_stop(stop, collection)
            rows = await _embedded(batch, embedder, target)
            async with writer.lock(collection):
                _check_kept(writer, collection, shadow)
                # A document written since the snapshot is the catch-up's.
                kept = rows.filter(
                    pa.array([shadow.copied_as_is(row["document_id"]) for row in batch])
                )
                if kept.num_rows:
                    await shadow.table.add(kept)
            copied += len(batch)
            if progress is not None:
                progress(copied)
        await ensure_text_index(shadow.table)
        if indexes.config.min_rows and copied >= indexes.config.min_rows:
            await indexes.build(shadow.table)
        for _ in range(_CATCH_UP_PASSES_OUTSIDE_LOCK):
            if len(shadow.stale) <= _CATCH_UP_UNDER_LOCK:
                break
            _check_stop(stop, collection)
            _check_kept(writer, collection, shadow)
            await _catch_up(shadow, old, columns, embedder, writer, collection, locked=False)
        async with writer.lock(collection):
            _check_stop(stop, collection)
            _check_kept(writer, collection, shadow)
            await _catch_up(shadow, old, columns, embedder, writer, collection, locked=True)
            _check_stop(stop, collection)  # the last chance: the switch is not undone
            await catalog.switch(target, shadow.table)
            writer.end_shadow(collection)
    except BaseException:
        if name:
            await _abandon(collection, catalog, writer, name, shadow)
        raise
    finally:
        if snapshot is not None:
            snapshot.close()
    log.info(
        "collection reindexed",
        extra={"collection": collection, "model": target.model, "previous_model": entry.model},
    )
    return entry


async def _embedded(
    batch: list[dict[str, Any]], embedder: Embedder, target: CatalogEntry
) -> pa.Table:
    """``batch``'s rows with vectors of ``target``'s model; Conflict if the model changed."""
    texts = [embedding_input(row["heading_path"], row["text"]) for row in batch]
    embedded = await embedder.embed(texts, embedding_pb2.INPUT_TYPE_DOCUMENT, target.model)
    target.check_model(embedded.model, check_vectors(embedded.vectors, len(texts)))
    return reindexed_rows(batch, embedded.vectors)


async def _catch_up(
    shadow: Shadow,
    old: Any,
    columns: list[str],
    embedder: Embedder,
    writer: Writer,
    collection: str,
    *,
    locked: bool,
) -> None:
    """Copy the documents changed in the old table since they were copied, again: each
    one's chunks in the shadow become exactly its chunks in the old table now (none if it was
    deleted). ``locked``: the caller holds the lock; otherwise it is taken for the write only,
    and a document that changed once more while its copy was embedded is left to the next
    pass."""
    ids = shadow.take_stale()
    if not ids:
        return
    rows = (
        await old.query().where(col("document_id").isin(sorted(ids))).select(columns).to_arrow()
    ).to_pylist()
    embedded = [
        await _embedded(rows[start : start + _REINDEX_BATCH], embedder, shadow.entry)
        for start in range(0, len(rows), _REINDEX_BATCH)
    ]

    async def write() -> None:
        settled = sorted(document_id for document_id in ids if shadow.copied_as_is(document_id))
        if not settled:
            return
        chosen = set(settled)
        wanted = pa.array([row["document_id"] in chosen for row in rows], pa.bool_())
        keep = pa.concat_tables(embedded).filter(wanted) if embedded else None
        if keep is None or not keep.num_rows:  # every one of them was deleted
            await shadow.table.delete(col("document_id").isin(settled))
            return
        await (
            shadow.table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(col("document_id").isin(settled))
            .execute(keep)
        )

    if locked:
        await write()
    else:
        async with writer.lock(collection):
            await write()


async def _abandon(
    collection: str, catalog: Catalog, writer: Writer, name: str, shadow: Shadow | None
) -> None:
    """Stop logging for the shadow and drop it: the collection stays as it was (the shadow
    holds nothing that was not copied from it)."""
    if shadow is not None:
        if writer.shadow(collection) is shadow:
            writer.end_shadow(collection)
        shadow.table.close()
    await catalog.drop_quietly(name)


def _check_kept(writer: Writer, collection: str, shadow: Shadow) -> None:
    """NotFound once the collection was deleted, which ends its shadow. Its catalog entry
    cannot tell: a collection made anew can have the very entry the old one had, and an adopted
    table's entry changes when its first ingest records the model."""
    if writer.shadow(collection) is not shadow:
        raise NotFound(f"collection {collection!r} was deleted during its reindex")


def _check_stop(stop: asyncio.Event | None, collection: str) -> None:
    if stop is not None and stop.is_set():
        raise ReindexCancelled(f"the reindex of {collection!r} was cancelled")
