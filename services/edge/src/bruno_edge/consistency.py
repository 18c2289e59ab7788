"""Read-your-writes across retrieval's writer and readers: the ``Bruno-Consistency-Token``.

A write through the edge (an ingest answered at once, an upload, a document delete) answers
the header ``Bruno-Consistency-Token: <table>@<version>``, the table version its commit made.
A search, a document listing or a chat (``/api/v1/chat``, and ``/v1/chat/completions`` with
model ``bruno``: its retrieval) that sends it back sees that write: the reader asked checks out
the latest version and, if the write is still not visible, waits for it up to its lag bound
(``BRUNO_RETRIEVAL_READ_CONSISTENCY_SECONDS``), then answers UNAVAILABLE, and the edge asks the
writer. Without the header a read sees what its reader has seen, at most that bound behind.
The MCP tools ``search`` and ``ask`` take the same token as their ``consistency_token``.

    response.headers[HEADER] = token(ingested.committed)
    request = retrieval_pb2.SearchRequest(query=query, at_least=at_least)  # AtLeastDep
    found = await read(downstreams, lambda stub: stub.Search(request))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import grpc
from fastapi import Depends, Header

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core.contract import COLLECTION_NAME
from bruno_edge.clients import Downstreams

HEADER = "Bruno-Consistency-Token"
# A table is named after its collection, with ".<generation>" after a reindex.
_TABLE = r"[A-Za-z0-9._:-]+"
PATTERN = rf"^{_TABLE}@[1-9][0-9]{{0,18}}$"
MAX_CHARS = COLLECTION_NAME.max_chars + 32

_T = TypeVar("_T")

#: The header as a write route's OpenAPI response declares it.
ANSWERED = {
    HEADER: {
        "description": "The table version the write committed: send it back on a search, a "
        "document listing or a chat to read this write (read-your-writes).",
        "schema": {"type": "string", "pattern": PATTERN},
    }
}


def token(committed: retrieval_pb2.Committed) -> str | None:
    """The header's value for what a write committed (None if retrieval did not say)."""
    if not committed.table or not committed.version:
        return None
    return f"{committed.table}@{committed.version}"


def latest(committed: list[retrieval_pb2.Committed]) -> str | None:
    """The token of the last of several commits (an upload's files), None without any."""
    said = [c for c in committed if c.table and c.version]
    return token(max(said, key=lambda c: c.version)) if said else None


def committed(value: str) -> retrieval_pb2.Committed:
    """What a token (already matched against :data:`PATTERN`) names: a table at a version."""
    table, _, version = value.rpartition("@")
    return retrieval_pb2.Committed(table=table, version=int(version))


async def _at_least(
    value: Annotated[
        str | None,
        Header(
            alias=HEADER,
            pattern=PATTERN,
            max_length=MAX_CHARS,
            description="The token a write answered: this read sees that write (or a later "
            "state), or fails with 503 rather than answer from before it.",
        ),
    ] = None,
) -> retrieval_pb2.Committed | None:
    return None if value is None else committed(value)


AtLeastDep = Annotated[retrieval_pb2.Committed | None, Depends(_at_least)]


async def read(
    downstreams: Downstreams,
    call: Callable[[retrieval_pb2_grpc.RetrievalServiceAsyncStub], Awaitable[_T]],
) -> _T:
    """``call`` on retrieval's readers; if they are unavailable (all down, or behind the write
    the request names for longer than their lag bound), on the writer."""
    try:
        return await call(downstreams.retrieval_reads)
    except grpc.aio.AioRpcError as error:
        if not downstreams.has_readers or error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
    return await call(downstreams.retrieval)
