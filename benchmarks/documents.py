"""PDF benchmark: extraction pages/s, and end-to-end upload chunks/s against the raw model.

    uv run python benchmarks/documents.py [--per-file 50] [--compare] [--cranfield DIR]

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
   services (edge, retrieval, embedding) and reports chunks/s, then the raw throughput again;
   the ratio is taken against the mean of the two.

This is a benchmark, not a test: it prints tables and asserts nothing. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from retrieval import DEFAULT_CRANFIELD, Corpus, load_cranfield, raw_model_throughput

from bruno_extract import extract
from bruno_retrieval.chunking import chunk_text
from bruno_retrieval.config import RetrievalSettings
from bruno_testing.documents import PdfPage, pdf_bytes
from bruno_testing.system import BrunoSystem

UPLOAD_CONCURRENCY = 4  # upload requests in flight, one PDF each
PASSES = 3


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


async def upload_all(edge_url: str, files: Sequence[tuple[str, bytes]]) -> tuple[int, float]:
    """Uploads every PDF (one a request, ``UPLOAD_CONCURRENCY`` at once): chunks and seconds."""
    semaphore = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    chunks = 0

    async def one(client: httpx.AsyncClient, name: str, raw: bytes) -> None:
        nonlocal chunks
        async with semaphore:
            response = await client.post(
                "/api/v1/documents/upload?collection=cranfield-pdf",
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
        "--abstracts", type=int, default=0, help="use the first N abstracts (default: all)"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    print(
        f"# make bench-documents — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
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
        raw_before = await raw_model_throughput(chunks)
        print(f"raw model: {raw_before:.0f} chunks/s over {len(chunks)} chunks", file=sys.stderr)
        # A synchronous upload rides on the edge's deadlines (the retrieval channel's default,
        # BRUNO_REQUEST_TIMEOUT_SECONDS, caps the ingest call's own) and on retrieval's embedding
        # deadline; on a loaded machine a PDF of 50 abstracts can pass them. The benchmark
        # measures throughput, not those deadlines (ingestion jobs will take long work off them).
        env = {
            "BRUNO_LOG_LEVEL": "WARNING",
            "BRUNO_REQUEST_TIMEOUT_SECONDS": "900",
            "BRUNO_CHAT_TIMEOUT_SECONDS": "900",
            "BRUNO_EMBEDDING_TIMEOUT_SECONDS": "900",
        }
        (workdir / "system").mkdir()
        with BrunoSystem(workdir / "system", ollama_host="http://127.0.0.1:9", env=env) as system:
            files = [(path.name, raw) for path, raw in zip(paths, raws, strict=True)]
            ingested, seconds = await upload_all(system.edge_url, files)
        raw_after = await raw_model_throughput(chunks)
        print(f"raw model again: {raw_after:.0f} chunks/s", file=sys.stderr)

    raw = statistics.mean([raw_before, raw_after])
    rate = ingested / seconds
    print("\n## End to end: PDFs uploaded, extracted, chunked, embedded and stored\n")
    print("| path | chunks/s |")
    print("|---|---|")
    print(
        f"| model alone (in-process ONNX, batches of 32, {len(chunks)} chunks), before / after "
        f"| {raw_before:.0f} / {raw_after:.0f} |"
    )
    print(
        f"| `POST /api/v1/documents/upload`, {len(paths)} PDFs, {UPLOAD_CONCURRENCY} at once, "
        f"{ingested} chunks in {seconds:.0f} s | {rate:.0f} ({rate / raw * 100:.0f}% of the "
        "model's mean) |"
    )
    print(f"\ntotal run time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
