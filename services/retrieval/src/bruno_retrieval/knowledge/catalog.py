"""The catalog: which table holds each collection and which embedding model made its vectors,
the one open handle of each table, and retiring a table once no search reads it.

    catalog = await Catalog.open(db, indexes, tasks)
    async with catalog.reading("homelab") as found:   # (entry, table); None: empty ``default``
        ...

A small table, ``_bruno_collections``, holds a row per collection: its table, model and
dimension. A collection's table is named after it; a reindex writes a shadow table (``name.1``,
``name.2`` …: a dot cannot appear in a collection name) and switches over by rewriting the
collection's row, one commit. The table it replaced, like the table of a deleted collection,
is dropped once the searches reading it are done. Tables from before the catalog that look
like a collection are adopted when the catalog opens; their model is recorded by the next
ingest.

A reader (:mod:`bruno_retrieval.roles`) writes none of this: it reloads the catalog's rows when
they have changed, looked at most once per ``lag_seconds`` (a new collection, a reindex switch, a
deleted collection appear without a restart), only closes the handles of tables that left the
catalog, and a read naming a version it must see waits for it (:mod:`.following`). A writer
whose tables have readers elsewhere drops a retired table only after the full drain time, as
those readers' searches cannot be counted here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import lancedb
from lancedb.expr import col, lit

from bruno_core import Conflict, NotFound
from bruno_core.contract import COLLECTION_NAME, DEFAULT_COLLECTION
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.knowledge.ann import VectorIndexes
from bruno_retrieval.knowledge.following import caught_up
from bruno_retrieval.knowledge.keywords import KeywordIndexes, ensure_text_index
from bruno_retrieval.knowledge.results import Committed
from bruno_retrieval.knowledge.schema import (
    CATALOG_SCHEMA,
    catalog_row,
    ensure_page_column,
    table_schema,
)
from bruno_retrieval.roles import Role

log = logging.getLogger(__name__)

CATALOG_TABLE = "_bruno_collections"
# How long a retired table waits for the searches still reading it before it is dropped.
_DRAIN_SECONDS = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A catalog row: which table holds a collection and what model made its vectors."""

    collection: str
    table: str
    model: str  # "" for a table adopted from before the catalog: the next model is recorded
    dimension: int

    def check_model(self, model: str, dimension: int) -> None:
        """Conflict unless vectors of ``model`` and ``dimension`` belong in this collection."""
        if dimension != self.dimension or (self.model and model and model != self.model):
            built = f"{self.model or 'an unrecorded model'} ({self.dimension} dimensions)"
            raise Conflict(
                f"collection {self.collection!r} was built with {built} but the embedding "
                f"service now serves {model or 'another model'} ({dimension} dimensions); "
                f"run `bruno reindex {self.collection}` to rebuild it with the current model"
            )


class Catalog:
    """The collections of one LanceDB database and the open handles of their tables."""

    def __init__(
        self,
        db: lancedb.AsyncConnection,
        rows: Any,
        indexes: VectorIndexes,
        tasks: BackgroundTasks,
        *,
        role: Role = Role.ALL,
        lag_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self._rows = rows  # None on a reader until the writer has made the catalog
        self._role = role
        self._lag_seconds = lag_seconds
        self._rows_version = 0
        self._next_follow = 0.0
        self._follow_lock = asyncio.Lock()
        self._indexes = indexes
        self.keywords = KeywordIndexes(tasks)
        self._tasks = tasks
        self._entries: dict[str, CatalogEntry] = {}
        # One handle per table: every read must see the commits made through the writer's.
        self._tables: dict[str, Any] = {}
        self._open_lock = asyncio.Lock()
        self._readers: Counter[str] = Counter()
        self._drained: dict[str, asyncio.Event] = {}

    @classmethod
    async def open(
        cls,
        db: lancedb.AsyncConnection,
        indexes: VectorIndexes,
        tasks: BackgroundTasks,
        *,
        role: Role = Role.ALL,
        lag_seconds: float = 1.0,
    ) -> Catalog:
        # Connecting is lazy; this read proves the location is usable before health says SERVING.
        names = set(await table_names(db))
        if CATALOG_TABLE in names:
            rows = await db.open_table(CATALOG_TABLE)
        elif role.writes:
            rows = await db.create_table(CATALOG_TABLE, schema=CATALOG_SCHEMA, exist_ok=True)
        else:  # a reader started before its writer: no collections until the writer makes some
            rows = None
        catalog = cls(db, rows, indexes, tasks, role=role, lag_seconds=lag_seconds)
        if rows is not None:
            await catalog._load(names)
            catalog._rows_version = await rows.version()
            if role.writes:
                catalog._retire_leftovers(names)
        catalog._next_follow = time.monotonic() + lag_seconds
        return catalog

    def close(self) -> None:
        for table in self._tables.values():
            table.close()
        self._tables.clear()
        if self._rows is not None:
            self._rows.close()

    def entry(self, collection: str) -> CatalogEntry | None:
        return self._entries.get(collection)

    def collections(self) -> list[str]:
        return sorted(self._entries)

    @contextlib.asynccontextmanager
    async def reading(
        self, collection: str, at_least: Committed | None = None
    ) -> AsyncIterator[tuple[CatalogEntry, Any] | None]:
        """The collection's entry and table, held open against a concurrent switch. A
        collection that does not exist yet is ``None`` if it is ``default``, else NotFound.

        On a reader, ``at_least`` (what a write committed) is seen or the read is refused
        Unavailable (:mod:`.following`); the writer and ``all`` read the latest version always.
        """
        await self.follow()
        entry = self._entries.get(collection)
        stale = entry is None or (at_least is not None and entry.table != at_least.table)
        if self._following and at_least is not None and stale:
            # A table this reader has not seen yet: the catalog may have moved meanwhile.
            # Another table after that look means the write's table was replaced by one made
            # from it (a reindex) or its collection deleted: the write is behind us.
            await self.follow(force=True)
            entry = self._entries.get(collection)
        if entry is None:
            if collection != DEFAULT_COLLECTION:
                raise NotFound(f"collection {collection!r} not found")
            yield None
            return
        self._readers[entry.table] += 1
        try:
            table = await self.table(entry)
            if self._following and at_least is not None and at_least.table == entry.table:
                await caught_up(table, at_least.version, within_seconds=self._lag_seconds)
            yield entry, table
        finally:
            self._readers[entry.table] -= 1
            if self._readers[entry.table] == 0 and entry.table in self._drained:
                self._drained[entry.table].set()

    async def table(self, entry: CatalogEntry) -> Any:
        """The one cached handle of an entry's table."""
        if (table := self._tables.get(entry.table)) is not None:
            return table
        async with self._open_lock:
            if (table := self._tables.get(entry.table)) is None:
                table = await self.db.open_table(entry.table)
                if self._role.writes:
                    await ensure_page_column(table)
                    await self.keywords.adopt(entry.collection, table)
                await self._indexes.adopt(entry.collection, table, rebuild=self._role.writes)
                self._tables[entry.table] = table
            return table

    @property
    def _following(self) -> bool:
        return self._role is Role.READER

    async def follow(self, *, force: bool = False) -> None:
        """On a reader: take in the writer's catalog changes, looked for at most once per
        ``lag_seconds`` unless ``force``; on the writer and ``all``, nothing to do."""
        if not self._following or (not force and time.monotonic() < self._next_follow):
            return
        async with self._follow_lock:
            if not force and time.monotonic() < self._next_follow:
                return  # another read looked meanwhile
            self._next_follow = time.monotonic() + self._lag_seconds
            await self._reload()

    async def _reload(self) -> None:
        if self._rows is None:
            if CATALOG_TABLE not in await table_names(self.db):
                return
            self._rows = await self.db.open_table(CATALOG_TABLE)
        await self._rows.checkout_latest()
        version = await self._rows.version()
        if version != self._rows_version:
            self._rows_version = version
            rows = (await self._rows.query().to_arrow()).to_pylist()
            entries = {
                row["collection"]: CatalogEntry(
                    row["collection"], row["table"], row["model"], row["dimension"]
                )
                for row in rows
            }
            for collection, entry in self._entries.items():
                now = entries.get(collection)
                if now is None or now.table != entry.table:
                    self._retire(entry.table)
            self._entries = entries
        # Index builds are the writer's, in the background: learn which index a table has now.
        for name, table in list(self._tables.items()):
            self.keywords.forget(name)
            await self._indexes.adopt(name, table, rebuild=False)

    async def being_rebuilt(self, entry: CatalogEntry) -> bool:
        """Whether a shadow table of ``entry``'s (a reindex under way) exists: how a reader,
        which cannot see the writer's reindex, knows one is running."""
        base, _, generation = entry.table.partition(".")
        current = int(generation) if generation.isdigit() else 0
        for name in await table_names(self.db):
            prefix, _, number = name.partition(".")
            if prefix == base and number.isdigit() and int(number) > current:
                return True
        return False

    async def create(self, collection: str, model: str, dimension: int) -> CatalogEntry:
        """A new, empty table for ``collection``, named after it — or ``name.N`` while a
        deleted collection's table of that name still waits for its last searches."""
        async with self._open_lock:
            taken = set(await table_names(self.db))
            name = _next_table_name(collection, taken) if collection in taken else collection
            table: Any = await self.db.create_table(name, schema=table_schema(dimension))
            entry = CatalogEntry(collection, name, model, dimension)
            try:
                await ensure_text_index(table)
                await self._write(entry)
            except BaseException:  # leave no table behind that blocks the next attempt
                table.close()
                await self.drop_quietly(name)
                raise
            self._tables[name] = table
        self._entries[collection] = entry
        return entry

    async def record_model(self, entry: CatalogEntry, model: str) -> CatalogEntry:
        """Record the model of an adopted table's vectors (the first one written to it)."""
        entry = dataclasses.replace(entry, model=model)
        await self._write(entry)
        self._entries[entry.collection] = entry
        return entry

    async def shadow_name(self, entry: CatalogEntry) -> str:
        """A free name for the table that is to replace ``entry``'s."""
        return _next_table_name(entry.table, set(await table_names(self.db)))

    async def switch(self, entry: CatalogEntry, table: Any) -> None:
        """Make ``table`` the collection's (one catalog commit) and retire the one it replaces."""
        await self._write(entry)
        old = self._entries[entry.collection]
        self._tables[entry.table] = table
        self._entries[entry.collection] = entry
        self._retire(old.table)

    async def remove(self, collection: str) -> None:
        """Delete the collection's row; its table goes once no search reads it."""
        entry = self._entries[collection]
        await self._rows.delete(col("collection") == lit(collection))
        del self._entries[collection]
        self._retire(entry.table)

    async def drop_quietly(self, name: str) -> None:
        """Drop a table that was never (or is no longer) anyone's, if it exists."""
        with contextlib.suppress(Exception):
            await self.db.drop_table(name)

    async def _write(self, entry: CatalogEntry) -> None:
        row = catalog_row(entry.collection, entry.table, entry.model, entry.dimension)
        await (
            self._rows.merge_insert("collection")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(row)
        )

    async def _load(self, names: set[str]) -> None:
        rows = (await self._rows.query().to_arrow()).to_pylist()
        for row in rows:
            if row["table"] in names:
                self._entries[row["collection"]] = CatalogEntry(
                    row["collection"], row["table"], row["model"], row["dimension"]
                )
        # Tables from before the catalog: adopt those shaped like a collection.
        for name in sorted(names - {CATALOG_TABLE} - set(self._entries)):
            if not COLLECTION_NAME.is_valid(name):
                continue
            table: Any = await self.db.open_table(name)
            schema = await table.schema()
            table.close()
            if {"chunk_id", "document_id", "vector"} <= set(schema.names):
                entry = CatalogEntry(name, name, "", schema.field("vector").type.list_size)
                await self._write(entry)
                self._entries[name] = entry

    def _retire_leftovers(self, names: set[str]) -> None:
        """Retire the ``name.N`` tables no collection uses: a reindex's shadow that a restart
        interrupted (its job is failed at start), or a replaced or deleted collection's table
        whose drop the restart cut short. Left, they would hold disk for good and make readers
        think a reindex is under way (:meth:`being_rebuilt`)."""
        used = {entry.table for entry in self._entries.values()}
        for name in sorted(names - used):
            base, _, generation = name.partition(".")
            if generation.isdigit() and COLLECTION_NAME.is_valid(base):
                log.info("dropping a table no collection uses", extra={"table": name})
                self._retire(name)

    def _retire(self, table_name: str) -> None:
        """Drop a table no longer in the catalog once no search is reading it (a reader only
        closes its handle: the table is the writer's to drop)."""

        async def drop() -> None:
            if self._role.shares_tables:  # other processes' searches: give them the full time
                await asyncio.sleep(_DRAIN_SECONDS)
            elif self._readers[table_name] > 0:
                drained = self._drained.setdefault(table_name, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(drained.wait(), _DRAIN_SECONDS)
            self._drained.pop(table_name, None)
            table = self._tables.pop(table_name, None)
            self._indexes.forget(table_name)
            self.keywords.forget(table_name)
            if table is not None:
                table.close()
            if not self._role.writes:
                return
            try:
                await self.db.drop_table(table_name)
            except Exception:
                log.exception("dropping a retired table failed", extra={"table": table_name})

        self._tasks.spawn(drop())


async def table_names(db: lancedb.AsyncConnection) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = await db.list_tables(page_token=token, limit=1000)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return names


def _next_table_name(current: str, taken: set[str]) -> str:
    """``docs`` -> ``docs.1`` -> ``docs.2``: a dot cannot appear in a collection name."""
    base, _, generation = current.partition(".")
    number = int(generation) + 1 if generation.isdigit() else 1
    while f"{base}.{number}" in taken:
        number += 1
    return f"{base}.{number}"
