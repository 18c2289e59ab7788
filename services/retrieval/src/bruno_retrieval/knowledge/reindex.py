"""Rebuilding a collection with the embedding model the service serves now.

Every chunk is re-embedded into a shadow table, streamed in batches so a large collection is
never held in memory whole, then the catalog switches the collection over in one commit. A
failure at any point drops the shadow and leaves the collection as it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bruno.embedding.v1 import embedding_pb2
from bruno_core import NotFound
from bruno_retrieval.knowledge.ann import VectorIndexes
from bruno_retrieval.knowledge.catalog import Catalog, CatalogEntry
from bruno_retrieval.knowledge.embedding import Embedder, check_vectors, embedding_input
from bruno_retrieval.knowledge.keywords import ensure_text_index
from bruno_retrieval.knowledge.reads import row_batches
from bruno_retrieval.knowledge.schema import reindexed_rows, table_schema

log = logging.getLogger(__name__)

_REINDEX_BATCH = 256


class ReindexCancelled(Exception):
    """A reindex stopped on request before its switch; the collection is as it was."""


async def rebuild(
    collection: str,
    catalog: Catalog,
    embedder: Embedder,
    indexes: VectorIndexes,
    *,
    stop: asyncio.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> CatalogEntry:
    """Re-embed ``collection`` and switch it to the new table; the entry it had before.
    The caller holds the collection's write lock. ``stop``, once set, ends it between batches
    (:class:`ReindexCancelled`); ``progress`` hears the chunks re-embedded so far."""
    entry = catalog.entry(collection)
    if entry is None:
        raise NotFound(f"collection {collection!r} not found")
    old = await catalog.table(entry)
    columns = [name for name in (await old.schema()).names if name != "vector"]
    shadow_name = await catalog.shadow_name(entry)
    model, dimension, copied = "", 0, 0
    shadow: Any = None
    try:
        async for batch in row_batches(old, columns, _REINDEX_BATCH):
            _check_stop(stop, collection)
            texts = [embedding_input(row["heading_path"], row["text"]) for row in batch]
            vectors = await embedder.embed(texts, embedding_pb2.INPUT_TYPE_DOCUMENT)
            dimension = check_vectors(vectors, len(texts))
            model = await embedder.model()
            if shadow is None:
                shadow = await catalog.db.create_table(shadow_name, schema=table_schema(dimension))
            await shadow.add(reindexed_rows(batch, vectors))
            copied += len(batch)
            if progress is not None:
                progress(copied)
        if shadow is None:  # an empty collection: the model tells its dimension
            probe = await embedder.embed(["dimension probe"], embedding_pb2.INPUT_TYPE_DOCUMENT)
            dimension = check_vectors(probe, 1)
            model = await embedder.model()
            shadow = await catalog.db.create_table(shadow_name, schema=table_schema(dimension))
        await ensure_text_index(shadow)
        if indexes.config.min_rows and copied >= indexes.config.min_rows:
            await indexes.build(shadow)
        _check_stop(stop, collection)  # the last chance: the switch is not undone
        await catalog.switch(CatalogEntry(collection, shadow_name, model, dimension), shadow)
    except BaseException:
        if shadow is not None:
            shadow.close()
        await catalog.drop_quietly(shadow_name)
        raise
    log.info(
        "collection reindexed",
        extra={"collection": collection, "model": model, "previous_model": entry.model},
    )
    return entry


def _check_stop(stop: asyncio.Event | None, collection: str) -> None:
    if stop is not None and stop.is_set():
        raise ReindexCancelled(f"the reindex of {collection!r} was cancelled")
