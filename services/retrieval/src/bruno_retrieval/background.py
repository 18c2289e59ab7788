"""Tasks that outlive the call that started them: group commits, index builds, table drops.

tasks = BackgroundTasks()
tasks.spawn(build_index(table))
tasks.spawn(when_quiet(), timer=True)   # waits to start work: wait() does not wait for it
await tasks.wait()   # tests and benchmarks: until every one (but timers) has finished
tasks.cancel()       # on close, timers too
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class BackgroundTasks:
    """Keeps each task referenced until it is done (the event loop holds only weak references)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, _T], *, timer: bool = False) -> asyncio.Task[_T]:
        """Run ``work``; a ``timer`` mostly waits (possibly for minutes) and spawns the work it
        starts as a task of its own."""
        task = asyncio.get_running_loop().create_task(work)
        tasks = self._timers if timer else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def wait(self) -> None:
        """Until every task but the timers, including those started meanwhile, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        for task in [*self._tasks, *self._timers]:
            task.cancel()
