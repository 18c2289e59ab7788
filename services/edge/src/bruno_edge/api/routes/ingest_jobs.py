"""``/api/v1/ingest-jobs``: ingest uploaded files, or pages at URLs, as a job that outlives the
request, follow it, list recent jobs, cancel one.

The edge only reads the files (as the upload route does) and streams the documents to
retrieval, which stages them beside the knowledge base and runs the job
(``bruno_retrieval.jobs``): a job survives a restart of the edge and of retrieval. URLs are
checked here (scheme, no credentials, length, count) and handed over as they are: retrieval
fetches them when the job gets to them (``bruno_retrieval.fetching``), so the edge makes no
outbound request and answers at once. A job
belongs to the API key that started it: another key's job, or one in a collection the key
does not see, is "not found".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from bruno.retrieval.v1 import jobs_pb2
from bruno_core import BrunoError, InvalidInput, NotFound
from bruno_core.contract import MAX_PAGE_SIZE, check_fetch_url
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded, needs
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.auth import Caller
from bruno_edge.clients import rpc_errors
from bruno_edge.jobs import JobItem, ingest_request, submit_job
from bruno_edge.keys import Scope
from bruno_edge.schemas import (
    IngestJob,
    IngestJobIn,
    IngestJobPage,
    IngestUrlsIn,
    JobDocumentError,
    JobDocuments,
)
from bruno_edge.uploads import Upload, checked_upload, read_file

PATH = f"{API_PREFIX}/ingest-jobs"
router = APIRouter(prefix=PATH, tags=["ingest-jobs"])

#: Files one job may hold (the request body's own limit, ``BRUNO_MAX_UPLOAD_BYTES``, applies too).
MAX_JOB_FILES = 1000
MAX_CURSOR_CHARS = 200

# Files (multipart), or None for a JSON body of URLs.
JobUploadDep = Annotated[
    Upload | None, Depends(checked_upload(max_files=MAX_JOB_FILES, or_json=True))
]
# The JSON body the route documents beside its multipart one (FastAPI declares only one).
_URLS_BODY = {
    "requestBody": {
        "content": {"application/json": {"schema": IngestUrlsIn.model_json_schema()}},
    }
}

JobIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")]
_KIND = {jobs_pb2.JOB_KIND_INGEST: "ingest", jobs_pb2.JOB_KIND_REINDEX: "reindex"}
_STATE = {
    jobs_pb2.JOB_STATE_QUEUED: "queued",
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
}


def job_of(message: jobs_pb2.Job) -> IngestJob:
    """The REST shape of a job (also what the reindex route answers)."""
    return IngestJob(
        id=message.id,
        kind=_KIND.get(message.kind, "ingest"),
        collection=message.collection,
        state=_STATE.get(message.state, "queued"),
        documents=JobDocuments(
            total=message.documents_total,
            done=message.documents_done,
            failed=message.documents_failed,
        ),
        chunks_written=message.chunks_written,
        errors=[
            JobDocumentError(document_id=e.document_id, source=e.source, message=e.message)
            for e in message.errors
        ],
        created_at=message.created_at.ToDatetime(tzinfo=UTC),
        started_at=message.started_at.ToDatetime(tzinfo=UTC)
        if message.HasField("started_at")
        else None,
        finished_at=message.finished_at.ToDatetime(tzinfo=UTC)
        if message.HasField("finished_at")
        else None,
        reason=message.reason or None,
        cancel_requested=message.cancel_requested,
        resumes=message.resumes,
    )


def location_of(job_id: str) -> str:
    return f"{PATH}/{job_id}"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_description="The job, queued; `Location` is where to follow it.",
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.WRITE, Work.INGEST),
    openapi_extra=_URLS_BODY,
)
async def submit_ingest_job(
    request: Request,
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    upload: JobUploadDep,
) -> IngestJob:
    """Ingest uploaded files (multipart), or the pages at a list of URLs (JSON), as a job:
    answers as soon as the files are read, or the URLs checked, and handed to retrieval, which
    ingests them one at a time.

    Files: each is one document named by its file name, as with
    `POST /api/v1/documents/upload`; the upload as a whole is checked first (parameters, count,
    names, kinds, sizes) and refused whole. A file whose content cannot be read (a scan,
    encrypted, damaged, not UTF-8, empty) becomes a failed document of the job, and the others
    are ingested.

    URLs: `{"collection", "urls"}`, 1 to 1,000 http(s) URLs without user name or password,
    each at most 2,000 characters (a URL given twice is fetched once); any other is a 422 for
    the whole request. Retrieval fetches each when the job gets to it, from public addresses
    only unless its operator allowed more; a page that cannot be fetched or read (an error
    status, another content type, too large, a refused address) fails alone, in `errors`."""
    if upload is None:
        job = await _submit_urls(await _urls_body(request), caller, downstreams)
        response.headers["Location"] = location_of(job.id)
        return job_of(job)
    limits = settings.extraction_limits

    async def read_each() -> AsyncIterator[JobItem]:
        # One file at a time, as the job streams: a large upload is never held whole as text.
        for item in upload.files:
            try:
                yield await read_file(item, limits)
            except BrunoError as error:
                yield jobs_pb2.DocumentError(
                    document_id=item.document_id, source=item.name, message=error.detail
                )

    job = await submit_job(downstreams, upload.collection, caller.name, read_each())
    response.headers["Location"] = location_of(job.id)
    return job_of(job)


async def _urls_body(request: Request) -> IngestUrlsIn:
    """The JSON body, validated as FastAPI validates a declared one (a 422 naming the field)."""
    try:
        return IngestUrlsIn.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


async def _submit_urls(
    body: IngestUrlsIn, caller: Caller, downstreams: DownstreamsDep
) -> jobs_pb2.Job:
    caller.check_collection(body.collection)
    # dict.fromkeys: the first of each URL, in order.
    urls = [check_fetch_url(url) for url in dict.fromkeys(body.urls)]
    return await submit_job(
        downstreams, body.collection, caller.name, (jobs_pb2.UrlDocument(url=url) for url in urls)
    )


@router.post(
    "/documents",
    status_code=status.HTTP_202_ACCEPTED,
    response_description="The job, queued; `Location` is where to follow it.",
    responses=problem_responses(400, 401, 403, 404, 413, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.WRITE, Work.INGEST),
)
async def submit_documents_job(
    body: IngestJobIn,
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
) -> IngestJob:
    """Ingest documents already read into text as a job (what `bruno ingest` sends for a
    large folder): each as for `POST /api/v1/documents`, up to 1,000 within
    `BRUNO_MAX_UPLOAD_BYTES`."""
    caller.check_collection(body.collection)
    for document in body.documents:
        if "collection" in document.model_fields_set and document.collection != body.collection:
            raise InvalidInput(
                f"a document of a job into {body.collection!r} names the collection "
                f"{document.collection!r}"
            )

    documents = (ingest_request(document) for document in body.documents)
    job = await submit_job(downstreams, body.collection, caller.name, documents)
    response.headers["Location"] = location_of(job.id)
    return job_of(job)


@router.get(
    "",
    responses=problem_responses(401, 403, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def list_ingest_jobs(
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> IngestJobPage:
    """The key's jobs (ingest and reindex) in the collections it sees, newest first."""
    request = jobs_pb2.ListJobsRequest(
        owner=caller.name,
        collections=sorted(caller.collections or ()),
        limit=limit or 0,
        cursor=cursor or "",
    )
    with rpc_errors("retrieval"):
        page = await downstreams.jobs.ListJobs(request, timeout=settings.request_timeout_seconds)
    return IngestJobPage(
        jobs=[job_of(job) for job in page.jobs], next_cursor=page.next_cursor or None
    )


@router.get(
    "/{job_id}",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def get_ingest_job(
    job_id: JobIdPath, caller: CallerDep, downstreams: DownstreamsDep, settings: SettingsDep
) -> IngestJob:
    """The job as it is now: its state, documents done, failed and in all, chunks written,
    each failed document's error."""
    return job_of(await _own_job(job_id, caller, downstreams, settings.request_timeout_seconds))


@router.delete(
    "/{job_id}",
    responses={
        202: {
            "model": IngestJob,
            "description": "Cancel requested: it stops after the document in flight.",
        },
        **problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    },
    dependencies=[Depends(needs(Scope.WRITE))],
)
async def cancel_ingest_job(
    job_id: JobIdPath,
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> IngestJob:
    """Cancel a job: a queued one ends at once (200), a running one after the document in
    flight, which is committed whole or not at all (202); the documents committed stay. A
    finished job is answered as it is (200). A reindex job needs the `admin` scope."""
    timeout = settings.request_timeout_seconds
    found = await _own_job(job_id, caller, downstreams, timeout)
    if found.kind == jobs_pb2.JOB_KIND_REINDEX:
        caller.require(Scope.ADMIN)
    with rpc_errors("retrieval"):
        job = await downstreams.jobs.CancelJob(
            jobs_pb2.CancelJobRequest(id=job_id, owner=caller.name), timeout=timeout
        )
    if not job.HasField("finished_at"):
        response.status_code = status.HTTP_202_ACCEPTED
    return job_of(job)


async def _own_job(
    job_id: str, caller: Caller, downstreams: DownstreamsDep, seconds: float
) -> jobs_pb2.Job:
    """The caller's job; NotFound for another key's or one in a collection it does not see."""
    with rpc_errors("retrieval"):
        job = await downstreams.jobs.GetJob(
            jobs_pb2.GetJobRequest(id=job_id, owner=caller.name), timeout=seconds
        )
    if not caller.sees(job.collection):
        raise NotFound(f"job {job_id!r} not found")
    return job
