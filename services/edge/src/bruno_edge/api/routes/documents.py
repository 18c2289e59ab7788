"""``/api/v1/documents``: ingest (JSON or uploaded files), list and delete the documents of a
collection."""

from __future__ import annotations

import asyncio
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile, status

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import BrunoError, InvalidInput, LimitExceeded
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    DOCUMENT_ID,
    MAX_PAGE_SIZE,
    MAX_TITLE_CHARS,
    document_id_from_path,
)
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.clients import rpc_errors
from bruno_edge.extract import BINARY_SUFFIXES, UnreadableDocument, extract, kind_of
from bruno_edge.keys import Scope
from bruno_edge.listings import document_summary
from bruno_edge.plain_text import first_non_text_character
from bruno_edge.schemas import (
    RESERVED_DOCUMENT_IDS,
    DocumentIn,
    DocumentIngested,
    DocumentPage,
    FileIngested,
    UploadResult,
)

router = APIRouter(prefix=f"{API_PREFIX}/documents", tags=["documents"])

MAX_CURSOR_CHARS = 1000
MAX_UPLOAD_FILES = 32
MAX_FILENAME_CHARS = 255
# Files of one upload sent to retrieval at once (its group commit writes them together).
UPLOAD_CONCURRENCY = 4
_UPLOAD_QUERY = frozenset({"collection"})
_UPLOAD_FORM = frozenset({"collection", "files", "file"})

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
    responses={
        200: {"model": DocumentIngested, "description": "Same id and text: nothing changed."},
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
) -> DocumentIngested:
    caller.check_collection(document.collection)
    request = retrieval_pb2.IngestDocumentRequest(
        collection=document.collection,
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
    with rpc_errors("retrieval"):
        # Ingesting embeds every chunk, so it gets the chat deadline rather than the short one.
        ingested = await downstreams.retrieval.IngestDocument(
            request, timeout=settings.chat_timeout_seconds
        )
    outcome = _STATUS.get(ingested.outcome, "created")
    if outcome == "unchanged":
        response.status_code = status.HTTP_200_OK
    return DocumentIngested(
        document_id=ingested.document_id,
        chunks=ingested.chunks,
        collection=ingested.collection or document.collection,
        status=outcome,
    )


@router.post(
    "/upload",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.WRITE, Work.INGEST),
)
async def upload_documents(
    request: Request,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    files: Annotated[
        list[UploadFile] | None,
        File(
            description="Markdown, text, reST, HTML, PDF or Word (.docx) files.",
            json_schema_extra={"minItems": 1, "maxItems": MAX_UPLOAD_FILES},
        ),
    ] = None,
    file: Annotated[
        UploadFile | None, File(description="One file, as most clients send it.")
    ] = None,
    collection_field: Annotated[
        str | None,
        Form(
            alias="collection",
            pattern=COLLECTION_NAME.pattern,
            max_length=COLLECTION_NAME.max_chars,
        ),
    ] = None,
    collection_query: Annotated[
        str | None,
        Query(
            alias="collection",
            pattern=COLLECTION_NAME.pattern,
            max_length=COLLECTION_NAME.max_chars,
        ),
    ] = None,
) -> UploadResult:
    """Ingest uploaded files, one document each, named by their file name.

    The collection comes from the ``collection`` query parameter or form field (``default``
    without either). The request as a whole is checked first (its parameters, the number,
    names, kinds and sizes of its files): if any check fails, it fails and nothing is written.
    Then each file is read and ingested on its own: a file whose content cannot be read (a
    scan without text, encrypted, damaged, truncated, not UTF-8, empty) or that retrieval
    refuses is reported in its own entry, and the request fails only when every file did.
    """
    form = await request.form()
    _refuse_unknown_parameters(set(request.query_params), set(form))
    if collection_field and collection_query and collection_field != collection_query:
        raise InvalidInput(
            f"the collection is {collection_query!r} in the query but {collection_field!r} "
            "in the form: name it once"
        )
    collection = collection_query or collection_field or DEFAULT_COLLECTION
    caller.check_collection(collection)
    uploads = [*(files or []), *([file] if file is not None else [])]
    if not 1 <= len(uploads) <= MAX_UPLOAD_FILES:
        raise InvalidInput(f"upload 1 to {MAX_UPLOAD_FILES} files at a time")
    accepted: list[tuple[UploadFile, str, str]] = []
    for upload in uploads:
        name = PurePath((upload.filename or "").replace("\\", "/")).name
        if not name or len(name) > MAX_FILENAME_CHARS:
            raise InvalidInput(f"each file needs a name of 1 to {MAX_FILENAME_CHARS} characters")
        if first_non_text_character(name) is not None:
            raise InvalidInput(f"the file name {name!r} holds a control character")
        # ".." names the parent in a path, never a file: refused rather than renamed "--".
        if name in (".", ".."):
            raise InvalidInput(f"{name!r} is not a usable file name")
        kind = kind_of(name, upload.content_type)
        limit = settings.max_file_bytes if kind in BINARY_SUFFIXES else settings.max_document_bytes
        if upload.size is not None and upload.size > limit:
            raise LimitExceeded(f"{name!r} is larger than the limit of {limit} bytes")
        document_id = document_id_from_path(name, keep_end=False)
        if document_id in RESERVED_DOCUMENT_IDS:
            raise InvalidInput(
                f"the file name {name!r} would be the document id {document_id!r}, which is "
                "reserved (it names the upload route); rename the file"
            )
        if any(document_id == seen for _, _, seen in accepted):
            raise InvalidInput(f"two files are named {name!r}")
        accepted.append((upload, name, document_id))

    semaphore = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    limits = settings.extraction_limits

    async def ingest_one(upload: UploadFile, name: str, document_id: str) -> FileIngested:
        raw = await upload.read()
        # Parsing a PDF takes milliseconds a page: off the event loop.
        document = await asyncio.to_thread(extract, name, raw, upload.content_type, limits=limits)
        del raw
        if not document.text.strip():
            raise UnreadableDocument(name, "empty", "holds no text")
        for text in (document.title, document.text):
            if (position := first_non_text_character(text)) is not None:
                code = ord(text[position])
                raise InvalidInput(f"{name!r} holds a control character (U+{code:04X})")
        ingest = retrieval_pb2.IngestDocumentRequest(
            collection=collection,
            document_id=document_id,
            title=document.title[:MAX_TITLE_CHARS],
            source=name,
            text=document.text,
            # A PDF's pages, so each chunk knows the page it starts on.
            segments=[
                retrieval_pb2.TextSegment(start=segment.start, page=segment.page)
                for segment in document.segments
                if segment.page is not None
            ],
        )
        async with semaphore:
            with rpc_errors("retrieval"):
                ingested = await downstreams.retrieval.IngestDocument(
                    ingest, timeout=settings.chat_timeout_seconds
                )
        return FileIngested(
            filename=name,
            document_id=ingested.document_id,
            status=_STATUS.get(ingested.outcome, "created"),
            chunks=ingested.chunks,
        )

    outcomes = await asyncio.gather(
        *(ingest_one(*item) for item in accepted), return_exceptions=True
    )
    results: list[FileIngested] = []
    errors: list[BrunoError] = []
    for (_, name, document_id), outcome in zip(accepted, outcomes, strict=True):
        if isinstance(outcome, BrunoError):
            errors.append(outcome)
            results.append(
                FileIngested(
                    filename=name, document_id=document_id, status="failed", detail=outcome.detail
                )
            )
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append(outcome)
    if errors and len(errors) == len(results):
        raise errors[0]
    return UploadResult(collection=collection, files=results)


def _refuse_unknown_parameters(query: set[str], form: set[str]) -> None:
    """A misspelt parameter would otherwise be ignored, and the files filed elsewhere."""
    unknown = sorted((query - _UPLOAD_QUERY) | (form - _UPLOAD_FORM))
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(map(repr, unknown))[:300]}: the upload takes "
            "files in 'files' or 'file' and a 'collection' (query or form)"
        )


@router.get(
    "",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def list_documents(
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    collection: CollectionQuery = DEFAULT_COLLECTION,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
) -> DocumentPage:
    caller.check_collection(collection)
    request = retrieval_pb2.ListDocumentsRequest(
        collection=collection, limit=limit or 0, cursor=cursor or ""
    )
    with rpc_errors("retrieval"):
        page = await downstreams.retrieval.ListDocuments(
            request, timeout=settings.request_timeout_seconds
        )
    return DocumentPage(
        documents=[document_summary(doc) for doc in page.documents],
        next_cursor=page.next_cursor or None,
    )


# `:path` because ids may hold slashes (the CLI names documents by their relative path).
@router.delete(
    "/{document_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
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
        await downstreams.retrieval.DeleteDocument(
            request, timeout=settings.request_timeout_seconds
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
