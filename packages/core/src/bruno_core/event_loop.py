"""The event loop every Bruno process runs on: uvloop.

uvloop's loop (libuv, in Cython) turns over callbacks, timers and socket reads in a fraction of
the stdlib loop's Python, which is a fifth of a request's CPU in the edge and a third in
retrieval (the hand-offs of LanceDB's results). ``grpc.aio`` runs on it (grpcio polls its
completion queue from its own thread and wakes whatever loop is running), and uvicorn takes
it with ``loop="uvloop"``.

    run_on_event_loop(serve(settings))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

#: For ``asyncio.Runner(loop_factory=…)`` and uvicorn's ``loop`` option (``"uvloop"``).
new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop


def run_on_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on a new uvloop loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
