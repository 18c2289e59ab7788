"""What a job is: its kind, its state, its progress, and the documents staged for it.

A job changes only by replacing it (:func:`dataclasses.replace`); the store writes the whole
row back in one commit, so a reader sees a job before or after a step, never half of one.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime

from bruno_core.contract import document_id_from_url
from bruno_retrieval.knowledge.pages import TextSegment

# A job's errors are shown to people; a parser's message is not allowed to make it huge.
MAX_ERROR_CHARS = 500


class JobKind(enum.StrEnum):
    INGEST = "ingest"
    REINDEX = "reindex"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentError:
    """A document that was not ingested, and why."""

    document_id: str
    source: str
    message: str

    @classmethod
    def of(cls, document_id: str, source: str, message: str) -> DocumentError:
        return cls(document_id, source, message[:MAX_ERROR_CHARS])


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """One job as stored. ``next_position`` is the first staged document not yet accounted
    for: it moves in the same commit as the counts, so a document is counted exactly once
    even when retrieval stops between ingesting it and recording it (ingesting it again is a
    no-op: same text, same hash)."""

    id: str
    kind: JobKind
    collection: str
    owner: str
    state: JobState
    created_at: datetime
    documents_total: int = 0
    documents_done: int = 0
    documents_failed: int = 0
    chunks_written: int = 0
    errors: tuple[DocumentError, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    cancel_requested: bool = False
    resumes: int = 0
    next_position: int = 0

    def belongs_to(self, owner: str) -> bool:
        """Whether a call naming ``owner`` may see it (naming none: unchecked)."""
        return not owner or self.owner == owner

    def finish(self, state: JobState, at: datetime, reason: str = "") -> Job:
        return dataclasses.replace(self, state=state, finished_at=at, reason=reason)

    def finished_by_counts(self, at: datetime) -> Job:
        """The job ended with every document accounted for: failed if any document failed."""
        if self.documents_failed:
            reason = f"{self.documents_failed} of {self.documents_total} documents failed"
            return self.finish(JobState.FAILED, at, reason)
        return self.finish(JobState.SUCCEEDED, at)


@dataclasses.dataclass(frozen=True, slots=True)
class StagedDocument:
    """A document of an ingest job, kept in retrieval until the job has ingested it. A
    document with a ``url`` is fetched when the job gets to it: until then it has no title or
    text, and its ``source`` is the URL asked for, as it stays once ingested (where a redirect
    ended goes in its metadata, ``fetched_url``)."""

    position: int
    document_id: str
    title: str
    source: str
    text: str
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    segments: tuple[TextSegment, ...] = ()
    url: str = ""

    @classmethod
    def to_fetch(cls, url: str) -> StagedDocument:
        """The document at ``url`` (checked by the caller), its id derived from it."""
        return cls(0, document_id_from_url(url), title="", source=url, text="", url=url)
