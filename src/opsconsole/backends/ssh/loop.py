"""The one asyncio event loop thread that every SSH connection runs on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class Loop:
    """The one event loop thread that every SSH connection of the process lives on, started at the
    first connection. Blocking callers hand it coroutines and wait for their results."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                # a task whose caller stopped waiting (a timeout, a cancel) may still end in an
                # error: callers get theirs as HostErrors, and asyncio's own report of it would be
                # written to stderr, over the console's screen
                loop.set_exception_handler(lambda _loop, _context: None)
                threading.Thread(target=loop.run_forever, daemon=True, name="ssh-loop").start()
                self._loop = loop
            return self._loop

    def submit(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop)

    def call(self, coroutine: Any, timeout: float) -> Any:
        """The coroutine's result, or TimeoutError after `timeout` (the coroutine is cancelled)."""
        import concurrent.futures

        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"timed out after {timeout:g} s") from None

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(callback)


LOOP = Loop()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable  # asyncssh.connect() gives an awaitable that is not a coroutine
