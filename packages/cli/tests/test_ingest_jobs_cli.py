"""``bruno ingest`` as an ingestion job, and ``bruno jobs``, against the four services as real
processes over real HTTP: a large set becomes a job followed to its end, a small one stays file
by file, what was skipped is listed, a bad file fails alone, detach and re-attach, cancel."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_cli import run
from bruno_cli.ingest_job import JOB_FILES, MAX_TEXT_BYTES
from bruno_cli.main import build_parser
from bruno_testing.background import InBackground
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PROGRESS = re.compile(r"^job (\w+) (\w+): (\d+)/(\d+) documents \((\d+) failed\), (\d+) chunks")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrunoSystem]:
    with (
        InBackground(OllamaStandIn(models=["llama3.2"])) as standin,
        BrunoSystem(tmp_path_factory.mktemp("bruno-cli-jobs"), ollama_host=standin.url) as up,
    ):
        yield up


class Terminal(io.StringIO):
    """Output that says it is a terminal, as a shell's is."""

    def isatty(self) -> bool:
        return True


class Written(io.StringIO):
    """Output that says when something was written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


async def bruno(
    system: BrunoSystem, *argv: str, err: io.StringIO | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), err or io.StringIO()
    code = await run([*argv, "--url", system.edge_url], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def note(n: int, paragraphs: int) -> str:
    """A Markdown note of ``paragraphs`` chunks or so, its own words so each embeds anew."""
    body = "\n\n".join(
        f"Paragraph {i} of note {n}: the rack {n}-{i} switch keeps VLAN {i} on its trunk, and "
        f"the backup window {n}.{i} opens after the scrub of pool {i}. " * 6
        for i in range(paragraphs)
    )
    return f"# Note {n}\n\n{body}\n"


def folder(root: Path, count: int, paragraphs: int = 4) -> Path:
    root.mkdir()
    for n in range(count):
        (root / f"note-{n:03d}.md").write_text(note(n, paragraphs), encoding="utf-8")
    return root


def documents(system: BrunoSystem, collection: str) -> set[str]:
    response = httpx.get(
        f"{system.edge_url}/api/v1/documents",
        params={"collection": collection, "limit": 500},
        timeout=30,
    )
    if response.status_code == 404:
        return set()
    response.raise_for_status()
    return {doc["document_id"] for doc in response.json()["documents"]}


def job_id_in(out: str) -> str:
    found = re.search(r"^job (\w+): \d+ documents into", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def progress_lines(out: str) -> list[tuple[str, int, int, int]]:
    """(state, documents accounted for, total, chunks) of each plain progress line."""
    lines: list[tuple[str, int, int, int]] = []
    for line in out.splitlines():
        if match := PROGRESS.match(line):
            _, state, done, total, _, chunks = match.groups()
            lines.append((state, int(done), int(total), int(chunks)))
    return lines


async def test_a_large_folder_is_one_job_whose_progress_advances_in_plain_lines(
    system: BrunoSystem, tmp_path: Path
) -> None:
    count = JOB_FILES + 8
    docs = folder(tmp_path / "notes", count, paragraphs=3)

    code, out, _ = await bruno(system, "ingest", str(docs), "--collection", "large")

    assert code == 0, out
    job_id = job_id_in(out)
    lines = progress_lines(out)
    assert lines[-1][0] == "succeeded"
    assert "left" not in out.splitlines()[-2]  # no time left once it has ended
    assert [done for _, done, _, _ in lines] == sorted(done for _, done, _, _ in lines)
    assert any(0 < done < count for _, done, _, _ in lines), out  # seen on its way
    assert lines[-1][1:3] == (count, count)
    assert [chunks for *_, chunks in lines] == sorted(chunks for *_, chunks in lines)
    assert f"job {job_id} succeeded: {count} of {count} documents ingested, 0 failed" in out
    assert documents(system, "large") == {f"note-{n:03d}.md" for n in range(count)}


async def test_a_small_set_stays_one_request_per_file(system: BrunoSystem, tmp_path: Path) -> None:
    docs = folder(tmp_path / "few", 3)

    code, out, _ = await bruno(system, "ingest", str(docs), "--collection", "small")

    assert code == 0, out
    assert "created   note-000.md" in out
    assert "job " not in out
    assert out.strip().splitlines()[-1] == "3 files: 3 created, 0 replaced, 0 unchanged"


async def test_a_large_set_in_subfolders_stays_file_by_file_and_says_why(
    system: BrunoSystem, tmp_path: Path
) -> None:
    docs = tmp_path / "nested"
    docs.mkdir()
    for part in ("a", "b"):
        folder(docs / part, JOB_FILES // 2 + 1, paragraphs=1)

    code, out, err = await bruno(system, "ingest", str(docs), "--collection", "nested")

    assert code == 0, out
    assert "job " not in out
    assert f"bruno: {JOB_FILES + 2} file(s) in subfolders: sending the set file by file" in err
    assert "a/note-000.md" in documents(system, "nested")


async def test_a_bad_file_fails_alone_and_makes_the_exit_status_1(
    system: BrunoSystem, tmp_path: Path
) -> None:
    (tmp_path / "pdu.pdf").write_bytes(
        pdf_bytes([PdfPage(heading="Rack PDU", paragraphs=["Outlet 7 feeds the NAS."])])
    )
    (tmp_path / "scan.pdf").write_bytes(pdf_bytes([PdfPage(paragraphs=["42 EUR"], scan=True)]))
    (tmp_path / "notes.md").write_text("# Notes\n\nThe NAS is nas01.\n")

    code, out, _ = await bruno(system, "ingest", str(tmp_path), "--job", "--collection", "bad")

    assert code == 1, out
    assert re.search(r"^failed    scan\.pdf: .*text layer", out, re.MULTILINE), out
    assert re.search(r"^job \w+ failed: 2 of 3 documents ingested, 1 failed", out, re.MULTILINE)
    assert documents(system, "bad") == {"pdu.pdf", "notes.md"}


async def test_what_was_skipped_is_listed_with_the_reason(
    system: BrunoSystem, tmp_path: Path
) -> None:
    (tmp_path / "ok.md").write_text("# OK\n\nThe UPS holds fourteen minutes.\n")
    (tmp_path / "empty.md").write_text("  \n")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "huge.txt").write_text("x" * (MAX_TEXT_BYTES + 1))

    code, out, _ = await bruno(system, "ingest", str(tmp_path), "--job", "--collection", "skip")

    assert f"skipped   {tmp_path / 'photo.png'} (not a kind Bruno reads: .png)" in out
    assert f"skipped   {tmp_path / 'empty.md'} (empty)" in out
    assert (
        f"skipped   {tmp_path / 'huge.txt'} (too large: over the edge's limit of "
        f"{MAX_TEXT_BYTES} bytes)" in out
    )
    assert code == 1  # the file too large was not ingested
    assert documents(system, "skip") == {"ok.md"}


async def test_no_wait_detaches_and_watch_follows_the_job_to_its_end(
    system: BrunoSystem, tmp_path: Path
) -> None:
    docs = folder(tmp_path / "later", 5)

    code, out, _ = await bruno(system, "ingest", str(docs), "--no-wait", "--collection", "later")

    assert code == 0, out
    job_id = job_id_in(out)
    assert f"follow it with: bruno jobs watch {job_id}" in out
    assert not progress_lines(out)

    code, out, _ = await bruno(system, "jobs", "watch", job_id)

    assert code == 0, out
    assert progress_lines(out)[-1] == ("succeeded", 5, 5, progress_lines(out)[-1][3])
    assert f"job {job_id} succeeded: 5 of 5 documents ingested" in out
    assert documents(system, "later") == {f"note-{n:03d}.md" for n in range(5)}

    code, out, _ = await bruno(system, "jobs")

    assert code == 0
    [listed] = [line for line in out.splitlines() if line.startswith(job_id)]
    assert re.match(rf"{job_id}  ingest  succeeded later\s+5/5 documents, 0 failed", listed)


async def test_cancel_stops_a_running_job_and_its_watch_exits_1(
    system: BrunoSystem, tmp_path: Path
) -> None:
    count = 40
    docs = folder(tmp_path / "many", count, paragraphs=20)
    code, out, _ = await bruno(system, "ingest", str(docs), "--no-wait", "--collection", "cut")
    job_id = job_id_in(out)
    # Leaving a watch (Ctrl-C cancels the command's task) leaves the job running.
    watched, err = Written(), io.StringIO()
    watching = asyncio.create_task(
        run(["jobs", "watch", job_id, "--url", system.edge_url], out=watched, err=err)
    )
    await asyncio.wait_for(watched.written.wait(), timeout=60)
    assert progress_lines(watched.getvalue())
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching
    assert err.getvalue() == (
        f"bruno: job {job_id} goes on; follow it with: bruno jobs watch {job_id}\n"
    )

    code, out, _ = await bruno(system, "jobs", "cancel", job_id)

    assert code == 0, out
    assert out.startswith(f"job {job_id} ")
    code, out, _ = await bruno(system, "jobs", "watch", job_id)
    assert code == 1, out
    assert re.search(rf"^job {job_id} cancelled: (\d+) of {count} documents", out, re.MULTILINE)
    assert len(documents(system, "cut")) < count


async def test_on_a_terminal_the_progress_is_a_bar_and_not_lines(
    system: BrunoSystem, tmp_path: Path
) -> None:
    docs = folder(tmp_path / "bar", 3)
    terminal = Terminal()

    code, out, err = await bruno(
        system, "ingest", str(docs), "--job", "--collection", "bar", err=terminal
    )

    assert code == 0, out
    assert not progress_lines(out)
    assert "documents," in err
    assert "chunks" in err
    assert re.search(r"^job \w+ succeeded: 3 of 3 documents ingested", out, re.MULTILINE)


def test_a_url_is_refused_with_what_to_do_instead(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["ingest", "https://example.com/manual.pdf"])

    assert exit_.value.code == 2
    assert "URLs are not ingested yet" in capsys.readouterr().err
