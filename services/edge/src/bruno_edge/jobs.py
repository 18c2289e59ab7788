"""Handing documents to retrieval as one ingest job: what an ingest-job route submits, and what
the upload route does with the files its wait ran out before sending.

    documents = (ingest_request(document) for document in body.documents)
    job = await submit_job(downstreams, "default", caller.name, documents)
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

from bruno.retrieval.v1 import jobs_pb2, retrieval_pb2
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.schemas import DocumentIn

# Reading every file of a large upload and streaming it to retrieval takes a while; each file's
# reading is bounded on its own (BRUNO_EXTRACT_TIMEOUT_SECONDS), the job is not.
SUBMIT_TIMEOUT_SECONDS = 600.0

#: A document of the job, a URL retrieval fetches, or a document that could not be read (a
#: failed document of the job).
JobItem = retrieval_pb2.IngestDocumentRequest | jobs_pb2.UrlDocument | jobs_pb2.DocumentError


def ingest_request(
    document: DocumentIn, *, collection: str = ""
) -> retrieval_pb2.IngestDocumentRequest:
    """Retrieval's request for a document sent as JSON; ``collection`` is left unset for a
    job's document, which goes where its job goes."""
    return retrieval_pb2.IngestDocumentRequest(
        collection=collection,
        document_id=document.id or "",
        title=document.title,
        source=document.source,
        text=document.text,
        metadata=document.metadata,
        segments=[
            retrieval_pb2.TextSegment(start=segment.start, page=segment.page)
            for segment in document.segments
        ],
    )


async def submit_job(
    downstreams: Downstreams,
    collection: str,
    owner: str,
    items: Iterable[JobItem] | AsyncIterable[JobItem],
) -> jobs_pb2.Job:
    """The job retrieval queued for ``items`` in ``collection``, owned by ``owner``.

    ``items`` may be produced while they stream (an async iterable reading file after file),
    so a large upload is never held whole as documents."""

    async def parts() -> AsyncIterator[jobs_pb2.SubmitIngestJobRequest]:
        header = jobs_pb2.IngestJobHeader(collection=collection, owner=owner)
        yield jobs_pb2.SubmitIngestJobRequest(header=header)
        async for item in _each(items):
            if isinstance(item, jobs_pb2.DocumentError):
                yield jobs_pb2.SubmitIngestJobRequest(rejected=item)
            elif isinstance(item, jobs_pb2.UrlDocument):
                yield jobs_pb2.SubmitIngestJobRequest(url=item)
            else:
                yield jobs_pb2.SubmitIngestJobRequest(document=item)

    with rpc_errors("retrieval"):
        return await downstreams.jobs.SubmitIngestJob(parts(), timeout=SUBMIT_TIMEOUT_SECONDS)


async def _each(items: Iterable[JobItem] | AsyncIterable[JobItem]) -> AsyncIterator[JobItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
