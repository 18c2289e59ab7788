"""Ingestion and reindex jobs: work that outlives the request that started it, kept beside the
knowledge base (:mod:`.store`) and run by :mod:`.runner`; :mod:`.model` says what a job is."""

from bruno_retrieval.jobs.model import DocumentError, Job, JobKind, JobState, StagedDocument
from bruno_retrieval.jobs.runner import JobRunner
from bruno_retrieval.jobs.store import JobStore

__all__ = [
    "DocumentError",
    "Job",
    "JobKind",
    "JobRunner",
    "JobState",
    "JobStore",
    "StagedDocument",
]
