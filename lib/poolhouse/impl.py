"""The thread pool classes: where records come from and where they go back.

:class:`QueuePool`, :class:`NullPool`, :class:`StaticPool` and
:class:`AssertionPool` are generated from their asyncio twins (see
:mod:`poolhouse.aio._impl`); :class:`SingletonThreadPool` has no asyncio twin
and is written here.  Each class overrides only ``_do_get``,
``_do_return_conn``, ``recreate``, ``dispose`` and ``status`` (plus its own
counters).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ._core import _check_int
from ._impl import AssertionPool
from ._impl import NullPool
from ._impl import QueuePool
from ._impl import StaticPool
from ._lifecycle import _RecordLifecycle
from ._typing import Creator
from .base import Pool

__all__ = [
    "AssertionPool",
    "NullPool",
    "QueuePool",
    "SingletonThreadPool",
    "StaticPool",
]


class SingletonThreadPool(Pool):
    """One connection per thread, for drivers whose connections must stay in
    the thread that opened them (e.g. sqlite3).

    A thread that checks out again while it holds its connection shares it;
    the connection is reset when the last of those checkouts is returned.

    :param creator: as for :class:`.Pool`.
    :param pool_size: how many threads may keep a connection at once; when a
        new thread would exceed it, the oldest idle connection is closed.
        Default 5.
    :param kw: the :class:`.Pool` arguments.
    """

    def __init__(self, creator: Creator, pool_size: int = 5, **kw: Any) -> None:
        _check_int("pool_size", pool_size, 1, "use a positive int")
        super().__init__(creator, **kw)
        self._pool_size = pool_size
        self._local = threading.local()
        # Every record, oldest first, so surplus ones can be closed.
        self._all: dict[_RecordLifecycle, None] = {}

    def _do_get(self) -> _RecordLifecycle:
        ref: weakref.ref[_RecordLifecycle] | None = getattr(self._local, "rec", None)
        rec = ref() if ref is not None else None
        if rec is not None and rec in self._all:
            return rec
        rec = self._create_connection()
        self._local.rec = weakref.ref(rec)
        with self._lock:
            self._all[rec] = None
            surplus = self._surplus(keep=rec)
        self._close_records(surplus)
        return rec

    def _surplus(self, keep: _RecordLifecycle | None = None) -> list[_RecordLifecycle]:
        """Pick idle records beyond *pool_size* to close (under the lock).

        :param keep: a record about to be handed out, which is not idle yet.
        """
        excess = len(self._all) - self._pool_size
        chosen = []
        for rec in self._all:
            if excess <= 0:
                break
            if not rec._checkouts and rec is not keep:
                chosen.append(rec)
                excess -= 1
        for rec in chosen:
            del self._all[rec]
        return chosen

    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        with self._lock:
            surplus = self._surplus()
        self._close_records(surplus)

    def dispose(self) -> None:
        """Close every thread's idle connection."""
        with self._lock:
            idle = [rec for rec in self._all if not rec._checkouts]
            for rec in idle:
                del self._all[rec]
        self._generation += 1
        self.logger.info("disposing: closing %d idle connections", len(idle))
        self._close_records(idle)

    def recreate(self) -> SingletonThreadPool:
        return self._recreated(
            type(self)(self._creator, pool_size=self._pool_size, **self._base_kwargs())
        )

    def size(self) -> int:
        """The *pool_size* this pool was created with."""
        return self._pool_size

    def status(self) -> str:
        with self._lock:
            total = len(self._all)
            busy = sum(1 for rec in self._all if rec._checkouts)
        return (
            f"{self!r}: pool_size={self._pool_size}, thread connections={total}, "
            f"checked out={busy}"
        )
