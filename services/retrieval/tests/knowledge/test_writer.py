"""Writes to a collection: concurrent ingests committed together, each document whole."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import lancedb
import pytest

from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.knowledge import (
    IngestOutcome,
    KnowledgeStore,
)
from bruno_retrieval.knowledge import writer as writer_module
from bruno_retrieval.knowledge.keywords import text_index

if TYPE_CHECKING:
    from conftest import FakeEmbedder

MakeEmbedder = Callable[..., "FakeEmbedder"]
MakeSettings = Callable[..., RetrievalSettings]


async def test_concurrent_ingests_are_committed_together_and_each_is_whole(
    store: KnowledgeStore,
) -> None:
    texts = {f"d{n}": "\n\n".join(f"Doc {n} part {p} velero." for p in range(6)) for n in range(30)}

    results = await asyncio.gather(
        *(store.ingest("default", text=text, document_id=doc) for doc, text in texts.items())
    )

    assert {r.outcome for r in results} == {IngestOutcome.CREATED}
    page = await store.list_documents("default", limit=100)
    assert {d.document_id: d.chunks for d in page.documents} == {
        r.document_id: r.chunks for r in results
    }


async def test_a_caller_giving_up_does_not_strand_the_documents_committed_with_its_own(
    store: KnowledgeStore,
) -> None:
    await store.ingest("default", text="Seed velero.", document_id="seed")
    lock = store._writer.lock("default")
    await lock.acquire()  # a commit in progress: the next two documents wait together
    first = asyncio.create_task(store.ingest("default", text="Alpha velero.", document_id="a"))
    second = asyncio.create_task(store.ingest("default", text="Beta velero.", document_id="b"))
    for _ in range(1000):  # until both wait in the queue
        if len(store._writer._commits["default"]._queue) == 2:
            break
        await asyncio.sleep(0.01)
    lock.release()
    for _ in range(1000):  # one commit has taken both
        if not store._writer._commits["default"]._queue:
            break
        await asyncio.sleep(0)
    first.cancel()  # its caller's deadline passed mid-commit

    result = await asyncio.wait_for(second, timeout=10)

    assert result.outcome is IngestOutcome.CREATED
    with pytest.raises(asyncio.CancelledError):
        await first
    await store.wait_for_background()
    page = await store.list_documents("default", limit=10)
    assert {d.document_id for d in page.documents} == {"seed", "a", "b"}


async def test_the_same_document_ingested_twice_at_once_ends_as_one_version(
    store: KnowledgeStore,
) -> None:
    first, second = await asyncio.gather(
        store.ingest("default", text="Version one velero.", document_id="d"),
        store.ingest("default", text="Version two velero.", document_id="d"),
    )

    assert {first.outcome, second.outcome} <= {IngestOutcome.CREATED, IngestOutcome.REPLACED}
    hits = (await store.search("default", "velero version", top_k=10)).hits
    assert len({hit.content_hash for hit in hits}) == 1


async def test_a_document_of_many_chunks_is_folded_into_the_keyword_index_without_more_writes(
    store: KnowledgeStore, make_settings: MakeSettings
) -> None:
    await store.ingest("default", text="Seed velero.", document_id="seed")  # builds the index
    long = "\n\n".join(
        f"Part {p} of the runbook: restart node{p} after patching." for p in range(300)
    )

    result = await store.ingest("default", text=long, document_id="long")
    await store.wait_for_background()

    table = await (await lancedb.connect_async(make_settings().lancedb_uri)).open_table("default")
    index = await text_index(table)
    assert index is not None
    stats = await table.index_stats(index.name)
    assert result.chunks >= 100
    assert stats is not None
    assert stats.num_unindexed_rows == 0


# --- the quiet optimize ---------------------------------------------------------------------

# Bounds a wait for the quiet optimize, which comes within a fraction of a second: it measures
# nothing.
QUIET_GUARD_SECONDS = 30


class FakeClock:
    """The writer's clock, moved by hand; ``read`` is set whenever the writer looks at it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.read = asyncio.Event()

    def __call__(self) -> float:
        self.read.set()
        return self.now

    async def advance(
        self, store: KnowledgeStore, seconds: float, collection: str = "default"
    ) -> None:
        """Move the clock on, wake the quiet timer of ``collection`` (it sleeps on the real clock)
        and wait until it has looked at the time (and decided, in the same step, whether to
        optimize)."""
        self.now += seconds
        self.read.clear()
        store._writer._quiet_states[collection].wake.set()
        await asyncio.wait_for(self.read.wait(), QUIET_GUARD_SECONDS)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(writer_module, "monotonic", fake)
    return fake


async def open_quiet(
    make_settings: MakeSettings, embedder: FakeEmbedder, **quiet: float
) -> KnowledgeStore:
    settings = make_settings(chunk_size_tokens=32, chunk_overlap_tokens=8, **quiet)
    return await KnowledgeStore.open(settings, embedder)


def record_optimizes(store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The collections the writer starts to optimize (each time), as it starts."""
    started: list[str] = []
    optimize = store._writer._optimize

    def recorded(collection: str, *args: Any) -> Coroutine[Any, Any, None]:
        started.append(collection)
        return optimize(collection, *args)

    monkeypatch.setattr(store._writer, "_optimize", recorded)
    return started


async def keyword_state(uri: str, collection: str = "default") -> tuple[int, int, int]:
    """(rows outside the keyword index, fragments, version) of the collection's table, on
    disk."""
    table: Any = await (await lancedb.connect_async(uri)).open_table(collection)
    try:
        index = await text_index(table)
        assert index is not None
        stats = await table.index_stats(index.name)
        assert stats is not None
        fragments = (await table.stats())["fragment_stats"]["num_fragments"]
        return stats.num_unindexed_rows, fragments, await table.version()
    finally:
        table.close()


async def quiet_optimized(store: KnowledgeStore, collection: str = "default") -> None:
    """Until the quiet timer of ``collection`` has optimized it and has nothing left to wait
    for (its optimize is a task of its own: waited for too)."""
    timer = store._writer.quiet_timer(collection)
    assert timer is not None
    await asyncio.wait_for(timer, QUIET_GUARD_SECONDS)
    await store.wait_for_background()


async def test_a_collection_left_alone_after_a_few_writes_is_optimized(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=0.05)
    try:
        for n in range(3):  # far below the 20 writes or 100 rows of the periodic optimize
            result = await store.ingest("default", text=f"Velero note {n}.", document_id=f"n{n}")
        assert result.committed is not None

        await quiet_optimized(store)

        unindexed, fragments, version = await keyword_state(make_settings().lancedb_uri)
        assert (unindexed, fragments) == (0, 1)
        assert version > result.committed.version
        assert len((await store.search("default", "velero note", top_k=10)).hits) == 3
    finally:
        store.close()


async def test_a_write_during_the_quiet_period_postpones_the_optimize(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=10)
    started = record_optimizes(store, monkeypatch)
    try:
        await store.ingest("default", text="Velero first note.", document_id="a")
        clock.now += 8
        await store.ingest("default", text="Velero second note.", document_id="b")

        await clock.advance(store, 4)  # 12 s after the first, 4 after the second

        assert started == []
        assert store._writer.quiet_timer("default") is not None

        await clock.advance(store, 7)  # 11 s after the second
        await quiet_optimized(store)
        assert started == ["default"]
        assert (await keyword_state(make_settings().lancedb_uri))[0] == 0
    finally:
        store.close()


async def test_zero_quiet_seconds_turn_the_quiet_optimize_off(
    make_settings: MakeSettings, embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=0)
    started = record_optimizes(store, monkeypatch)
    try:
        for n in range(3):  # each ingest lets any timer the one before started run
            await store.ingest("default", text=f"Velero note {n}.", document_id=f"n{n}")
        await store.wait_for_background()

        assert store._writer.quiet_timer("default") is None
        assert started == []
        assert (await keyword_state(make_settings().lancedb_uri))[0] > 0
    finally:
        store.close()


SEVERAL_CHUNKS = "\n\n".join(
    f"Part {p} of the Velero runbook: restore the volume snapshot, then check that every pod "
    f"of namespace {p} is running again and its data is back."
    for p in range(3)
)


@pytest.mark.parametrize(
    ("max_rows", "waits_for_the_interval"),
    [(4, True), (3, False)],
    ids=["max-rows-wait-for-the-interval", "more-than-max-rows-do-not"],
)
async def test_a_quiet_optimize_runs_at_most_once_per_interval_unless_many_rows_came(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    max_rows: int,
    waits_for_the_interval: bool,
) -> None:
    store = await open_quiet(
        make_settings,
        embedder,
        optimize_quiet_seconds=1,
        optimize_quiet_interval_seconds=600,
        optimize_quiet_max_rows=max_rows,
    )
    started = record_optimizes(store, monkeypatch)
    try:
        await store.ingest("default", text="Velero first note.", document_id="a")
        await clock.advance(store, 2)
        await quiet_optimized(store)
        assert started == ["default"]

        clock.now += 60
        second = await store.ingest("default", text=SEVERAL_CHUNKS, document_id="b")
        assert second.chunks == 4
        await clock.advance(store, 2)  # quiet, 64 s after the first optimize

        if waits_for_the_interval:
            assert started == ["default"]
            assert store._writer.quiet_timer("default") is not None
            await clock.advance(store, 600)
        await quiet_optimized_or_done(store)
        assert started == ["default", "default"]
        assert (await keyword_state(make_settings().lancedb_uri))[0] == 0
    finally:
        store.close()


async def quiet_optimized_or_done(store: KnowledgeStore, collection: str = "default") -> None:
    """:func:`quiet_optimized`, or nothing more to wait for if the timer has already ended."""
    if store._writer.quiet_timer(collection) is not None:
        await quiet_optimized(store, collection)
    await store.wait_for_background()


async def test_closing_the_store_cancels_a_pending_quiet_optimize_quietly(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=3600)
    started = record_optimizes(store, monkeypatch)
    await store.ingest("default", text="Velero note.", document_id="n")
    timer = store._writer.quiet_timer("default")
    assert timer is not None

    store.close()
    await asyncio.wait([timer], timeout=QUIET_GUARD_SECONDS)

    assert timer.cancelled()
    assert started == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_quiet_optimize_of_a_collection_deleted_meanwhile_does_nothing(
    make_settings: MakeSettings,
    embedder: FakeEmbedder,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=10)
    started = record_optimizes(store, monkeypatch)
    try:
        await store.ingest("notes", text="Velero note.", document_id="n")
        timer = store._writer.quiet_timer("notes")
        assert timer is not None
        await store.delete_collection("notes")

        await clock.advance(store, 11, "notes")
        await asyncio.wait_for(timer, QUIET_GUARD_SECONDS)
        await store.wait_for_background()

        assert started == ["notes"]
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert "notes" not in {c.name for c in await store.list_collections()}
    finally:
        store.close()


async def test_waiting_for_the_background_work_does_not_wait_for_a_pending_quiet_optimize(
    make_settings: MakeSettings, embedder: FakeEmbedder
) -> None:
    store = await open_quiet(make_settings, embedder, optimize_quiet_seconds=3600)
    try:
        await store.ingest("default", text="Velero note.", document_id="n")

        await asyncio.wait_for(store.wait_for_background(), QUIET_GUARD_SECONDS)

        assert store._writer.quiet_timer("default") is not None  # still waiting its hour
    finally:
        store.close()
