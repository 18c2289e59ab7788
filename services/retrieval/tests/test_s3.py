"""The retrieval service with its knowledge base on object storage (``s3://``), end to end over
gRPC, against moto's S3 server on loopback. LanceDB reads the endpoint and credentials from the
standard ``AWS_*`` variables, as it would in a cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import grpc
import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.server import create_server

if TYPE_CHECKING:
    from conftest import FakeEmbedder

BUCKET = "bruno-knowledge"

pytestmark = pytest.mark.slow  # runs an S3 stand-in (moto)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a free loopback port with one bucket; the AWS_* variables point at it."""
    try:
        import boto3  # type: ignore[import-untyped]
        from moto.server import ThreadedMotoServer
    except ImportError as error:  # pragma: no cover - moto[server] is a dev dependency
        pytest.skip(f"moto[server] is not installed: {error}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except OSError as error:  # pragma: no cover - only if loopback sockets are unavailable
        pytest.skip(f"moto's S3 server cannot listen on loopback: {error}")
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in {
        **credentials,
        "AWS_ENDPOINT": url,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


@pytest.fixture
async def settings(s3: str) -> RetrievalSettings:
    # moto keeps one store per process: a fresh prefix per test keeps tests apart.
    return RetrievalSettings(
        retrieval_listen_addr="127.0.0.1:0",
        lancedb_uri=f"s3://{BUCKET}/kb-{uuid.uuid4().hex}",
        chunk_size_tokens=32,
        chunk_overlap_tokens=8,
        grpc_grace_seconds=0,
    )


@pytest.fixture
async def stub(
    settings: RetrievalSettings, embedder: FakeEmbedder
) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceAsyncStub]:
    server = await create_server(settings, embedder=embedder)
    port = await server.start()
    channel = create_channel(f"127.0.0.1:{port}", timeout_seconds=30)
    yield retrieval_pb2_grpc.RetrievalServiceStub(channel)
    await channel.close()
    await server.stop()


RUNBOOK = (
    "# Backups\n\nVelero snapshots every volume at night.\n\n"
    "## Restore\n\nRun velero restore create and check that the pods come back.\n"
)


async def test_ingest_search_and_delete_work_on_s3(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
) -> None:
    ingested = await stub.IngestDocument(
        retrieval_pb2.IngestDocumentRequest(
            document_id="runbook.md", text=RUNBOOK, metadata={"tags": "ops"}
        )
    )
    again = await stub.IngestDocument(
        retrieval_pb2.IngestDocumentRequest(document_id="runbook.md", text=RUNBOOK)
    )
    modes = (
        retrieval_pb2.SEARCH_MODE_HYBRID,
        retrieval_pb2.SEARCH_MODE_VECTOR,
        retrieval_pb2.SEARCH_MODE_TEXT,
    )
    found = [
        await stub.Search(
            retrieval_pb2.SearchRequest(
                query="velero restore", top_k=3, mode=mode, filters={"tags": "ops"}
            )
        )
        for mode in modes
    ]
    deleted = await stub.DeleteDocument(
        retrieval_pb2.DeleteDocumentRequest(document_id="runbook.md")
    )
    after = await stub.Search(retrieval_pb2.SearchRequest(query="velero restore", top_k=3))

    assert ingested.outcome == retrieval_pb2.INGEST_OUTCOME_CREATED
    assert again.outcome == retrieval_pb2.INGEST_OUTCOME_UNCHANGED
    assert all(result.hits[0].document_id == "runbook.md" for result in found)
    assert deleted.chunks_deleted == ingested.chunks
    assert list(after.hits) == []


async def test_collections_on_s3_survive_a_restart_and_can_be_dropped(
    settings: RetrievalSettings, embedder: FakeEmbedder
) -> None:
    server = await create_server(settings, embedder=embedder)
    port = await server.start()
    async with create_channel(f"127.0.0.1:{port}", timeout_seconds=30) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        await stub.IngestDocument(
            retrieval_pb2.IngestDocumentRequest(collection="homelab", document_id="a", text=RUNBOOK)
        )
    await server.stop()

    restarted = await create_server(settings, embedder=embedder)
    port = await restarted.start()
    async with create_channel(f"127.0.0.1:{port}", timeout_seconds=30) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        listed = await stub.ListCollections(retrieval_pb2.ListCollectionsRequest())
        found = await stub.Search(
            retrieval_pb2.SearchRequest(collection="homelab", query="velero", top_k=1)
        )
        dropped = await stub.DeleteCollection(
            retrieval_pb2.DeleteCollectionRequest(collection="homelab")
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Search(
                retrieval_pb2.SearchRequest(collection="homelab", query="velero", top_k=1)
            )
    await restarted.stop()

    assert [(c.name, c.documents) for c in listed.collections] == [("homelab", 1)]
    assert found.hits[0].document_id == "a"
    assert dropped.documents_deleted == 1
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
