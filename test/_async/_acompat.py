"""What the shared tests do differently on the asyncio side.

``test/_sync/_acompat.py`` has the same names for threads; everything else in
``test/_async/`` is turned into thread tests by ``tools/unasync.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

from poolhouse.aio import AsyncPool


async def checkpoint() -> None:
    """Let the loop run other tasks: an ``async def`` listener that suspends
    before it acts."""
    await asyncio.sleep(0)


#: Pool classes only this side has, with the class-specific arguments that
#: recreate() must carry over: none for asyncio.
ONLY_HERE: dict[type[AsyncPool], dict[str, Any]] = {}


class Background:
    """Runs *fn* alongside the test: a task here, a thread on the other side.

    :param fn: a coroutine function taking no argument.
    """

    def __init__(self, fn: Callable[[], Awaitable[Any]]) -> None:
        self._task = asyncio.ensure_future(fn())

    def is_running(self) -> bool:
        return not self._task.done()

    async def result(self, timeout: float = 10) -> Any:
        """Wait for it to end (at most *timeout* seconds) and return its
        result, or raise its exception."""
        return await asyncio.wait_for(self._task, timeout)


def current_actor() -> object:
    """What runs this code: the current task here, the thread there."""
    return asyncio.current_task()


def actor_name() -> str:
    """How the pool names the current task in its reports."""
    task = asyncio.current_task()
    assert task is not None
    return f"task {task.get_name()!r}"


class Flag:
    """Set by a listener (on the pool's loop), awaited by the test."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float = 10) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


async def ended(worker: Any, timeout: float = 10) -> bool:
    """Wait for a pool's worker task to end; tell whether it did."""
    try:
        await asyncio.wait_for(asyncio.shield(worker), timeout)
    except TimeoutError:
        return False
    return True
