"""``POST /api/v1/search``: the best-matching chunks of a collection, without generation."""

from __future__ import annotations

from fastapi import APIRouter

from bruno.retrieval.v1 import retrieval_pb2
from bruno_edge.admission import Work
from bruno_edge.api.deps import CallerDep, DownstreamsDep, SettingsDep, guarded
from bruno_edge.api.routes import API_PREFIX, problem_responses
from bruno_edge.clients import rpc_errors
from bruno_edge.consistency import AtLeastDep, read
from bruno_edge.hits import search_result
from bruno_edge.keys import Scope
from bruno_edge.schemas import SearchModeName, SearchRequest, SearchResponse

router = APIRouter(prefix=API_PREFIX, tags=["search"])

_MODES: dict[SearchModeName, retrieval_pb2.SearchMode.ValueType] = {
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
    "vector": retrieval_pb2.SEARCH_MODE_VECTOR,
    "text": retrieval_pb2.SEARCH_MODE_TEXT,
}
_NAMES = {value: name for name, value in _MODES.items()}


@router.post(
    "/search",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503, 504),
    dependencies=guarded(Scope.READ, Work.SEARCH),
)
async def search(
    body: SearchRequest,
    caller: CallerDep,
    downstreams: DownstreamsDep,
    settings: SettingsDep,
    at_least: AtLeastDep,
) -> SearchResponse:
    """The best-matching chunks. With a ``Bruno-Consistency-Token`` header (from a write's
    answer) the search sees that write."""
    caller.check_collection(body.collection)
    request = retrieval_pb2.SearchRequest(
        collection=body.collection,
        query=body.query,
        top_k=body.top_k or settings.default_top_k,
        mode=_MODES[body.mode] if body.mode else retrieval_pb2.SEARCH_MODE_UNSPECIFIED,
        filters=body.filters,
        at_least=at_least,
    )
    with rpc_errors("retrieval"):
        found = await read(
            downstreams,
            lambda stub: stub.Search(request, timeout=settings.request_timeout_seconds),
        )
    return SearchResponse(
        results=[search_result(hit) for hit in found.hits],
        # Retrieval reports the mode it used; "unspecified" would mean it broke that promise.
        mode=_NAMES.get(found.mode, "unspecified"),
    )
