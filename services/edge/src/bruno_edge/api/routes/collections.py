"""``/api/v1/collections``: list collections, delete one, rebuild one with the current model.

Collections are created implicitly by the first document ingested into them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core.contract import COLLECTION_NAME
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded, needs
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.clients import rpc_errors
from bruno_edge.consistency import ANSWERED, HEADER, read, token
from bruno_edge.keys import Scope
from bruno_edge.schemas import (
    CollectionDeleted,
    CollectionInfo,
    CollectionList,
    CollectionReindexed,
)

router = APIRouter(prefix=f"{API_PREFIX}/collections", tags=["collections"])

CollectionPath = Annotated[
    str, Path(pattern=COLLECTION_NAME.pattern, max_length=COLLECTION_NAME.max_chars)
]
# Re-embedding a collection takes as long as ingesting it did: far past the request timeout.
REINDEX_TIMEOUT_SECONDS = 6 * 3600.0


def _info(message: retrieval_pb2.CollectionInfo) -> CollectionInfo:
    return CollectionInfo(
        name=message.name,
        documents=message.documents,
        chunks=message.chunks,
        embedding_model=message.embedding_model,
        dimension=message.dimension,
    )


@router.get(
    "",
    responses=problem_responses(401, 403, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.OTHER),
)
async def list_collections(
    caller: CallerDep, downstreams: DownstreamsDep, settings: SettingsDep
) -> CollectionList:
    """The collections the key sees."""
    with rpc_errors("retrieval"):
        found = await read(
            downstreams,
            lambda stub: stub.ListCollections(
                retrieval_pb2.ListCollectionsRequest(), timeout=settings.request_timeout_seconds
            ),
        )
    return CollectionList(
        collections=[_info(item) for item in found.collections if caller.sees(item.name)]
    )


@router.delete(
    "/{name}",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.ADMIN, Work.OTHER),
)
async def delete_collection(
    name: CollectionPath, caller: CallerDep, downstreams: DownstreamsDep, settings: SettingsDep
) -> CollectionDeleted:
    caller.check_collection(name)
    with rpc_errors("retrieval"):
        deleted = await downstreams.retrieval.DeleteCollection(
            retrieval_pb2.DeleteCollectionRequest(collection=name),
            timeout=settings.request_timeout_seconds,
        )
    return CollectionDeleted(name=name, documents_deleted=deleted.documents_deleted)


# No admission slot: a reindex runs for as long as ingesting did, and only admins start one.
@router.post(
    "/{name}/reindex",
    responses={
        200: {"headers": ANSWERED},
        **problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    },
    dependencies=[Depends(needs(Scope.ADMIN))],
)
async def reindex_collection(
    name: CollectionPath, response: Response, caller: CallerDep, downstreams: DownstreamsDep
) -> CollectionReindexed:
    """Re-embed every chunk with the embedding service's current model into a shadow table,
    then switch over; searches keep working throughout. Takes as long as ingesting did."""
    caller.check_collection(name)
    with rpc_errors("retrieval"):
        result = await downstreams.retrieval.ReindexCollection(
            retrieval_pb2.ReindexCollectionRequest(collection=name),
            timeout=REINDEX_TIMEOUT_SECONDS,
        )
    if said := token(result.committed):
        response.headers[HEADER] = said
    return CollectionReindexed(
        collection=_info(result.collection), previous_model=result.previous_model
    )
