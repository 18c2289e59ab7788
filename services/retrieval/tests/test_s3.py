"""The retrieval service with its knowledge base on object storage (``s3://``), end to end over
gRPC, against moto's S3 server on loopback. LanceDB reads the endpoint and credentials from the
standard ``AWS_*`` variables, as it would in a cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import grpc
import lancedb
import pyarrow as pa
import pytest

from bruno.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from bruno_core import create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.server import create_server
from bruno_testing.s3_standin import BUCKET, S3StandIn

if TYPE_CHECKING:
    from conftest import FakeEmbedder

pytestmark = pytest.mark.slow  # runs an S3 stand-in (moto)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3StandIn]:
    """moto's S3 server on loopback with one bucket; the AWS_* variables point at it."""
    with S3StandIn() as standin:
        for name, value in standin.env.items():
            monkeypatch.setenv(name, value)
        yield standin


@pytest.fixture
async def settings(s3: S3StandIn) -> RetrievalSettings:
    return RetrievalSettings(
        retrieval_listen_addr="127.0.0.1:0",
        lancedb_uri=s3.uri(),
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


# --- concurrency: is it safe for two processes to commit to one table on S3? ----------------

# Each writer process appends its own rows, one commit each, as fast as it can, and prints how
# many commits succeeded and how many were refused.
_RACING_WRITER = """
import asyncio, sys
import lancedb, pyarrow as pa

async def main(uri: str, name: str, commits: int) -> None:
    table = await (await lancedb.connect_async(uri)).open_table("race")
    done = refused = 0
    for i in range(commits):
        try:
            await table.add(pa.table({"id": [f"{name}-{i}"]}))
            done += 1
        except Exception as error:
            refused += 1
            print(f"refused: {error}", file=sys.stderr)
    print(done, refused)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""
COMMITS_PER_WRITER = 12


async def _race_two_writers(s3: S3StandIn) -> tuple[int, int, list[str]]:
    """(commits done, commits refused, rows present) after two processes race their commits."""
    uri = s3.uri("race")
    db = await lancedb.connect_async(uri)
    await db.create_table("race", schema=pa.schema([pa.field("id", pa.string())]))
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACING_WRITER,
            uri,
            name,
            str(COMMITS_PER_WRITER),
            stdout=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    outputs = [(await writer.communicate())[0].split() for writer in writers]
    table = await db.open_table("race")
    rows = (await table.query().to_arrow()).column("id").to_pylist()
    return sum(int(o[0]) for o in outputs), sum(int(o[1]) for o in outputs), rows


def test_the_s3_stand_in_refuses_a_conditional_put_of_an_existing_key(s3: S3StandIn) -> None:
    import boto3  # type: ignore[import-untyped]
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    client = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1")
    client.put_object(Bucket=BUCKET, Key="manifest", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=BUCKET, Key="manifest", Body=b"second", IfNoneMatch="*")

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=BUCKET, Key="manifest")["Body"].read() == b"first"


async def test_two_writer_processes_racing_on_one_table_lose_no_commit(s3: S3StandIn) -> None:
    """LanceDB commits a version by writing its manifest with ``If-None-Match: *``; the loser of
    a race is refused by the store, rebases on the winner's version and commits again. So
    every commit is either present or reported refused, never silently lost. (Against a store
    that ignores the condition the same race loses commits: docs/operations.md.)"""
    done, refused, rows = await _race_two_writers(s3)

    assert done + refused == 2 * COMMITS_PER_WRITER
    assert sorted(rows) == sorted(set(rows))
    assert len(rows) == done
