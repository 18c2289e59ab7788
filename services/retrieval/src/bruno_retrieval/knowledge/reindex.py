"""Rebuilding a collection with the embedding model the service serves now.

Every chunk is re-embedded into a shadow table, streamed in batches so a large collection is
never held in memory whole, then the catalog switches the collection over in one commit. A
failure at any point drops the shadow and leaves the collection as it was.
"""

from __future__ import annotations

import logging
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


async def rebuild(
    collection: str, catalog: Catalog, embedder: Embedder, indexes: VectorIndexes
) -> CatalogEntry:
    """Re-embed ``collection`` and switch it to the new table; the entry it had before.
    The caller holds the collection's write lock."""
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
            texts = [embedding_input(row["heading_path"], row["text"]) for row in batch]
            vectors = await embedder.embed(texts, embedding_pb2.INPUT_TYPE_DOCUMENT)
            dimension = check_vectors(vectors, len(texts))
            model = await embedder.model()
            if shadow is None:
                shadow = await catalog.db.create_table(shadow_name, schema=table_schema(dimension))
            await shadow.add(reindexed_rows(batch, vectors))
            copied += len(batch)
        if shadow is None:  # an empty collection: the model tells its dimension
            probe = await embedder.embed(["dimension probe"], embedding_pb2.INPUT_TYPE_DOCUMENT)
            dimension = check_vectors(probe, 1)
            model = await embedder.model()
            shadow = await catalog.db.create_table(shadow_name, schema=table_schema(dimension))
        await ensure_text_index(shadow)
        if indexes.config.min_rows and copied >= indexes.config.min_rows:
            await indexes.build(shadow)
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
