"""The public REST shapes: request models with explicit limits, response models as documented.

Fixed limits (identifier rules, metadata size) come from :mod:`bruno_core.contract`, which
retrieval enforces too, and are declared on the fields. Limits an operator can
configure (``BRUNO_MAX_MESSAGE_CHARS``, ``BRUNO_MAX_DOCUMENT_BYTES``, ``BRUNO_MAX_TOP_K``) are
checked by validators against :func:`bruno_edge.limits.current_limits`, so a violation is the
same 422 as any other field error, and marked with :func:`configured`, so the OpenAPI document
states them as the edge enforces them (:mod:`bruno_edge.openapi`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from bruno_core.contract import (
    COLLECTION_NAME,
    CONVERSATION_ID,
    DEFAULT_COLLECTION,
    DOCUMENT_ID,
    MAX_DOCUMENT_PAGES,
    MAX_FILTER_VALUE_CHARS,
    MAX_FILTERS,
    MAX_JOB_URLS,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_VALUE_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
)
from bruno_edge.limits import current_limits
from bruno_edge.plain_text import PlainText

#: The JSON-schema key of a :func:`configured` marker.
CONFIGURED_LIMITS = "x-bruno-configured-limits"


def configured(**keywords: str) -> dict[str, Any]:
    """``json_schema_extra`` naming the :class:`~bruno_edge.limits.Limits` field that bounds a
    field, by JSON-schema keyword: ``configured(maximum="max_top_k")``."""
    return {CONFIGURED_LIMITS: keywords}


def _question_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "String should contain non-whitespace text")
    limit = current_limits().max_message_chars
    if len(value) > limit:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters",
            {"max_length": limit},
        )
    return value


def _document_text(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "String should contain non-whitespace text")
    limit = current_limits().max_document_bytes
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise PydanticCustomError(
            "document_too_large",
            "Document text should have at most {max_bytes} bytes (UTF-8)",
            {"max_bytes": limit},
        )
    return value


def _whole(value: Any) -> Any:
    # JSON has one kind of number, and JSON Schema's `integer` is any number without a
    # fraction: 18.0 is the integer 18. Strict models would refuse it; 18.5 stays refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: What makes an integer field of a request take any JSON number without a fraction (``5``
#: or ``5.0``, not ``"5"``); it goes after the field's constraints, which JSON Schema then shows.
WHOLE_NUMBER = BeforeValidator(_whole)


def _top_k(value: int | None) -> int | None:
    limit = current_limits().max_top_k
    if value is not None and value > limit:
        raise PydanticCustomError(
            "less_than_equal", "Input should be less than or equal to {le}", {"le": limit}
        )
    return value


QuestionText = Annotated[
    str,
    Field(
        min_length=1,
        description="Non-blank; at most BRUNO_MAX_MESSAGE_CHARS characters; no control "
        "characters but tab and line breaks.",
        json_schema_extra=configured(maxLength="max_message_chars"),
    ),
    AfterValidator(_question_text),
    PlainText,
]
TopK = Annotated[
    Annotated[int, Field(ge=1), WHOLE_NUMBER] | None,
    Field(
        default=None,
        description="1..BRUNO_MAX_TOP_K; default BRUNO_DEFAULT_TOP_K.",
        json_schema_extra=configured(maximum="max_top_k"),
    ),
    AfterValidator(_top_k),
]
Collection = Annotated[
    str,
    Field(
        pattern=COLLECTION_NAME.pattern,
        max_length=COLLECTION_NAME.max_chars,
        description="Lower-case name, at most 63 characters.",
    ),
]
#: Ids a new document may not take because a route under ``/api/v1/documents/`` has that name:
#: OpenAPI matches a concrete path before a templated one, so a client, proxy or gateway that
#: follows the published document would send ``DELETE /api/v1/documents/upload`` to the upload
#: route, never to document ``upload``. (One stored before the rule can still be deleted.)
RESERVED_DOCUMENT_IDS = frozenset({"upload"})


def unreserved_document_id(value: str) -> str:
    """``value`` unchanged, or a validation error saying that it names a route."""
    if value in RESERVED_DOCUMENT_IDS:
        raise PydanticCustomError(
            "reserved_document_id",
            "Document id {id!r} is reserved: /api/v1/documents/{id} is a route; choose another",
            {"id": value},
        )
    return value


DocumentId = Annotated[
    str,
    Field(
        pattern=DOCUMENT_ID.pattern,
        max_length=DOCUMENT_ID.max_chars,
        description="Segments joined by `/`, none empty, `.` or `..`; not `upload` (a route).",
        json_schema_extra={"not": {"enum": sorted(RESERVED_DOCUMENT_IDS)}},
    ),
    AfterValidator(unreserved_document_id),
]
ConversationId = Annotated[
    str, Field(pattern=CONVERSATION_ID.pattern, max_length=CONVERSATION_ID.max_chars)
]
MetadataKey = Annotated[str, Field(min_length=1, max_length=MAX_METADATA_KEY_CHARS), PlainText]
MetadataValue = Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS), PlainText]
FilterValue = Annotated[str, Field(max_length=MAX_FILTER_VALUE_CHARS), PlainText]


class _Request(BaseModel):
    # Unknown fields are an error (a typo must not silently change the meaning of a call) and
    # types are not coerced ("5" is not a top_k).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- chat ---------------------------------------------------------------------------------


# Request examples: in the OpenAPI document for readers, and the first cases the conformance
# run sends (tests/e2e/test_openapi_conformance.py), a streamed answer among them.
_QUESTION = "How do I restore the LanceDB volume?"


class ChatRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"message": _QUESTION}, {"message": _QUESTION, "stream": True}]
        }
    )

    message: QuestionText
    conversation_id: ConversationId | None = None
    collection: Collection = DEFAULT_COLLECTION
    top_k: TopK = None
    stream: bool | None = Field(
        default=None, description="Stream SSE; when absent, `Accept: text/event-stream` decides."
    )


class Citation(BaseModel):
    """A passage the model was given; the answer cites it as ``[marker]``."""

    marker: int = Field(description="The n of the answer's [n] that points at this passage.")
    document_id: str
    chunk_id: str
    title: str
    source: str
    page: int | None = Field(
        default=None, description="The page of the original (a PDF) the passage starts on."
    )
    link: str | None = Field(
        default=None,
        description="`source#page=N`, opening that page, when the source is a URL or a path.",
    )
    score: float
    text: str
    cited: bool = Field(default=False, description="Whether the answer cites it.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class ChatTimings(BaseModel):
    retrieval_ms: float
    generation_ms: float
    ttft_ms: float | None = Field(description="Request start to first token; null: no tokens.")
    total_ms: float


class ChatDone(BaseModel):
    """The final SSE event of a streamed chat."""

    conversation_id: str
    model: str
    usage: Usage
    timings_ms: ChatTimings
    fallback: bool = Field(description="True when no language model produced the answer.")
    passages_used: int = Field(description="Passages that fitted the model's context window.")
    passages_dropped: int = Field(
        description="Lowest-ranked passages left out to fit the model's context window."
    )
    cited: list[int] = Field(description="The markers the answer cites, in order.")
    finish_reason: Literal["stop", "length"] = Field(
        default="stop", description="`length` when a token limit cut the answer short."
    )
    search_query: str = Field(
        description="What was searched: the question, or a follow-up rewritten to stand alone."
    )


class ChatToken(BaseModel):
    """A piece of the answer, as a streamed chat's ``token`` event carries it."""

    text: str


class ConversationTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    created_at: datetime | None
    chunk_ids: list[str] = Field(description="The chunks an assistant turn cited.")


class Conversation(BaseModel):
    conversation_id: str
    turns: list[ConversationTurn] = Field(description="Oldest first; bounded by the server.")
    created_at: datetime | None
    updated_at: datetime | None


class ChatResponse(ChatDone):
    answer: str
    citations: list[Citation]


# --- documents ----------------------------------------------------------------------------


# Offsets travel to retrieval as uint32.
_UINT32_MAX = 2**32 - 1


class TextSegmentIn(_Request):
    """Where a stretch of a document's text starts and the page of the original it is on."""

    start: int = Field(ge=0, le=_UINT32_MAX, description="Offset in `text`, in characters.")
    page: int = Field(ge=1, le=MAX_DOCUMENT_PAGES, description="1-based page of the original.")


class DocumentIn(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "runbooks/restore",
                    "title": "Restore",
                    "source": "runbooks/restore.md",
                    "text": "# Restore\n\nScale retrieval to zero, then restore the volume.",
                    "metadata": {"tags": "backups,lancedb"},
                }
            ]
        }
    )

    id: DocumentId | None = Field(
        default=None, description="Stable id; absent: derived from the text."
    )
    title: Annotated[str, Field(max_length=MAX_TITLE_CHARS), PlainText] = ""
    source: Annotated[str, Field(max_length=MAX_SOURCE_CHARS), PlainText] = ""
    text: Annotated[
        str,
        Field(
            min_length=1,
            description="Non-blank; at most BRUNO_MAX_DOCUMENT_BYTES (UTF-8), so at most as "
            "many characters; no control characters but tab and line breaks.",
            json_schema_extra=configured(maxLength="max_document_bytes"),
        ),
        AfterValidator(_document_text),
        PlainText,
    ]
    metadata: Annotated[
        dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_ENTRIES)
    ] = Field(default_factory=dict)
    collection: Collection = DEFAULT_COLLECTION
    segments: Annotated[list[TextSegmentIn], Field(max_length=MAX_DOCUMENT_PAGES)] = Field(
        default_factory=list,
        description=(
            "For text read from a PDF: where each page's text starts (the first at 0, starts "
            "increasing), so each chunk knows its page. Absent: no pages."
        ),
    )


class DocumentIngested(BaseModel):
    document_id: str
    chunks: int
    collection: str
    status: Literal["created", "replaced", "unchanged"]


class DocumentSummary(BaseModel):
    document_id: str
    title: str
    source: str
    chunks: int
    content_hash: str
    metadata: dict[str, str]
    ingested_at: datetime | None


class DocumentPage(BaseModel):
    documents: list[DocumentSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class FileIngested(BaseModel):
    """What became of one uploaded file."""

    filename: str
    document_id: str
    status: Literal["created", "replaced", "unchanged", "failed", "queued"]
    chunks: int = 0
    detail: str | None = Field(default=None, description="Why the file failed; null otherwise.")
    job_id: str | None = Field(
        default=None,
        description="`queued`: the job (one of the answer's `jobs`) that goes on with the file; "
        "null otherwise.",
    )


class UploadResult(BaseModel):
    collection: str
    files: list[FileIngested] = Field(description="One entry per uploaded file, in order.")


# --- jobs ---------------------------------------------------------------------------------

JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobDocumentError(BaseModel):
    """A document of a job that was not ingested, and why."""

    document_id: str
    source: str
    message: str


class JobDocuments(BaseModel):
    total: int
    done: int = Field(description="Committed, or found unchanged.")
    failed: int


class IngestJob(BaseModel):
    """An ingest or reindex job as it is now."""

    id: str
    kind: Literal["ingest", "reindex"]
    collection: str
    state: JobStateName = Field(
        description="`failed` when any document failed (the others are committed) or the job "
        "could not go on (`reason`)."
    )
    documents: JobDocuments
    chunks_written: int = Field(description="Chunks committed so far (unchanged ones: none).")
    errors: list[JobDocumentError] = Field(description="One per failed document, in order.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reason: str | None = Field(description="Why it failed or was cancelled; null otherwise.")
    cancel_requested: bool = Field(
        description="A cancel waits for the document in flight, committed whole or not at all."
    )
    resumes: int = Field(description="Times a restart of retrieval interrupted and resumed it.")


class UploadContinued(BaseModel):
    """An upload not done within its wait: the files done, and the jobs that go on with the
    others (each file in exactly one of them)."""

    collection: str
    files: list[FileIngested] = Field(
        description="One entry per uploaded file, in order; those not done are `queued`."
    )
    jobs: list[IngestJob] = Field(description="The jobs of the `queued` files, in file order.")


class IngestJobIn(_Request):
    """Documents already read into text (what `bruno ingest` sends), ingested as one job."""

    collection: Collection = DEFAULT_COLLECTION
    documents: list[DocumentIn] = Field(
        min_length=1,
        max_length=1000,
        description="Each as for `POST /api/v1/documents`; a document's own `collection`, if "
        "given, must be the job's.",
    )


class IngestUrlsIn(_Request):
    """URLs the server fetches and ingests as one job (`POST /api/v1/ingest-jobs` with a JSON
    body), each page one document."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"collection": "default", "urls": ["https://example.org/manual.pdf"]}]
        }
    )

    collection: Collection = DEFAULT_COLLECTION
    urls: list[Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS)]] = Field(
        min_length=1,
        max_length=MAX_JOB_URLS,
        description="http or https, no user name or password; a URL given twice is fetched "
        "once. Each is fetched later, from public addresses only unless the operator allowed "
        "more (`BRUNO_FETCH_ALLOWED_NETWORKS`); one that cannot be fetched or read fails alone, "
        "in the job's `errors`.",
    )


class IngestJobPage(BaseModel):
    jobs: list[IngestJob] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


# --- search -------------------------------------------------------------------------------

SearchModeName = Literal["hybrid", "vector", "text"]


class SearchRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"query": "restore the backup volume", "top_k": 3}]}
    )

    query: QuestionText
    top_k: TopK = None
    collection: Collection = DEFAULT_COLLECTION
    mode: SearchModeName | None = Field(default=None, description="Absent: the server default.")
    filters: Annotated[dict[MetadataKey, FilterValue], Field(max_length=MAX_FILTERS)] = Field(
        default_factory=dict,
        description=(
            "Exact matches, all of which must hold: `source`, `title`, `document_id` or any "
            "metadata key; a comma-separated metadata value (e.g. `tags`) matches each item."
        ),
    )


class SearchResult(BaseModel):
    document_id: str
    chunk_id: str
    chunk_index: int
    title: str
    source: str
    heading_path: str = Field(description="Headings above the chunk, e.g. `Backups > Restore`.")
    page: int | None = Field(
        default=None, description="The page of the original (a PDF) the passage starts on."
    )
    link: str | None = Field(
        default=None,
        description="`source#page=N`, opening that page, when the source is a URL or a path.",
    )
    text: str
    score: float
    metadata: dict[str, str]


class SearchResponse(BaseModel):
    results: list[SearchResult]
    mode: str = Field(description="The mode retrieval actually used.")


# --- collections --------------------------------------------------------------------------


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    embedding_model: str = Field(description="The model its vectors were made with.")
    dimension: int


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class CollectionDeleted(BaseModel):
    name: str
    documents_deleted: int


# --- operations ---------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "degraded"] = "ready"
    checks: dict[str, str]
    detail: str | None = Field(default=None, description="What is degraded, when it is.")


class Problem(BaseModel):
    """An RFC 9457 problem document (extension members may follow)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
