"""Stored identifiers that break the identifier rule of :mod:`bruno_core.contract`.

Documents and conversations stored before the rule may carry ids it refuses now (a document
``..`` or ``docs/../x``, a conversation ``.``). They are never rewritten behind anyone's back:
they stay searchable, and the retrieval service names how many there are in a warning when it
starts. This check lists them; ``--delete`` removes them once they have been re-ingested under
valid ids (run it while the retrieval service is stopped: it is its tables' single writer).

    bruno-retrieval-check-ids            # one line per id; exit status 1 when there are any
    bruno-retrieval-check-ids --delete   # remove those documents and conversations

The database is ``BRUNO_LANCEDB_URI`` (object-store credentials from their usual variables).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import lancedb
from lancedb.expr import col, lit

from bruno_core.contract import CONVERSATION_ID, DOCUMENT_ID
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import TABLE as CONVERSATIONS_TABLE
from bruno_retrieval.knowledge.catalog import CATALOG_TABLE, table_names


@dataclasses.dataclass(frozen=True, slots=True)
class InvalidId:
    """A stored id the rule refuses: a document's (in ``collection``) or a conversation's."""

    kind: str  # "document" or "conversation"
    identifier: str
    collection: str = ""

    def __str__(self) -> str:
        where = f" in collection {self.collection!r}" if self.collection else ""
        return f"{self.kind} {self.identifier!r}{where}"


async def find_invalid_ids(uri: str) -> list[InvalidId]:
    """Every stored document and conversation id that breaks the rule, by collection and id."""
    db = await lancedb.connect_async(uri)
    names = set(await table_names(db))
    found: list[InvalidId] = []
    for collection, table in await _collection_tables(db, names):
        ids = await _column(table, "document_id", where="chunk_index = 0")
        found += [
            InvalidId("document", i, collection) for i in sorted(ids) if not DOCUMENT_ID.is_valid(i)
        ]
        table.close()
    if CONVERSATIONS_TABLE in names:
        conversations: Any = await db.open_table(CONVERSATIONS_TABLE)
        ids = await _column(conversations, "conversation_id")
        found += [
            InvalidId("conversation", i) for i in sorted(ids) if not CONVERSATION_ID.is_valid(i)
        ]
        conversations.close()
    return found


async def delete_invalid_ids(uri: str, invalid: Sequence[InvalidId]) -> None:
    """Remove the documents (every chunk) and conversations ``invalid`` names."""
    db = await lancedb.connect_async(uri)
    tables = dict(await _collection_tables(db, set(await table_names(db))))
    for each in invalid:
        if each.kind == "document":
            await tables[each.collection].delete(col("document_id") == lit(each.identifier))
        else:
            conversations: Any = await db.open_table(CONVERSATIONS_TABLE)
            await conversations.delete(col("conversation_id") == lit(each.identifier))
            conversations.close()
    for table in tables.values():
        table.close()


async def _collection_tables(db: lancedb.AsyncConnection, names: set[str]) -> list[tuple[str, Any]]:
    if CATALOG_TABLE not in names:
        return []
    catalog: Any = await db.open_table(CATALOG_TABLE)
    rows = (await catalog.query().select(["collection", "table"]).to_arrow()).to_pylist()
    catalog.close()
    return [
        (row["collection"], await db.open_table(row["table"]))
        for row in sorted(rows, key=lambda row: row["collection"])
        if row["table"] in names
    ]


async def _column(table: Any, name: str, *, where: str | None = None) -> set[str]:
    query = table.query().select([name])
    if where:
        query = query.where(where)
    return set((await query.to_arrow()).column(name).to_pylist())


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``bruno-retrieval-check-ids``."""
    parser = argparse.ArgumentParser(
        prog="bruno-retrieval-check-ids",
        description="List (or delete) stored ids that break Bruno's identifier rule.",
    )
    parser.add_argument(
        "--delete",
        action="store_true",
        help="remove those documents and conversations (stop the retrieval service first)",
    )
    args = parser.parse_args(argv)
    uri = RetrievalSettings().lancedb_uri
    invalid = asyncio.run(find_invalid_ids(uri))
    for each in invalid:
        print(each)
    if invalid and args.delete:
        asyncio.run(delete_invalid_ids(uri, invalid))
        print(f"deleted {len(invalid)}", file=sys.stderr)
        return 0
    print(f"{len(invalid)} stored ids break the identifier rule", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
