"""``POST /api/v1/documents/upload``: files in, one document and one result entry each."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from bruno_core.errors import PROBLEM_CONTENT_TYPE
from bruno_testing.documents import DocxSection, PdfPage, docx_bytes, pdf_bytes

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory

UPLOAD = "/api/v1/documents/upload"
HTML = (
    "<html><head><title>Restore guide</title><style>p {color: red}</style></head><body>"
    "<h1>Restore</h1><p>Run <b>velero restore</b> create.</p><script>alert(1)</script>"
    "<h2>Check</h2><p>Pods &amp; volumes come back.</p></body></html>"
)


async def test_each_supported_file_becomes_a_document_with_a_result_entry(edge: Edge) -> None:
    files = [
        ("files", ("runbook.md", b"# Disk full\n\nDelete snapshots.\n", "text/markdown")),
        ("files", ("notes.txt", b"Plain notes.", "text/plain")),
        ("files", ("guide.rst", b"Guide\n=====\n\nUse velero.\n", "text/x-rst")),
        ("files", ("restore.html", HTML.encode(), "text/html")),
    ]

    response = await edge.client.post(UPLOAD, files=files, data={"collection": "homelab"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["collection"] == "homelab"
    assert [(f["filename"], f["document_id"], f["status"]) for f in body["files"]] == [
        ("runbook.md", "runbook.md", "created"),
        ("notes.txt", "notes.txt", "created"),
        ("guide.rst", "guide.rst", "created"),
        ("restore.html", "restore.html", "created"),
    ]
    stored = {doc_id: doc for (_, doc_id), doc in edge.retrieval.documents.items()}
    assert stored["runbook.md"].title == "Disk full"
    assert stored["guide.rst"].title == "Guide"
    html = stored["restore.html"]
    assert html.title == "Restore guide"
    assert (
        html.text
        == "# Restore\n\nRun velero restore create.\n\n## Check\n\nPods & volumes come back."
    )


async def test_uploading_the_same_file_again_is_unchanged(edge: Edge) -> None:
    files = [("files", ("a.md", b"# A\n\nText.", "text/markdown"))]
    await edge.client.post(UPLOAD, files=files)

    response = await edge.client.post(UPLOAD, files=files)

    assert response.json()["files"][0]["status"] == "unchanged"


async def test_an_unknown_suffix_is_read_by_its_media_type_only_without_a_suffix(
    edge: Edge,
) -> None:
    response = await edge.client.post(UPLOAD, files=[("files", ("README", b"Hi.", "text/plain"))])

    assert response.status_code == 200
    assert response.json()["files"][0]["document_id"] == "README"


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("photo.png", "image/png"), ("slides.pptx", "text/plain"), ("archive", "application/zip")],
)
async def test_an_unsupported_file_type_is_a_415_problem_and_nothing_is_written(
    edge: Edge, filename: str, content_type: str
) -> None:
    files = [
        ("files", ("ok.md", b"# Fine\n", "text/markdown")),
        ("files", (filename, b"\x89PNG....", content_type)),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert filename in response.json()["detail"]
    assert edge.retrieval.documents == {}


SCAN = pdf_bytes([PdfPage(scan=True, paragraphs=["Receipt: 42 EUR"])])
MANUAL = pdf_bytes(
    [
        PdfPage(heading="Installation", paragraphs=["Place the UPS on a flat surface."]),
        PdfPage(
            heading="Specifications",
            paragraphs=["At half load the runtime is fourteen minutes."],
            table=[["Model", "Output"], ["UPS 1500", "900 W"]],
        ),
    ],
    title="UPS 1500 manual",
)
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("filename", "content", "content_type", "detail"),
    [
        ("blank.txt", b"  \n\t", "text/plain", "'blank.txt' holds no text"),
        ("binary.txt", b"\xff\xfe\x00bad", "text/plain", "'binary.txt' is not UTF-8 text"),
        ("nul.txt", b"restore\x00the volume", "text/plain", "control character (U+0000)"),
        ("receipt.pdf", SCAN, PDF, "'receipt.pdf' has no text layer (a scanned document?)"),
        ("locked.pdf", pdf_bytes([PdfPage(paragraphs=["x"])], password="pw"), PDF, "encrypted"),
        ("cut.pdf", MANUAL[: len(MANUAL) // 2], PDF, "'cut.pdf' is truncated"),
        ("cut.docx", docx_bytes([DocxSection("A")])[:-100], DOCX, "damaged or truncated"),
    ],
)
async def test_a_file_that_cannot_be_read_fails_in_its_entry_and_the_others_are_ingested(
    edge: Edge, filename: str, content: bytes, content_type: str, detail: str
) -> None:
    files = [
        ("files", ("ok.md", b"# Fine\n", "text/markdown")),
        ("files", (filename, content, content_type)),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 200, response.text
    ok, failed = response.json()["files"]
    assert (ok["filename"], ok["status"]) == ("ok.md", "created")
    assert (failed["filename"], failed["status"], failed["chunks"]) == (filename, "failed", 0)
    assert detail in failed["detail"]
    assert [doc_id for _, doc_id in edge.retrieval.documents] == ["ok.md"]


async def test_a_lone_file_that_cannot_be_read_is_a_422_problem_saying_why(edge: Edge) -> None:
    response = await edge.client.post(UPLOAD, files=[("file", ("receipt.pdf", SCAN, PDF))])

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert "has no text layer" in response.json()["detail"]
    assert "OCR is not supported" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_a_pdf_and_a_docx_are_stored_as_markdown_under_their_own_titles(edge: Edge) -> None:
    runbook = docx_bytes(
        [DocxSection("Router runbook", bullets=["Back up the config.", "Reboot."])]
    )
    files = [("files", ("manual.pdf", MANUAL, PDF)), ("files", ("runbook.docx", runbook, DOCX))]

    response = await edge.client.post(UPLOAD, files=files)

    assert [f["status"] for f in response.json()["files"]] == ["created", "created"]
    stored = {doc_id: doc for (_, doc_id), doc in edge.retrieval.documents.items()}
    manual = stored["manual.pdf"]
    assert (manual.title, manual.source) == ("UPS 1500 manual", "manual.pdf")
    assert manual.text.startswith("# Installation\n\nPlace the UPS on a flat surface.\n\n")
    assert "| Model | Output |\n| --- | --- |\n| UPS 1500 | 900 W |" in manual.text
    assert stored["runbook.docx"].title == "Router runbook"
    assert "- Back up the config.\n- Reboot." in stored["runbook.docx"].text


async def test_a_pdf_is_bounded_by_the_file_limit_not_the_text_limit(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(max_document_bytes=len(MANUAL) - 1, max_file_bytes=len(MANUAL))
    files = [("files", ("manual.pdf", MANUAL, PDF))]

    accepted = await edge.client.post(UPLOAD, files=files)
    edge = await edge_factory(max_file_bytes=len(MANUAL) - 1)
    refused = await edge.client.post(UPLOAD, files=files)

    assert accepted.json()["files"][0]["status"] == "created"
    assert refused.status_code == 413
    assert "'manual.pdf' is larger than the limit" in refused.json()["detail"]


async def test_an_upload_may_be_larger_than_other_requests_up_to_its_own_limit(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(max_request_bytes=1024, max_upload_bytes=len(MANUAL) + 1024)

    within = await edge.client.post(UPLOAD, files=[("files", ("manual.pdf", MANUAL, PDF))])
    beyond = await edge.client.post(
        UPLOAD, files=[("files", ("manual.pdf", MANUAL + b" " * 2048, PDF))]
    )
    other = await edge.client.post("/api/v1/search", json={"query": "x" * 2000})

    assert within.status_code == 200, within.text
    assert beyond.status_code == 413
    assert other.status_code == 413


async def test_a_pdf_with_more_pages_than_the_limit_is_a_413_problem(
    edge_factory: EdgeFactory,
) -> None:
    edge = await edge_factory(max_document_pages=1)

    response = await edge.client.post(UPLOAD, files=[("files", ("manual.pdf", MANUAL, PDF))])

    assert response.status_code == 413
    assert "has 2 pages, more than the limit of 1" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_the_collection_may_come_from_the_query_as_on_every_other_document_route(
    edge: Edge,
) -> None:
    response = await edge.client.post(
        f"{UPLOAD}?collection=homelab", files=[("files", ("a.md", b"# A", "text/markdown"))]
    )

    assert response.json()["collection"] == "homelab"
    assert list(edge.retrieval.documents) == [("homelab", "a.md")]


async def test_the_same_collection_in_query_and_form_is_accepted(edge: Edge) -> None:
    response = await edge.client.post(
        f"{UPLOAD}?collection=homelab",
        files=[("files", ("a.md", b"# A", "text/markdown"))],
        data={"collection": "homelab"},
    )

    assert response.status_code == 200
    assert list(edge.retrieval.documents) == [("homelab", "a.md")]


async def test_different_collections_in_query_and_form_are_a_422_problem(edge: Edge) -> None:
    response = await edge.client.post(
        f"{UPLOAD}?collection=homelab",
        files=[("files", ("a.md", b"# A", "text/markdown"))],
        data={"collection": "work"},
    )

    assert response.status_code == 422
    assert "'homelab' in the query but 'work' in the form" in response.json()["detail"]
    assert edge.retrieval.documents == {}


@pytest.mark.parametrize(
    ("query", "data", "unknown"),
    [
        ("?colection=homelab", {}, "'colection'"),
        ("", {"collection_name": "x"}, "'collection_name'"),
    ],
)
async def test_an_unknown_query_parameter_or_form_field_is_a_422_problem(
    edge: Edge, query: str, data: dict[str, str], unknown: str
) -> None:
    response = await edge.client.post(
        f"{UPLOAD}{query}", files=[("files", ("a.md", b"# A", "text/markdown"))], data=data
    )

    assert response.status_code == 422
    assert f"unknown parameter(s) {unknown}" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_a_single_file_may_be_sent_as_file_beside_files(edge: Edge) -> None:
    response = await edge.client.post(
        UPLOAD,
        files=[
            ("file", ("one.md", b"# One", "text/markdown")),
            ("files", ("two.md", b"# Two", "text/markdown")),
        ],
    )

    assert response.status_code == 200, response.text
    assert sorted(f["filename"] for f in response.json()["files"]) == ["one.md", "two.md"]
    assert sorted(doc_id for _, doc_id in edge.retrieval.documents) == ["one.md", "two.md"]


async def test_a_file_over_the_document_limit_is_a_413_problem(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(max_document_bytes=1000)

    response = await edge.client.post(
        UPLOAD, files=[("files", ("big.txt", b"x" * 1001, "text/plain"))]
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert edge.retrieval.documents == {}


async def test_too_many_files_or_none_are_a_422_problem(edge: Edge) -> None:
    many = [("files", (f"f{n}.txt", b"x", "text/plain")) for n in range(33)]

    too_many = await edge.client.post(UPLOAD, files=many)
    none = await edge.client.post(UPLOAD, data={"collection": "default"})

    assert (too_many.status_code, none.status_code) == (422, 422)
    assert edge.retrieval.documents == {}


async def test_a_file_named_dot_dot_is_a_422_problem_not_document_dot_dot(edge: Edge) -> None:
    files = [
        ("files", ("ok.md", b"# Fine\n", "text/markdown")),
        ("files", ("..", b"Plain notes.", "text/plain")),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 422
    assert "not a usable file name" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_a_file_named_upload_is_a_422_problem_as_its_id_is_reserved(edge: Edge) -> None:
    files = [
        ("files", ("ok.md", b"# Fine\n", "text/markdown")),
        ("files", ("upload", b"Plain notes.", "text/plain")),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 422
    assert "reserved" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_a_file_name_with_a_control_character_is_a_422_problem(edge: Edge) -> None:
    # Browsers and httpx percent-encode it; curl and hand-made clients send the raw byte.
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="files"; filename="notes\x07.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nPlain notes.\r\n--b--\r\n"
    )

    response = await edge.client.post(
        UPLOAD, content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )

    assert response.status_code == 422
    assert "control character" in response.json()["detail"]
    assert edge.retrieval.documents == {}


async def test_a_dotted_file_name_keeps_its_name_as_id(edge: Edge) -> None:
    files = [("files", (".env.md", b"# Env\n\nVariables.", "text/markdown"))]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.json()["files"][0]["document_id"] == ".env.md"


async def test_two_files_with_one_name_are_a_422_problem(edge: Edge) -> None:
    files = [
        ("files", ("a.md", b"one", "text/markdown")),
        ("files", ("a.md", b"two", "text/markdown")),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 422
    assert edge.retrieval.documents == {}


async def test_a_bad_collection_name_is_a_422_problem(edge: Edge) -> None:
    response = await edge.client.post(
        UPLOAD, files=[("files", ("a.md", b"x", "text/markdown"))], data={"collection": "Bad!"}
    )

    assert response.status_code == 422
    assert edge.retrieval.documents == {}


async def test_path_parts_of_a_file_name_are_dropped(edge: Edge) -> None:
    response = await edge.client.post(
        UPLOAD, files=[("files", ("../../etc/my notes.md", b"# N\n\nx", "text/markdown"))]
    )

    assert response.json()["files"][0]["document_id"] == "my-notes.md"


async def test_retrieval_down_for_every_file_is_a_503_problem(edge: Edge) -> None:
    edge.retrieval.fail_with = grpc.StatusCode.UNAVAILABLE

    response = await edge.client.post(UPLOAD, files=[("files", ("a.md", b"x", "text/markdown"))])

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE


async def test_upload_needs_an_api_key(edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(api_keys="secret")

    response = await edge.client.post(UPLOAD, files=[("files", ("a.md", b"x", "text/markdown"))])

    assert response.status_code == 401
    assert edge.retrieval.documents == {}


async def test_an_upload_whose_wait_runs_out_answers_202_with_the_job_of_its_files(
    edge_factory: EdgeFactory,
) -> None:
    # A wait that is over before any file is sent: every file goes to one job.
    edge = await edge_factory(ingest_wait_seconds=1e-6)
    files = [
        ("files", ("a.md", b"# A\n\nAlpha.", "text/markdown")),
        ("files", ("b.md", b"# B\n\nBeta.", "text/markdown")),
    ]

    response = await edge.client.post(UPLOAD, files=files, params={"collection": "homelab"})

    assert response.status_code == 202, response.text
    body = response.json()
    [job] = body["jobs"]
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{job['id']}"
    assert (job["collection"], job["documents"]["total"]) == ("homelab", 2)
    assert [(f["filename"], f["status"], f["job_id"]) for f in body["files"]] == [
        ("a.md", "queued", job["id"]),
        ("b.md", "queued", job["id"]),
    ]
    # The fake runs a job as it is submitted: each file ingested once, by the job.
    assert sorted(doc_id for _, doc_id in edge.retrieval.documents) == ["a.md", "b.md"]


async def test_an_upload_done_within_its_wait_answers_each_file_and_no_job(edge: Edge) -> None:
    files = [("files", ("a.md", b"# A\n\nAlpha.", "text/markdown"))]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 200, response.text
    assert response.json()["files"][0]["status"] == "created"
    assert "location" not in response.headers
    assert edge.jobs.jobs == []
