"""``/api/v1/documents``: ingest (JSON or uploaded files), list and delete the documents of a
collection."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import JSONResponse

from bruno.retrieval.v1 import jobs_pb2, retrieval_pb2
from bruno_core import BrunoError
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    DOCUMENT_ID,
    MAX_PAGE_SIZE,
)
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.api.routes.ingest_jobs import job_of, location_of
from bruno_edge.clients import rpc_errors
from bruno_edge.consistency import ANSWERED, HEADER, AtLeastDep, latest, read, token
from bruno_edge.jobs import ingest_request, submit_job
from bruno_edge.keys import Scope
from bruno_edge.listings import document_summary
from bruno_edge.schemas import (
    DocumentIn,
    DocumentIngested,
    DocumentPage,
    FileIngested,
    IngestJob,
    UploadContinued,
    UploadResult,
)
from bruno_edge.uploads import AcceptedFile, Upload, checked_upload, read_file

router = APIRouter(prefix=f"{API_PREFIX}/documents", tags=["documents"])

MAX_CURSOR_CHARS = 1000
MAX_UPLOAD_FILES = 32
# Files of one upload sent to retrieval at once (its group commit writes them together).
UPLOAD_CONCURRENCY = 4

UploadDep = Annotated[Upload, Depends(checked_upload(max_files=MAX_UPLOAD_FILES))]
CollectionQuery = Annotated[
    str, Query(pattern=COLLECTION_NAME.pattern, max_length=COLLECTION_NAME.max_chars)
]

_STATUS = {
    retrieval_pb2.INGEST_OUTCOME_CREATED: "created",
    retrieval_pb2.INGEST_OUTCOME_REPLACED: "replaced",
    retrieval_pb2.INGEST_OUTCOME_UNCHANGED: "unchanged",
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentIngested,
    responses={
        200: {
            "model": DocumentIngested,
            "description": "Same id and text: nothing changed.",
            "headers": ANSWERED,
        },
        201: {"headers": ANSWERED},
        202: {
            "model": IngestJob,
            "description": "Not done within `BRUNO_INGEST_WAIT_SECONDS`, or the collection is "
            "being reindexed (the job waits for the switch): it goes on as this job (`Location` "
            "is where to follow it) and is committed whole or not at all.",
        },
        **problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503, 504),
    },
    dependencies=guarded(Scope.WRITE, Work.INGEST),
)
async def ingest_document(
    document: DocumentIn,
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> DocumentIngested | JSONResponse:
    """Ingest one document: `201` once committed, `200` when the same id already holds the
    same text. A document that takes longer than `BRUNO_INGEST_WAIT_SECONDS` to embed is not
    cut off: the answer is `202` with the job it became; so is one into a collection being
    reindexed, whose job waits for the switch."""
    caller.check_collection(document.collection)
    request = ingest_request(document, collection=document.collection)
    wait = settings.ingest_wait_seconds
    with rpc_errors("retrieval"):
        # Retrieval answers within the wait, with the result or the job; the deadline leaves
        # it room to stage the document as a job.
        answer = await downstreams.jobs.IngestDocumentOrJob(
            jobs_pb2.IngestDocumentOrJobRequest(
                document=request, owner=caller.name, wait_ms=int(wait * 1000)
            ),
            timeout=wait + settings.request_timeout_seconds,
        )
    if answer.WhichOneof("result") == "job":
        return JSONResponse(
            job_of(answer.job).model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers={"Location": location_of(answer.job.id)},
        )
    ingested = answer.ingested
    outcome = _STATUS.get(ingested.outcome, "created")
    if outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    if said := token(ingested.committed):
        response.headers[HEADER] = said
    return DocumentIngested(
        document_id=ingested.document_id,
        chunks=ingested.chunks,
        collection=ingested.collection or document.collection,
        status=outcome,
    )


@router.post(
    "/upload",
    response_model=UploadResult,
    responses={
        200: {"headers": ANSWERED},
        202: {
            "model": UploadContinued,
            "description": "Not done within `BRUNO_INGEST_WAIT_SECONDS`: the files not done go "
            "on as jobs (`Location` is where to follow the first), each committed whole or not "
            "at all.",
        },
        **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503, 504),
    },
    dependencies=guarded(Scope.WRITE, Work.INGEST),
)
async def upload_documents(
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    upload: UploadDep,
) -> UploadResult | JSONResponse:
    """Ingest uploaded files, one document each, named by their file name.

    The collection comes from the ``collection`` query parameter or form field (``default``
    without either). The request as a whole is checked first (its parameters, the number,
    names, kinds and sizes of its files): if any check fails, it fails and nothing is written.
    Then each file is read and ingested on its own: a file whose content cannot be read (a
    scan without text, encrypted, damaged, truncated, not UTF-8, empty) or that retrieval
    refuses is reported in its own entry, and the request fails only when every file did.

    An upload not done within `BRUNO_INGEST_WAIT_SECONDS` is not cut off: the answer is `202`,
    the files still embedding going on as jobs of their own and those not yet started as one
    job together; each file is in exactly one of them.
    """
    collection, accepted = upload.collection, upload.files
    semaphore = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    limits = settings.extraction_limits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.ingest_wait_seconds
    committed: list[retrieval_pb2.Committed] = []

    async def ingest_one(
        accepted_file: AcceptedFile,
    ) -> FileIngested | jobs_pb2.Job | retrieval_pb2.IngestDocumentRequest:
        """The file's result, the job it became, or (past the wait, not sent) its document."""
        ingest = await read_file(accepted_file, limits)
        ingest.collection = collection
        async with semaphore:
            left = deadline - loop.time()
            if left <= 0:
                return ingest
            with rpc_errors("retrieval"):
                # As for one document: retrieval answers within what is left of the wait, with
                # the result or the job the file became, never cut off by this call's deadline.
                answer = await downstreams.jobs.IngestDocumentOrJob(
                    jobs_pb2.IngestDocumentOrJobRequest(
                        document=ingest, owner=caller.name, wait_ms=max(1, int(left * 1000))
                    ),
                    timeout=left + settings.request_timeout_seconds,
                )
        if answer.WhichOneof("result") == "job":
            return answer.job
        ingested = answer.ingested
        committed.append(ingested.committed)
        return FileIngested(
            filename=accepted_file.name,
            document_id=ingested.document_id,
            status=_STATUS.get(ingested.outcome, "created"),
            chunks=ingested.chunks,
        )

    outcomes = await asyncio.gather(*map(ingest_one, accepted), return_exceptions=True)
    # The files past the wait that were never sent go on together, as one job.
    unsent = [o for o in outcomes if isinstance(o, retrieval_pb2.IngestDocumentRequest)]
    rest = await submit_job(downstreams, collection, caller.name, unsent) if unsent else None
    results: list[FileIngested] = []
    errors: list[BrunoError] = []
    jobs: dict[str, jobs_pb2.Job] = {}

    def queued(item: AcceptedFile, job: jobs_pb2.Job) -> FileIngested:
        jobs.setdefault(job.id, job)
        return FileIngested(
            filename=item.name, document_id=item.document_id, status="queued", job_id=job.id
        )

    for item, outcome in zip(accepted, outcomes, strict=True):
        if isinstance(outcome, BrunoError):
            errors.append(outcome)
            results.append(
                FileIngested(
                    filename=item.name,
                    document_id=item.document_id,
                    status="failed",
                    detail=outcome.detail,
                )
            )
        elif isinstance(outcome, BaseException):
            raise outcome
        elif isinstance(outcome, FileIngested):
            results.append(outcome)
        elif isinstance(outcome, jobs_pb2.Job):
            results.append(queued(item, outcome))
        elif rest is not None:  # the file was never sent: it is in the job of the rest
            results.append(queued(item, rest))
    if errors and len(errors) == len(results):
        raise errors[0]
    said = latest(committed)
    if jobs:
        continued = UploadContinued(
            collection=collection,
            files=results,
            jobs=[job_of(job) for job in jobs.values()],
        )
        headers = {"Location": location_of(next(iter(jobs)))}
        if said:
            headers[HEADER] = said
        return JSONResponse(
            continued.model_dump(mode="json"),
            status_code=status.HTTP_202_ACCEPTED,
            headers=headers,
        )
    if said:
        response.headers[HEADER] = said
    return UploadResult(collection=collection, files=results)


@router.get(
    "",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def list_documents(
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    at_least: AtLeastDep,
    collection: CollectionQuery = DEFAULT_COLLECTION,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> DocumentPage:
    """A page of the collection's documents. With a ``Bruno-Consistency-Token`` header (from a
    write's answer) the listing sees that write."""
    caller.check_collection(collection)
    request = retrieval_pb2.ListDocumentsRequest(
        collection=collection, limit=limit or 0, cursor=cursor or "", at_least=at_least
    )
    with rpc_errors("retrieval"):
        page = await read(
            downstreams,
            lambda stub: stub.ListDocuments(request, timeout=settings.request_timeout_seconds),
        )
    return DocumentPage(
        documents=[document_summary(doc) for doc in page.documents],
        next_cursor=page.next_cursor or None,
    )


# `:path` because ids may hold slashes (the CLI names documents by their relative path).
@router.delete(
    "/{document_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        204: {"headers": ANSWERED},
        **problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    },
    dependencies=guarded(Scope.WRITE, Work.OTHER),
)
async def delete_document(
    document_id: Annotated[
        str, Path(pattern=DOCUMENT_ID.pattern, max_length=DOCUMENT_ID.max_chars)
    ],
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    collection: CollectionQuery = DEFAULT_COLLECTION,
) -> Response:
    # Worded as retrieval words a document missing from a collection.
    caller.check_collection(
        collection,
        not_found=f"document {document_id!r} not found in collection {collection!r}",
    )
    request = retrieval_pb2.DeleteDocumentRequest(collection=collection, document_id=document_id)
    with rpc_errors("retrieval"):
        deleted = await downstreams.retrieval.DeleteDocument(
            request, timeout=settings.request_timeout_seconds
        )
    said = token(deleted.committed)
    return Response(
        status_code=status.HTTP_204_NO_CONTENT, headers={HEADER: said} if said else None
    )
