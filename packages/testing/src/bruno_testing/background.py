"""Run an async server (such as the Ollama stand-in) on its own event loop in a daemon thread,
so synchronous tests and fixtures of any scope can use it.

    with InBackground(OllamaStandIn()) as standin:
        requests.get(standin.url)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InBackground(Generic[T]):
    """Enters ``manager`` on a background loop; :meth:`call` runs coroutines on that loop."""

    def __init__(self, manager: AbstractAsyncContextManager[T]) -> None:
        self._manager = manager
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def call(self, coroutine: Coroutine[Any, Any, R], timeout: float = 30.0) -> R:
        """Run ``coroutine`` on the background loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> T:
        self._thread.start()
        return self.call(self._manager.__aenter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.call(self._manager.__aexit__(exc_type, exc, tb))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
