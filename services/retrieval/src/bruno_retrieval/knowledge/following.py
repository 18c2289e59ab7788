"""How a reader keeps up with the writer's commits to a table it shares.

    await caught_up(table, at_least.version, within_seconds=1.0)   # or Unavailable

Tables a reader opens refresh themselves once per ``BRUNO_RETRIEVAL_READ_CONSISTENCY_SECONDS``
(LanceDB's ``read_consistency_interval``), so any read is at most that far behind the writer. A
read that names a version it must see (read-your-writes: the version the client's own write
committed) checks out the latest version at once and, if the writer's commit is still not
visible (an object store listing that lags its writes), waits for it up to the same bound; then
it is refused UNAVAILABLE, which the edge answers by asking the writer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bruno_core import Unavailable

# The first look again after a miss; doubled up to a tenth of the bound.
_FIRST_POLL_SECONDS = 0.02


async def caught_up(table: Any, version: int, *, within_seconds: float) -> None:
    """Return once ``table`` reads at ``version`` or later; Unavailable after
    ``within_seconds`` without it."""
    if await table.version() >= version:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    pause = _FIRST_POLL_SECONDS
    while True:
        await table.checkout_latest()
        if await table.version() >= version:
            return
        left = deadline - loop.time()
        if left <= 0:
            raise Unavailable(
                f"this reader has not yet seen version {version} of table {table.name!r} "
                f"after {within_seconds:g} s; ask the writer"
            )
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, within_seconds / 10)
