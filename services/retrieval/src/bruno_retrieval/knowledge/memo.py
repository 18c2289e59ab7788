"""Answers read from a table, kept until the table's next commit.

Retrieval is the single writer of its tables and the catalog keeps one handle per table, so a
handle's version changes exactly when what it holds does: an answer computed at one version
(a collection's counts, a page of documents) is the answer until then, and costs one version
look-up instead of a scan. A table dropped and made anew under the same name has a new handle,
so nothing of the old one is answered for it.

    memo = TableMemo(max_entries=256)
    counts = await memo.get(table, ("counts", entry.table), lambda: count(table))
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

_V = TypeVar("_V")


class TableMemo:
    """The latest answers read from tables, each valid for one handle at one version; the
    least recently used go first past ``max_entries``."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._answers: OrderedDict[Hashable, tuple[Any, int, Any]] = OrderedDict()

    async def get(self, table: Any, key: Hashable, read: Callable[[], Awaitable[_V]]) -> _V:
        """The answer ``read()`` gives for ``table`` as it is now, read again only after a
        commit."""
        version = await table.version()
        kept = self._answers.get(key)
        if kept is not None and kept[0] is table and kept[1] == version:
            self._answers.move_to_end(key)
            answer: _V = kept[2]
            return answer
        answer = await read()
        self._answers[key] = (table, version, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)
        return answer
