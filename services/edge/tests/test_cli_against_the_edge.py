"""The ``bruno`` command line (``bruno_cli``) against the edge app in-process, in front of the
fake services of this suite: what each command sends and what it prints."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from bruno_cli import run
from bruno_cli.ingest import JOB_THRESHOLD, SYNC_ROOT_KEY, document_id_for
from bruno_core.contract import content_hash
from bruno_testing.documents import DocxSection, PdfPage, docx_bytes, pdf_bytes
from bruno_testing.fakes import StoredDocument

if TYPE_CHECKING:
    from conftest import Edge, EdgeFactory


async def run_cli(edge: Edge, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(list(argv), transport=httpx.ASGITransport(edge.app), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk full.md").write_text(
        "Intro line\n\n# Disk full\n\nDelete old snapshots.\n", encoding="utf-8"
    )
    (root / "notes.txt").write_text("Plain notes about the cluster.\n", encoding="utf-8")
    (root / "guide.rst").write_text("Restore guide\n=============\n\nUse velero.\n")
    (root / "page.html").write_text(
        "<html><head><title>Page title</title><style>p{}</style></head>"
        "<body><h1>Heading</h1><p>Visible <b>text</b>.</p><script>var x;</script></body></html>"
    )
    (root / "image.png").write_bytes(b"\x89PNG")
    return root


async def test_ingest_posts_one_document_per_file_and_summarises(edge: Edge, docs: Path) -> None:
    code, out, _ = await run_cli(edge, "ingest", str(docs), "--collection", "homelab")

    assert code == 0
    stored = {doc_id: doc for (_, doc_id), doc in edge.retrieval.documents.items()}
    assert set(stored) == {"runbooks/disk-full.md", "notes.txt", "guide.rst", "page.html"}
    assert stored["runbooks/disk-full.md"].title == "Disk full"
    assert stored["runbooks/disk-full.md"].source == (docs / "runbooks" / "disk full.md").as_posix()
    assert stored["notes.txt"].title == "notes.txt"
    assert stored["guide.rst"].title == "Restore guide"
    assert stored["page.html"].title == "Page title"
    assert "Visible text." in stored["page.html"].text
    assert "var x" not in stored["page.html"].text
    assert all(doc.collection == "homelab" for doc in stored.values())
    assert "created   runbooks/disk-full.md (1 chunks)" in out
    assert out.strip().splitlines()[-1] == "4 files: 4 created, 0 replaced, 0 unchanged"


async def test_ingesting_again_reports_unchanged_and_replaced(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    (docs / "notes.txt").write_text("Changed notes.\n")

    code, out, _ = await run_cli(edge, "ingest", str(docs))

    assert code == 0
    assert "replaced  notes.txt" in out
    assert "unchanged guide.rst" in out
    assert out.strip().splitlines()[-1] == "4 files: 0 created, 1 replaced, 3 unchanged"


async def test_a_single_file_is_named_by_its_file_name(edge: Edge, docs: Path) -> None:
    code, _, _ = await run_cli(edge, "ingest", str(docs / "runbooks" / "disk full.md"))

    assert code == 0
    assert ("default", "disk-full.md") in edge.retrieval.documents


async def test_ingest_fails_with_a_wrong_key(edge_factory: EdgeFactory, docs: Path) -> None:
    edge = await edge_factory(api_keys="right")

    code, _, err = await run_cli(edge, "ingest", str(docs), "--api-key", "wrong")

    assert code == 1
    assert err == (
        "bruno: the edge refused the API key (the API key is not valid); "
        "set BRUNO_API_KEY or --api-key\n"
    )
    assert edge.retrieval.ingested == []


async def test_ingest_uses_the_key_from_the_environment(
    edge_factory: EdgeFactory, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = await edge_factory(api_keys="right")
    monkeypatch.setenv("BRUNO_API_KEY", "right")

    code, _, _ = await run_cli(edge, "ingest", str(docs))

    assert code == 0


async def test_ingest_reports_files_that_are_not_text(edge: Edge, tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "empty.md").write_text("  \n")

    code, out, _ = await run_cli(edge, "ingest", str(tmp_path))

    assert code == 1
    assert "failed    binary.txt: not UTF-8 text" in out
    assert "skipped   empty.md (empty)" in out


async def test_ingest_reads_pdf_and_word_files_and_reports_a_scan(
    edge: Edge, tmp_path: Path
) -> None:
    (tmp_path / "ups.pdf").write_bytes(
        pdf_bytes(
            [
                PdfPage(heading="UPS", paragraphs=["Charge it for eight hours."]),
                PdfPage(paragraphs=["The battery lasts fourteen minutes."]),
            ]
        )
    )
    (tmp_path / "setup.docx").write_bytes(
        docx_bytes([DocxSection("Setup", paragraphs=["Plug the router in."])])
    )
    (tmp_path / "receipt.pdf").write_bytes(pdf_bytes([PdfPage(scan=True, paragraphs=["42 EUR"])]))

    code, out, _ = await run_cli(edge, "ingest", str(tmp_path))

    assert code == 1
    stored = {doc_id: doc for (_, doc_id), doc in edge.retrieval.documents.items()}
    assert set(stored) == {"ups.pdf", "setup.docx"}
    assert stored["ups.pdf"].title == "UPS"
    assert "# UPS" in stored["ups.pdf"].text
    assert "fourteen minutes" in stored["ups.pdf"].text
    assert stored["setup.docx"].text == "# Setup\n\nPlug the router in."
    assert "failed    receipt.pdf: has no text layer (a scanned document?)" in out


async def test_ingest_of_a_missing_path_is_an_error(edge: Edge, tmp_path: Path) -> None:
    code, _, err = await run_cli(edge, "ingest", str(tmp_path / "nope"))

    assert code == 1
    assert "no such file or directory" in err


async def test_ask_streams_the_answer_then_the_sources_it_cites(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    edge.generation.tokens = ["Delete ", "old ", "snapshots ", "[1]."]

    code, out, _ = await run_cli(edge, "ask", "Delete old snapshots?")

    assert code == 0
    disk_full = (docs / "runbooks" / "disk full.md").as_posix()
    assert out.splitlines() == [
        "Delete old snapshots [1].",
        "",
        "Sources:",
        f"[1] Disk full ({disk_full})",
    ]
    assert edge.retrieval.searches[-1].query == "Delete old snapshots?"


async def test_ask_says_when_the_answer_failed_midway(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    edge.generation.fail_after = 2

    code, out, err = await run_cli(edge, "ask", "Delete old snapshots?")

    assert code == 1
    assert out == "Restart the "
    assert err == "bruno: the answer failed: the generation service is unavailable\n"


async def test_ask_reports_a_problem_and_fails(edge: Edge) -> None:
    code, _, err = await run_cli(edge, "ask", "   ")

    assert code == 1
    assert "422 Invalid input" in err


async def test_unreachable_edge_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n")
    err = io.StringIO()

    code = await run(
        ["ingest", str(tmp_path), "--url", "http://127.0.0.1:9"], err=err, out=io.StringIO()
    )

    assert code == 1
    assert "cannot reach" in err.getvalue()


def test_document_ids_keep_only_safe_characters() -> None:
    assert document_id_for(Path("a b/ü?.md")) == "a-b/-.md"
    assert len(document_id_for(Path("x" * 300))) == 200


async def test_unchanged_files_are_not_sent_again(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    edge.retrieval.ingested.clear()
    (docs / "notes.txt").write_text("Changed notes.\n")

    code, out, _ = await run_cli(edge, "ingest", str(docs))

    assert code == 0
    assert edge.retrieval.ingested == ["notes.txt"]
    assert "unchanged guide.rst" in out


async def test_files_removed_from_a_synced_folder_are_deleted(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    await edge.ingest("Added through the API, not by a sync.", id="by-hand")
    (docs / "notes.txt").unlink()

    code, out, _ = await run_cli(edge, "ingest", str(docs))

    assert code == 0
    stored = {doc_id for (_, doc_id) in edge.retrieval.documents}
    assert stored == {"runbooks/disk-full.md", "guide.rst", "page.html", "by-hand"}
    assert "deleted   notes.txt" in out
    assert out.strip().splitlines()[-1] == "3 files: 0 created, 0 replaced, 3 unchanged, 1 deleted"


async def test_files_of_two_folders_sharing_an_id_fail_before_anything_changes(
    edge: Edge, docs: Path, tmp_path: Path
) -> None:
    await run_cli(edge, "ingest", str(docs))
    edge.retrieval.ingested.clear()
    (docs / "notes.txt").unlink()
    (docs / "README.md").write_text("# Docs\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("# Other\n")

    code, out, err = await run_cli(edge, "ingest", str(docs), str(other))

    assert code == 1
    assert f"'README.md': {docs / 'README.md'}, {other / 'README.md'}" in err
    assert edge.retrieval.ingested == []
    assert ("default", "notes.txt") in edge.retrieval.documents  # not deleted either
    assert out == ""


async def test_file_names_that_differ_only_in_unsafe_characters_fail(
    edge: Edge, tmp_path: Path
) -> None:
    (tmp_path / "a b.md").write_text("# Spaced\n")
    (tmp_path / "a-b.md").write_text("# Dashed\n")
    (tmp_path / "c.md").write_text("# Fine\n")

    code, _, err = await run_cli(edge, "ingest", str(tmp_path))

    assert code == 1
    assert f"'a-b.md': {tmp_path / 'a b.md'}, {tmp_path / 'a-b.md'}" in err
    assert "c.md" not in err
    assert edge.retrieval.documents == {}


async def test_the_same_file_named_twice_is_not_a_collision(edge: Edge, docs: Path) -> None:
    code, _, _ = await run_cli(edge, "ingest", str(docs / "notes.txt"), str(docs))

    assert code == 0
    assert ("default", "notes.txt") in edge.retrieval.documents


async def test_an_unreadable_folder_fails_the_sync_and_deletes_nothing(
    edge: Edge, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_cli(edge, "ingest", str(docs))
    (docs / "notes.txt").unlink()
    (docs / "guide.rst").write_text("Restore guide\n=============\n\nUse velero twice.\n")
    unreadable = docs / "runbooks"
    scandir = os.scandir

    # Tests run as root, which chmod cannot lock out: fail the listing as a permission would.
    def locked_scandir(path: Any = ".") -> Any:
        if Path(path) == unreadable:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", locked_scandir)

    code, out, err = await run_cli(edge, "ingest", str(docs))

    assert code == 1
    assert f"cannot read {unreadable}: Permission denied" in err
    assert "no documents were deleted" in err
    stored = {doc_id for (_, doc_id) in edge.retrieval.documents}
    assert {"runbooks/disk-full.md", "notes.txt"} <= stored
    assert "replaced  guide.rst" in out  # what could be read is still synced
    assert "deleted" not in out


async def test_no_delete_keeps_documents_of_removed_files(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs))
    (docs / "notes.txt").unlink()

    code, _, _ = await run_cli(edge, "ingest", str(docs), "--no-delete")

    assert code == 0
    assert ("default", "notes.txt") in edge.retrieval.documents


async def test_a_sync_of_another_folder_leaves_the_first_folders_documents(
    edge: Edge, docs: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.md").write_text("# Extra\n\nMore notes.\n")
    await run_cli(edge, "ingest", str(docs))

    code, _, _ = await run_cli(edge, "ingest", str(other))

    assert code == 0
    assert ("default", "notes.txt") in edge.retrieval.documents
    assert ("default", "extra.md") in edge.retrieval.documents


async def test_many_files_are_all_ingested_with_concurrency(edge: Edge, tmp_path: Path) -> None:
    count = JOB_THRESHOLD - 1
    for n in range(count):
        (tmp_path / f"note-{n:02}.md").write_text(f"# Note {n}\n\nBody {n}.\n")

    code, out, _ = await run_cli(edge, "ingest", str(tmp_path), "--concurrency", "8")

    assert code == 0
    assert len(edge.retrieval.documents) == count
    assert edge.jobs.jobs == []
    assert (
        out.strip().splitlines()[-1] == f"{count} files: {count} created, 0 replaced, 0 unchanged"
    )


async def test_a_large_folder_goes_as_one_job_followed_to_its_end(
    edge: Edge, tmp_path: Path
) -> None:
    for n in range(JOB_THRESHOLD):
        (tmp_path / f"note-{n:02}.md").write_text(f"# Note {n}\n\nBody {n}.\n")
    (tmp_path / "blank.md").write_text("   \n")

    code, out, _ = await run_cli(edge, "ingest", str(tmp_path), "--collection", "notes")

    assert code == 0
    [job] = edge.jobs.jobs
    assert (job.collection, job.documents_total) == ("notes", JOB_THRESHOLD)
    stored = {doc_id for (_, doc_id) in edge.retrieval.documents}
    assert stored == {f"note-{n:02}.md" for n in range(JOB_THRESHOLD)}
    lines = out.strip().splitlines()
    assert "skipped   blank.md (empty)" in lines
    assert f"job {job.id} queued: {JOB_THRESHOLD} documents" in lines
    assert f"job {job.id} succeeded: {JOB_THRESHOLD}/{JOB_THRESHOLD} documents, 0 failed" in out
    assert lines[-1] == (
        f"{JOB_THRESHOLD + 1} files: 0 created, 0 replaced, 0 unchanged, "
        f"{JOB_THRESHOLD} ingested, 1 skipped"
    )


async def test_a_job_with_a_failed_document_lists_it_and_exits_non_zero(
    edge: Edge, tmp_path: Path
) -> None:
    (tmp_path / "ok.md").write_text("# Ok\n\nFine.\n")
    (tmp_path / "bad.md").write_text("# Bad\n\nRefused.\n")
    edge.retrieval.refuse_ids = {"bad.md"}

    code, out, _ = await run_cli(edge, "ingest", str(tmp_path), "--no-wait")
    [job] = edge.jobs.jobs
    watched, watch_out, _ = await run_cli(edge, "jobs", "watch", job.id)
    listed, list_out, _ = await run_cli(edge, "jobs")

    assert code == 0
    assert f"follow it with: bruno jobs watch {job.id}" in out
    assert out.strip().splitlines()[-1] == "2 files: 0 created, 0 replaced, 0 unchanged, 2 queued"
    assert watched == 1
    assert "failed    bad.md: refused on purpose" in watch_out
    assert f"job {job.id} failed: 1/2 documents, 1 failed" in watch_out
    assert listed == 0
    assert list_out.split()[:4] == [job.id, "ingest", "default", "failed"]


async def test_watching_an_unknown_job_fails_in_one_line(edge: Edge) -> None:
    code, _, err = await run_cli(edge, "jobs", "watch", "0123456789abcdef")

    assert code == 1
    assert err.strip() == "bruno: 404 Not found: job '0123456789abcdef' not found"


async def test_collections_lists_each_collection_with_its_model(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs), "--collection", "homelab")

    code, out, _ = await run_cli(edge, "collections")

    assert code == 0
    assert out.split()[:5] == ["homelab", "4", "documents", "4", "chunks"]
    assert "fake-model (8d)" in out


async def test_reindex_reports_the_model_switch(edge: Edge, docs: Path) -> None:
    await run_cli(edge, "ingest", str(docs), "--collection", "homelab")

    code, out, _ = await run_cli(edge, "reindex", "homelab")

    assert code == 0
    assert out.strip() == "reindexed homelab: 4 documents, 4 chunks, fake-model -> fake-model-2"


async def test_reindex_of_an_unknown_collection_fails(edge: Edge) -> None:
    code, _, err = await run_cli(edge, "reindex", "nope")

    assert code == 1
    assert "404" in err


class RecordingTransport(httpx.AsyncBaseTransport):
    """The app's transport, keeping every request the CLI sent."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)


def sync_root_of(folder: Path) -> str:
    """The metadata value a sync of ``folder`` gives its documents."""
    return folder.resolve().as_posix()


async def test_a_sync_deletes_only_what_it_created_never_a_planted_path(
    edge: Edge, docs: Path
) -> None:
    """A document planted as ``../collections/default`` with the folder as its sync root must
    not make a sync delete the collection (nor be deleted through a path that climbs out).
    The edge refuses such ids now; they can only be stored from before the identifier rule,
    so they are planted straight into retrieval's store (past its checks, as they were)."""
    await run_cli(edge, "ingest", str(docs))
    root = sync_root_of(docs)
    for planted in ("../collections/default", "..", "a/./b"):
        edge.retrieval.documents["default", planted] = StoredDocument(
            "default", planted, "", "", "planted", {SYNC_ROOT_KEY: root}, content_hash("planted")
        )
    (docs / "notes.txt").unlink()
    transport = RecordingTransport(edge.app)

    code = await run(
        ["ingest", str(docs)], transport=transport, out=io.StringIO(), err=io.StringIO()
    )

    assert code == 0
    deletes = [r.url.raw_path.decode() for r in transport.requests if r.method == "DELETE"]
    assert deletes == ["/api/v1/documents/notes.txt?collection=default"]
    stored = {doc_id for (_, doc_id) in edge.retrieval.documents}
    assert {"../collections/default", "..", "a/./b", "guide.rst"} <= stored


async def test_a_document_id_with_slashes_is_deleted_as_one_encoded_segment(
    edge: Edge, docs: Path
) -> None:
    await run_cli(edge, "ingest", str(docs))
    (docs / "runbooks" / "disk full.md").unlink()
    transport = RecordingTransport(edge.app)

    code = await run(
        ["ingest", str(docs)], transport=transport, out=io.StringIO(), err=io.StringIO()
    )

    assert code == 0
    [delete] = [r for r in transport.requests if r.method == "DELETE"]
    assert delete.url.raw_path.decode() == (
        "/api/v1/documents/runbooks%2Fdisk-full.md?collection=default"
    )
    assert ("default", "runbooks/disk-full.md") not in edge.retrieval.documents


async def test_ingest_sends_the_pages_of_a_pdf_with_its_text(edge: Edge, tmp_path: Path) -> None:
    facts = ["Charge it for eight hours.", "The battery lasts fourteen minutes."]
    (tmp_path / "ups.pdf").write_bytes(
        pdf_bytes([PdfPage(heading="UPS", paragraphs=[facts[0]]), PdfPage(paragraphs=[facts[1]])])
    )
    (tmp_path / "notes.md").write_text("# Notes\n\nNo pages here.\n")
    transport = RecordingTransport(edge.app)

    code = await run(
        ["ingest", str(tmp_path)], transport=transport, out=io.StringIO(), err=io.StringIO()
    )

    assert code == 0
    bodies = {
        body["id"]: body
        for body in (json.loads(r.content) for r in transport.requests if r.method == "POST")
    }
    pdf = bodies["ups.pdf"]
    starts = [segment["start"] for segment in pdf["segments"]] + [len(pdf["text"])]
    pages = {
        segment["page"]: pdf["text"][start:end]
        for segment, start, end in zip(pdf["segments"], starts, starts[1:], strict=False)
    }
    assert sorted(pages) == [1, 2]
    assert facts[0] in pages[1]
    assert facts[1] in pages[2]
    assert "segments" not in bodies["notes.md"]
