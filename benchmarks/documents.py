"""PDF benchmark: extraction pages/s, and end-to-end upload chunks/s against the raw model.

    uv run python benchmarks/documents.py [--per-file 50] [--abstracts N] [--compare]
        [--jobs [--rounds 2]] [--cranfield DIR]

1. writes the Cranfield abstracts (title as a heading, abstract as a paragraph) into PDFs of
   ``--per-file`` abstracts each, with reportlab, in a temporary folder (nothing is kept);
2. extracts them in-process with the edge's extractor (PDFium, structure rebuilt as Markdown):
   pages/s and MB/s, best of three passes;
3. with ``--compare``, does the same with the other candidate parsers that are importable
   (``uv run --with pypdf --with pdfplumber python benchmarks/documents.py --compare``) and
   checks each on the structure the project cares about: two columns read in order, a table row
   kept on one line, a scan found empty, an encrypted and a truncated file refused;
4. measures the model's raw throughput on the chunks of the extracted text (in-process ONNX,
   batches of 32), uploads every PDF through ``POST /api/v1/documents/upload`` to the real
   services (edge, retrieval, embedding) and reports chunks/s and each service's CPU seconds,
   then the raw throughput again; the ratio is taken against the mean of the two, and by CPU
   time against the model's own chunks per CPU second;
5. with ``--jobs``, also submits the same PDFs as one ingest job (``POST /api/v1/ingest-jobs``,
   followed at ``GET /api/v1/ingest-jobs/{id}`` until it ends), in ``--rounds`` rounds of an
   upload and a job (each first in every other round; every pass into a collection of its
   own, once the services are idle again), with the raw model measured between the rounds:
   chunks/s and documents/s of each path, the job's own started→finished time, each path's
   ratio to the raw model on either side of its round, the CPU seconds each service spent on
   it (which, unlike wall time, a shared machine's load does not inflate) and each job's
   ratio to the upload of its round.

This is a benchmark, not a test: it prints tables and asserts nothing. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from machine import cpu_seconds, header, load_average
from restore_stack import pids
from retrieval import DEFAULT_CRANFIELD, Corpus, load_cranfield

from bruno_extract import extract
from bruno_retrieval.chunking import chunk_text
from bruno_retrieval.config import RetrievalSettings
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.system import BrunoSystem

UPLOAD_CONCURRENCY = 4  # upload requests in flight, one PDF each
PASSES = 3
JOB_POLL_SECONDS = 0.5
SETTLED_CPU = 0.05  # CPU seconds the services may use in a second and count as idle
SETTLE_MAX_SECONDS = 120.0


def write_pdfs(corpus: Corpus, directory: Path, per_file: int) -> list[Path]:
    """The corpus as PDFs of ``per_file`` abstracts (title as a heading, then the abstract),
    running on from page to page as in a proceedings volume; their paths."""
    paths = []
    documents = corpus.documents
    for number, first in enumerate(range(0, len(documents), per_file)):
        sections = [
            (" ".join(doc["title"].split()), [" ".join(doc["text"].partition("\n\n")[2].split())])
            for doc in documents[first : first + per_file]
        ]
        path = directory / f"cranfield-{number:03}.pdf"
        path.write_bytes(pdf_bytes([PdfPage(sections=sections)], title=f"Cranfield {number}"))
        paths.append(path)
    return paths


# --- extraction -----------------------------------------------------------------------------


def _bruno(raw: bytes) -> int:
    return len(extract("bench.pdf", raw).segments)


def _pypdfium2_text(raw: bytes) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(raw)
    for page in pdf:
        page.get_textpage().get_text_range()
    return len(pdf)


def _pypdf(raw: bytes) -> int:
    import io

    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(raw))
    for page in reader.pages:
        page.extract_text()
    return len(reader.pages)


def _pdfplumber(raw: bytes) -> int:
    import io

    import pdfplumber

    with pdfplumber.open(io.BytesIO(raw)) as pdf:
        for page in pdf.pages:
            page.extract_text()
        return len(pdf.pages)


def _pdfminer(raw: bytes) -> int:
    import io

    from pdfminer.high_level import extract_pages

    return sum(1 for _ in extract_pages(io.BytesIO(raw)))


def _text_of(name: str, raw: bytes) -> str:
    """All the text a candidate reads from ``raw`` (for the structure checks)."""
    import io

    if name == "bruno (PDFium + structure)":
        return extract("check.pdf", raw).text
    if name == "pypdfium2 (plain text)":
        import pypdfium2 as pdfium

        return "\n".join(page.get_textpage().get_text_range() for page in pdfium.PdfDocument(raw))
    if name == "pypdf":
        import pypdf

        return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(raw)).pages)
    if name == "pdfplumber":
        import pdfplumber

        with pdfplumber.open(io.BytesIO(raw)) as pdf:
            return "\n".join(page.extract_text() or "" for page in pdf.pages)
    from pdfminer.high_level import extract_text

    return str(extract_text(io.BytesIO(raw)))


#: name: (module, reader, slow); a slow one (pdfminer-based: minutes over the corpus) reads
#: the first three files only.
CANDIDATES: dict[str, tuple[str, Callable[[bytes], int], bool]] = {
    "bruno (PDFium + structure)": ("pypdfium2", _bruno, False),
    "pypdfium2 (plain text)": ("pypdfium2", _pypdfium2_text, False),
    "pypdf": ("pypdf", _pypdf, False),
    "pdfplumber": ("pdfplumber", _pdfplumber, True),
    "pdfminer.six": ("pdfminer", _pdfminer, True),
}


def pages_per_second(read: Callable[[bytes], int], raws: Sequence[bytes]) -> tuple[float, int]:
    """Best of ``PASSES`` passes over ``raws``: pages/s and the page count."""
    best, pages = 0.0, 0
    for _ in range(PASSES):
        started = time.perf_counter()
        pages = sum(read(raw) for raw in raws)
        best = max(best, pages / (time.perf_counter() - started))
    return best, pages


def structure_checks(name: str) -> dict[str, str]:
    """What the candidate gets right on small documents written here."""
    left = " ".join(f"Router fact {n}." for n in range(200))
    right = " ".join(f"Switch fact {n}." for n in range(100))
    columns = pdf_bytes([PdfPage(heading="Network", paragraphs=[left, right], columns=2)])
    table = pdf_bytes([PdfPage(table=[["Model", "Output"], ["UPS 1500", "900 W"]])])
    scan = pdf_bytes([PdfPage(scan=True, paragraphs=["Receipt 42 EUR"])])
    locked = pdf_bytes([PdfPage(paragraphs=["Secret."])], password="pw")  # noqa: S106
    whole = pdf_bytes([PdfPage(paragraphs=["Whole."]), PdfPage(paragraphs=["Second page."])])
    results: dict[str, str] = {}
    # Whitespace evened out: a line break inside a sentence is no mistake.
    facts = re.findall(r"(Router|Switch) fact (\d+)", " ".join(_text_of(name, columns).split()))
    in_order = [("Router", str(n)) for n in range(200)] + [("Switch", str(n)) for n in range(100)]
    results["columns in order"] = "yes" if facts == in_order else "no"
    row = _text_of(name, table)
    results["table row on one line"] = (
        "yes" if re.search(r"UPS 1500\W+900 W", row) and "\n900 W" not in row else "no"
    )
    results["scan"] = _outcome(lambda: _text_of(name, scan), empty_is="empty (detectable)")
    results["encrypted"] = _outcome(lambda: _text_of(name, locked))
    results["truncated at 97%"] = _outcome(lambda: _text_of(name, whole[: len(whole) * 97 // 100]))
    return results


def _outcome(read: Callable[[], str], empty_is: str = "read nothing") -> str:
    try:
        text = read()
    except Exception as error:  # a candidate's own error type: reported, not raised
        return f"refused ({type(error).__name__})"
    return empty_is if not text.strip() else f"read {len(text.split())} words"


# --- end to end -----------------------------------------------------------------------------


async def upload_all(
    edge_url: str, files: Sequence[tuple[str, bytes]], collection: str
) -> tuple[int, float]:
    """Uploads every PDF (one a request, ``UPLOAD_CONCURRENCY`` at once): chunks and seconds."""
    semaphore = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    chunks = 0

    async def one(client: httpx.AsyncClient, name: str, raw: bytes) -> None:
        nonlocal chunks
        async with semaphore:
            response = await client.post(
                f"/api/v1/documents/upload?collection={collection}",
                files={"file": (name, raw, "application/pdf")},
            )
            if response.status_code != 200:
                raise RuntimeError(f"{name}: {response.status_code} {response.text}")
            chunks += sum(entry["chunks"] for entry in response.json()["files"])

    async with httpx.AsyncClient(base_url=edge_url, timeout=600) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one(client, name, raw) for name, raw in files))
        seconds = time.perf_counter() - started
    return chunks, seconds


@dataclass(frozen=True)
class JobRun:
    """One ingest job, as the client saw it and as its record says."""

    documents: int
    chunks: int
    submit_seconds: float  # POST until 202: the edge reads (extracts) every file and hands it on
    wall_seconds: float  # POST until a poll finds the job ended
    job_seconds: float  # the job's own started_at → finished_at


async def ingest_as_job(
    edge_url: str, files: Sequence[tuple[str, bytes]], collection: str
) -> JobRun:
    """Submits every PDF as one ingest job and polls it until it ends."""
    async with httpx.AsyncClient(base_url=edge_url, timeout=600) as client:
        started = time.perf_counter()
        response = await client.post(
            f"/api/v1/ingest-jobs?collection={collection}",
            files=[("files", (name, raw, "application/pdf")) for name, raw in files],
        )
        if response.status_code != 202:
            raise RuntimeError(f"job submit: {response.status_code} {response.text}")
        submitted = time.perf_counter()
        location = response.headers["Location"]
        while (job := response.json())["finished_at"] is None:
            await asyncio.sleep(JOB_POLL_SECONDS)
            response = await client.get(location)
            response.raise_for_status()
        ended = time.perf_counter()
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job['id']} {job['state']}: {job['reason']} {job['errors']}")
    span = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    return JobRun(
        documents=job["documents"]["done"],
        chunks=job["chunks_written"],
        submit_seconds=submitted - started,
        wall_seconds=ended - started,
        job_seconds=span.total_seconds(),
    )


@dataclass(frozen=True)
class RawModel:
    """The model alone over the corpus's chunks."""

    rate: float  # chunks/s
    per_cpu_second: float  # chunks per CPU second: what the load on the machine does not change


async def raw_model(chunks: list[str]) -> RawModel:
    """The embedding service's model in-process (ONNX, batches of 32, as
    ``retrieval.raw_model_throughput``), the embedding call's wall and CPU time (this
    process's: the model's threads are its own, the rest of it waits)."""
    from bruno_embedding.embedders import InputType
    from bruno_embedding.onnx_embedder import OnnxMiniLMEmbedder

    embedder = OnnxMiniLMEmbedder(batch_size=32)
    await embedder.start()
    wall, cpu = time.perf_counter(), time.process_time()
    await embedder.embed(chunks, InputType.DOCUMENT)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await embedder.aclose()
    return RawModel(len(chunks) / wall, len(chunks) / cpu)


async def settle(system: BrunoSystem) -> float:
    """Wait until the services are idle (the last path's index builds and compactions run in
    the background): under ``SETTLED_CPU`` of a core over a second, at most
    ``SETTLE_MAX_SECONDS``. The seconds waited."""
    started = time.perf_counter()
    before = sum(cpu_seconds(pids(system)).values())
    while time.perf_counter() - started < SETTLE_MAX_SECONDS:
        await asyncio.sleep(1.0)
        now = sum(cpu_seconds(pids(system)).values())
        if now - before < SETTLED_CPU:
            break
        before = now
    return time.perf_counter() - started


@dataclass(frozen=True)
class PathRun:
    """The corpus through one path once: what the client saw, and the services' CPU time."""

    path: str  # "upload" or "job"
    round: int
    chunks: int
    documents: int
    seconds: float  # the client's wall time
    cpu: dict[str, float]  # CPU seconds each service used meanwhile
    load: str  # at its start
    job: JobRun | None = None

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds


async def run_path(
    system: BrunoSystem, path: str, round_: int, files: Sequence[tuple[str, bytes]]
) -> PathRun:
    """The corpus into a collection of its own through ``path``, once the services are idle."""
    waited = await settle(system)
    print(
        f"round {round_} {path}: settled in {waited:.0f} s, load {load_average()}", file=sys.stderr
    )
    collection = f"cranfield-pdf-{path}-{round_}"
    at_start, before = load_average(), cpu_seconds(pids(system))
    job = None
    if path == "job":
        job = await ingest_as_job(system.edge_url, files, collection)
        chunks, documents, seconds = job.chunks, job.documents, job.wall_seconds
    else:
        chunks, seconds = await upload_all(system.edge_url, files, collection)
        documents = len(files)
    after = cpu_seconds(pids(system))
    cpu = {name: after[name] - before[name] for name in after}
    print(f"  {chunks} chunks in {seconds:.0f} s", file=sys.stderr)
    return PathRun(path, round_, chunks, documents, seconds, cpu, at_start, job)


def print_end_to_end(runs: Sequence[PathRun], raws: Sequence[RawModel], chunks: int) -> None:
    """The table of the paths, each against the raw model: by wall time against the raw runs
    on either side of its round (the load drifts), by CPU time against their mean; and each
    job against the upload of its round."""
    per_cpu_second = statistics.mean(raw.per_cpu_second for raw in raws)
    print("\n## End to end: PDFs uploaded, extracted, chunked, embedded and stored\n")
    print(
        f"Model alone (in-process ONNX, batches of 32, {chunks} chunks), before, between the "
        f"rounds and after: {' / '.join(f'{raw.rate:.1f}' for raw in raws)} chunks/s; "
        f"{' / '.join(f'{raw.per_cpu_second:.1f}' for raw in raws)} chunks per CPU second.\n"
    )
    print(
        "| round | path | chunks in s | chunks/s | documents/s | of the raw model | "
        "CPU s: edge / retrieval / embedding | chunks per CPU s (all services) | "
        "of the raw model's | load (1/5/15 min) at its start |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        raw = statistics.mean(raw.rate for raw in raws[run.round - 1 : run.round + 1])
        cpu = " / ".join(f"{run.cpu[name]:.1f}" for name in ("edge", "retrieval", "embedding"))
        efficiency = run.chunks / sum(run.cpu.values())
        name = (
            f"`POST /api/v1/documents/upload`, {run.documents} PDFs, {UPLOAD_CONCURRENCY} at once"
            if run.job is None
            else f"`POST /api/v1/ingest-jobs`, {run.documents} PDFs as one job, to the poll that "
            f"found it done (the POST answered in {run.job.submit_seconds:.1f} s)"
        )
        print(
            f"| {run.round} | {name} | {run.chunks} in {run.seconds:.0f} | {run.rate:.1f} | "
            f"{run.documents / run.seconds:.3f} | {run.rate / raw * 100:.0f}% | {cpu} | "
            f"{efficiency:.1f} | {efficiency / per_cpu_second * 100:.0f}% | {run.load} |"
        )
        if run.job is not None:
            own = run.chunks / run.job.job_seconds
            print(
                f"| {run.round} | the same job, its own `started_at` → `finished_at` "
                f"| {run.chunks} in {run.job.job_seconds:.0f} | {own:.1f} | "
                f"{run.documents / run.job.job_seconds:.3f} | {own / raw * 100:.0f}% | | | | |"
            )
    uploads = {run.round: run for run in runs if run.job is None}
    jobs = [run for run in runs if run.job is not None]
    if jobs:
        ratios = [job.rate / uploads[job.round].rate for job in jobs]
        cpu_ratios = [sum(job.cpu.values()) / sum(uploads[job.round].cpu.values()) for job in jobs]
        print(
            "\nThe job against the upload of its round: chunks/s "
            + ", ".join(f"{ratio:.2f}" for ratio in ratios)
            + " times its rate; the services' CPU seconds "
            + ", ".join(f"{ratio:.2f}" for ratio in cpu_ratios)
            + " times theirs."
        )


def chunk_texts(texts: Sequence[str], settings: RetrievalSettings) -> list[str]:
    """The texts the service embeds for ``texts`` (heading path, then the chunk)."""
    out = []
    for text in texts:
        for chunk in chunk_text(
            text,
            size_tokens=settings.chunk_size_tokens,
            overlap_tokens=settings.chunk_overlap_tokens,
        ):
            out.append(
                f"{chunk.heading_path}\n\n{chunk.text}" if chunk.heading_path else chunk.text
            )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cranfield", type=Path, default=DEFAULT_CRANFIELD)
    parser.add_argument("--per-file", type=int, default=50, help="abstracts per PDF")
    parser.add_argument("--compare", action="store_true", help="also time the other parsers")
    parser.add_argument("--skip-e2e", action="store_true", help="extraction only")
    parser.add_argument(
        "--jobs", action="store_true", help="also ingest the PDFs as one job (end to end)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="with --jobs: rounds of upload and job, each going first in every other one",
    )
    parser.add_argument(
        "--abstracts", type=int, default=0, help="use the first N abstracts (default: all)"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    print(header("make bench-documents") + "\n")
    corpus = load_cranfield(args.cranfield)
    if args.abstracts:
        corpus.documents[:] = corpus.documents[: args.abstracts]
    with tempfile.TemporaryDirectory(prefix="bruno-bench-pdf-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        paths = write_pdfs(corpus, workdir, args.per_file)
        raws = [path.read_bytes() for path in paths]
        megabytes = sum(len(raw) for raw in raws) / 1e6
        print(
            f"wrote {len(paths)} PDFs ({megabytes:.1f} MB, {args.per_file} abstracts each) in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )

        print("## Extraction (in-process, one thread, best of three passes)\n")
        names = [
            name
            for name, (module, _, _) in CANDIDATES.items()
            if name.startswith("bruno") or (args.compare and importlib.util.find_spec(module))
        ]
        checks = list(structure_checks(names[0]))
        print("| parser | pages/s | MB/s | pages | " + " | ".join(checks) + " |")
        print("|---|---|---|---|" + "---|" * len(checks))
        for name in names:
            _, read, slow = CANDIDATES[name]
            sample = raws[:3] if slow else raws
            rate, pages = pages_per_second(read, sample)
            share = sum(len(raw) for raw in sample) / 1e6 / (pages / rate)
            print(
                f"| {name} | {rate:.0f} | {share:.1f} | {pages} | "
                + " | ".join(structure_checks(name).values())
                + " |"
            )
        if args.skip_e2e:
            return

        settings = RetrievalSettings()
        texts = [extract(path.name, raw).text for path, raw in zip(paths, raws, strict=True)]
        chunks = chunk_texts(texts, settings)
        raws_model = [await raw_model(chunks)]
        print(
            f"raw model: {raws_model[0].rate:.1f} chunks/s over {len(chunks)} chunks, "
            f"load {load_average()}",
            file=sys.stderr,
        )
        # A synchronous upload rides on the edge's deadlines (the retrieval channel's default,
        # BRUNO_REQUEST_TIMEOUT_SECONDS, caps the ingest call's own) and on retrieval's embedding
        # deadline; on a loaded machine a PDF of 50 abstracts can pass them, and past
        # BRUNO_INGEST_WAIT_SECONDS the upload answers 202 and goes on as a job. The benchmark
        # measures the synchronous path's throughput, not those deadlines.
        env = {
            "BRUNO_LOG_LEVEL": "WARNING",
            "BRUNO_REQUEST_TIMEOUT_SECONDS": "900",
            "BRUNO_CHAT_TIMEOUT_SECONDS": "900",
            "BRUNO_EMBEDDING_TIMEOUT_SECONDS": "900",
            "BRUNO_INGEST_WAIT_SECONDS": "900",
        }
        files = [(path.name, raw) for path, raw in zip(paths, raws, strict=True)]
        rounds = args.rounds if args.jobs else 1
        runs: list[PathRun] = []
        (workdir / "system").mkdir()
        with BrunoSystem(workdir / "system", ollama_host="http://127.0.0.1:9", env=env) as system:
            for round_ in range(1, rounds + 1):
                # Each path goes first in every other round: neither always inherits the
                # machine after the other.
                order = ["upload", "job"] if round_ % 2 else ["job", "upload"]
                for path in order if args.jobs else ["upload"]:
                    runs.append(await run_path(system, path, round_, files))
                if round_ < rounds:
                    await settle(system)
                    raws_model.append(await raw_model(chunks))
                    print(f"raw model: {raws_model[-1].rate:.1f} chunks/s", file=sys.stderr)
        raws_model.append(await raw_model(chunks))
        print(
            f"raw model after: {raws_model[-1].rate:.1f} chunks/s, load {load_average()}",
            file=sys.stderr,
        )

    print_end_to_end(runs, raws_model, len(chunks))
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
