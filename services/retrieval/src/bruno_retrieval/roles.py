"""Which share of the work one retrieval process does (``BRUNO_RETRIEVAL_ROLE``).

    role = Role(settings.retrieval_role)
    role.check_writes("IngestDocument")   # on a reader: Conflict (FAILED_PRECONDITION)

``all`` does everything, as one process on a local directory must. On object storage the work
splits: one ``writer`` (ingest, deletes, reindex, the catalog, conversations and every piece of
background upkeep: index builds, compaction, keyword index rebuilds) and any number of
``reader`` processes that open the same tables, follow the writer's commits within
``BRUNO_RETRIEVAL_READ_CONSISTENCY_SECONDS`` and answer searches, listings and conversation
reads. A reader writes nothing, ever: a write call reaching one is refused before it starts.
Writers do not scale: see docs/operations.md ("Scale out").
"""

from __future__ import annotations

from enum import StrEnum

from bruno_core import Conflict


class Role(StrEnum):
    ALL = "all"
    WRITER = "writer"
    READER = "reader"

    @property
    def writes(self) -> bool:
        """Whether this process writes (and so keeps the tables' upkeep)."""
        return self is not Role.READER

    @property
    def shares_tables(self) -> bool:
        """Whether other processes read the tables this one writes (a writer's readers)."""
        return self is Role.WRITER

    def check_writes(self, call: str) -> None:
        """Refuse ``call``, a write, unless this process writes."""
        if not self.writes:
            raise Conflict(
                f"{call} is a write and this retrieval service is a reader "
                "(BRUNO_RETRIEVAL_ROLE=reader); writes go to the writer"
            )
