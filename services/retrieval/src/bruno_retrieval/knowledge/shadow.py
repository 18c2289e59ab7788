"""What a writer keeps while a collection is rebuilt: the shadow table the rebuild copies into,
and which documents changed in the old table since the snapshot it copies.

    shadow = Shadow(CatalogEntry("default", "default.1", "model-b", 32), table)
    shadow.changed_in_old(["a"])   # written or deleted in the old table: copy it again
    stale = shadow.take_stale()    # what a catch-up pass re-copies

A reindex (:mod:`.reindex`) copies a snapshot of the old table without the collection's lock;
this log is how it learns, at its catch-up, what the deletes and the writes of the old model it
let through meanwhile did. Writes never reach the shadow: they are embedded with the old model
for the old table, or wait for the switch when that model is no longer served
(:class:`.reindex.CollectionReindexing`), so the shadow holds nothing but copies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from bruno_retrieval.knowledge.catalog import CatalogEntry


@dataclasses.dataclass(slots=True)
class Shadow:
    """A collection's table being rebuilt (see the module docstring)."""

    entry: CatalogEntry  # the shadow's: its table name, the new model and dimension
    table: Any
    stale: set[str] = dataclasses.field(default_factory=set)

    def changed_in_old(self, document_ids: Iterable[str]) -> None:
        """These documents were written to or deleted from the old table."""
        self.stale.update(document_ids)

    def take_stale(self) -> set[str]:
        """The documents to copy again, forgotten until they change once more."""
        stale, self.stale = self.stale, set()
        return stale

    def copied_as_is(self, document_id: str) -> bool:
        """Whether the snapshot's copy of the document is still the one to keep."""
        return document_id not in self.stale
