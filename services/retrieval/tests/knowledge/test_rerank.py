"""The optional reranking stage over real gRPC, against a TEI-shaped ``/rerank`` stand-in."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import GrpcServer, create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import KnowledgeStore
from bruno_retrieval.knowledge.rerank import HttpReranker
from bruno_retrieval.servicer import SERVICE, RetrievalServicer
from bruno_testing.reranker_standin import RerankerStandIn, overlap_score

if TYPE_CHECKING:
    from conftest import FakeEmbedder

QUERY = "restore velero volume"
DOCUMENTS = {
    "a": "Velero velero velero backup notes for the cluster.",
    "b": "Restore the volume with velero restore create.",
    "c": "Volume snapshots are kept for thirty days.",
    "d": "Grafana dashboards show latency.",
}

pytestmark = pytest.mark.slow  # waits out reranker timeouts


@dataclasses.dataclass
class Rig:
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub
    unranked: KnowledgeStore  # the same collection, searched without the reranker
    reranker: RerankerStandIn
    http: HttpReranker

    async def search(self, **fields: object) -> retrieval_pb2.SearchResponse:
        request = retrieval_pb2.SearchRequest(query=QUERY, top_k=3, **fields)  # type: ignore[arg-type]
        return await self.stub.Search(request)

    async def fused_ids(self) -> list[str]:
        found = await self.unranked.search("default", QUERY, top_k=3)
        return [hit.document_id for hit in found.hits]


@pytest.fixture
async def rig(tmp_path: Path, embedder: FakeEmbedder) -> AsyncIterator[Rig]:
    async with RerankerStandIn() as standin:
        settings = RetrievalSettings(
            retrieval_listen_addr="127.0.0.1:0",
            lancedb_uri=str(tmp_path / "lancedb"),
            reranker_url=standin.url,
            reranker_timeout_seconds=0.5,
            reranker_candidates=10,
            grpc_grace_seconds=0,
        )
        unranked = await KnowledgeStore.open(settings, embedder)
        for document_id, text in DOCUMENTS.items():
            await unranked.ingest("default", text=text, document_id=document_id)
        reranker = HttpReranker(standin.url, timeout_seconds=settings.reranker_timeout_seconds)
        store = await KnowledgeStore.open(settings, embedder, reranker=reranker)
        server = GrpcServer("retrieval", settings, listen_addr="127.0.0.1:0")
        server.add_servicer(
            SERVICE,
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
            RetrievalServicer(store),
        )
        port = await server.start()
        channel = create_channel(f"127.0.0.1:{port}", timeout_seconds=10)
        yield Rig(retrieval_pb2_grpc.RetrievalServiceStub(channel), unranked, standin, reranker)
        await channel.close()
        await server.stop()
        await reranker.close()
        store.close()
        unranked.close()


async def test_a_configured_reranker_reorders_the_candidates_by_its_scores(rig: Rig) -> None:
    found = await rig.search()

    sent = rig.reranker.requests[-1]
    assert sent["query"] == QUERY
    assert len(sent["texts"]) == 4  # every candidate (up to reranker_candidates), not just top_k
    assert [hit.document_id for hit in found.hits] == ["b", "a", "c"]
    assert [round(hit.score, 4) for hit in found.hits] == [
        round(overlap_score(QUERY, DOCUMENTS[d]), 4) for d in ("b", "a", "c")
    ]


@pytest.mark.parametrize("failure", ["status", "malformed", "slow"])
async def test_a_failing_reranker_leaves_the_fused_order(rig: Rig, failure: str) -> None:
    if failure == "status":
        rig.reranker.status = 503
    elif failure == "malformed":
        rig.reranker.malformed = True
    else:
        rig.reranker.delay = 5.0  # past reranker_timeout_seconds

    found = await rig.search()

    assert rig.reranker.requests
    assert [hit.document_id for hit in found.hits] == await rig.fused_ids()


async def test_the_reranker_gets_no_more_than_the_search_deadline(rig: Rig) -> None:
    rig.http.timeout_seconds = 30.0  # only the caller's deadline can cut it short
    rig.reranker.delay = 10.0

    found = await rig.stub.Search(retrieval_pb2.SearchRequest(query=QUERY, top_k=3), timeout=2.0)

    assert [hit.document_id for hit in found.hits] == await rig.fused_ids()


async def test_an_unreachable_reranker_leaves_the_fused_order(rig: Rig) -> None:
    await rig.reranker.stop()

    found = await rig.search()

    assert [hit.document_id for hit in found.hits] == await rig.fused_ids()


async def test_bad_search_requests_fail_before_the_reranker_is_asked(rig: Rig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await rig.search(collection="nope")

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert rig.reranker.requests == []
