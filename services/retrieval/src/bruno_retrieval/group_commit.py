"""Group commit: writes that arrive while another is being committed wait, then go together.

    commits = GroupCommit(lock, write_batch, tasks, max_batch=256, key=lambda doc: doc.id)
    outcome = await commits.submit(document)

Whoever takes the lock commits every item waiting at that moment, one commit per round of at
most ``max_batch`` items, so many small writes cost one table version instead of one each.
Items with the same ``key`` go in separate rounds: the later one sees the earlier one's
commit. ``write_batch`` settles each item's :class:`Pending` itself (a result or an error of
its own); if it raises, every item of its round gets that error. The commit runs in a task of
its own: a caller that gives up (cancelled) must not abort it for the others. The lock is the
caller's, so other writers of the same table (a delete, a reindex) take turns with commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from bruno_core import Unavailable
from bruno_retrieval.background import BackgroundTasks

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclasses.dataclass(eq=False)
class Pending(Generic[_Item, _Result]):
    """One submitted item and the future its caller waits on."""

    item: _Item
    future: asyncio.Future[_Result]

    def settle(self, outcome: _Result | BaseException) -> None:
        """Resolve the caller's wait, unless it is resolved already or was given up."""
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class GroupCommit(Generic[_Item, _Result]):
    """Commits submitted items in groups under ``lock`` (see the module docstring)."""

    def __init__(
        self,
        lock: asyncio.Lock,
        write_batch: Callable[[list[Pending[_Item, _Result]]], Awaitable[None]],
        tasks: BackgroundTasks,
        *,
        max_batch: int | None = None,
        key: Callable[[_Item], Hashable] | None = None,
    ) -> None:
        self._lock = lock
        self._write_batch = write_batch
        self._tasks = tasks
        self._max_batch = max_batch
        self._key = key
        self._queue: list[Pending[_Item, _Result]] = []

    async def submit(self, item: _Item) -> _Result:
        """Commit ``item`` with whatever else is waiting; its outcome, or the error for it."""
        pending: Pending[_Item, _Result] = Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        try:
            await asyncio.shield(self._tasks.spawn(self._commit_waiting(pending)))
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if caller is None or caller.cancelling():
                raise  # this caller gives up; the commit goes on without it
            # Only the commit was cancelled (the store is closing): the item says so.
        return await pending.future

    async def _commit_waiting(self, pending: Pending[_Item, _Result]) -> None:
        batch: list[Pending[_Item, _Result]] = []
        try:
            async with self._lock:
                if pending.future.done():  # an earlier holder of the lock committed it
                    return
                while self._queue:
                    batch = self._next_batch()
                    try:
                        await self._write_batch(batch)
                    except Exception as error:
                        for each in batch:
                            each.settle(error)
        except BaseException:  # the store is closing: nobody may wait forever
            for each in [pending, *batch, *self._queue]:
                each.settle(Unavailable("the store closed before the write"))
            raise

    def _next_batch(self) -> list[Pending[_Item, _Result]]:
        batch: list[Pending[_Item, _Result]] = []
        keys: set[Hashable] = set()
        for pending in list(self._queue):
            if self._max_batch is not None and len(batch) >= self._max_batch:
                break
            if self._key is not None:
                key = self._key(pending.item)
                if key in keys:
                    continue
                keys.add(key)
            batch.append(pending)
            self._queue.remove(pending)
        return batch
