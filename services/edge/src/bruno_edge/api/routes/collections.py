"""``/api/v1/collections``: list collections, delete one, rebuild one with the current model.

Collections are created implicitly by the first document ingested into them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from bruno.retrieval.v1 import jobs_pb2, retrieval_pb2
from bruno_core.contract import COLLECTION_NAME
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.api.routes.ingest_jobs import job_of, location_of
from bruno_edge.clients import rpc_errors
from bruno_edge.consistency import read
from bruno_edge.keys import Scope
from bruno_edge.schemas import (
    CollectionDeleted,
    CollectionInfo,
    CollectionList,
    IngestJob,
)

router = APIRouter(prefix=f"{API_PREFIX}/collections", tags=["collections"])

CollectionPath = Annotated[
    str, Path(pattern=COLLECTION_NAME.pattern, max_length=COLLECTION_NAME.max_chars)
]


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


@router.post(
    "/{name}/reindex",
    status_code=status.HTTP_202_ACCEPTED,
    response_description="The reindex job; `Location` is where to follow it.",
    responses=problem_responses(401, 403, 404, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.ADMIN, Work.OTHER),
)
async def reindex_collection(
    name: CollectionPath,
    response: Response,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
) -> IngestJob:
    """Start re-embedding every chunk with the embedding service's current model into a shadow
    table, switched to in one step at the end; searches keep working throughout. Answers at
    once with the job (follow it at `/api/v1/ingest-jobs/{id}`, cancel it there until the
    switch); a reindex of the collection already running is the answer to a second request."""
    caller.check_collection(name)
    with rpc_errors("retrieval"):
        job = await downstreams.jobs.StartReindexJob(
            jobs_pb2.StartReindexJobRequest(collection=name, owner=caller.name),
            timeout=settings.request_timeout_seconds,
        )
    response.headers["Location"] = location_of(job.id)
    return job_of(job)
