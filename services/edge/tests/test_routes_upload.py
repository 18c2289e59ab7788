"""``POST /api/v1/documents/upload``: files in, one document and one result entry each."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from bruno_core.errors import PROBLEM_CONTENT_TYPE

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
    [("photo.png", "image/png"), ("doc.pdf", "text/plain"), ("archive", "application/zip")],
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


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"  \n\t", "holds no text"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"restore\x00the volume", "control character (U+0000)"),
    ],
)
async def test_an_empty_or_binary_file_is_a_422_problem_and_nothing_is_written(
    edge: Edge, content: bytes, detail: str
) -> None:
    files = [
        ("files", ("ok.md", b"# Fine\n", "text/markdown")),
        ("files", ("bad.txt", content, "text/plain")),
    ]

    response = await edge.client.post(UPLOAD, files=files)

    assert response.status_code == 422
    assert detail in response.json()["detail"]
    assert edge.retrieval.documents == {}


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
