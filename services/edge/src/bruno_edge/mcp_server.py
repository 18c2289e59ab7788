"""The MCP server at ``/mcp``: the knowledge base as tools an agent can call, over streamable
HTTP, built with the official ``mcp`` SDK and behind the same API keys as ``/api`` and ``/v1``.

Tools: ``search`` (passages with title, source, score and chunk id), ``ask`` (a grounded answer
with its citations) and ``list_collections``; each collection's documents are a resource,
``bruno://collections/{collection}/documents``. The transport is stateless (every request
stands alone, answered as JSON), so any edge replica can answer any request.

Every tool needs the key's ``read`` scope and sees only the key's collections: another
collection is "not found", exactly as one that does not exist, and is left out of
``list_collections``.

Errors speak JSON-RPC: a missing or wrong key is a ``401`` whose body is a JSON-RPC error (a
key without ``read`` a ``403``, too many requests a ``429`` with ``Retry-After``); what the
caller can fix (an unknown collection, a bad argument, too many chats at once) is a tool result
with ``isError`` and the reason, as the MCP specification asks, so the agent can read it and try
again; what it cannot (a service down, load shed) is a JSON-RPC error naming what failed.

    endpoint = McpEndpoint(state, create_mcp_server(state))
    app.router.routes.append(Route("/mcp", endpoint=endpoint))
    async with endpoint.running(): ...   # in the app's lifespan
"""

# No `from __future__ import annotations` here: the SDK reads each tool's signature for its
# JSON schema, and the limits in those annotations are the settings of the enclosing call.

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import BrunoError, NotFound, Unavailable
from bruno_core.contract import COLLECTION_NAME, DEFAULT_COLLECTION, MAX_FILTERS
from bruno_edge._version import __version__
from bruno_edge.admission import Work
from bruno_edge.api.deps import EdgeState
from bruno_edge.auth import Caller
from bruno_edge.chat import ChatService
from bruno_edge.clients import Downstreams, rpc_errors
from bruno_edge.keys import Scope
from bruno_edge.pages import page_link
from bruno_edge.refusals import retry_after_headers
from bruno_edge.schemas import (
    Citation,
    CollectionInfo,
    DocumentSummary,
    FilterValue,
    MetadataKey,
    PlainText,
    SearchResult,
)

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
DOCUMENTS_PER_RESOURCE = 500
_MODES = {
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
    "vector": retrieval_pb2.SEARCH_MODE_VECTOR,
    "text": retrieval_pb2.SEARCH_MODE_TEXT,
}
_LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
# JSON-RPC leaves -32000 to -32099 to implementations; MCP servers commonly use -32001 for a
# refused credential.
UNAUTHENTICATED = -32001
FORBIDDEN = -32003
#: Load shed, or the edge stopping: come back after `data.retry_after` seconds.
OVERLOADED = -32005
#: Too many requests from the key.
RATE_LIMITED = -32029

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
    ) -> SearchFound:
        """Find the passages of the knowledge base that best match a query, best first, each
        with its document's title and source, its score and its chunk id."""
        request = retrieval_pb2.SearchRequest(
            collection=collection,
            query=query,
            top_k=top_k,
            mode=_MODES[mode],
            filters=filters or {},
        )
        with _tool_errors():
            _caller(ctx).check_collection(collection)
            async with state.work_slots.hold(Work.SEARCH):
                with rpc_errors("retrieval"):
                    found = await downstreams().retrieval.Search(
                        request, timeout=settings.request_timeout_seconds
                    )
        return SearchFound(
            passages=[
                SearchResult(
                    document_id=hit.document_id,
                    chunk_id=hit.chunk_id,
                    chunk_index=hit.chunk_index,
                    title=hit.title,
                    source=hit.source,
                    heading_path=hit.heading_path,
                    page=hit.page or None,
                    link=page_link(hit.source, hit.page),
                    text=hit.text,
                    score=round(hit.score, 6),
                    metadata=dict(hit.metadata),
                )
                for hit in found.hits
            ],
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
                turn = await chat.prepare_stateless(question, [], collection=collection)
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
            listed = await downstreams().retrieval.ListCollections(
                retrieval_pb2.ListCollectionsRequest(), timeout=settings.request_timeout_seconds
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
                page = await downstreams().retrieval.ListDocuments(
                    request, timeout=settings.request_timeout_seconds
                )
        except NotFound as error:
            raise ResourceNotFoundError(error.detail) from error
        except BrunoError as error:
            raise ResourceError(error.detail) from error
        summaries = [
            DocumentSummary(
                document_id=d.document_id,
                title=d.title,
                source=d.source,
                chunks=d.chunks,
                content_hash=d.content_hash,
                metadata=dict(d.metadata),
                ingested_at=d.ingested_at.ToDatetime() if d.HasField("ingested_at") else None,
            ).model_dump(mode="json")
            for d in page.documents
        ]
        return json.dumps({"collection": collection, "documents": summaries})

    return server


class McpEndpoint:
    """The ASGI app at ``/mcp``: the API-key check, then the SDK's streamable HTTP transport.

    A refused key never reaches the SDK: it is answered here with ``401`` and the
    ``WWW-Authenticate`` challenge (``403`` without the ``read`` scope, ``429`` with
    ``Retry-After`` past the key's rate limit) and a JSON-RPC error body, which MCP clients
    surface as the error of the call they made. The caller is kept in the request's state
    (``caller``) for the tools' per-key decisions.
    """

    def __init__(self, state: EdgeState, server: MCPServer) -> None:
        self.state = state
        settings = state.settings
        self.server = server
        # In open mode (no keys, loopback only) a web page the browser visits must not reach
        # the tools through a rebound DNS name: only loopback Host and Origin headers pass.
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=settings.open_mode,
            allowed_hosts=[f"{h}{port}" for h in _LOOPBACK_HOSTS for port in ("", ":*")],
            allowed_origins=[f"http://{h}{port}" for h in _LOOPBACK_HOSTS for port in ("", ":*")],
        )
        # Builds the session manager this endpoint hands requests to; the Starlette app it
        # returns is not used (the edge is the app).
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            transport_security=security,
            max_request_body_size=settings.max_request_bytes,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve MCP requests while this is entered (the edge's lifespan).

        The session manager's task group lives in a task of its own: a task group must be
        left by the task that entered it, and whoever runs a lifespan may enter and leave it
        from different tasks.
        """
        started, stopping = asyncio.Event(), asyncio.Event()

        async def serve() -> None:
            async with self.server.session_manager.run():
                started.set()
                await stopping.wait()

        task = asyncio.create_task(serve(), name="mcp-sessions")
        ready = asyncio.create_task(started.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            ready.cancel()
            task.result()  # it failed to start: raise why
        try:
            yield
        finally:
            stopping.set()
            await task

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        try:
            caller = self.state.gate.admit(
                headers.get("authorization"), client[0] if client else None
            )
            caller.require(Scope.READ)
        except BrunoError as error:
            await _refuse(error, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.server.session_manager.handle_request(scope, receive, send)


_REFUSAL_CODES = {401: UNAUTHENTICATED, 403: FORBIDDEN, 429: RATE_LIMITED}


async def _refuse(error: BrunoError, send: Send) -> None:
    data: dict[str, Any] = {"status": error.http_status}
    extra_headers = retry_after_headers(error)
    if extra_headers:
        data["retry_after"] = int(extra_headers["Retry-After"])
    code = _REFUSAL_CODES.get(error.http_status, INTERNAL_ERROR)
    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": code, "message": error.detail, "data": data},
    }
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in extra_headers.items()),
    ]
    if error.http_status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
