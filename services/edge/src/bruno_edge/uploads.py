"""Uploaded files as documents: the checks a whole upload must pass before anything is read
(its parameters, the number, names, kinds and sizes of its files), and the reading of each file
into the ingest request retrieval takes. The upload route and the ingest-job route share them,
the checks as one dependency declaring the upload's parameters.

    UploadDep = Annotated[Upload, Depends(checked_upload(max_files=32))]
    ...
    async def route(upload: UploadDep) -> ...:
        ingest = await read_file(upload.files[0], limits)  # UnreadableDocument, InvalidInput
"""

# No ``from __future__ import annotations`` here: FastAPI reads the parameters of the
# dependency ``checked_upload`` makes from their annotations, and one holds that upload's file
# limit, a name of the enclosing function that a string annotation could not be resolved to.

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import PurePath
from typing import Annotated

from fastapi import File, Form, Query, Request, UploadFile

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import InvalidInput, LimitExceeded
from bruno_core.contract import (
    COLLECTION_NAME,
    DEFAULT_COLLECTION,
    MAX_TITLE_CHARS,
    document_id_from_path,
)
from bruno_edge.api.deps import CallerDep, SettingsDep
from bruno_edge.config import EdgeSettings
from bruno_edge.plain_text import first_non_text_character
from bruno_edge.schemas import RESERVED_DOCUMENT_IDS
from bruno_extract import (
    BINARY_SUFFIXES,
    ExtractionLimits,
    UnreadableDocument,
    extract,
    kind_of,
)

MAX_FILENAME_CHARS = 255
_QUERY = frozenset({"collection"})
_FORM = frozenset({"collection", "files", "file"})


@dataclasses.dataclass(frozen=True, slots=True)
class AcceptedFile:
    """A file that passed the upload's checks: its name and the document id it becomes."""

    upload: UploadFile
    name: str
    document_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    """An upload that passed its checks as a whole: the collection it goes into (one the
    caller sees) and its files, none read yet."""

    collection: str
    files: list[AcceptedFile]


def checked_upload(
    *, max_files: int, or_json: bool = False
) -> Callable[..., Awaitable[Upload | None]]:
    """The dependency of a route taking uploaded files (up to ``max_files``) in ``files`` or
    ``file`` and a ``collection`` in the query or the form: the :class:`Upload`, or the first
    problem with the upload as a whole raised before any file is read. ``or_json``: a route
    that also takes a JSON body gets None for one (its form is empty, nothing to check)."""

    async def upload(
        request: Request,
        caller: CallerDep,
        settings: SettingsDep,
        files: Annotated[
            list[UploadFile] | None,
            File(
                description="Markdown, text, reST, HTML, PDF or Word (.docx) files.",
                json_schema_extra={"minItems": 1, "maxItems": max_files},
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
    ) -> Upload | None:
        if or_json and is_json_body(request):
            return None
        form = await request.form()
        collection = upload_collection(
            request.query_params, form, collection_field, collection_query
        )
        caller.check_collection(collection)
        uploads = [*(files or []), *([file] if file is not None else [])]
        return Upload(collection, accepted_files(uploads, settings, max_files=max_files))

    return upload


def is_json_body(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json``, any parameters)."""
    media_type = request.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == "application/json"


def upload_collection(
    query: Iterable[str], form: Iterable[str], in_form: str | None, in_query: str | None
) -> str:
    """The collection an upload names (``default`` when it names none); InvalidInput for an
    unknown parameter (a misspelt one would otherwise be ignored, and the files filed
    elsewhere) or a collection named twice, differently."""
    unknown = sorted((set(query) - _QUERY) | (set(form) - _FORM))
    if unknown:
        raise InvalidInput(
            f"unknown parameter(s) {', '.join(map(repr, unknown))[:300]}: the upload takes "
            "files in 'files' or 'file' and a 'collection' (query or form)"
        )
    if in_form and in_query and in_form != in_query:
        raise InvalidInput(
            f"the collection is {in_query!r} in the query but {in_form!r} in the form: name it once"
        )
    return in_query or in_form or DEFAULT_COLLECTION


def accepted_files(
    uploads: Sequence[UploadFile], settings: EdgeSettings, *, max_files: int
) -> list[AcceptedFile]:
    """The files of an upload, each with its document id; the first problem with the upload
    as a whole (count, names, kinds, sizes) raised, before any file is read."""
    if not 1 <= len(uploads) <= max_files:
        raise InvalidInput(f"upload 1 to {max_files} files at a time")
    accepted: list[AcceptedFile] = []
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
        if any(document_id == seen.document_id for seen in accepted):
            raise InvalidInput(f"two files are named {name!r}")
        accepted.append(AcceptedFile(upload, name, document_id))
    return accepted


async def read_file(
    file: AcceptedFile, limits: ExtractionLimits
) -> retrieval_pb2.IngestDocumentRequest:
    """The ingest request of one file (no collection set); UnreadableDocument or InvalidInput
    when its content cannot be a document."""
    raw = await file.upload.read()
    # Parsing a PDF takes milliseconds a page: off the event loop.
    document = await asyncio.to_thread(
        extract, file.name, raw, file.upload.content_type, limits=limits
    )
    del raw
    if not document.text.strip():
        raise UnreadableDocument(file.name, "empty", "holds no text")
    for text in (document.title, document.text):
        if (position := first_non_text_character(text)) is not None:
            code = ord(text[position])
            raise InvalidInput(f"{file.name!r} holds a control character (U+{code:04X})")
    return retrieval_pb2.IngestDocumentRequest(
        document_id=file.document_id,
        title=document.title[:MAX_TITLE_CHARS],
        source=file.name,
        text=document.text,
        # A PDF's pages, so each chunk knows the page it starts on.
        segments=[
            retrieval_pb2.TextSegment(start=segment.start, page=segment.page)
            for segment in document.segments
            if segment.page is not None
        ],
    )
