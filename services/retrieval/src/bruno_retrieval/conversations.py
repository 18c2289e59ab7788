"""Conversation history, kept by the retrieval service so the edge can stay stateless.

One LanceDB table (``_bruno_conversations``, beside the collections; its leading underscore
keeps it out of the collection names) holds each conversation as a row with its turns as JSON
and a ``revision`` that grows with every append. An append adds the conversation's next
revision as a new row (the newest ``max_turns`` turns) in one ``add`` commit under a lock; a
read takes the newest revision of each conversation, so a reader sees the conversation before
or after an append, never half of one, and it reads the revision numbers first and the turns
of the newest revision only. Replaced revisions are deleted with the periodic ``optimize``
(a failed one is counted on ``bruno_retrieval_conversation_upkeep_failures_total`` and the
next one tries again). An ``add`` costs a tenth of the ``merge_insert`` that rewrote the row
in place (docs/benchmarks.md, "Third pass: retrieval"). Appends that arrive while a commit runs are
written together in the next one (:mod:`bruno_retrieval.group_commit`), so sixteen chats
finishing at once cost one commit, not sixteen in a queue. This process is the single writer
of the table, so it keeps the conversations it last wrote (or read to append to) in memory
(:class:`RecentConversations`) and answers reads and appends of those without reading the
table; it also keeps the set of every id in the table (:class:`KnownIds`, read once when it
opens the table), so a new conversation is created without a read to learn that its id is
new. A ``reader`` (:mod:`bruno_retrieval.roles`) only reads the table, within its lag behind
the writer, keeps nothing, and refuses appends and deletes.

A conversation belongs to the owner that created it (the edge's API key name): a call naming
an owner finds only that owner's conversations, and any other is "not found", exactly as one
that does not exist. Rows from before owners existed have none: they belong to the callers
that existed then (``bruno_core.contract.OWNERS_BEFORE_OWNERSHIP``: the edge's
``BRUNO_API_KEYS`` and an edge without keys) and stay without an owner; the ``owner`` column is
added to such a table when it is opened, and the ``revision`` column (0: one row per
conversation, as then) likewise.

A BTREE index on ``conversation_id`` turns the reads behind ``get`` and ``append`` into
look-ups instead of scans. It is built when the store opens a table that lacks it (over the
rows already there); rows written since sit outside it, where LanceDB still finds them by
scanning just those, until the periodic ``optimize`` folds them in.

    store = await ConversationStore.open(settings)   # BRUNO_CONVERSATION_MAX_TURNS
    await store.append("c1", [StoredTurn("user", "How do I restore?")], create=True, owner="ann")
    conversation = await store.get("c1", max_turns=10, owner="ann")
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import operator
from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import lancedb
import prometheus_client
import pyarrow as pa
from lancedb.expr import col, lit
from lancedb.index import BTree

from bruno_core import BrunoError, InvalidInput, LimitExceeded, NotFound
from bruno_core.contract import CONVERSATION_ID, OWNERS_BEFORE_OWNERSHIP
from bruno_retrieval.background import BackgroundTasks
from bruno_retrieval.config import RetrievalSettings
from bruno_retrieval.group_commit import GroupCommit, Pending
from bruno_retrieval.roles import Role

log = logging.getLogger(__name__)

TABLE = "_bruno_conversations"
ROLES = frozenset({"user", "assistant"})
MAX_TURN_CHARS = 64_000
MAX_CHUNK_IDS = 100
MAX_CHUNK_ID_CHARS = 400
# Every append is a table version and leaves its rows outside the conversation_id index (and
# the revision it replaces in the table): deleting replaced revisions, compacting and
# re-indexing now and then keeps reads fast.
OPTIMIZE_EVERY_WRITES = 100
# The writer's memory of recent conversations, in characters of turn content: at most a few
# dozen MB, whatever max_turns and turn sizes are.
RECENT_MAX_CHARS = 16_000_000
# The writer's set of every conversation id in the table, in characters of ids: 200,000
# UUIDs, ~25 MB. Past it the set is given up and a new conversation's id is looked up again.
KNOWN_IDS_MAX_CHARS = 7_200_000
UPKEEP_FAILURES = prometheus_client.Counter(
    "bruno_retrieval_conversation_upkeep_failures",
    "Failed upkeeps of the conversations table (deleting replaced revisions, compacting, "
    "re-indexing); until one succeeds, replaced revisions pile up and reads slow down.",
)
# Replaced revisions deleted by one delete: a predicate per conversation, kept small.
_DELETE_BATCH = 200

_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("turns", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        # Nullable: a table from before owners gets the column with nulls (_ensure_owner).
        pa.field("owner", pa.string(), nullable=True),
        # Of the conversation, growing by one per write; a table from before revisions gets
        # the column as 0s, its one row per conversation (_ensure_revision).
        pa.field("revision", pa.int64(), nullable=False),
    ]
)


@dataclasses.dataclass(frozen=True, slots=True)
class StoredTurn:
    role: str
    content: str
    created_at: datetime | None = None  # set by the store
    chunk_ids: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Append:
    conversation_id: str
    turns: list[StoredTurn]
    create: bool
    owner: str


@dataclasses.dataclass(frozen=True, slots=True)
class StoredConversation:
    conversation_id: str
    turns: list[StoredTurn]
    created_at: datetime
    updated_at: datetime
    owner: str = ""
    revision: int = 0  # of its row in the table; the next append writes revision + 1

    def belongs_to(self, owner: str) -> bool:
        """Whether a call naming ``owner`` may see it (naming none: unchecked)."""
        if not self.owner:  # stored before owners existed
            return not owner or owner in OWNERS_BEFORE_OWNERSHIP
        return not owner or self.owner == owner


def _not_found(conversation_id: str) -> NotFound:
    return NotFound(f"conversation {conversation_id!r} not found")


def check_turns(turns: Sequence[StoredTurn], *, max_turns: int) -> None:
    """Raise the matching error for turns the store will not keep."""
    if not turns:
        raise InvalidInput("an append needs at least one turn")
    if len(turns) > max_turns:
        raise LimitExceeded(f"{len(turns)} turns in one append; the limit is {max_turns}")
    for turn in turns:
        if turn.role not in ROLES:
            raise InvalidInput(f'a turn\'s role must be "user" or "assistant", not "{turn.role}"')
        if len(turn.content) > MAX_TURN_CHARS:
            raise LimitExceeded(f"a turn is limited to {MAX_TURN_CHARS} characters")
        if len(turn.chunk_ids) > MAX_CHUNK_IDS or any(
            len(chunk_id) > MAX_CHUNK_ID_CHARS for chunk_id in turn.chunk_ids
        ):
            raise LimitExceeded(
                f"a turn cites at most {MAX_CHUNK_IDS} chunk ids of {MAX_CHUNK_ID_CHARS} characters"
            )


def _turn_json(turn: StoredTurn) -> dict[str, Any]:
    created = turn.created_at or datetime.now(UTC)
    return {
        "role": turn.role,
        "content": turn.content,
        "created_at": created.isoformat(),
        "chunk_ids": list(turn.chunk_ids),
    }


def _turn_from_json(data: dict[str, Any]) -> StoredTurn:
    return StoredTurn(
        role=data["role"],
        content=data["content"],
        created_at=datetime.fromisoformat(data["created_at"]),
        chunk_ids=tuple(data.get("chunk_ids", ())),
    )


class RecentConversations:
    """The conversations the writer read or wrote last, as the table holds them now, least
    recently used dropped first past ``max_chars`` of turn content. Only the table's single
    writer may keep one: it sees every change, as it makes them all."""

    def __init__(self, max_chars: int = RECENT_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._kept: OrderedDict[str, tuple[StoredConversation, int]] = OrderedDict()
        self._chars = 0

    def get(self, conversation_id: str) -> StoredConversation | None:
        kept = self._kept.get(conversation_id)
        if kept is None:
            return None
        self._kept.move_to_end(conversation_id)
        return kept[0]

    def put(self, conversation: StoredConversation) -> None:
        self.forget(conversation.conversation_id)
        chars = sum(len(turn.content) for turn in conversation.turns)
        self._kept[conversation.conversation_id] = (conversation, chars)
        self._chars += chars
        while self._chars > self.max_chars and self._kept:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._chars -= dropped

    def forget(self, conversation_id: str) -> None:
        kept = self._kept.pop(conversation_id, None)
        if kept is not None:
            self._chars -= kept[1]


class KnownIds:
    """Every conversation id the table may hold, kept by its single writer so that a new
    conversation is created without reading the table to learn that its id is new (a read
    cost a new chat's append more CPU than its write: docs/benchmarks.md, "Sixth pass").

    A superset: an id is added before its write, and an id deleted (or whose write failed)
    stays, so an id not in it is not in the table and any other is looked up there. Past
    ``max_chars`` of ids the set is given up for good (:meth:`may_hold` is then always true)
    and every look goes to the table, as without it."""

    def __init__(self, ids: Sequence[str], max_chars: int | None = None) -> None:
        self.max_chars = KNOWN_IDS_MAX_CHARS if max_chars is None else max_chars
        self._ids: set[str] | None = set()
        self._chars = 0
        self.add(ids)

    @classmethod
    async def read(cls, table: Any) -> KnownIds:
        """The ids ``table`` holds, read as a stream: no more than ``max_chars`` of them are
        ever in memory at once, however large the table."""
        known = cls([])
        async for batch in await table.query().select(["conversation_id"]).to_batches():
            known.add(batch.column(0).to_pylist())
            if known.given_up:
                break
        return known

    @property
    def given_up(self) -> bool:
        return self._ids is None

    def may_hold(self, conversation_id: str) -> bool:
        return self._ids is None or conversation_id in self._ids

    def add(self, conversation_ids: Sequence[str]) -> None:
        if self._ids is None:
            return
        for conversation_id in conversation_ids:
            if conversation_id not in self._ids:
                self._ids.add(conversation_id)
                self._chars += len(conversation_id)
        if self._chars > self.max_chars:
            self._ids = None


class ConversationStore:
    """Conversations in one LanceDB table, each bounded to ``max_turns`` (oldest dropped)."""

    def __init__(
        self,
        table: Any,
        *,
        max_turns: int,
        role: Role = Role.ALL,
        db: Any = None,
        known: KnownIds | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self._table = table  # None on a reader until the writer has made the table (in ``db``)
        self._db = db
        self._role = role
        self.max_turns = max_turns
        self._lock = asyncio.Lock()
        self._tasks = BackgroundTasks()
        self._appends: GroupCommit[_Append, int] = GroupCommit(
            self._lock, self._commit, self._tasks
        )
        self._writes = 0
        # Only the writer may remember: a reader must see the writer's appends.
        self._recent = RecentConversations() if role.writes else None
        # The writer's ids of the table (None: unknown, every look reads the table).
        self._known = known if role.writes else None
        self._replaced: dict[str, int] = {}  # conversation -> its newest revision, older in table
        self._revisions_seen = False  # the table has the revision column

    @classmethod
    async def open(cls, settings: RetrievalSettings) -> ConversationStore:
        role = Role(settings.retrieval_role)
        if not role.writes:
            lag = timedelta(seconds=settings.retrieval_read_consistency_seconds)
            db = await lancedb.connect_async(settings.lancedb_uri, read_consistency_interval=lag)
            reader = cls(None, max_turns=settings.conversation_max_turns, role=role, db=db)
            await reader._opened()
            return reader
        db = await lancedb.connect_async(settings.lancedb_uri)
        try:
            # Opened, not created with exist_ok: a table from before owners has another schema.
            table = await db.open_table(TABLE)
        except ValueError:  # not there yet
            table = await db.create_table(TABLE, schema=_SCHEMA, exist_ok=True)
        await _ensure_owner(table)
        await _ensure_revision(table)
        await _ensure_id_index(table)
        known = await KnownIds.read(table)
        return cls(table, max_turns=settings.conversation_max_turns, role=role, known=known)

    def close(self) -> None:
        self._tasks.cancel()
        if self._table is not None:
            self._table.close()

    async def _opened(self) -> Any | None:
        """The table; on a reader, opened once the writer has made it (None until then)."""
        if self._table is None and self._db is not None:
            with contextlib.suppress(ValueError):  # not there yet
                self._table = await self._db.open_table(TABLE)
        return self._table

    async def get(
        self, conversation_id: str, *, max_turns: int = 0, owner: str = ""
    ) -> StoredConversation:
        """The conversation, its most recent ``max_turns`` turns only when that is not 0;
        NotFound unless it belongs to ``owner`` (when one is named)."""
        CONVERSATION_ID.check(conversation_id)
        # Not under the lock: what it reads from the table may be replaced meanwhile, so it is
        # not remembered.
        found = (await self._current([conversation_id], remember=False)).get(conversation_id)
        if found is None or not found.belongs_to(owner):
            raise _not_found(conversation_id)
        if max_turns:
            found = dataclasses.replace(found, turns=found.turns[-max_turns:])
        return found

    async def append(
        self,
        conversation_id: str,
        turns: Sequence[StoredTurn],
        *,
        create: bool = False,
        owner: str = "",
    ) -> int:
        """Add ``turns``; returns how many turns the conversation keeps afterwards. A new
        conversation (``create``) belongs to ``owner``; an existing one of another owner is
        NotFound."""
        self._role.check_writes("AppendTurns")
        CONVERSATION_ID.check(conversation_id)
        check_turns(turns, max_turns=self.max_turns)
        return await self._appends.submit(_Append(conversation_id, list(turns), create, owner))

    async def _commit(self, batch: list[Pending[_Append, int]]) -> None:
        """Write every append of ``batch`` in one commit, then settle each."""
        ids = list(dict.fromkeys(p.item.conversation_id for p in batch))
        current = await self._current(ids, remember=True)
        now = datetime.now(UTC)
        outcomes: list[tuple[Pending[_Append, int], int | BrunoError]] = []
        changed: set[str] = set()
        existed = set(current)  # their next revision replaces one in the table
        for pending in batch:
            append = pending.item
            found = current.get(append.conversation_id)
            if (found is None and not append.create) or (
                found is not None and not found.belongs_to(append.owner)
            ):
                outcomes.append((pending, _not_found(append.conversation_id)))
                continue
            stamped = [dataclasses.replace(t, created_at=t.created_at or now) for t in append.turns]
            earlier = found.turns if found is not None else []
            current[append.conversation_id] = StoredConversation(
                append.conversation_id,
                [*earlier, *stamped][-self.max_turns :],
                found.created_at if found is not None else now,
                now,
                found.owner if found is not None else append.owner,
                found.revision + 1 if found is not None else 1,
            )
            changed.add(append.conversation_id)
            outcomes.append((pending, len(current[append.conversation_id].turns)))
        if changed:
            written = [current[c] for c in ids if c in changed]
            try:
                await self._write(written, replacing=existed)
            except BaseException:
                # Whether it landed is unknown: the next look at these goes to the table.
                for conversation in written:
                    self._forget(conversation.conversation_id)
                raise
        for pending, outcome in outcomes:
            pending.settle(outcome)

    async def _write(self, conversations: list[StoredConversation], *, replacing: set[str]) -> None:
        """Add the next revision of each conversation in one commit (the ones they replace,
        of the conversations in ``replacing``, stay in the table until the next
        :meth:`_upkeep`)."""
        rows = pa.Table.from_pylist(
            [
                {
                    "conversation_id": c.conversation_id,
                    "turns": json.dumps([_turn_json(t) for t in c.turns], ensure_ascii=False),
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                    "owner": c.owner or None,
                    "revision": c.revision,
                }
                for c in conversations
            ],
            schema=_SCHEMA,
        )
        if self._known is not None:  # before the commit: the set may hold more, never less
            self._known.add([c.conversation_id for c in conversations])
        await self._table.add(rows)
        for conversation in conversations:
            self._remember(conversation)
            # Also revision 1 replaces one: the revision 0 of a row from before revisions.
            if conversation.conversation_id in replacing:
                self._replaced[conversation.conversation_id] = conversation.revision
        self._writes += 1
        if self._writes % OPTIMIZE_EVERY_WRITES == 0:
            try:  # the write is committed: a failed upkeep must not fail it
                await self._upkeep()
            except Exception:
                # The next upkeep tries again what this one left (self._replaced keeps it).
                UPKEEP_FAILURES.inc()
                log.exception("deleting replaced conversation revisions or optimizing failed")

    async def _upkeep(self) -> None:
        """Delete the revisions replaced since the last upkeep, then compact and re-index."""
        replaced = list(self._replaced.items())
        for start in range(0, len(replaced), _DELETE_BATCH):
            older = [
                (col("conversation_id") == lit(conversation_id)) & (col("revision") < lit(newest))
                for conversation_id, newest in replaced[start : start + _DELETE_BATCH]
            ]
            await self._table.delete(functools.reduce(operator.or_, older))
            for conversation_id, newest in replaced[start : start + _DELETE_BATCH]:
                if self._replaced.get(conversation_id) == newest:
                    del self._replaced[conversation_id]
        await self._table.optimize()

    async def delete(self, conversation_id: str, *, owner: str = "") -> None:
        """Forget the conversation; NotFound unless it belongs to ``owner`` (when named)."""
        self._role.check_writes("DeleteConversation")
        CONVERSATION_ID.check(conversation_id)
        async with self._lock:  # appends commit under it too: no append between read and delete
            found = (await self._current([conversation_id], remember=False)).get(conversation_id)
            if found is None or not found.belongs_to(owner):
                raise _not_found(conversation_id)
            try:
                await self._table.delete(col("conversation_id") == lit(conversation_id))
            finally:
                self._forget(conversation_id)
                self._replaced.pop(conversation_id, None)

    async def _current(
        self, conversation_ids: list[str], *, remember: bool
    ) -> dict[str, StoredConversation]:
        """The newest revision of each of ``conversation_ids`` the table holds (those it
        holds), from the writer's memory where it has them. Only a read under the lock, which
        every write holds, may be remembered (``remember``): another read may have been
        overtaken by a write (or a delete) before it is done."""
        found: dict[str, StoredConversation] = {}
        unknown = []
        for conversation_id in conversation_ids:
            kept = self._recent.get(conversation_id) if self._recent is not None else None
            if kept is not None:
                found[conversation_id] = kept
            elif self._known is None or self._known.may_hold(conversation_id):
                unknown.append(conversation_id)
            # else: an id the table has never held (a new conversation): nothing to read
        if unknown:
            for conversation in await self._read_many(unknown):
                found[conversation.conversation_id] = conversation
                if remember:
                    self._remember(conversation)
        return found

    async def _read_many(self, conversation_ids: list[str]) -> list[StoredConversation]:
        """The newest revision of each of ``conversation_ids`` the table holds. Only the
        revision numbers of the replaced ones are read: a conversation waiting for the upkeep
        may have a hundred revisions of up to ``max_turns`` long turns each."""
        table = await self._opened()
        if table is None:
            return []
        if not await self._has_revisions(table):  # one row per conversation, as then
            rows = await _rows(table, col("conversation_id").isin(conversation_ids))
            return [_conversation(row) for row in rows]
        revisions = (
            await table.query()
            .where(col("conversation_id").isin(conversation_ids))
            .select(["conversation_id", "revision"])
            .to_arrow()
        ).to_pylist()
        newest: dict[str, int] = {}
        counts: Counter[str] = Counter()
        for row in revisions:
            counts[row["conversation_id"]] += 1
            newest[row["conversation_id"]] = max(
                row["revision"], newest.get(row["conversation_id"], 0)
            )
        if not newest:
            return []
        if self._role.writes:
            # Replaced revisions a restart kept from their upkeep: the next one deletes them.
            for conversation_id, revision in newest.items():
                if counts[conversation_id] > 1:
                    self._replaced.setdefault(conversation_id, revision)
        # At least that revision: the upkeep may delete it once a newer one is written, but
        # never the newest, so one that came meanwhile is read instead.
        at_least = [
            (col("conversation_id") == lit(conversation_id)) & (col("revision") >= lit(revision))
            for conversation_id, revision in newest.items()
        ]
        found: dict[str, dict[str, Any]] = {}
        for row in await _rows(table, functools.reduce(operator.or_, at_least)):
            kept = found.get(row["conversation_id"])
            if kept is None or _revision(row) > _revision(kept):
                found[row["conversation_id"]] = row
        return [_conversation(row) for row in found.values()]

    async def _has_revisions(self, table: Any) -> bool:
        """Whether the table has the ``revision`` column; a reader can open a table from
        before revisions before the writer gives it the column, which is never taken away."""
        if not self._revisions_seen:
            self._revisions_seen = "revision" in (await table.schema()).names
        return self._revisions_seen

    def _remember(self, conversation: StoredConversation) -> None:
        if self._recent is not None:
            self._recent.put(conversation)

    def _forget(self, conversation_id: str) -> None:
        if self._recent is not None:
            self._recent.forget(conversation_id)


async def _rows(table: Any, predicate: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (await table.query().where(predicate).to_arrow()).to_pylist()
    return rows


def _conversation(row: dict[str, Any]) -> StoredConversation:
    return StoredConversation(
        conversation_id=row["conversation_id"],
        turns=[_turn_from_json(t) for t in json.loads(row["turns"])],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        owner=row.get("owner") or "",
        revision=_revision(row),
    )


def _revision(row: dict[str, Any]) -> int:
    """A row's revision; a table a reader opened before the writer added the column has none."""
    return int(row.get("revision") or 0)


async def _ensure_owner(table: Any) -> None:
    """Give a table from before owners existed its ``owner`` column (nulls: no owner)."""
    if "owner" not in (await table.schema()).names:
        await table.add_columns(pa.field("owner", pa.string(), nullable=True))


async def _ensure_revision(table: Any) -> None:
    """Give a table from before revisions its ``revision`` column: 0, its one row per
    conversation."""
    if "revision" not in (await table.schema()).names:
        await table.add_columns({"revision": "CAST(0 AS BIGINT)"})


async def _ensure_id_index(table: Any) -> None:
    """Build the ``conversation_id`` index unless the table has it (then ``optimize`` keeps it)."""
    if any(index.columns == ["conversation_id"] for index in await table.list_indices()):
        return
    await table.create_index("conversation_id", config=BTree())
