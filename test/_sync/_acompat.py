"""What the shared tests do differently on the thread side.

``test/_async/_acompat.py`` has the same names for asyncio; everything else in
``test/_sync/`` is generated from ``test/_async/`` by ``tools/unasync.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from poolhouse import Pool
from poolhouse import SingletonThreadPool


def checkpoint() -> None:
    """Nothing to yield to: a listener is a plain call."""


#: Pool classes only this side has, with the class-specific arguments that
#: recreate() must carry over.
ONLY_HERE: dict[type[Pool], dict[str, Any]] = {SingletonThreadPool: {"pool_size": 3}}


class Background:
    """Runs *fn* alongside the test: a thread here, a task on the other side.

    :param fn: a function taking no argument.
    """

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(fn,))
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._outcome[:] = [True, fn()]
        except BaseException as err:  # noqa: BLE001  # re-raised by result()
            self._outcome[:] = [False, err]

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 10) -> Any:
        """Wait for it to end (at most *timeout* seconds) and return its
        result, or raise its exception."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "still running after the timeout"
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def current_actor() -> object:
    """What runs this code: the current thread here, the task there."""
    return threading.current_thread()


def actor_name() -> str:
    """How the pool names the current thread in its reports."""
    return f"thread {threading.current_thread().name!r}"


class Flag:
    """Set by a listener (in the worker's thread), waited for by the test."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float = 10) -> bool:
        return self._event.wait(timeout)


def ended(worker: Any, timeout: float = 10) -> bool:
    """Wait for a pool's worker thread to end; tell whether it did."""
    worker.join(timeout)
    return not worker.is_alive()
