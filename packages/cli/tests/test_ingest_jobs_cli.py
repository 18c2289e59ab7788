"""``bruno ingest`` as ingest jobs, and ``bruno jobs``, against the four services as real
processes over real HTTP: a large set becomes a job followed to its end in plain lines or a
bar, a small one stays file by file, what was skipped is listed, a bad file fails alone,
detach and re-attach, leave a watch, cancel."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bruno_cli import run
from bruno_cli.ingest import JOB_THRESHOLD
from bruno_cli.main import build_parser
from bruno_testing.background import InBackground
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.ollama_standin import OllamaStandIn
from bruno_testing.system import BrunoSystem

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

PROGRESS = re.compile(r"^job (\w+) (\w+): (\d+)/(\d+) documents, (\d+) failed, (\d+) chunks")


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
    root.mkdir(parents=True)
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
    found = re.search(r"^job (\w+) queued: \d+ documents$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def progress_lines(out: str) -> list[tuple[str, int, int, int]]:
    """(state, documents accounted for, total, chunks) of each plain progress line."""
    lines: list[tuple[str, int, int, int]] = []
    for line in out.splitlines():
        if match := PROGRESS.match(line):
            _, state, done, total, failed, chunks = match.groups()
            lines.append((state, int(done) + int(failed), int(total), int(chunks)))
    return lines


async def test_a_large_folder_is_one_job_whose_progress_advances_in_plain_lines(
    system: BrunoSystem, tmp_path: Path
) -> None:
    count = JOB_THRESHOLD + 8
    docs = tmp_path / "notes"
    folder(docs / "racks", count // 2, paragraphs=3)
    folder(docs / "pools", count // 2, paragraphs=3)

    code, out, _ = await bruno(system, "ingest", str(docs), "--collection", "large")

    assert code == 0, out
    job_id = job_id_in(out)
    lines = progress_lines(out)
    assert lines[-1][0] == "succeeded"
    assert [done for _, done, _, _ in lines] == sorted(done for _, done, _, _ in lines)
    assert any(0 < done < count for _, done, _, _ in lines), out  # seen on its way
    assert lines[-1][1:3] == (count, count)
    assert [chunks for *_, chunks in lines] == sorted(chunks for *_, chunks in lines)
    assert re.search(r"documents/s, about .+ left$", out, re.MULTILINE), out  # while it ran
    assert f"job {job_id} succeeded: {count}/{count} documents, 0 failed" in out
    assert out.strip().splitlines()[-1].endswith(f"{count} ingested")
    # A job stores each file under the id a file-by-file sync gives it: its path.
    assert documents(system, "large") == {
        f"{part}/note-{n:03d}.md" for part in ("racks", "pools") for n in range(count // 2)
    }


async def test_a_small_set_stays_one_request_per_file(system: BrunoSystem, tmp_path: Path) -> None:
    docs = folder(tmp_path / "few", 3)

    code, out, _ = await bruno(system, "ingest", str(docs), "--collection", "small")

    assert code == 0, out
    assert "created   note-000.md" in out
    assert "job " not in out
    assert out.strip().splitlines()[-1] == "3 files: 3 created, 0 replaced, 0 unchanged"


async def test_a_bad_file_fails_alone_lists_what_was_skipped_and_exits_1(
    system: BrunoSystem, tmp_path: Path
) -> None:
    docs = folder(tmp_path / "mixed", JOB_THRESHOLD, paragraphs=1)
    (docs / "scan.pdf").write_bytes(pdf_bytes([PdfPage(paragraphs=["42 EUR"], scan=True)]))
    (docs / "empty.md").write_text("  \n")
    (docs / "photo.png").write_bytes(b"\x89PNG")

    code, out, _ = await bruno(system, "ingest", str(docs), "--collection", "mixed")

    assert code == 1, out
    assert re.search(r"^failed    scan\.pdf: .*text layer", out, re.MULTILINE), out
    assert "skipped   empty.md (empty)" in out
    assert "skipped   photo.png (not a kind Bruno reads: .png)" in out
    job_id = job_id_in(out)
    assert f"job {job_id} succeeded: {JOB_THRESHOLD}/{JOB_THRESHOLD} documents, 0 failed" in out
    assert documents(system, "mixed") == {f"note-{n:03d}.md" for n in range(JOB_THRESHOLD)}


async def test_no_wait_detaches_and_watch_follows_the_job_to_its_end(
    system: BrunoSystem, tmp_path: Path
) -> None:
    docs = folder(tmp_path / "later", 5)

    code, out, _ = await bruno(system, "ingest", str(docs), "--no-wait", "--collection", "later")

    assert code == 0, out
    job_id = job_id_in(out)
    assert f"follow it with: bruno jobs watch {job_id}" in out
    assert not progress_lines(out)

    code, out, _ = await bruno(system, "jobs", "watch", job_id, "--plain")

    assert code == 0, out
    assert progress_lines(out)[-1][:3] == ("succeeded", 5, 5)
    assert f"job {job_id} succeeded: 5/5 documents, 0 failed" in out
    assert documents(system, "later") == {f"note-{n:03d}.md" for n in range(5)}

    code, out, _ = await bruno(system, "jobs")

    assert code == 0
    [listed] = [line for line in out.splitlines() if line.startswith(job_id)]
    assert listed.split()[1:6] == ["ingest", "later", "succeeded", "5/5", "documents,"]


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
    assert re.search(rf"^job {job_id} cancelled: \d+/{count} documents", out, re.MULTILINE)
    assert len(documents(system, "cut")) < count


async def test_on_a_terminal_the_progress_is_a_bar_and_not_lines(
    system: BrunoSystem, tmp_path: Path
) -> None:
    count = JOB_THRESHOLD + 8
    docs = folder(tmp_path / "bar", count, paragraphs=3)
    terminal = Terminal()

    code, out, err = await bruno(system, "ingest", str(docs), "--collection", "bar", err=terminal)

    assert code == 0, out
    assert [state for state, *_ in progress_lines(out)] == ["succeeded"]  # only how it ended
    assert "chunks, 0 failed" in err
    assert "docs/s" in err
    assert re.search(r"docs/s about \d.* left", err), err  # while it ran, as the lines say it
    assert re.search(rf"^job \w+ succeeded: {count}/{count} documents", out, re.M)

    code, out, err = await bruno(system, "jobs", "watch", job_id_in(out), "--plain", err=Terminal())

    assert code == 0
    assert progress_lines(out)  # --plain: lines on a terminal too
    assert err == ""


def test_a_url_is_taken_and_one_the_server_may_not_fetch_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["ingest", "https://example.com/manual.pdf", "notes/"])
    assert args.paths == ["https://example.com/manual.pdf", Path("notes/")]

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["ingest", "https://me:secret@example.com/manual.pdf"])

    assert exit_.value.code == 2
    assert "user name or password" in capsys.readouterr().err
