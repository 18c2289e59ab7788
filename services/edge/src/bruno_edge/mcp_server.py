"""The MCP server: the knowledge base as tools an agent can call, built with the official
``mcp`` SDK and served at ``/mcp`` behind the same API keys as ``/api`` and ``/v1``.

Tools: ``search`` (passages with title, source, score and chunk id), ``ask`` (a grounded answer
with its citations) and ``list_collections``; each collection's documents are a resource,
``bruno://collections/{collection}/documents``. ``search`` and ``ask`` take an optional
``consistency_token``, the ``Bruno-Consistency-Token`` a write through the REST API answered,
and read that write (read-your-writes, as the REST reads do with the header).

Every tool needs the key's ``read`` scope and sees only the key's collections: another
collection is "not found", exactly as one that does not exist, and is left out of
``list_collections``.

Errors speak JSON-RPC: what the caller can fix (an unknown collection, a bad argument, too many
chats at once) is a tool result with ``isError`` and the reason, as the MCP specification asks,
so the agent can read it and try again; what it cannot (a service down, load shed) is a
JSON-RPC error naming what failed. The key itself is checked before the SDK is reached, by
:class:`~bruno_edge.mcp_endpoint.McpEndpoint`.

    endpoint = McpEndpoint(state, create_mcp_server(state))
"""

# No `from __future__ import annotations` here: the SDK reads each tool's signature for its
# JSON schema, and the limits in those annotations are the settings of the enclosing call.

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations
from pydantic import BaseModel, Field

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import BrunoError, NotFound, Unavailable
from bruno_core.contract import COLLECTION_NAME, DEFAULT_COLLECTION, MAX_FILTERS
from bruno_edge._version import __version__
from bruno_edge.admission import Work
from bruno_edge.api.deps import EdgeState
from bruno_edge.auth import Caller
from bruno_edge.chat import ChatService
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.consistency import MAX_CHARS, PATTERN, committed, read
from bruno_edge.hits import search_result
from bruno_edge.listings import document_summary
from bruno_edge.plain_text import PlainText
from bruno_edge.schemas import (
    Citation,
    CollectionInfo,
    FilterValue,
    MetadataKey,
    SearchResult,
)

log = logging.getLogger(__name__)

DOCUMENTS_PER_RESOURCE = 500
_MODES = {
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
    "vector": retrieval_pb2.SEARCH_MODE_VECTOR,
    "text": retrieval_pb2.SEARCH_MODE_TEXT,
}
# JSON-RPC leaves -32000 to -32099 to implementations.
#: Load shed, or the edge stopping: come back after `data.retry_after` seconds.
OVERLOADED = -32005

INSTRUCTIONS = """\
Agent Bruno answers questions from the operator's own documents (runbooks, READMEs, notes).
Use `search` to find passages and cite them by title and source, `ask` for an answer written
from them with numbered citations, and `list_collections` to see which collections exist."""

Collection = Annotated[
    str,
    Field(
        pattern=COLLECTION_NAME.pattern,
        max_length=COLLECTION_NAME.max_chars,
        description="The collection to use (`list_collections`).",
    ),
]

ConsistencyToken = Annotated[
    str,
    Field(
        pattern=PATTERN,
        max_length=MAX_CHARS,
        description="The `Bruno-Consistency-Token` a write answered (`<table>@<version>`): "
        "the passages are read from that write or a later state, never from before it.",
    ),
]


class SearchFound(BaseModel):
    passages: list[SearchResult] = Field(description="Best first.")
    mode: str = Field(description="The search mode that was used.")


class Answer(BaseModel):
    answer: str = Field(description="The answer; [n] markers point at citations by marker.")
    citations: list[Citation] = Field(description="The passages the answer was written from.")
    model: str = Field(description="Who wrote it: the model, `extractive` or `none`.")
    fallback: bool = Field(description="True when no language model wrote the answer.")


class Collections(BaseModel):
    collections: list[CollectionInfo]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """A domain error in the speech of MCP: the caller's to fix is the tool's error result,
    the rest a JSON-RPC internal error."""
    try:
        yield
    except BrunoError as error:
        if error.http_status < 500:
            raise ToolError(error.detail) from error
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            data = {"status": error.http_status, "retry_after": retry_after}
            raise MCPError(code=OVERLOADED, message=error.detail, data=data) from error
        raise MCPError(code=INTERNAL_ERROR, message=error.detail) from error


def _caller(ctx: Context) -> Caller:
    """The caller :class:`McpEndpoint` admitted, from the HTTP request behind the tool call."""
    request = ctx.request_context.request
    caller = getattr(getattr(request, "state", None), "caller", None)
    if not isinstance(caller, Caller):  # pragma: no cover - McpEndpoint always sets it
        raise MCPError(code=INTERNAL_ERROR, message="the caller is unknown")
    return caller


def create_mcp_server(state: EdgeState) -> MCPServer:
    """The MCP server with Bruno's tools and resources, answering from ``state``'s services."""
    settings = state.settings
    server: MCPServer = MCPServer(
        "agent-bruno",
        title="Agent Bruno",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def downstreams() -> Downstreams:
        if state.downstreams is None:
            raise Unavailable("the edge is not connected to its downstreams (starting or stopping)")
        return state.downstreams

    @server.tool(annotations=read_only, structured_output=True)
    async def search(
        ctx: Context,
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=settings.max_message_chars,
                description="What to look for, in words (a question works).",
            ),
            PlainText,
        ],
        collection: Collection = DEFAULT_COLLECTION,
        top_k: Annotated[
            int, Field(ge=1, le=settings.max_top_k, description="How many passages.")
        ] = settings.default_top_k,
        mode: Annotated[
            Literal["hybrid", "vector", "text"],
            Field(description="hybrid (meaning and keywords), vector (meaning) or text."),
        ] = "hybrid",
        filters: Annotated[
            dict[MetadataKey, FilterValue],
            Field(
                max_length=MAX_FILTERS,
                description="Exact matches that must all hold: source, title, document_id or "
                "a metadata key; a comma-separated metadata value (tags) matches each item.",
            ),
        ]
        | None = None,
        consistency_token: ConsistencyToken | None = None,
    ) -> SearchFound:
        """Find the passages of the knowledge base that best match a query, best first, each
        with its document's title and source, its score and its chunk id."""
        request = retrieval_pb2.SearchRequest(
            collection=collection,
            query=query,
            top_k=top_k,
            mode=_MODES[mode],
            filters=filters or {},
            at_least=committed(consistency_token) if consistency_token else None,
        )
        with _tool_errors():
            _caller(ctx).check_collection(collection)
            async with state.work_slots.hold(Work.SEARCH):
                with rpc_errors("retrieval"):
                    found = await read(
                        downstreams(),
                        lambda stub: stub.Search(request, timeout=settings.request_timeout_seconds),
                    )
        return SearchFound(
            passages=[search_result(hit) for hit in found.hits],
            mode=retrieval_pb2.SearchMode.Name(found.mode).removeprefix("SEARCH_MODE_").lower(),
        )

    @server.tool(annotations=read_only, structured_output=True)
    async def ask(
        ctx: Context,
        question: Annotated[
            str,
            Field(
                min_length=1,
                max_length=settings.max_message_chars,
                description="A question about the documents, standing on its own.",
            ),
            PlainText,
        ],
        collection: Collection = DEFAULT_COLLECTION,
        consistency_token: ConsistencyToken | None = None,
    ) -> Answer:
        """Answer a question from the knowledge base: an answer written only from the
        retrieved passages, citing them as [n], with those passages as citations. When nothing
        relevant is found the answer says it does not know."""
        if not question.strip():
            raise ToolError("the question is blank")
        with _tool_errors():
            caller = _caller(ctx)
            caller.check_collection(collection)
            async with state.chat_slots.hold(caller), state.work_slots.hold(Work.CHAT):
                chat = ChatService(downstreams(), settings, state.metrics)
                turn = await chat.prepare_stateless(
                    question,
                    [],
                    collection=collection,
                    at_least=committed(consistency_token) if consistency_token else None,
                )
                answered = await chat.answer(turn)
        return Answer(
            answer=answered.answer,
            citations=answered.citations,
            model=answered.model,
            fallback=answered.fallback,
        )

    @server.tool(annotations=read_only, structured_output=True)
    async def list_collections(ctx: Context) -> Collections:
        """The collections of the knowledge base, with their document and chunk counts."""
        caller = _caller(ctx)
        with _tool_errors(), rpc_errors("retrieval"):
            listed = await read(
                downstreams(),
                lambda stub: stub.ListCollections(
                    retrieval_pb2.ListCollectionsRequest(),
                    timeout=settings.request_timeout_seconds,
                ),
            )
        return Collections(
            collections=[
                CollectionInfo(
                    name=c.name,
                    documents=c.documents,
                    chunks=c.chunks,
                    embedding_model=c.embedding_model,
                    dimension=c.dimension,
                )
                for c in listed.collections
                if caller.sees(c.name)
            ]
        )

    @server.resource(
        "bruno://collections/{collection}/documents",
        name="documents",
        title="Documents of a collection",
        description=f"The documents of a collection (the first {DOCUMENTS_PER_RESOURCE}), "
        "with title, source, chunk count and metadata.",
        mime_type="application/json",
    )
    async def documents(ctx: Context, collection: str) -> str:
        request = retrieval_pb2.ListDocumentsRequest(
            collection=collection, limit=DOCUMENTS_PER_RESOURCE
        )
        try:
            _caller(ctx).check_collection(collection)
            with rpc_errors("retrieval"):
                page = await read(
                    downstreams(),
                    lambda stub: stub.ListDocuments(
                        request, timeout=settings.request_timeout_seconds
                    ),
                )
        except NotFound as error:
            raise ResourceNotFoundError(error.detail) from error
        except BrunoError as error:
            raise ResourceError(error.detail) from error
        summaries = [document_summary(d).model_dump(mode="json") for d in page.documents]
        return json.dumps({"collection": collection, "documents": summaries})

    return server
