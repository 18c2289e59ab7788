"""Shared test support: a deterministic in-process embedder, settings over a LanceDB in
tmp_path, a knowledge store on them, and the job runner wired as retrieval wires it."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest

from bruno.embedding.v1 import embedding_pb2
from bruno_core import Unavailable
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import TABLE as CONVERSATIONS_TABLE
from bruno_retrieval.fetching import UrlFetcher
from bruno_retrieval.jobs import DocumentError, Job, JobRunner, JobStore, StagedDocument
from bruno_retrieval.jobs.retries import DocumentRetries
from bruno_retrieval.knowledge import Embedded, KnowledgeStore, ModelNotServed

DIMENSION = 64
# The fixture embedder's model: its words hash unsalted (the slots the tests were written for).
DEFAULT_MODEL = "hash-bow"
# A job waiting for a held embedding would wait forever: this bounds the hang, it measures
# nothing.
HANG_GUARD_SECONDS = 30


def hash_vector(text: str, dimension: int = DIMENSION, salt: str = "") -> list[float]:
    """A bag-of-words vector: each word adds 1 to the slot its hash picks. Texts that share
    words point the same way, so vector search behaves like a crude keyword model; another
    ``salt`` picks other slots (another model)."""
    vector = [0.0] * dimension
    vector[0] = 0.01  # never the zero vector, whose cosine distance is undefined
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b((salt + word).encode(), digest_size=4).digest()
        vector[1 + int.from_bytes(digest) % (dimension - 1)] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector]


class FakeEmbedder:
    """Embeds with :func:`hash_vector`: as its default ``model_name``, or as one of the models
    of ``also_serves`` (name: dimension), each model hashing words to slots of its own; any other
    model asked for is :class:`ModelNotServed`. Records every call that embeds (``calls``:
    texts and input type; ``models_asked``: the model named, "" for the default) and fails when
    told to."""

    def __init__(
        self,
        dimension: int = DIMENSION,
        model_name: str = DEFAULT_MODEL,
        also_serves: Mapping[str, int] | None = None,
    ) -> None:
        self.dimension = dimension
        self.model_name = model_name
        self.also_serves = dict(also_serves or {})
        self.calls: list[tuple[list[str], int]] = []
        self.models_asked: list[str] = []
        self.failing = False

    async def embed(
        self,
        texts: Sequence[str],
        input_type: embedding_pb2.InputType.ValueType,
        model: str = "",
    ) -> Embedded:
        await asyncio.sleep(0)  # a real embedder yields to the loop while it works
        if self.failing:
            raise Unavailable("embedding service: connection refused")
        name = model or self.model_name
        dimension = self.dimension if name == self.model_name else self.also_serves.get(name)
        if dimension is None:  # refused before any embedding work
            raise ModelNotServed(name, [self.model_name, *self.also_serves])
        self.calls.append((list(texts), input_type))
        self.models_asked.append(model)
        salt = "" if name == DEFAULT_MODEL else name
        return Embedded([hash_vector(text, dimension, salt) for text in texts], name)

    @property
    def document_calls(self) -> int:
        return sum(1 for _, kind in self.calls if kind == embedding_pb2.INPUT_TYPE_DOCUMENT)


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def make_embedder() -> Callable[[int], FakeEmbedder]:
    """Embedders of a chosen dimension (test files cannot import this module by name)."""
    return FakeEmbedder


HoldEmbeddings = Callable[..., tuple[asyncio.Event, asyncio.Event]]


@pytest.fixture
def hold_embeddings(monkeypatch: pytest.MonkeyPatch) -> HoldEmbeddings:
    """``hold(embedder, queries_only=True)`` holds the embedder's calls (search queries only,
    or all) until the second event it returns is set; the first is set once a call is held.
    With ``marker`` it holds the calls for texts holding it instead, of either kind, and lets
    the others through at once; holds stack, the latest outermost."""

    def hold(
        embedder: FakeEmbedder, *, queries_only: bool = True, marker: str | None = None
    ) -> tuple[asyncio.Event, asyncio.Event]:
        holding, released = asyncio.Event(), asyncio.Event()
        embed = embedder.embed

        def held_back(texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType) -> bool:
            if marker is not None:
                return any(marker in text for text in texts)
            return input_type == embedding_pb2.INPUT_TYPE_QUERY or not queries_only

        async def held(
            texts: Sequence[str], input_type: embedding_pb2.InputType.ValueType, model: str = ""
        ) -> Embedded:
            if held_back(texts, input_type):
                holding.set()
                await released.wait()
            return await embed(texts, input_type, model)

        monkeypatch.setattr(embedder, "embed", held)
        return holding, released

    return hold


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., RetrievalSettings]:
    """Settings over the LanceDB at ``tmp_path / "lancedb"``; keywords override any field.
    The quiet optimize is off (it would optimize at a time of its own choosing); a test of it
    turns it on."""

    def make(**overrides: Any) -> RetrievalSettings:
        defaults = {"lancedb_uri": str(tmp_path / "lancedb"), "optimize_quiet_seconds": 0}
        return RetrievalSettings(**{**defaults, **overrides})

    return make


@pytest.fixture
async def store(
    make_settings: Callable[..., RetrievalSettings], embedder: FakeEmbedder
) -> AsyncIterator[KnowledgeStore]:
    # Small chunks so short test documents span several of them.
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8)
    knowledge = await KnowledgeStore.open(settings, embedder)
    yield knowledge
    knowledge.close()


class Legacy:
    """Writes rows as an older version did, around today's rules (ids that break them)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    async def document(self, collection: str, document_id: str, text: str) -> None:
        """A one-chunk document: a copy of a row of ``collection`` (which must hold one)."""
        db = await lancedb.connect_async(self.uri)
        table: Any = await db.open_table(collection)
        row = (await table.query().limit(1).to_arrow()).to_pylist()[0]
        row |= {
            "document_id": document_id,
            "chunk_id": f"{document_id}:0",
            "chunk_index": 0,
            "chunk_count": 1,
            "text": text,
        }
        await table.add(pa.Table.from_pylist([row], schema=await table.schema()))
        table.close()

    async def conversation(self, conversation_id: str) -> None:
        db = await lancedb.connect_async(self.uri)
        table: Any = await db.open_table(CONVERSATIONS_TABLE)
        now = datetime.now(UTC)
        row = {
            "conversation_id": conversation_id,
            "turns": "[]",
            "created_at": now,
            "updated_at": now,
            "revision": 1,
        }
        await table.add(pa.Table.from_pylist([row], schema=await table.schema()))
        table.close()


@pytest.fixture
def legacy(make_settings: Callable[..., RetrievalSettings]) -> Legacy:
    """Rows from before the identifier rule, in the database of ``make_settings()``."""
    return Legacy(make_settings().lancedb_uri)


async def _stream(
    items: Iterable[StagedDocument | DocumentError],
) -> AsyncIterator[StagedDocument | DocumentError]:
    for item in items:
        yield item


class JobService:
    """A knowledge store, a job store and a runner over one LanceDB, as retrieval wires them;
    with ``fetching``, a URL fetcher from the settings too. ``async with`` starts and stops it;
    ``start`` can choose the runner's document ``retries`` (its default otherwise)."""

    def __init__(
        self, settings: RetrievalSettings, embedder: FakeEmbedder, *, fetching: bool = False
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.fetching = fetching
        self.fetcher: UrlFetcher | None = None

    async def start(self, retries: DocumentRetries | None = None) -> None:
        settings = self.settings
        self.knowledge = await KnowledgeStore.open(settings, self.embedder)
        self.jobs = await JobStore.open(settings)
        if self.fetching:
            self.fetcher = UrlFetcher(
                settings.fetch_policy, settings.extraction_limits, settings.fetch_limits
            )
        self.runner = JobRunner(self.jobs, self.knowledge, self.fetcher, retries=retries)
        await self.runner.start()

    async def close(self) -> None:
        await self.runner.stop()
        if self.fetcher is not None:
            await self.fetcher.aclose()
        self.jobs.close()
        self.knowledge.close()

    async def __aenter__(self) -> JobService:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def submit(
        self,
        *items: StagedDocument | DocumentError,
        owner: str = "ann",
        collection: str = "default",
    ) -> Job:
        return await self.runner.submit(collection, owner, _stream(items))

    async def submit_urls(self, *urls: str) -> Job:
        """A URL job: each URL fetched, read and ingested by the runner."""
        return await self.submit(*map(StagedDocument.to_fetch, urls))

    async def finished(self, job: Job) -> Job:
        """The job as stored once the runner has nothing left to do."""
        await asyncio.wait_for(self.runner.wait_until_idle(), HANG_GUARD_SECONDS)
        return await self.jobs.get(job.id)

    async def until(self, job: Job, reached: Callable[[Job], bool]) -> Job:
        """The job as stored once it has ``reached`` a point (other jobs may still run)."""

        async def watch() -> Job:
            while True:
                changed = self.jobs.next_change()
                found = await self.jobs.get(job.id)
                if reached(found):
                    return found
                await changed.wait()

        return await asyncio.wait_for(watch(), HANG_GUARD_SECONDS)

    async def until_finished(self, job: Job) -> Job:
        return await self.until(job, lambda found: found.state.finished)

    async def document_ids(self, collection: str = "default") -> list[str]:
        page = await self.knowledge.list_documents(collection)
        return [d.document_id for d in page.documents]


@pytest.fixture
def make_job_service() -> type[JobService]:
    """:class:`JobService` itself (test files cannot import this module by name)."""
    return JobService
