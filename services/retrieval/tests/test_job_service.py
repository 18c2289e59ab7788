"""``JobService`` over a real gRPC server: a client-streamed submission, owners, bad streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
import pytest

from bruno.retrieval.v1 import jobs_pb2, jobs_pb2_grpc, retrieval_pb2
from bruno_core import create_channel
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.server import create_server

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeSettings = Callable[..., RetrievalSettings]
Part = jobs_pb2.SubmitIngestJobRequest


@pytest.fixture
async def jobs(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> AsyncIterator[jobs_pb2_grpc.JobServiceAsyncStub]:
    settings = make_settings(retrieval_listen_addr="127.0.0.1:0", grpc_grace_seconds=0)
    server = await create_server(settings, embedder=embedder)
    port = await server.start()
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            yield jobs_pb2_grpc.JobServiceStub(channel)
    finally:
        await server.stop()


def doc(name: str, text: str = "Restic keeps the backups of the NAS.") -> Part:
    return Part(
        document=retrieval_pb2.IngestDocumentRequest(document_id=name, source=name, text=text)
    )


async def until_finished(jobs: jobs_pb2_grpc.JobServiceAsyncStub, job_id: str) -> jobs_pb2.Job:
    for _ in range(200):
        job = await jobs.GetJob(jobs_pb2.GetJobRequest(id=job_id, owner="ann"))
        if job.HasField("finished_at"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not finish")


async def test_a_streamed_submission_becomes_a_job_that_ingests_its_documents(
    jobs: jobs_pb2_grpc.JobServiceAsyncStub,
) -> None:
    rejected = jobs_pb2.DocumentError(document_id="scan.pdf", source="scan.pdf", message="a scan")
    parts = [
        Part(header=jobs_pb2.IngestJobHeader(collection="notes", owner="ann")),
        doc("a.md"),
        Part(rejected=rejected),
        doc("b.md"),
    ]

    job = await jobs.SubmitIngestJob(iter(parts))
    assert (job.kind, job.collection, job.documents_total) == (jobs_pb2.JOB_KIND_INGEST, "notes", 3)

    done = await until_finished(jobs, job.id)
    assert (done.state, done.documents_done, done.documents_failed) == (
        jobs_pb2.JOB_STATE_FAILED,
        2,
        1,
    )
    assert [e.message for e in done.errors] == ["a scan"]
    listed = await jobs.ListJobs(jobs_pb2.ListJobsRequest(owner="ann"))
    assert [j.id for j in listed.jobs] == [job.id]


async def test_another_owners_job_is_not_found(jobs: jobs_pb2_grpc.JobServiceAsyncStub) -> None:
    parts = [Part(header=jobs_pb2.IngestJobHeader(owner="ann")), doc("a.md")]
    job = await jobs.SubmitIngestJob(iter(parts))

    for call in (
        jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id, owner="bob")),
        jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id, owner="bob")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [doc("a.md")],
        [Part(header=jobs_pb2.IngestJobHeader()), Part(header=jobs_pb2.IngestJobHeader())],
        [
            Part(header=jobs_pb2.IngestJobHeader(collection="notes")),
            Part(document=retrieval_pb2.IngestDocumentRequest(collection="other", text="Text.")),
        ],
        [Part(header=jobs_pb2.IngestJobHeader())],
    ],
    ids=["empty", "no-header", "two-headers", "another-collection", "no-documents"],
)
async def test_a_malformed_submission_is_invalid_and_leaves_no_job(
    jobs: jobs_pb2_grpc.JobServiceAsyncStub, parts: list[Part]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await jobs.SubmitIngestJob(iter(parts))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await jobs.ListJobs(jobs_pb2.ListJobsRequest())).jobs == []
