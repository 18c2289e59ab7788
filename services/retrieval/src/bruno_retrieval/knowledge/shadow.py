"""What a writer keeps while a collection is rebuilt: the shadow table its new model's writes
go to, and which documents changed since the snapshot the rebuild copies.

    shadow = Shadow(CatalogEntry("default", "default.1", "model-b", 32), table)
    shadow.changed_in_old(["a"])   # written or deleted in the old table: copy it again
    shadow.written(["b"])          # written straight into the shadow: never copy it over
    stale = shadow.take_stale()    # what a catch-up pass re-copies

A reindex (:mod:`.reindex`) copies a snapshot of the old table without the collection's lock;
these two sets are how it learns, at its catch-up, what the ingests and deletes it let through
meanwhile did. A document is in one set at most: the latest write decides.
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
    fresh: set[str] = dataclasses.field(default_factory=set)

    @property
    def model(self) -> tuple[str, int]:
        """The new model and its dimension: what a write must be made by to go here."""
        return self.entry.model, self.entry.dimension

    def changed_in_old(self, document_ids: Iterable[str]) -> None:
        """These documents were written to or deleted from the old table."""
        for document_id in document_ids:
            self.fresh.discard(document_id)
            self.stale.add(document_id)

    def written(self, document_ids: Iterable[str]) -> None:
        """These documents were written into the shadow itself, with the new model."""
        for document_id in document_ids:
            self.stale.discard(document_id)
            self.fresh.add(document_id)

    def take_stale(self) -> set[str]:
        """The documents to copy again, forgotten until they change once more."""
        stale, self.stale = self.stale, set()
        return stale

    def copied_as_is(self, document_id: str) -> bool:
        """Whether the snapshot's copy of the document is still the one to keep."""
        return document_id not in self.stale and document_id not in self.fresh
