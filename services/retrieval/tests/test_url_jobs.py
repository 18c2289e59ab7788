"""URL jobs over a real LanceDB and a real HTTP server on loopback: each page fetched, read and
ingested under the URL asked for, each failure alone, loopback refused unless allowed, a
restart fetching again what it had not accounted for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from bruno_core import InvalidInput
from bruno_core.contract import document_id_from_url
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.jobs import JobState, JobStore, StagedDocument
from bruno_retrieval.jobs.store import DOCUMENTS_TABLE
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.website import Page, Website, redirect

if TYPE_CHECKING:
    from conftest import FakeEmbedder, HoldEmbeddings, JobService

MakeSettings = Callable[..., RetrievalSettings]
LOOPBACK = "127.0.0.1/32"


@pytest.fixture(scope="module")
def site() -> Iterator[Website]:
    pdf = pdf_bytes(
        [
            PdfPage(heading="Manual", paragraphs=["The fan of the rack runs at 1200 rpm."]),
            PdfPage(heading="Wiring", paragraphs=["The relay coil takes 24 volts."]),
        ]
    )
    pages = {
        "/ups.html": Page(
            b"<title>UPS runbook</title><h1>Battery</h1><p>Swap the UPS battery every 3 years.",
            "text/html",
        ),
        "/manual.pdf": Page(pdf, "application/pdf"),
        "/notes.md": Page(b"# Notes\n\nThe NAS wakes at 06:00 sharp.", "text/markdown"),
        "/old-notes": redirect("/notes.md", 301),
        "/photo.png": Page(b"\x89PNG....", "image/png"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
    }
    with Website(pages) as website:
        yield website


@pytest.fixture
def settings(make_settings: MakeSettings) -> RetrievalSettings:
    return make_settings(
        chunk_size_tokens=32, chunk_overlap_tokens=8, fetch_allowed_networks=frozenset({LOOPBACK})
    )


@pytest.fixture
async def service(
    settings: RetrievalSettings, embedder: FakeEmbedder, make_job_service: type[JobService]
) -> AsyncIterator[JobService]:
    async with make_job_service(settings, embedder, fetching=True) as running:
        yield running


async def test_a_url_job_ingests_each_page_under_the_url_asked_for(
    service: JobService, site: Website
) -> None:
    urls = [site.url("/ups.html"), site.url("/manual.pdf"), site.url("/old-notes")]
    job = await service.submit_urls(*urls)

    done = await service.finished(job)

    assert (done.state, done.documents_done, done.documents_failed) == (JobState.SUCCEEDED, 3, 0)
    found = await service.knowledge.search("default", "relay coil volts", top_k=1)
    (hit,) = found.hits
    assert (hit.document_id, hit.source, hit.page) == (
        document_id_from_url(site.url("/manual.pdf")),
        site.url("/manual.pdf"),
        2,
    )
    notes = (await service.knowledge.search("default", "NAS wakes", top_k=1)).hits[0]
    # Filed under the URL asked for, as its source too; where the redirect ended is metadata.
    assert notes.document_id == document_id_from_url(site.url("/old-notes"))
    assert notes.source == site.url("/old-notes")
    assert notes.metadata == {"fetched_url": site.url("/notes.md")}
    assert hit.metadata == {}  # not redirected
    ups = (await service.knowledge.search("default", "UPS battery", top_k=1)).hits[0]
    assert ups.title == "UPS runbook"


async def test_a_url_that_cannot_be_fetched_or_read_fails_alone_saying_why(
    service: JobService, site: Website
) -> None:
    urls = [
        site.url("/missing"),
        site.url("/photo.png"),
        site.url("/to-metadata"),
        site.url("/notes.md"),
    ]
    job = await service.submit_urls(*urls)

    done = await service.finished(job)

    assert (done.state, done.documents_done, done.documents_failed) == (JobState.FAILED, 1, 3)
    errors = {error.source: error.message for error in done.errors}
    assert errors[site.url("/missing")] == "answered 404 Not Found"
    assert "'image/png'" in errors[site.url("/photo.png")]
    assert "169.254.169.254" in errors[site.url("/to-metadata")]
    assert done.reason == "3 of 4 documents failed"


async def test_without_an_allowed_network_a_loopback_url_fails_with_a_clear_error(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    site: Website,
    make_job_service: type[JobService],
) -> None:
    async with make_job_service(make_settings(), embedder, fetching=True) as service:
        job = await service.submit_urls(site.url("/notes.md"))
        done = await service.finished(job)

    assert done.state is JobState.FAILED
    (error,) = done.errors
    assert error.source == site.url("/notes.md")
    assert "resolves to 127.0.0.1, which is not a public address" in error.message
    assert "BRUNO_FETCH_ALLOWED_NETWORKS" in error.message


def test_a_url_that_may_not_be_fetched_is_refused_before_it_is_staged() -> None:
    from bruno.retrieval.v1 import jobs_pb2
    from bruno_retrieval.converters import document_to_fetch

    with pytest.raises(InvalidInput, match="only http and https"):
        document_to_fetch(jobs_pb2.UrlDocument(url="file:///etc/passwd"))


async def test_a_url_job_interrupted_by_a_restart_fetches_what_it_had_not_accounted_for(
    settings: RetrievalSettings,
    embedder: FakeEmbedder,
    hold_embeddings: HoldEmbeddings,
    site: Website,
    make_job_service: type[JobService],
) -> None:
    urls = [site.url("/ups.html"), site.url("/notes.md")]
    async with make_job_service(settings, embedder, fetching=True) as service:
        holding, released = hold_embeddings(embedder, queries_only=False)
        job = await service.submit_urls(*urls)
        await asyncio.wait_for(holding.wait(), 10)
        await service.runner.stop()  # the documents in flight are abandoned, the job running
        released.set()
        assert (await service.jobs.get(job.id)).state is JobState.RUNNING
    fetched_before = len(site.requests)

    async with make_job_service(settings, embedder, fetching=True) as restarted:
        done = await restarted.finished(job)
        staged = await restarted.knowledge._catalog.db.open_table(DOCUMENTS_TABLE)
        assert await staged.count_rows() == 0

    assert (done.state, done.resumes, done.documents_done) == (JobState.SUCCEEDED, 1, 2)
    # A set: the first service's fetch of the page not yet embedded may have been cut short by
    # its stop, and the site's thread can log that request after fetched_before was read.
    assert {path for path, _ in site.requests[fetched_before:]} == {"/notes.md", "/ups.html"}


async def test_a_staging_table_from_before_url_jobs_gets_the_url_column_and_keeps_its_rows(
    settings: RetrievalSettings,
) -> None:
    import lancedb
    import pyarrow as pa

    from bruno_retrieval.jobs.store import _DOCUMENT_SCHEMA

    old_schema = pa.schema([field for field in _DOCUMENT_SCHEMA if field.name != "url"])
    row = {
        "job_id": "a" * 32,
        "position": 0,
        "document_id": "a.md",
        "title": "A",
        "source": "a.md",
        "text": "# A",
        "metadata": "{}",
        "segments": "[]",
    }
    db = await lancedb.connect_async(settings.lancedb_uri)
    old = await db.create_table(DOCUMENTS_TABLE, schema=old_schema)
    await old.add(pa.Table.from_pylist([row], schema=old_schema))

    jobs = await JobStore.open(settings)  # the row's job is unknown: pruned as an orphan
    try:
        await jobs._stage("b" * 32, [StagedDocument.to_fetch("https://wiki.example/a")])
        (staged,) = await jobs.staged("b" * 32, 0, 1)
    finally:
        jobs.close()

    assert staged.url == "https://wiki.example/a"
