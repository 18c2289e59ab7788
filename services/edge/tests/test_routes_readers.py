"""Retrieval as a writer and readers (``BRUNO_RETRIEVAL_READER_ADDR``): writes go to the writer,
reads to the readers, a write's ``Bruno-Consistency-Token`` makes a later read see it, a reader
that cannot answer hands the read to the writer, and ``/ready`` reports both roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from bruno.retrieval.v1 import retrieval_pb2
from bruno_core import Unavailable
from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_testing.fakes import FakeServices

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

TOKEN = "Bruno-Consistency-Token"


@pytest.fixture
async def readers() -> AsyncIterator[FakeServices]:
    """A second retrieval fake: the readers' address (its generation and embedding unused)."""
    async with FakeServices() as fakes:
        yield fakes


@pytest.fixture
async def split(edge_factory: EdgeFactory, readers: FakeServices) -> Edge:
    return await edge_factory(retrieval_reader_addr=readers.addr("retrieval"))


async def test_writes_go_to_the_writer_and_reads_to_the_readers(
    split: Edge, readers: FakeServices
) -> None:
    # The readers hold a copy, as readers of the same tables would.
    await split.ingest("Velero backs up the cluster nightly.", id="velero.md")
    await readers.retrieval.IngestDocument(
        retrieval_pb2.IngestDocumentRequest(
            document_id="velero.md", text="Velero backs up the cluster nightly."
        ),
        None,  # type: ignore[arg-type]  # the fake reads nothing of the context
    )
    readers.retrieval.ingested.clear()

    searched = await split.client.post("/api/v1/search", json={"query": "velero"})
    listed = await split.client.get("/api/v1/documents")
    collections = await split.client.get("/api/v1/collections")
    deleted = await split.client.delete("/api/v1/documents/velero.md")

    assert searched.status_code == listed.status_code == collections.status_code == 200
    assert deleted.status_code == 204
    assert split.retrieval.ingested == ["velero.md"]
    assert readers.retrieval.ingested == []
    assert [s.query for s in readers.retrieval.searches] == ["velero"]
    assert split.retrieval.searches == []
    assert len(readers.retrieval.listings) == 1
    assert split.retrieval.listings == []
    assert ("default", "velero.md") not in split.retrieval.documents  # deleted on the writer
    assert ("default", "velero.md") in readers.retrieval.documents


async def test_a_writes_token_is_answered_and_a_read_sending_it_asks_for_that_version(
    split: Edge, readers: FakeServices
) -> None:
    ingested = await split.ingest("Velero backs up the cluster nightly.", id="velero.md")
    token = ingested.headers[TOKEN]
    await split.client.post("/api/v1/search", json={"query": "velero"}, headers={TOKEN: token})
    await split.client.get("/api/v1/documents", headers={TOKEN: token})
    plain = await split.client.post("/api/v1/search", json={"query": "velero"})
    deleted = await split.client.delete("/api/v1/documents/velero.md")

    assert token == "default@1"
    assert readers.retrieval.searches[0].at_least == retrieval_pb2.Committed(
        table="default", version=1
    )
    assert readers.retrieval.listings[0].at_least.version == 1
    assert plain.status_code == 200
    assert not readers.retrieval.searches[1].HasField("at_least")
    assert deleted.headers[TOKEN] == "default@2"


async def test_a_chat_sending_a_token_retrieves_its_passages_at_that_version(
    split: Edge, readers: FakeServices
) -> None:
    token = (await split.ingest("Velero backs up the cluster nightly.", id="velero.md")).headers[
        TOKEN
    ]
    question = {"role": "user", "content": "velero"}

    chatted = await split.client.post(
        "/api/v1/chat", json={"message": "velero"}, headers={TOKEN: token}
    )
    completed = await split.client.post(
        "/v1/chat/completions",
        json={"model": "bruno", "messages": [question]},
        headers={TOKEN: token},
    )
    plain = await split.client.post("/api/v1/chat", json={"message": "velero"})

    assert chatted.status_code == completed.status_code == plain.status_code == 200
    version = retrieval_pb2.Committed(table="default", version=1)
    assert [s.at_least for s in readers.retrieval.searches[:2]] == [version, version]
    assert not readers.retrieval.searches[2].HasField("at_least")


async def test_a_malformed_token_on_a_chat_completion_is_an_openai_400(
    split: Edge, readers: FakeServices
) -> None:
    response = await split.client.post(
        "/v1/chat/completions",
        json={"model": "bruno", "messages": [{"role": "user", "content": "velero"}]},
        headers={TOKEN: "default@x"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert readers.retrieval.searches == []


async def test_an_upload_answers_the_token_of_its_last_commit(split: Edge) -> None:
    uploaded = await split.client.post(
        "/api/v1/documents/upload",
        files=[
            ("files", ("a.md", b"# A\n\nFirst.", "text/markdown")),
            ("files", ("b.md", b"# B\n\nSecond.", "text/markdown")),
        ],
    )

    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.headers[TOKEN] == "default@2"  # the later of the two commits


@pytest.mark.parametrize("token", ["default", "default@0", "default@x", "a b@1", "x" * 400 + "@1"])
async def test_a_malformed_token_is_refused_before_retrieval_is_asked(
    split: Edge, readers: FakeServices, token: str
) -> None:
    response = await split.client.post(
        "/api/v1/search", json={"query": "velero"}, headers={TOKEN: token}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert readers.retrieval.searches == []


async def test_a_read_the_readers_cannot_answer_is_asked_of_the_writer(
    split: Edge, readers: FakeServices
) -> None:
    await split.ingest("Velero backs up the cluster nightly.", id="velero.md")
    readers.retrieval.fail_with = Unavailable("this reader has not yet seen version 1")

    response = await split.client.post(
        "/api/v1/search", json={"query": "velero"}, headers={TOKEN: "default@1"}
    )

    assert response.status_code == 200
    assert [hit["document_id"] for hit in response.json()["results"]] == ["velero.md"]
    assert [s.query for s in split.retrieval.searches] == ["velero"]


async def test_ready_reports_both_roles(split: Edge) -> None:
    response = await split.client.get("/ready")

    assert response.status_code == 200
    assert response.json()["checks"] == {
        "retrieval": "SERVING",
        "retrieval-reader": "SERVING",
        "generation": "SERVING",
        "embedding": "SERVING",
    }


async def test_ready_is_degraded_while_the_writer_is_down_and_readers_serve(split: Edge) -> None:
    await split.downstreams.servers["retrieval"].stop()

    response = await split.client.get("/ready")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["retrieval"] != "SERVING"
    assert "writes fail" in response.json()["detail"]


async def test_not_ready_while_the_readers_are_down(split: Edge, readers: FakeServices) -> None:
    await readers.servers["retrieval"].stop()

    response = await split.client.get("/ready")

    assert response.status_code == 503
    assert "retrieval-reader" in response.json()["detail"]


async def test_openapi_declares_the_token_writes_answer_and_reads_take(split: Edge) -> None:
    paths = (await split.client.get("/openapi.json")).json()["paths"]

    answered = {
        ("/api/v1/documents", "post", "201"),
        ("/api/v1/documents", "post", "200"),
        ("/api/v1/documents/upload", "post", "200"),
        ("/api/v1/documents/{document_id}", "delete", "204"),
    }
    for path, method, status in answered:
        assert TOKEN in paths[path][method]["responses"][status].get("headers", {}), path
    taking = [
        ("/api/v1/search", "post"),
        ("/api/v1/documents", "get"),
        ("/api/v1/chat", "post"),
        ("/v1/chat/completions", "post"),
    ]
    for path, method in taking:
        taken = {(p["name"], p["in"]) for p in paths[path][method]["parameters"]}
        assert (TOKEN, "header") in taken, path
