"""Retrieval's two gRPC services over real gRPC, embedding through a real (hashing) embedding
server: what each call does and the status each bad call gets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from bruno.embedding.v1 import embedding_pb2, embedding_pb2_grpc
from bruno.retrieval.v1 import (
    conversations_pb2,
    conversations_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)
from bruno_core import GrpcServer, create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.embedding_client import EmbeddingClient
from bruno_retrieval.knowledge import Embedded
from bruno_retrieval.server import create_server
from bruno_testing.fakes import embedding_server as serve_embedding

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MAX_BATCH = 4
RUNBOOK = (
    "# Backups\n\n"
    "Velero snapshots every persistent volume at night. Snapshots are kept for thirty days.\n\n"
    "## Restore\n\n"
    "To restore a namespace, pick the latest snapshot and run velero restore create. "
    "Check that the pods come back and the volumes are mounted.\n\n"
    "# Certificates\n\n"
    "Cert-manager renews certificates thirty days before they expire. "
    "If a renewal fails, the ingress keeps serving the old certificate until it expires.\n"
)

# Enough sections to need several embedding batches.
LONG_RUNBOOK = RUNBOOK + "".join(
    f"\n## Note {n}\n\nVelero note number {n} about volumes.\n" for n in range(8)
)


class HashingEmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    """An embedding service with a small batch limit that can be told to break mid-document."""

    def __init__(self, embedder: FakeEmbedder) -> None:
        self.embedder = embedder
        self.batch_sizes: list[int] = []
        self.fail_after_requests: int | None = None
        self.model = "hash-64"

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.EmbedResponse:
        self.batch_sizes.append(len(request.texts))
        if len(request.texts) > MAX_BATCH:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch too large")
        if (
            self.fail_after_requests is not None
            and len(self.batch_sizes) > self.fail_after_requests
        ):
            await context.abort(grpc.StatusCode.INTERNAL, "model crashed")
        # Like an embedding service of one model that predates EmbedRequest.model: whatever
        # model is asked for, its own embeds.
        embedded = await self.embedder.embed(list(request.texts), request.input_type)
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=vector) for vector in embedded.vectors],
            model=self.model,
            dimension=self.embedder.dimension,
        )

    async def Info(
        self, request: embedding_pb2.InfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.InfoResponse:
        return embedding_pb2.InfoResponse(
            model=self.model,
            dimension=self.embedder.dimension,
            backend="onnx",
            max_batch_size=MAX_BATCH,
            max_input_tokens=256,
        )


@dataclasses.dataclass
class Services:
    retrieval: retrieval_pb2_grpc.RetrievalServiceAsyncStub
    channel: grpc.aio.Channel
    embedding: HashingEmbeddingServicer
    embedding_server: GrpcServer
    embedding_stopped: bool = False
    address: str = ""

    async def stop_embedding(self) -> None:
        await self.embedding_server.stop()
        self.embedding_stopped = True


@pytest.fixture
async def services(tmp_path: Path, embedder: FakeEmbedder) -> AsyncIterator[Services]:
    embedding = HashingEmbeddingServicer(embedder)
    embedding_server = serve_embedding(embedding)
    embedding_port = await embedding_server.start()
    settings = RetrievalSettings(
        retrieval_listen_addr="127.0.0.1:0",
        embedding_addr=f"127.0.0.1:{embedding_port}",
        embedding_timeout_seconds=5,
        lancedb_uri=str(tmp_path / "lancedb"),
        max_document_bytes=20_000,
        chunk_size_tokens=32,
        chunk_overlap_tokens=8,
        grpc_grace_seconds=0,
    )
    embedding_client = EmbeddingClient.from_settings(settings)
    server = await create_server(settings, embedder=embedding_client)
    port = await server.start()
    channel = create_channel(f"127.0.0.1:{port}", timeout_seconds=20)
    running = Services(
        retrieval_pb2_grpc.RetrievalServiceStub(channel),
        channel,
        embedding,
        embedding_server,
        address=f"127.0.0.1:{port}",
    )
    yield running
    await channel.close()
    await server.stop()
    await embedding_client.close()
    if not running.embedding_stopped:
        await embedding_server.stop()


async def status_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


def ingest_request(**fields: Any) -> retrieval_pb2.IngestDocumentRequest:
    return retrieval_pb2.IngestDocumentRequest(
        **({"document_id": "runbook.md", "text": RUNBOOK} | fields)
    )


async def test_a_document_goes_through_its_whole_life_over_grpc(services: Services) -> None:
    stub = services.retrieval
    created = await stub.IngestDocument(
        ingest_request(title="Runbook", source="git://ops", metadata={"team": "platform"})
    )
    assert created.outcome == retrieval_pb2.INGEST_OUTCOME_CREATED
    assert (created.collection, created.document_id) == ("default", "runbook.md")
    assert created.chunks > 1
    again = await stub.IngestDocument(ingest_request())
    assert again.outcome == retrieval_pb2.INGEST_OUTCOME_UNCHANGED

    found = await stub.Search(retrieval_pb2.SearchRequest(query="velero restore namespace"))
    assert found.mode == retrieval_pb2.SEARCH_MODE_HYBRID
    best = found.hits[0]
    assert (best.document_id, best.title, best.source) == ("runbook.md", "Runbook", "git://ops")
    assert best.chunk_id == f"runbook.md:{best.chunk_index}"
    assert dict(best.metadata) == {"team": "platform"}
    assert "velero restore create" in best.text

    [listed] = (await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest())).documents
    assert (listed.document_id, listed.chunks, listed.content_hash) == (
        "runbook.md",
        created.chunks,
        created.content_hash,
    )
    assert listed.ingested_at.seconds > 0

    replaced = await stub.IngestDocument(ingest_request(text="Backups now run hourly."))
    assert (replaced.outcome, replaced.chunks) == (retrieval_pb2.INGEST_OUTCOME_REPLACED, 1)

    deleted = await stub.DeleteDocument(
        retrieval_pb2.DeleteDocumentRequest(document_id="runbook.md")
    )
    assert deleted.chunks_deleted == 1
    after = await stub.Search(retrieval_pb2.SearchRequest(query="backups velero"))
    assert list(after.hits) == []
    gone = stub.DeleteDocument(retrieval_pb2.DeleteDocumentRequest(document_id="runbook.md"))
    assert await status_of(gone) == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "mode",
    [
        retrieval_pb2.SEARCH_MODE_VECTOR,
        retrieval_pb2.SEARCH_MODE_TEXT,
        retrieval_pb2.SEARCH_MODE_HYBRID,
    ],
)
async def test_search_reports_the_mode_it_used(services: Services, mode: int) -> None:
    await services.retrieval.IngestDocument(ingest_request())

    found = await services.retrieval.Search(
        retrieval_pb2.SearchRequest(query="certificates renewal", top_k=2, mode=mode)  # type: ignore[arg-type]
    )

    assert found.mode == mode
    assert 1 <= len(found.hits) <= 2
    assert "certificate" in found.hits[0].text


async def test_top_k_zero_means_the_default_of_five(services: Services) -> None:
    for n in range(8):
        await services.retrieval.IngestDocument(
            retrieval_pb2.IngestDocumentRequest(document_id=f"d{n}", text=f"Velero note {n}.")
        )

    found = await services.retrieval.Search(retrieval_pb2.SearchRequest(query="velero note"))

    assert len(found.hits) == 5


async def test_embedding_requests_respect_the_servers_batch_limit(services: Services) -> None:
    created = await services.retrieval.IngestDocument(ingest_request(text=LONG_RUNBOOK))

    assert created.chunks > MAX_BATCH
    assert sum(services.embedding.batch_sizes) == created.chunks
    assert max(services.embedding.batch_sizes) == MAX_BATCH


async def test_list_documents_pages_over_grpc(services: Services) -> None:
    for name in ["c", "a", "b"]:
        await services.retrieval.IngestDocument(
            retrieval_pb2.IngestDocumentRequest(collection="notes", document_id=name, text=name * 3)
        )

    first = await services.retrieval.ListDocuments(
        retrieval_pb2.ListDocumentsRequest(collection="notes", limit=2)
    )
    second = await services.retrieval.ListDocuments(
        retrieval_pb2.ListDocumentsRequest(collection="notes", limit=2, cursor=first.next_cursor)
    )

    assert [d.document_id for d in first.documents] == ["a", "b"]
    assert ([d.document_id for d in second.documents], second.next_cursor) == (["c"], "")


INVALID_CALLS = [
    ("IngestDocument", ingest_request(text=""), grpc.StatusCode.INVALID_ARGUMENT),
    ("IngestDocument", ingest_request(text="x" * 20_001), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("IngestDocument", ingest_request(collection="Bad Name"), grpc.StatusCode.INVALID_ARGUMENT),
    ("IngestDocument", ingest_request(document_id="a\nb"), grpc.StatusCode.INVALID_ARGUMENT),
    (
        "IngestDocument",
        ingest_request(metadata={str(n): "v" for n in range(65)}),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    ("IngestDocument", ingest_request(title="t" * 1001), grpc.StatusCode.RESOURCE_EXHAUSTED),
    # The public contract's limits (bruno_core.contract), the same as the edge's.
    ("IngestDocument", ingest_request(title="t" * 501), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (
        "IngestDocument",
        ingest_request(metadata={str(n): "v" for n in range(33)}),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    (
        "IngestDocument",
        ingest_request(metadata={"k" * 65: "v"}),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    (
        "IngestDocument",
        ingest_request(metadata={"k": "v" * 1025}),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    ("IngestDocument", ingest_request(document_id=".."), grpc.StatusCode.INVALID_ARGUMENT),
    ("Search", retrieval_pb2.SearchRequest(query="q" * 8001), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("Search", retrieval_pb2.SearchRequest(query=""), grpc.StatusCode.INVALID_ARGUMENT),
    ("Search", retrieval_pb2.SearchRequest(query="q", top_k=51), grpc.StatusCode.INVALID_ARGUMENT),
    ("Search", retrieval_pb2.SearchRequest(query="q", mode=9), grpc.StatusCode.INVALID_ARGUMENT),  # type: ignore[arg-type]
    (
        "Search",
        retrieval_pb2.SearchRequest(query="q", collection="missing"),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "ListDocuments",
        retrieval_pb2.ListDocumentsRequest(limit=501),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListDocuments",
        retrieval_pb2.ListDocumentsRequest(collection="missing"),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "DeleteDocument",
        retrieval_pb2.DeleteDocumentRequest(document_id="nope"),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("DeleteDocument", retrieval_pb2.DeleteDocumentRequest(), grpc.StatusCode.INVALID_ARGUMENT),
]


@pytest.mark.parametrize(("method", "request_message", "code"), INVALID_CALLS)
async def test_bad_requests_get_the_matching_status(
    services: Services, method: str, request_message: Any, code: grpc.StatusCode
) -> None:
    assert await status_of(getattr(services.retrieval, method)(request_message)) == code


@pytest.mark.slow  # waits for gRPC retries to give up
async def test_ingest_is_unavailable_when_embedding_is_down_and_writes_nothing(
    services: Services,
) -> None:
    stub = services.retrieval
    kept = await stub.IngestDocument(ingest_request())
    await services.stop_embedding()

    new = stub.IngestDocument(ingest_request(document_id="new.md"), timeout=15)
    replace = stub.IngestDocument(ingest_request(text="Backups run hourly now."), timeout=15)

    # UNAVAILABLE, not DEADLINE_EXCEEDED: the failure is reported before the caller gives up.
    assert await status_of(new) == grpc.StatusCode.UNAVAILABLE
    assert await status_of(replace) == grpc.StatusCode.UNAVAILABLE
    listed = (await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest())).documents
    assert [(d.document_id, d.content_hash) for d in listed] == [("runbook.md", kept.content_hash)]
    # Text search needs no embedding, so it still reads the intact old version.
    found = await stub.Search(
        retrieval_pb2.SearchRequest(query="velero", top_k=50, mode=retrieval_pb2.SEARCH_MODE_TEXT)
    )
    assert found.hits
    assert all(hit.document_id == "runbook.md" for hit in found.hits)
    vector = stub.Search(retrieval_pb2.SearchRequest(query="velero"), timeout=15)
    assert await status_of(vector) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.slow  # waits for gRPC retries to give up
async def test_ingest_is_unavailable_when_embedding_never_answered(services: Services) -> None:
    await services.stop_embedding()

    call = services.retrieval.IngestDocument(ingest_request(), timeout=15)

    assert await status_of(call) == grpc.StatusCode.UNAVAILABLE
    assert (
        list(
            (await services.retrieval.ListDocuments(retrieval_pb2.ListDocumentsRequest())).documents
        )
        == []
    )


async def test_embedding_failure_mid_document_writes_nothing(services: Services) -> None:
    services.embedding.fail_after_requests = 1  # the first batch succeeds, the second fails

    call = services.retrieval.IngestDocument(ingest_request(text=LONG_RUNBOOK))

    assert await status_of(call) == grpc.StatusCode.INTERNAL
    # Two batches travel at once, so the third may have left before the second failed.
    assert len(services.embedding.batch_sizes) in (2, 3)
    assert (
        list(
            (await services.retrieval.ListDocuments(retrieval_pb2.ListDocumentsRequest())).documents
        )
        == []
    )


async def test_collections_are_listed_deleted_and_reindexed_over_grpc(services: Services) -> None:
    stub = services.retrieval
    await stub.IngestDocument(ingest_request(collection="homelab"))
    await stub.IngestDocument(ingest_request(collection="other", document_id="x"))

    listed = await stub.ListCollections(retrieval_pb2.ListCollectionsRequest())
    deleted = await stub.DeleteCollection(retrieval_pb2.DeleteCollectionRequest(collection="other"))
    services.embedding.model = "hash-64-v2"
    reindexed = await stub.ReindexCollection(
        retrieval_pb2.ReindexCollectionRequest(collection="homelab")
    )
    after = await stub.ListCollections(retrieval_pb2.ListCollectionsRequest())

    assert [(c.name, c.documents, c.embedding_model, c.dimension) for c in listed.collections] == [
        ("homelab", 1, "hash-64", 64),
        ("other", 1, "hash-64", 64),
    ]
    assert deleted.documents_deleted == 1
    assert reindexed.previous_model == "hash-64"
    assert reindexed.collection.embedding_model == "hash-64-v2"
    assert [(c.name, c.embedding_model) for c in after.collections] == [("homelab", "hash-64-v2")]


async def test_during_a_held_reindex_a_delete_answers_and_an_ingest_is_refused_or_queued(
    services: Services, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = services.retrieval
    jobs = jobs_pb2_grpc.JobServiceStub(services.channel)
    await stub.IngestDocument(ingest_request(collection="homelab"))
    await stub.IngestDocument(ingest_request(collection="homelab", document_id="b"))
    services.embedding.model = "hash-64-v2"
    # The embedding service is slow for the reindex's copy of the stored runbook only.
    copying, released = asyncio.Event(), asyncio.Event()
    embed = embedder.embed

    async def slow_for_the_copy(
        texts: list[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
    ) -> Embedded:
        if any("Velero" in text for text in texts):
            copying.set()
            await released.wait()
        return await embed(texts, input_type, model)

    monkeypatch.setattr(embedder, "embed", slow_for_the_copy)
    reindex = asyncio.ensure_future(
        stub.ReindexCollection(retrieval_pb2.ReindexCollectionRequest(collection="homelab"))
    )
    await copying.wait()
    fresh = ingest_request(collection="homelab", document_id="fresh", text="Restic fresh note.")

    async def meanwhile() -> jobs_pb2.IngestDocumentOrJobResponse:
        await stub.DeleteDocument(
            retrieval_pb2.DeleteDocumentRequest(collection="homelab", document_id="b")
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.IngestDocument(fresh)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "is being reindexed" in (refused.value.details() or "")
        # Asking again at once cannot cure it: the status says so to retry policies.
        assert ("grpc-retry-pushback-ms", "-1") in tuple(refused.value.trailing_metadata() or ())
        return await jobs.IngestDocumentOrJob(
            jobs_pb2.IngestDocumentOrJobRequest(document=fresh, owner="ann", wait_ms=20_000)
        )

    # A write waiting for the reindex would wait forever (the copy is held): a hang guard.
    answer = await asyncio.wait_for(meanwhile(), 60)
    assert answer.WhichOneof("result") == "job"
    assert answer.job.state == jobs_pb2.JOB_STATE_QUEUED
    assert not reindex.done()
    released.set()
    reindexed = await reindex

    assert reindexed.collection.embedding_model == "hash-64-v2"
    for _ in range(200):  # the queued job runs after the switch
        job = await jobs.GetJob(jobs_pb2.GetJobRequest(id=answer.job.id, owner="ann"))
        if job.HasField("finished_at"):
            break
        await asyncio.sleep(0.05)
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED
    listed = await stub.ListDocuments(retrieval_pb2.ListDocumentsRequest(collection="homelab"))
    assert [document.document_id for document in listed.documents] == ["fresh", "runbook.md"]
    found = await stub.Search(
        retrieval_pb2.SearchRequest(
            collection="homelab", query="restic fresh", mode=retrieval_pb2.SEARCH_MODE_VECTOR
        )
    )
    assert found.hits[0].document_id == "fresh"


async def test_search_filters_and_heading_paths_over_grpc(services: Services) -> None:
    stub = services.retrieval
    await stub.IngestDocument(ingest_request(metadata={"tags": "ops, backup"}))
    await stub.IngestDocument(ingest_request(document_id="b", metadata={"tags": "dev"}))

    found = await stub.Search(
        retrieval_pb2.SearchRequest(query="velero restore", top_k=5, filters={"tags": "backup"})
    )

    assert {hit.document_id for hit in found.hits} == {"runbook.md"}
    assert found.hits[0].heading_path == "Backups > Restore"


async def test_another_embedding_model_is_failed_precondition_naming_reindex(
    services: Services,
) -> None:
    await services.retrieval.IngestDocument(ingest_request())
    services.embedding.model = "another-model"

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await services.retrieval.Search(retrieval_pb2.SearchRequest(query="velero", top_k=5))

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "bruno reindex default" in (raised.value.details() or "")


@pytest.mark.parametrize(
    "request_",
    [
        retrieval_pb2.SearchRequest(query="q", top_k=51),
        retrieval_pb2.SearchRequest(query="q", collection="nope"),
        retrieval_pb2.SearchRequest(query="q", filters={"": "x"}),
        retrieval_pb2.DeleteCollectionRequest(collection="nope"),
        retrieval_pb2.ReindexCollectionRequest(collection="nope"),
        retrieval_pb2.DeleteCollectionRequest(collection="Bad Name"),
    ],
)
async def test_bad_collection_and_search_requests_are_refused(
    services: Services, request_: Any
) -> None:
    stub = services.retrieval
    method: Any = {
        retrieval_pb2.SearchRequest: stub.Search,
        retrieval_pb2.DeleteCollectionRequest: stub.DeleteCollection,
        retrieval_pb2.ReindexCollectionRequest: stub.ReindexCollection,
    }[type(request_)]

    code = await status_of(method(request_))

    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    listed = await stub.ListCollections(retrieval_pb2.ListCollectionsRequest())
    assert list(listed.collections) == []


async def test_several_clients_ingest_and_search_at_once_without_errors_or_mixed_versions(
    services: Services,
) -> None:
    channels = [services.channel] + [
        create_channel(services.address, timeout_seconds=20) for _ in range(3)
    ]
    stubs = [retrieval_pb2_grpc.RetrievalServiceStub(channel) for channel in channels]

    async def writer(n: int) -> None:
        stub = stubs[n % len(stubs)]
        for version in range(4):
            text = "\n\n".join(
                f"Writer{n} release{version} paragraph {p} velero notes." for p in range(6)
            )
            await stub.IngestDocument(
                retrieval_pb2.IngestDocumentRequest(document_id=f"w{n}", text=text)
            )

    seen_mixed: list[str] = []

    async def reader(n: int) -> int:
        stub = stubs[n % len(stubs)]
        searches = 0
        for _ in range(15):
            found = await stub.Search(
                retrieval_pb2.SearchRequest(query="velero notes paragraph", top_k=20)
            )
            searches += 1
            versions: dict[str, set[str]] = {}
            for hit in found.hits:
                release = next(w for w in hit.text.split() if w.startswith("release"))
                versions.setdefault(hit.document_id, set()).add(release)
            seen_mixed.extend(
                doc for doc, found_versions in versions.items() if len(found_versions) > 1
            )
        return searches

    results = await asyncio.gather(*(writer(n) for n in range(4)), *(reader(n) for n in range(4)))

    assert sum(r for r in results if r) == 60
    assert seen_mixed == []
    listed = await stubs[0].ListDocuments(retrieval_pb2.ListDocumentsRequest())
    assert sorted(d.document_id for d in listed.documents) == ["w0", "w1", "w2", "w3"]
    for channel in channels[1:]:
        await channel.close()


async def test_small_documents_ingested_at_once_share_embedding_batches(
    services: Services,
) -> None:
    texts = [f"Note {n} about velero." for n in range(12)]  # one chunk each

    await asyncio.gather(
        *(
            services.retrieval.IngestDocument(
                retrieval_pb2.IngestDocumentRequest(document_id=f"n{n}", text=text)
            )
            for n, text in enumerate(texts)
        )
    )

    assert sum(services.embedding.batch_sizes) == 12
    assert len(services.embedding.batch_sizes) < 12  # coalesced, not one request per document
    assert max(services.embedding.batch_sizes) <= MAX_BATCH


def query_texts(servicer: HashingEmbeddingServicer) -> list[str]:
    return [
        text
        for texts, kind in servicer.embedder.calls
        if kind == embedding_pb2.INPUT_TYPE_QUERY
        for text in texts
    ]


async def test_a_repeated_question_is_embedded_once(services: Services) -> None:
    await services.retrieval.IngestDocument(ingest_request())
    request = retrieval_pb2.SearchRequest(query="how do I restore velero?", top_k=3)

    first = await services.retrieval.Search(request)
    again = await services.retrieval.Search(request)

    assert query_texts(services.embedding) == ["how do I restore velero?"]
    assert [hit.chunk_id for hit in again.hits] == [hit.chunk_id for hit in first.hits]
    assert [hit.score for hit in again.hits] == [hit.score for hit in first.hits]


async def test_cached_query_vectors_go_when_the_embedding_model_changes(
    services: Services,
) -> None:
    await services.retrieval.IngestDocument(ingest_request())
    cached = retrieval_pb2.SearchRequest(query="velero", top_k=3)
    await services.retrieval.Search(cached)
    services.embedding.model = "another-model"

    # The first answer naming the new model empties the cache...
    with pytest.raises(grpc.aio.AioRpcError):
        await services.retrieval.Search(retrieval_pb2.SearchRequest(query="snapshots"))
    # ...so the cached question is embedded again and meets the model check.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await services.retrieval.Search(cached)

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert query_texts(services.embedding) == ["velero", "snapshots", "velero"]


async def test_the_query_cache_keeps_the_most_recently_used_and_can_be_off(
    services: Services,
) -> None:
    address = f"127.0.0.1:{services.embedding_server.port}"
    query = embedding_pb2.INPUT_TYPE_QUERY
    small = EmbeddingClient(create_channel(address, timeout_seconds=5), query_cache_size=2)
    off = EmbeddingClient(create_channel(address, timeout_seconds=5), query_cache_size=0)
    try:
        for text in ("a", "b", "a", "c", "a", "b"):  # "b" is the least recent when "c" comes
            await small.embed([text], query)
        assert query_texts(services.embedding) == ["a", "b", "c", "b"]

        services.embedding.embedder.calls.clear()
        await off.embed(["a"], query)
        await off.embed(["a"], query)
        assert query_texts(services.embedding) == ["a", "a"]
    finally:
        await small.close()
        await off.close()


async def test_one_call_never_mixes_cached_vectors_with_a_new_models(services: Services) -> None:
    address = f"127.0.0.1:{services.embedding_server.port}"
    client = EmbeddingClient(create_channel(address, timeout_seconds=5), query_cache_size=8)
    query = embedding_pb2.INPUT_TYPE_QUERY
    try:
        [old] = (await client.embed(["cached"], query)).vectors
        services.embedding.model = "another-model"
        services.embedding.embedder.calls.clear()

        # "cached" is a hit, "new" is not, and the answer for "new" names another model.
        embedded = await client.embed(["cached", "new"], query)

        assert embedded.model == "another-model"
        assert query_texts(services.embedding) == ["new", "cached", "new"]  # all re-embedded
        assert len(embedded.vectors) == 2
        assert embedded.vectors[0] == old  # the hash model embeds alike under either name
    finally:
        await client.close()


async def test_the_conversation_service_appends_reads_and_deletes(services: Services) -> None:
    stub = conversations_pb2_grpc.ConversationServiceStub(services.channel)
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.AppendTurns(
            conversations_pb2.AppendTurnsRequest(
                conversation_id="c1", turns=[conversations_pb2.Turn(role="user", content="hi")]
            )
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    appended = await stub.AppendTurns(
        conversations_pb2.AppendTurnsRequest(
            conversation_id="c1",
            create=True,
            turns=[
                conversations_pb2.Turn(role="user", content="hi"),
                conversations_pb2.Turn(role="assistant", content="hello [1]", chunk_ids=["d#0"]),
            ],
        )
    )
    assert appended.turns == 2

    conversation = await stub.GetConversation(
        conversations_pb2.GetConversationRequest(conversation_id="c1", max_turns=1)
    )
    assert [(t.role, t.content, list(t.chunk_ids)) for t in conversation.turns] == [
        ("assistant", "hello [1]", ["d#0"])
    ]
    assert conversation.turns[0].created_at.seconds > 0

    await stub.DeleteConversation(conversations_pb2.DeleteConversationRequest(conversation_id="c1"))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetConversation(conversations_pb2.GetConversationRequest(conversation_id="c1"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.GetConversation(
            conversations_pb2.GetConversationRequest(conversation_id="no spaces please")
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_conversation_service_keeps_conversations_to_their_owner(
    services: Services,
) -> None:
    stub = conversations_pb2_grpc.ConversationServiceStub(services.channel)
    hi = [conversations_pb2.Turn(role="user", content="hi")]
    await stub.AppendTurns(
        conversations_pb2.AppendTurnsRequest(
            conversation_id="c1", turns=hi, create=True, owner="ann"
        )
    )
    mine = await stub.GetConversation(
        conversations_pb2.GetConversationRequest(conversation_id="c1", owner="ann")
    )
    with pytest.raises(grpc.aio.AioRpcError) as theirs:
        await stub.GetConversation(
            conversations_pb2.GetConversationRequest(conversation_id="c1", owner="bob")
        )
    with pytest.raises(grpc.aio.AioRpcError) as deleted:
        await stub.DeleteConversation(
            conversations_pb2.DeleteConversationRequest(conversation_id="c1", owner="bob")
        )

    assert mine.owner == "ann"
    assert theirs.value.code() == deleted.value.code() == grpc.StatusCode.NOT_FOUND
    assert theirs.value.details() == "conversation 'c1' not found"
