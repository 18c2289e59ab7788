"""Conversation history in LanceDB: bounded, atomic, NOT_FOUND when unknown."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest
from lancedb.table import IndexStatistics
from prometheus_client import REGISTRY

from bruno_core import InvalidInput, LimitExceeded, NotFound
from bruno_core.contract import OWNERS_BEFORE_OWNERSHIP
from bruno_retrieval import conversations
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.conversations import (
    OPTIMIZE_EVERY_WRITES,
    TABLE,
    ConversationStore,
    KnownIds,
    RecentConversations,
    StoredConversation,
    StoredTurn,
)


async def open_store(uri: str, max_turns: int) -> ConversationStore:
    settings = RetrievalSettings(lancedb_uri=uri, conversation_max_turns=max_turns)
    return await ConversationStore.open(settings)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ConversationStore]:
    opened = await open_store(str(tmp_path / "db"), 4)
    yield opened
    opened.close()


def user(text: str) -> StoredTurn:
    return StoredTurn("user", text)


def assistant(text: str, *chunk_ids: str) -> StoredTurn:
    return StoredTurn("assistant", text, chunk_ids=chunk_ids)


async def test_turns_come_back_oldest_first_with_their_citations(store: ConversationStore) -> None:
    await store.append("c1", [user("How?"), assistant("Like this [1].", "doc#0")], create=True)
    await store.append("c1", [user("And then?")])

    found = await store.get("c1")

    assert [(t.role, t.content) for t in found.turns] == [
        ("user", "How?"),
        ("assistant", "Like this [1]."),
        ("user", "And then?"),
    ]
    assert found.turns[1].chunk_ids == ("doc#0",)
    assert all(t.created_at is not None for t in found.turns)
    assert found.created_at <= found.updated_at


async def test_a_conversation_keeps_only_its_newest_turns(store: ConversationStore) -> None:
    for n in range(3):
        kept = await store.append("c1", [user(f"q{n}"), assistant(f"a{n}")], create=True)

    found = await store.get("c1")

    assert kept == 4
    assert [t.content for t in found.turns] == ["q1", "a1", "q2", "a2"]


async def test_get_can_ask_for_the_most_recent_turns_only(store: ConversationStore) -> None:
    await store.append("c1", [user("q0"), assistant("a0"), user("q1")], create=True)

    assert [t.content for t in (await store.get("c1", max_turns=2)).turns] == ["a0", "q1"]


async def test_appending_to_an_unknown_conversation_without_create_is_not_found(
    store: ConversationStore,
) -> None:
    with pytest.raises(NotFound):
        await store.append("nobody", [user("hi")])
    with pytest.raises(NotFound):
        await store.get("nobody")


async def test_deleted_conversations_are_gone(store: ConversationStore) -> None:
    await store.append("c1", [user("hi")], create=True)

    await store.delete("c1")

    with pytest.raises(NotFound):
        await store.get("c1")
    with pytest.raises(NotFound):
        await store.delete("c1")


async def test_concurrent_appends_all_land(tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "db"), 100)
    await store.append("c1", [user("start")], create=True)

    await asyncio.gather(*(store.append("c1", [user(f"q{n}")]) for n in range(20)))

    contents = [t.content for t in (await store.get("c1")).turns]
    assert len(contents) == 21
    assert sorted(contents[1:]) == sorted(f"q{n}" for n in range(20))


async def test_conversations_survive_reopening_the_database(tmp_path: Path) -> None:
    first = await open_store(str(tmp_path / "db"), 4)
    await first.append("c1", [user("remember me")], create=True)
    first.close()

    second = await open_store(str(tmp_path / "db"), 4)

    assert [t.content for t in (await second.get("c1")).turns] == ["remember me"]


@pytest.mark.parametrize(
    ("conversation_id", "turns", "error"),
    [
        ("bad id with spaces", [user("hi")], InvalidInput),
        ("..", [user("hi")], InvalidInput),
        (".", [user("hi")], InvalidInput),
        ("c1", [], InvalidInput),
        ("c1", [StoredTurn("system", "obey")], InvalidInput),
        ("c1", [user("x" * 64_001)], LimitExceeded),
        ("c1", [user("a")] * 5, LimitExceeded),
    ],
)
async def test_bad_appends_are_refused(
    store: ConversationStore,
    conversation_id: str,
    turns: list[StoredTurn],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await store.append(conversation_id, turns, create=True)


async def test_appends_committed_together_succeed_or_fail_one_by_one(
    store: ConversationStore,
) -> None:
    results = await asyncio.gather(
        *(store.append(f"c{n}", [user(f"q{n}")], create=True) for n in range(8)),
        store.append("unknown", [user("lost")]),
        return_exceptions=True,
    )

    assert results[:8] == [1] * 8
    assert isinstance(results[8], NotFound)
    assert [t.content for t in (await store.get("c7")).turns] == ["q7"]


async def test_a_caller_giving_up_does_not_strand_the_appends_written_with_its_own(
    store: ConversationStore,
) -> None:
    await store._lock.acquire()  # a write in progress: the next two appends wait together
    first = asyncio.create_task(store.append("c1", [user("q1")], create=True))
    second = asyncio.create_task(store.append("c2", [user("q2")], create=True))
    for _ in range(1000):  # until both wait in the queue
        if len(store._appends._queue) == 2:
            break
        await asyncio.sleep(0.01)
    store._lock.release()
    for _ in range(1000):  # one write has taken both
        if not store._appends._queue:
            break
        await asyncio.sleep(0)
    first.cancel()  # its caller went away mid-write

    assert await asyncio.wait_for(second, timeout=10) == 1
    with pytest.raises(asyncio.CancelledError):
        await first
    async with store._lock:  # the write both were part of has finished
        pass
    assert [t.content for t in (await store.get("c1")).turns] == ["q1"]


async def id_index_stats(uri: str) -> IndexStatistics | None:
    """The statistics of the ``conversation_id`` index, read through LanceDB itself."""
    with await (await lancedb.connect_async(uri)).open_table(TABLE) as table:
        for index in await table.list_indices():
            if index.columns == ["conversation_id"]:
                assert index.index_type == "BTree"
                stats: IndexStatistics | None = await table.index_stats(index.name)
                return stats
    return None


async def drop_id_index(uri: str) -> None:
    """Leave the table as a store from before the index wrote it."""
    with await (await lancedb.connect_async(uri)).open_table(TABLE) as table:
        [index] = [i for i in await table.list_indices() if i.columns == ["conversation_id"]]
        await table.drop_index(index.name)


async def test_a_new_store_indexes_conversation_ids(tmp_path: Path) -> None:
    uri = str(tmp_path / "db")
    (await open_store(uri, 4)).close()

    stats = await id_index_stats(uri)

    assert stats is not None
    assert stats.index_type == "BTREE"


async def three_conversations_without_id_index(tmp_path: Path) -> str:
    """A database of three one-turn conversations, as a version without the index left it."""
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    for n in range(3):
        await first.append(f"c{n}", [user(f"first {n}")], create=True)
    first.close()
    await drop_id_index(uri)
    return uri


async def test_a_table_without_the_index_gets_it_over_its_rows_on_open(tmp_path: Path) -> None:
    uri = await three_conversations_without_id_index(tmp_path)
    assert await id_index_stats(uri) is None

    (await open_store(uri, 4)).close()

    stats = await id_index_stats(uri)
    assert stats is not None
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (3, 0)


async def test_turns_written_after_the_index_was_built_are_found(tmp_path: Path) -> None:
    uri = await three_conversations_without_id_index(tmp_path)
    store = await open_store(uri, 4)  # indexes the three rows

    await store.append("c1", [user("later")])
    await store.append("c9", [user("new")], create=True)

    stats = await id_index_stats(uri)
    assert stats is not None
    assert stats.num_unindexed_rows == 2  # c1's new version and c9 lie outside the index
    assert [t.content for t in (await store.get("c1")).turns] == ["first 1", "later"]
    assert [t.content for t in (await store.get("c9")).turns] == ["new"]
    assert [t.content for t in (await store.get("c2")).turns] == ["first 2"]
    store.close()


@pytest.mark.slow  # a hundred commits
async def test_the_periodic_optimize_folds_new_rows_into_the_index(tmp_path: Path) -> None:
    uri = str(tmp_path / "db")
    store = await open_store(uri, 4)
    for n in range(OPTIMIZE_EVERY_WRITES):
        await store.append(f"c{n % 7}", [user(f"q{n}")], create=True)

    stats = await id_index_stats(uri)
    assert stats is not None
    assert (stats.num_indexed_rows, stats.num_unindexed_rows) == (7, 0)
    last_for_c3 = max(n for n in range(OPTIMIZE_EVERY_WRITES) if n % 7 == 3)
    assert (await store.get("c3")).turns[-1].content == f"q{last_for_c3}"
    store.close()


async def test_a_conversation_is_found_only_by_its_owner(store: ConversationStore) -> None:
    await store.append("c1", [user("mine")], create=True, owner="ann")

    found = await store.get("c1", owner="ann")
    with pytest.raises(NotFound) as other:
        await store.get("c1", owner="bob")

    assert (found.owner, [t.content for t in found.turns]) == ("ann", ["mine"])
    assert str(other.value) == "conversation 'c1' not found"


async def test_another_owner_can_neither_continue_nor_delete_a_conversation(
    store: ConversationStore,
) -> None:
    await store.append("c1", [user("mine")], create=True, owner="ann")

    with pytest.raises(NotFound):
        await store.append("c1", [user("theirs")], owner="bob")
    with pytest.raises(NotFound):
        await store.append("c1", [user("theirs")], create=True, owner="bob")
    with pytest.raises(NotFound):
        await store.delete("c1", owner="bob")

    assert [t.content for t in (await store.get("c1", owner="ann")).turns] == ["mine"]
    await store.delete("c1", owner="ann")
    with pytest.raises(NotFound):
        await store.get("c1")


async def test_a_reader_reaching_a_table_from_before_owners_reads_it_and_writes_nothing(
    tmp_path: Path,
) -> None:
    # During an upgrade a reader can open the table before the new writer gives it the column.
    uri = str(tmp_path / "db")
    db = await lancedb.connect_async(uri)
    old = pa.schema(  # the table as it was before owners
        [
            pa.field("conversation_id", pa.string(), nullable=False),
            pa.field("turns", pa.string(), nullable=False),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )
    table: Any = await db.create_table(TABLE, schema=old)
    now = datetime.now(UTC)
    turns = json.dumps([{"role": "user", "content": "hi", "created_at": now.isoformat()}])
    row = {"conversation_id": "old", "turns": turns, "created_at": now, "updated_at": now}
    await table.add(pa.Table.from_pylist([row], schema=old))
    version = await table.version()
    settings = RetrievalSettings(lancedb_uri=uri, retrieval_role="reader")

    reader = await ConversationStore.open(settings)
    try:
        legacy = await reader.get("old")
        with pytest.raises(NotFound):
            await reader.get("old", owner="ann")
    finally:
        reader.close()
    await table.checkout_latest()
    untouched = (await table.version(), (await table.schema()).names)
    table.close()

    assert (legacy.owner, [t.content for t in legacy.turns]) == ("", ["hi"])
    assert untouched == (version, old.names)


async def test_a_table_from_before_owners_gets_the_column_its_rows_are_the_callers_of_then(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "db")
    db = await lancedb.connect_async(uri)
    old = pa.schema(  # the table as it was before owners
        [
            pa.field("conversation_id", pa.string(), nullable=False),
            pa.field("turns", pa.string(), nullable=False),
            pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        ]
    )
    table: Any = await db.create_table(TABLE, schema=old)  # lancedb's close() is untyped
    now = datetime.now(UTC)
    await table.add(
        pa.Table.from_pylist(
            [{"conversation_id": "old", "turns": "[]", "created_at": now, "updated_at": now}],
            schema=old,
        )
    )
    table.close()

    store = await open_store(uri, 4)
    try:
        legacy = await store.get("old")
        with pytest.raises(NotFound):
            await store.get("old", owner="ann")
        await store.append("new", [user("hi")], create=True, owner="ann")
        await store.append("old", [user("still here")])
        new = await store.get("new", owner="ann")
        # The callers that existed before owners still reach it, and no other.
        await store.append("old", [user("from the env key")], owner="api-key")
        seen_open = await store.get("old", owner="open")
        with pytest.raises(NotFound):
            await store.delete("old", owner="ann")
        await store.delete("old", owner="open")
        with pytest.raises(NotFound):
            await store.get("old")
    finally:
        store.close()

    assert legacy.owner == ""
    assert new.owner == "ann"
    assert seen_open.owner == ""  # nobody claimed it
    assert [t.content for t in seen_open.turns] == ["still here", "from the env key"]
    assert {"api-key", "open"} == OWNERS_BEFORE_OWNERSHIP


async def table_rows(uri: str) -> list[dict[str, Any]]:
    """The conversations table's rows, read through LanceDB itself."""
    with await (await lancedb.connect_async(uri)).open_table(TABLE) as table:
        rows: list[dict[str, Any]] = (await table.query().to_arrow()).to_pylist()
        return rows


async def test_a_store_opened_afresh_reads_the_newest_revision_of_each_conversation(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    await first.append("c1", [user("one")], create=True)
    await first.append("c2", [user("other")], create=True)
    for n in range(2, 6):
        await first.append("c1", [user(f"turn {n}")])
    first.close()
    revisions = sorted(row["revision"] for row in await table_rows(uri))

    second = await open_store(uri, 4)
    found = await second.get("c1")
    second.close()

    assert revisions == [1, 1, 2, 3, 4, 5]  # appends add rows; the upkeep has not run yet
    assert [t.content for t in found.turns] == ["turn 2", "turn 3", "turn 4", "turn 5"]


async def test_the_upkeep_deletes_replaced_revisions_also_those_a_restart_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    for n in range(3):  # below the upkeep's period: three revisions of c1 stay
        await first.append("c1", [user(f"q{n}")], create=True)
    first.close()
    monkeypatch.setattr(conversations, "OPTIMIZE_EVERY_WRITES", 3)

    second = await open_store(uri, 4)
    assert [t.content for t in (await second.get("c1")).turns] == ["q0", "q1", "q2"]
    for n in range(3):
        await second.append(f"c{n + 2}", [user("new")], create=True)
    rows = await table_rows(uri)
    answer = await second.get("c1")
    second.close()

    assert sorted((row["conversation_id"], row["revision"]) for row in rows) == [
        ("c1", 3),
        ("c2", 1),
        ("c3", 1),
        ("c4", 1),
    ]
    assert [t.content for t in answer.turns] == ["q0", "q1", "q2"]


class CountingReads:
    """A table that counts the queries made of it and passes everything on."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.queries = 0

    def query(self) -> Any:
        self.queries += 1
        return self.table.query()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def count_reads(store: ConversationStore) -> CountingReads:
    """Make ``store`` count the queries made of its table from now on."""
    counting = CountingReads(store._table)
    store._table = counting
    return counting


async def reopened_holding(uri: str, conversation_id: str, content: str) -> ConversationStore:
    """A writer opened on a table an earlier one left holding ``conversation_id`` (ann's)."""
    first = await open_store(uri, 4)
    await first.append(conversation_id, [user(content)], create=True, owner="ann")
    first.close()
    return await open_store(uri, 4)


async def test_the_writer_answers_conversations_it_wrote_from_memory(
    store: ConversationStore,
) -> None:
    await store.append("c1", [user("How?")], create=True, owner="ann")
    counting = count_reads(store)

    await store.append("c1", [assistant("Like this.")], owner="ann")
    found = await store.get("c1", owner="ann")
    with pytest.raises(NotFound):
        await store.get("c1", owner="bob")
    await store.delete("c1", owner="ann")
    with pytest.raises(NotFound):
        await store.get("c1", owner="ann")

    assert [t.content for t in found.turns] == ["How?", "Like this."]
    assert counting.queries == 1  # only the read after the delete


async def test_the_writer_creates_a_new_conversation_without_reading_the_table(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "db")
    store = await reopened_holding(uri, "old", "before the restart")
    counting = count_reads(store)

    await store.append("new", [user("How?")], create=True, owner="ann")
    with pytest.raises(NotFound):
        await store.get("never", owner="ann")
    assert counting.queries == 0
    # An id the table held before this process opened it is looked up, not taken as new.
    with pytest.raises(NotFound):
        await store.append("old", [user("mine now")], create=True, owner="bob")
    await store.append("old", [user("after it")], create=True, owner="ann")
    store.close()

    assert counting.queries > 0
    reopened = await open_store(uri, 4)
    found = await reopened.get("old", owner="ann")
    assert [t.content for t in found.turns] == ["before the restart", "after it"]
    assert [t.content for t in (await reopened.get("new", owner="ann")).turns] == ["How?"]
    reopened.close()


def test_known_ids_are_given_up_past_their_size() -> None:
    known = KnownIds(["a" * 10, "b" * 10], max_chars=25)
    assert known.may_hold("a" * 10)
    assert not known.may_hold("c")

    known.add(["c" * 10])

    assert known.given_up
    assert known.may_hold("anything")  # every look goes to the table again
    known.add(["d"])
    assert known.given_up


async def test_a_writer_past_its_known_ids_reads_the_table_and_finds_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversations, "KNOWN_IDS_MAX_CHARS", 1)  # "c1" is past it
    uri = str(tmp_path / "db")
    store = await reopened_holding(uri, "c1", "one")
    counting = count_reads(store)

    await store.append("c2", [user("two")], create=True, owner="ann")
    with pytest.raises(NotFound):
        await store.append("c1", [user("not yours")], create=True, owner="bob")
    store.close()

    # Both looked up: c2 by one query (no revisions), c1 by two (its revisions, its row).
    assert counting.queries == 3
    reopened = await open_store(uri, 4)
    assert [t.content for t in (await reopened.get("c1", owner="ann")).turns] == ["one"]
    reopened.close()


async def test_a_failed_write_leaves_the_conversation_as_the_table_holds_it(
    store: ConversationStore,
) -> None:
    await store.append("c1", [user("kept")], create=True)
    table = store._table

    class FailingAdds(CountingReads):
        async def add(self, rows: Any) -> None:
            raise OSError("disk full")

    store._table = FailingAdds(table)
    with pytest.raises(OSError, match="disk full"):
        await store.append("c1", [user("lost")])
    store._table = table

    assert [t.content for t in (await store.get("c1")).turns] == ["kept"]


def conversation(conversation_id: str, chars: int) -> StoredConversation:
    now = datetime.now(UTC)
    return StoredConversation(conversation_id, [user("x" * chars)], now, now)


def test_recent_conversations_drop_the_least_recently_used_past_their_size() -> None:
    recent = RecentConversations(max_chars=250)
    for name in ("a", "b"):
        recent.put(conversation(name, 100))
    assert recent.get("a") is not None  # now b is the least recently used

    recent.put(conversation("c", 100))

    assert [recent.get(name) is not None for name in ("a", "b", "c")] == [True, False, True]


class SpiedReads(CountingReads):
    """A table that keeps what each query of it answered (``fetched``) and passes everything
    on; :meth:`answered` sees each answer before the caller does."""

    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self.fetched: list[pa.Table] = []

    def query(self) -> Any:
        self.queries += 1
        spied = self

        class Spied:
            def __init__(self, query: Any) -> None:
                self.query = query

            def where(self, predicate: Any) -> Spied:
                return Spied(self.query.where(predicate))

            def select(self, columns: list[str]) -> Spied:
                return Spied(self.query.select(columns))

            async def to_arrow(self) -> pa.Table:
                rows: pa.Table = await self.query.to_arrow()
                spied.fetched.append(rows)
                await spied.answered(rows)
                return rows

        return Spied(self.table.query())

    async def answered(self, rows: pa.Table) -> None:
        pass

    def turns_fetched(self) -> int:
        """How many rows with their turns the queries fetched."""
        return sum(rows.num_rows for rows in self.fetched if "turns" in rows.column_names)


class HeldReads(SpiedReads):
    """A table whose first read of turns (``of_turns``; else of revisions only), once made,
    waits for ``release`` before it answers."""

    def __init__(self, table: Any, *, of_turns: bool = True) -> None:
        super().__init__(table)
        self.of_turns = of_turns
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    async def answered(self, rows: pa.Table) -> None:
        if ("turns" in rows.column_names) == self.of_turns and not self.held.is_set():
            self.held.set()  # read, not yet answered
            await self.release.wait()


async def test_a_read_overtaken_by_an_append_does_not_leave_the_older_revision_in_memory(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    await first.append("c1", [user("one")], create=True)
    first.close()
    store = await open_store(uri, 4)  # c1 not in its memory
    held = HeldReads(store._table)
    store._table = held

    slow_read = asyncio.ensure_future(store.get("c1"))
    await held.held.wait()
    await store.append("c1", [user("two")])
    held.release.set()
    overtaken = await slow_read
    after = await store.get("c1")
    store.close()

    assert [t.content for t in overtaken.turns] == ["one"]
    assert [t.content for t in after.turns] == ["one", "two"]


async def test_a_read_fetches_the_turns_of_the_newest_revision_only(tmp_path: Path) -> None:
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    for n in range(5):  # five revisions of c1 wait for the upkeep
        await first.append("c1", [user(f"q{n}")], create=True)
    await first.append("c2", [user("other")], create=True)
    first.close()
    store = await open_store(uri, 4)  # c1 not in its memory
    spied = SpiedReads(store._table)
    store._table = spied

    found = await store.get("c1")
    fetched = spied.turns_fetched()
    store.close()

    assert [t.content for t in found.turns] == ["q1", "q2", "q3", "q4"]
    assert found.revision == 5
    assert fetched == 1


async def test_a_read_whose_revision_the_upkeep_deleted_meanwhile_finds_the_newer_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "db")
    first = await open_store(uri, 4)
    for n in range(2):
        await first.append("c1", [user(f"q{n}")], create=True)
    first.close()
    monkeypatch.setattr(conversations, "OPTIMIZE_EVERY_WRITES", 1)  # every write's upkeep
    store = await open_store(uri, 4)  # c1 not in its memory
    held = HeldReads(store._table, of_turns=False)
    store._table = held

    slow_read = asyncio.ensure_future(store.get("c1"))
    await held.held.wait()  # it knows revision 2 is the newest
    await store.append("c1", [user("q2")])  # revision 3; its upkeep deletes 1 and 2
    held.release.set()
    found = await slow_read
    rows = await table_rows(uri)
    store.close()

    assert sorted(row["revision"] for row in rows) == [3]
    assert [t.content for t in found.turns] == ["q0", "q1", "q2"]


async def test_the_first_append_to_a_row_from_before_revisions_replaces_it_at_the_upkeep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "db")
    db = await lancedb.connect_async(uri)
    old = pa.schema(  # the table as it was before revisions
        [field for field in conversations._SCHEMA if field.name != "revision"]
    )
    table: Any = await db.create_table(TABLE, schema=old)
    now = datetime.now(UTC)
    turns = json.dumps([{"role": "user", "content": "hi", "created_at": now.isoformat()}])
    row = {"conversation_id": "old", "turns": turns, "created_at": now, "updated_at": now}
    await table.add(pa.Table.from_pylist([{**row, "owner": None}], schema=old))
    table.close()
    monkeypatch.setattr(conversations, "OPTIMIZE_EVERY_WRITES", 1)  # every write's upkeep

    store = await open_store(uri, 4)
    await store.append("old", [user("again")])
    rows = await table_rows(uri)
    store.close()

    assert [(r["conversation_id"], r["revision"]) for r in rows] == [("old", 1)]
    assert [t["content"] for t in json.loads(rows[0]["turns"])] == ["hi", "again"]


def upkeep_failures() -> float:
    return REGISTRY.get_sample_value("bruno_retrieval_conversation_upkeep_failures_total") or 0.0


async def test_a_failed_upkeep_is_counted_and_the_next_one_deletes_what_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "db")
    store = await open_store(uri, 4)
    table = store._table

    class FailingDeletes(CountingReads):
        async def delete(self, predicate: Any) -> None:
            raise OSError("disk full")

    monkeypatch.setattr(conversations, "OPTIMIZE_EVERY_WRITES", 2)
    before = upkeep_failures()
    store._table = FailingDeletes(table)
    for n in range(2):  # the second write's upkeep fails; the write stands
        await store.append("c1", [user(f"q{n}")], create=True)
    failed = upkeep_failures() - before
    store._table = table
    for n in range(2, 4):  # the fourth write's upkeep
        await store.append("c1", [user(f"q{n}")])
    rows = await table_rows(uri)
    store.close()

    assert failed == 1
    assert [(r["conversation_id"], r["revision"]) for r in rows] == [("c1", 4)]
