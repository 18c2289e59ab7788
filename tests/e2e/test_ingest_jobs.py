"""Ingest jobs end to end: the four services as real processes, the edge over real HTTP, jobs
kept in retrieval's LanceDB. Progress, a bad file failing alone, cancel, owners and scopes,
a retrieval process killed in the middle of a job, reindex jobs, a synchronous ingest that
becomes a job, URL jobs fetching from a real web server on loopback, and the CLI on top of
them."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bruno_cli import run
from bruno_cli.ingest import JOB_THRESHOLD
from bruno_edge.keys import hash_line
from bruno_testing.documents import DocxSection, PdfPage, docx_bytes, pdf_bytes
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem
from bruno_testing.website import Page, Website

KEYS = {
    "writer": ("bruno_writer_key", ["read", "write"], ["docs", "manuals"]),
    "other": ("bruno_other_key", ["read", "write"], ["*"]),
    "reader": ("bruno_reader_key", ["read"], ["*"]),
    "admin": ("bruno_admin_key", ["read", "write", "admin"], ["*"]),
}
FINISHED = {"succeeded", "failed", "cancelled"}


def keys_file(path: Path) -> Path:
    lines = []
    for name, (token, scopes, collections) in KEYS.items():
        lines += [
            f"[keys.{name}]",
            f'hash = "{hash_line(token)}"',
            f"scopes = {scopes!r}".replace("'", '"'),
            f"collections = {collections!r}".replace("'", '"'),
            'rate_limit = "100000/minute"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, standin: OllamaStandIn
) -> Iterator[BrunoSystem]:
    workdir = tmp_path_factory.mktemp("bruno-jobs")
    env = {
        "BRUNO_API_KEYS_FILE": str(keys_file(workdir / "keys.toml")),
        # A document of a few hundred chunks outlasts it: POST /api/v1/documents becomes a job.
        "BRUNO_INGEST_WAIT_SECONDS": "0.1",
        # URL jobs fetch from the test's web server on loopback, refused without this.
        "BRUNO_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    with BrunoSystem(workdir, ollama_host=standin.url, env=env) as running:
        yield running


Client = Callable[[str], httpx.Client]


@pytest.fixture
def client(system: BrunoSystem) -> Iterator[Client]:
    opened: list[httpx.Client] = []

    def make(name: str) -> httpx.Client:
        token = KEYS[name][0]
        made = httpx.Client(
            base_url=system.edge_url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


def long_markdown(n: int, paragraphs: int = 40) -> bytes:
    """A document of many chunks, each paragraph its own words, so every document embeds anew."""
    body = "\n\n".join(
        f"Paragraph {i} of note {n}: the rack {n}-{i} switch keeps its VLAN {i} trunk, "
        f"and the backup window {n}.{i} runs after the scrub of pool {i}. " * 6
        for i in range(paragraphs)
    )
    return f"# Note {n}\n\n{body}\n".encode()


def submit(client: httpx.Client, files: list[tuple[str, bytes]], collection: str) -> httpx.Response:
    return client.post(
        "/api/v1/ingest-jobs",
        params={"collection": collection},
        files=[("files", (name, content)) for name, content in files],
    )


def poll(
    client: httpx.Client, job_id: str, until: Callable[[dict[str, Any]], bool], limit: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        response = client.get(f"/api/v1/ingest-jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def finished(job: dict[str, Any]) -> bool:
    return job["state"] in FINISHED


def test_a_job_answers_202_with_where_to_follow_it_and_a_bad_file_fails_alone(
    client: Client,
) -> None:
    writer = client("writer")
    manual = pdf_bytes(
        [PdfPage(heading="Rack PDU", paragraphs=["The PDU outlet 7 feeds the NAS at 230 V."])]
    )
    scan = pdf_bytes([PdfPage(paragraphs=["Only a picture of text."], scan=True)])
    response = submit(
        writer,
        [("pdu.pdf", manual), ("scan.pdf", scan), ("notes.md", b"# Notes\n\nThe NAS is nas01.")],
        "manuals",
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{job['id']}"
    assert (job["kind"], job["collection"], job["documents"]["total"]) == ("ingest", "manuals", 3)

    done = poll(writer, job["id"], finished)
    assert done["state"] == "failed"
    assert (done["documents"]["done"], done["documents"]["failed"]) == (2, 1)
    assert done["chunks_written"] >= 2
    [error] = done["errors"]
    assert error["source"] == "scan.pdf"
    assert "text layer" in error["message"]
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    hits = writer.post(
        "/api/v1/search", json={"query": "Which outlet feeds the NAS?", "collection": "manuals"}
    ).json()["results"]
    assert (hits[0]["document_id"], hits[0]["page"]) == ("pdu.pdf", 1)


SWITCH_RUNBOOK = [
    DocxSection("Core switch", paragraphs=["The core switch sits in rack B, unit 12."]),
    DocxSection(
        "Uplinks",
        level=2,
        paragraphs=["Port 48 carries the fibre uplink to the router."],
        table=[["VLAN", "Subnet"], ["Cameras", "10.20.30.0/24"]],
    ),
    DocxSection("Firmware", bullets=["Upgrade the firmware on the first Sunday of a quarter."]),
]
# Each fact of the Word document, and the section (heading path) it is found under.
SWITCH_FACTS = {
    "Which rack and unit does the core switch sit in?": ("rack B, unit 12", "Core switch"),
    "Which port carries the fibre uplink?": ("Port 48", "Core switch > Uplinks"),
    "What subnet is the Cameras VLAN?": ("10.20.30.0/24", "Core switch > Uplinks"),
    "When is the switch firmware upgraded?": ("first Sunday of a quarter", "Firmware"),
}


def test_a_word_document_s_facts_are_found_in_their_sections_and_unreadable_files_fail_alone(
    client: Client, standin: OllamaStandIn
) -> None:
    writer = client("writer")
    runbook = docx_bytes(SWITCH_RUNBOOK, title="Switch runbook")
    manual = pdf_bytes([PdfPage(heading="Fans", paragraphs=["The fans idle at 900 rpm."])] * 2)
    files = [
        ("switch.docx", runbook),
        ("locked.pdf", pdf_bytes([PdfPage(paragraphs=["Secret."])], password="pw")),
        ("cut.pdf", manual[: len(manual) // 2]),
        ("cut.docx", runbook[:-100]),
    ]

    done = poll(writer, submit(writer, files, "manuals").json()["id"], finished)

    assert (done["documents"]["done"], done["documents"]["failed"]) == (1, 3)
    errors = {error["source"]: error["message"] for error in done["errors"]}
    assert "is encrypted" in errors["locked.pdf"]
    assert "is truncated" in errors["cut.pdf"]
    assert "is damaged or truncated" in errors["cut.docx"]
    listed = writer.get("/api/v1/documents", params={"collection": "manuals", "limit": 100})
    stored = {d["document_id"] for d in listed.json()["documents"]}
    assert "switch.docx" in stored
    assert not stored & {"locked.pdf", "cut.pdf", "cut.docx"}
    for question, (fact, section) in SWITCH_FACTS.items():
        search = writer.post("/api/v1/search", json={"query": question, "collection": "manuals"})
        best = search.json()["results"][0]
        assert (best["document_id"], best["title"]) == ("switch.docx", "Switch runbook"), question
        assert fact in best["text"], question
        assert best["heading_path"] == section, question
        assert (best["page"], best["link"]) == (None, None), question  # Word has no pages

        chat = writer.post(
            "/api/v1/chat", json={"message": question, "collection": "manuals", "top_k": 1}
        )
        [cited] = chat.json()["citations"]
        assert (cited["document_id"], cited["page"]) == ("switch.docx", None), question
        assert fact in cited["text"], question
        prompt = standin.chat_requests[-1]["messages"][-1]["content"]
        assert fact in prompt, question


def test_progress_advances_and_a_cancel_stops_the_job_keeping_what_was_committed(
    client: Client,
) -> None:
    writer = client("writer")
    files = [(f"note-{n}.md", long_markdown(n)) for n in range(60)]
    job = submit(writer, files, "docs").json()

    moving = poll(writer, job["id"], lambda j: j["documents"]["done"] >= 1)
    assert moving["state"] == "running"
    cancel = writer.delete(f"/api/v1/ingest-jobs/{job['id']}")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["cancel_requested"] is True

    stopped = poll(writer, job["id"], finished)
    assert stopped["state"] == "cancelled"
    done = stopped["documents"]["done"]
    assert 1 <= done < 60
    listed = writer.get("/api/v1/documents", params={"collection": "docs", "limit": 100})
    assert len(listed.json()["documents"]) == done
    again = writer.delete(f"/api/v1/ingest-jobs/{job['id']}")
    assert again.status_code == 200
    assert again.json()["state"] == "cancelled"


def test_jobs_are_the_keys_own_and_only_in_its_collections(client: Client) -> None:
    writer, other, reader = client("writer"), client("other"), client("reader")
    mine = submit(writer, [("a.md", b"# A\n\nAlpha.")], "docs").json()
    theirs = submit(other, [("b.md", b"# B\n\nBeta.")], "elsewhere").json()

    assert other.get(f"/api/v1/ingest-jobs/{mine['id']}").status_code == 404
    assert other.delete(f"/api/v1/ingest-jobs/{mine['id']}").status_code == 404
    assert writer.get(f"/api/v1/ingest-jobs/{theirs['id']}").status_code == 404
    assert writer.get("/api/v1/ingest-jobs/not-a-job-id").status_code in (404, 422)
    assert submit(writer, [("c.md", b"# C")], "elsewhere").status_code == 404
    assert submit(reader, [("d.md", b"# D")], "docs").status_code == 403
    listed = [job["id"] for job in writer.get("/api/v1/ingest-jobs").json()["jobs"]]
    assert mine["id"] in listed
    assert theirs["id"] not in listed


def test_jobs_are_listed_newest_first_in_pages(client: Client) -> None:
    other = client("other")
    ids = [submit(other, [(f"p{n}.md", b"# P\n\nPaged.")], "paged").json()["id"] for n in range(3)]

    first = other.get("/api/v1/ingest-jobs", params={"limit": 2}).json()
    second = other.get(
        "/api/v1/ingest-jobs", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()

    listed = [job["id"] for job in [*first["jobs"], *second["jobs"]]]
    assert listed[:3] == ids[::-1]


def test_a_retrieval_killed_in_the_middle_of_a_job_resumes_it_after_its_restart(
    system: BrunoSystem, client: Client
) -> None:
    other = client("other")
    files = [(f"crash-{n}.md", long_markdown(1000 + n, paragraphs=8)) for n in range(20)]
    job = submit(other, files, "crash").json()
    poll(other, job["id"], lambda j: j["documents"]["done"] >= 1)

    system.kill_service("retrieval")
    system.start_service("retrieval")
    system.wait_ready()

    done = poll(other, job["id"], finished, limit=90)
    assert (done["state"], done["resumes"]) == ("succeeded", 1)
    assert (done["documents"]["done"], done["documents"]["failed"]) == (20, 0)
    listed = other.get("/api/v1/documents", params={"collection": "crash", "limit": 100})
    assert len(listed.json()["documents"]) == 20


def test_a_second_reindex_of_a_collection_joins_the_running_one(client: Client) -> None:
    admin = client("admin")
    files = [(f"re-{n}.md", long_markdown(2000 + n, paragraphs=8)) for n in range(8)]
    poll(admin, submit(admin, files, "reindexed").json()["id"], finished)

    first = admin.post("/api/v1/collections/reindexed/reindex")
    second = admin.post("/api/v1/collections/reindexed/reindex")

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["id"] == first.json()["id"]
    assert first.headers["location"] == f"/api/v1/ingest-jobs/{first.json()['id']}"
    done = poll(admin, first.json()["id"], finished)
    assert (done["kind"], done["state"], done["documents"]["done"]) == ("reindex", "succeeded", 8)
    third = admin.post("/api/v1/collections/reindexed/reindex")
    assert third.json()["id"] != first.json()["id"]
    assert client("writer").post("/api/v1/collections/docs/reindex").status_code == 403


def test_a_synchronous_ingest_that_outlasts_its_wait_answers_202_with_the_job_it_became(
    client: Client,
) -> None:
    writer = client("writer")
    text = long_markdown(3000, paragraphs=150).decode()

    response = writer.post(
        "/api/v1/documents", json={"id": "big.md", "text": text, "collection": "docs"}
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{job['id']}"
    assert (job["kind"], job["state"], job["documents"]["total"]) == ("ingest", "running", 1)
    done = poll(writer, job["id"], finished)
    assert (done["state"], done["documents"]["done"]) == ("succeeded", 1)
    again = writer.post(
        "/api/v1/documents", json={"id": "big.md", "text": text, "collection": "docs"}
    )
    assert again.status_code == 200
    assert again.json()["status"] == "unchanged"


def test_an_upload_that_outlasts_its_wait_answers_202_with_jobs_holding_each_file_once(
    client: Client,
) -> None:
    writer = client("writer")
    # More files than go to retrieval at once, each too long to embed within the 0.1 s wait:
    # those in flight become jobs of their own, those not yet sent one job together.
    names = [f"upload-{n}.md" for n in range(6)]
    files = [(name, long_markdown(4000 + n, paragraphs=12)) for n, name in enumerate(names)]

    response = writer.post(
        "/api/v1/documents/upload",
        params={"collection": "manuals"},
        files=[("files", (name, content)) for name, content in files],
    )

    assert response.status_code == 202, response.text
    body = response.json()
    jobs = {job["id"]: job for job in body["jobs"]}
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{body['jobs'][0]['id']}"
    assert [f["filename"] for f in body["files"]] == names
    queued = [f for f in body["files"] if f["status"] == "queued"]
    assert queued
    assert all(f["job_id"] in jobs for f in queued)
    assert all(f["status"] in {"created", "queued"} for f in body["files"])
    done = [poll(writer, job_id, finished) for job_id in jobs]
    assert {job["state"] for job in done} == {"succeeded"}
    # Each file not done in the answer is in exactly one job, and no job holds any other.
    assert sum(job["documents"]["done"] for job in done) == len(queued)
    listing = writer.get("/api/v1/documents", params={"collection": "manuals", "limit": 100})
    listed = [d["document_id"] for d in listing.json()["documents"]]
    assert sorted(d for d in listed if d in names) == names


def test_the_cli_sends_a_large_folder_as_a_job_and_fails_for_the_file_it_could_not_read(
    system: BrunoSystem, tmp_path: Path
) -> None:
    for n in range(JOB_THRESHOLD):
        (tmp_path / f"cli-{n:02}.md").write_text(f"# Cli {n}\n\nThe rack unit {n} holds a UPS.\n")
    (tmp_path / "scan.pdf").write_bytes(pdf_bytes([PdfPage(paragraphs=["Text."], scan=True)]))
    out, err = io.StringIO(), io.StringIO()
    argv = ["--url", system.edge_url, "--api-key", KEYS["other"][0], "--collection", "cli"]

    code = asyncio.run(run(["ingest", str(tmp_path), *argv], out=out, err=err))

    lines = out.getvalue().strip().splitlines()
    assert code == 1, err.getvalue()
    assert any(line.startswith("failed    scan.pdf: ") for line in lines)
    assert any(
        line.startswith("job ")
        and line.endswith(
            f"succeeded: {JOB_THRESHOLD}/{JOB_THRESHOLD} "
            f"documents, 0 failed, {JOB_THRESHOLD} chunks"
        )
        for line in lines
    ), lines
    assert lines[-1] == (
        f"{JOB_THRESHOLD + 1} files: 0 created, 0 replaced, 0 unchanged, "
        f"{JOB_THRESHOLD} ingested, 1 failed"
    )
    listed = io.StringIO()
    asyncio.run(run(["jobs", "--url", system.edge_url, "--api-key", KEYS["other"][0]], out=listed))
    assert listed.getvalue().split()[1:4] == ["ingest", "cli", "succeeded"]


@pytest.fixture(scope="module")
def website() -> Iterator[Website]:
    manual = pdf_bytes(
        [
            PdfPage(heading="Generator", paragraphs=["The generator runs the rack for 8 hours."]),
            PdfPage(heading="Transfer", paragraphs=["The transfer switch flips within 40 ms."]),
        ]
    )
    pages = {
        "/wiki/vlans.html": Page(
            b"<title>VLANs</title><h1>VLAN plan</h1><p>The cameras live on VLAN 66.</p>",
            "text/html; charset=utf-8",
        ),
        "/files/generator.pdf": Page(manual, "application/pdf"),
        "/notes/nas.md": Page(b"# NAS\n\nThe NAS scrubs its pool on Sundays.", "text/markdown"),
        "/photo.jpg": Page(b"\xff\xd8\xff", "image/jpeg"),
    }
    with Website(pages) as running:
        yield running


def test_a_url_job_fetches_each_page_and_search_finds_it_on_its_page(
    client: Client, website: Website
) -> None:
    writer = client("writer")
    urls = [
        website.url("/wiki/vlans.html"),
        website.url("/files/generator.pdf"),
        website.url("/missing"),
        website.url("/photo.jpg"),
    ]

    response = writer.post("/api/v1/ingest-jobs", json={"collection": "docs", "urls": urls})

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/v1/ingest-jobs/{job['id']}"
    done = poll(writer, job["id"], finished)
    assert (done["documents"]["done"], done["documents"]["failed"]) == (2, 2), done
    errors = {error["source"]: error["message"] for error in done["errors"]}
    assert errors[website.url("/missing")] == "answered 404 Not Found"
    assert "'image/jpeg'" in errors[website.url("/photo.jpg")]
    hits = writer.post(
        "/api/v1/search",
        json={"query": "How fast does the transfer switch flip?", "collection": "docs"},
    ).json()["results"]
    assert (hits[0]["source"], hits[0]["page"]) == (website.url("/files/generator.pdf"), 2)
    assert hits[0]["link"] == website.url("/files/generator.pdf") + "#page=2"
    vlan = writer.post(
        "/api/v1/search", json={"query": "camera VLAN", "collection": "docs"}
    ).json()["results"]
    assert vlan[0]["title"] == "VLANs"


def test_a_url_job_is_the_keys_own_in_its_collections_only(
    client: Client, website: Website
) -> None:
    body = {"collection": "elsewhere", "urls": [website.url("/notes/nas.md")]}

    assert client("writer").post("/api/v1/ingest-jobs", json=body).status_code == 404
    assert client("reader").post("/api/v1/ingest-jobs", json=body).status_code == 403


def test_the_cli_sends_urls_as_one_job_and_fails_for_the_one_it_could_not_fetch(
    system: BrunoSystem, website: Website
) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--url", system.edge_url, "--api-key", KEYS["other"][0], "--collection", "urls"]
    urls = [website.url("/notes/nas.md"), website.url("/gone.md")]

    code = asyncio.run(run(["ingest", *urls, "--plain", *argv], out=out, err=err))

    lines = out.getvalue().strip().splitlines()
    assert code == 1, err.getvalue()
    assert re.fullmatch(r"job \w+ queued: 2 URLs", lines[0]), lines
    assert any(line.startswith("failed ") and "answered 404" in line for line in lines), lines
    assert lines[-1] == "2 URLs: 1 ingested, 1 failed"
