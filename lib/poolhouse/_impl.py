# generated from aio/_impl.py by tools/unasync.py: do not edit
"""The pool classes: where records come from and where they go back.

This is the one hand-written copy: ``tools/unasync.py`` generates the thread
twins (:class:`~poolhouse.QueuePool` and friends) into
:mod:`poolhouse._impl`.  Each class overrides only ``_do_get``,
``_do_return_conn``, ``recreate``, ``dispose`` and ``status`` (plus its own
counters); the lifecycle is in :mod:`poolhouse.aio._lifecycle`.
"""

from __future__ import annotations

import traceback
from typing import Any

from . import exc
from ._core import _check_int
from ._lifecycle import _RecordLifecycle
from ._queue import CREATE
from ._queue import Marker
from ._queue import SlotQueue
from ._typing import Creator
from .base import Pool
from .base import _Waiter


class QueuePool(Pool):
    """A bounded pool: keeps up to *pool_size* idle connections and opens up to
    *max_overflow* more under load.

    Callers that find no connection wait in line and are served first come,
    first served: a returned connection goes straight to the oldest waiter.

    :param creator: as for the pool base class.
    :param pool_size: how many connections to keep open when idle; ``0`` keeps
        any number.  Default 5.
    :param max_overflow: how many connections may be open beyond *pool_size*;
        ``-1`` means no limit.  Overflow connections are closed when returned.
        Default 10.
    :param timeout: seconds to wait for a connection before raising
        :class:`~poolhouse.exc.TimeoutError`.  Default 30.
    :param use_lifo: reuse the most recently returned idle connection first
        (lets surplus ones age out with *recycle*); it does not change the
        order in which waiting threads are served.
    :param kw: the arguments of the pool base class.
    """

    def __init__(
        self,
        creator: Creator,
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float = 30.0,
        use_lifo: bool = False,
        **kw: Any,
    ) -> None:
        _check_int("pool_size", pool_size, 0, "use 0 (no limit) or a positive int")
        _check_int("max_overflow", max_overflow, -1, "use -1 (no limit) or an int >= 0")
        if pool_size == 0 and max_overflow == 0:
            raise ValueError(
                "pool_size=0 with max_overflow=0 would never open a connection; "
                "raise one of them, or use NullPool to disable pooling"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
        if not timeout >= 0:
            raise ValueError(f"timeout={timeout!r} is invalid: use seconds >= 0")
        if not isinstance(use_lifo, bool):
            raise TypeError(f"use_lifo must be True or False, got {use_lifo!r}")
        super().__init__(creator, **kw)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._timeout = float(timeout)
        self._use_lifo = use_lifo
        self._slots: SlotQueue[_RecordLifecycle, _Waiter] = SlotQueue(
            pool_size, max_overflow, use_lifo
        )

    def _do_get(self) -> _RecordLifecycle:
        slots = self._slots
        with self._lock:
            got = slots.take()
            if got is None:
                waiter = self._new_waiter()
                slots.enqueue(waiter)
        if got is None:
            got = self._wait(waiter)
        if got is CREATE:
            try:
                return self._create_connection()
            except BaseException:
                self._free_slot()
                raise
        assert isinstance(got, _RecordLifecycle)
        return got

    def _wait(self, waiter: _Waiter) -> _RecordLifecycle | Marker | None:
        timeout = self._timeout
        try:
            woken = waiter.wait(timeout)
        except BaseException:
            # Interrupted (Ctrl-C, a cancelled task): leave the line, and pass
            # on anything granted meanwhile, or it would be lost.
            with self._lock:
                cancelled = self._slots.cancel(waiter)
            if not cancelled:
                self._pass_on(waiter.granted)
            raise
        if woken:
            return waiter.granted
        with self._lock:
            if not self._slots.cancel(waiter):
                # Granted between the timeout and taking the lock: it is ours.
                return waiter.granted
            waiting = len(self._slots.waiters)
        raise exc.TimeoutError(
            f"{self!r}: no connection freed within {timeout:.2f}s "
            f"(pool_size={self._pool_size}, max_overflow={self._max_overflow}, "
            f"checked out={self.checkedout()}, waiting={waiting}); return "
            "connections with close() or a with-block, or raise "
            "pool_size/max_overflow/timeout",
            pool=self,
            timeout=timeout,
        )

    def _pass_on(self, granted: _RecordLifecycle | Marker | None) -> None:
        """Give back what a waiter was granted but will not use."""
        if isinstance(granted, _RecordLifecycle):
            self._do_return_conn(granted)
        elif granted is CREATE:
            self._free_slot()

    def _free_slot(self, closed: bool = False) -> None:
        with self._lock:
            heir = self._slots.free_slot(closed)
            if heir is not None:
                heir.grant(CREATE)

    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        with self._lock:
            heir = self._slots.give_back(rec)
            if heir is None:
                return
            if isinstance(heir, _Waiter):
                heir.grant(rec)
                return
        # CLOSE: surplus beyond pool_size.  Its slot is freed only once it is
        # closed, so the limit holds even while the close is in progress.
        try:
            rec._close_connection()
        finally:
            self._free_slot(closed=True)

    def dispose(self) -> None:
        """Close every idle connection and expire the checked-out ones.

        Connections checked out now are replaced when next checked out, so
        the pool ends up with none opened before the call.
        """
        with self._lock:
            idle = self._slots.drain_idle()
        self._generation += 1
        self.logger.info("disposing: closing %d idle connections", len(idle))
        self._close_records(idle, after_each=self._closed_one)

    def _closed_one(self, rec: _RecordLifecycle) -> None:
        self._free_slot(closed=True)

    def recreate(self) -> QueuePool:
        return self._recreated(
            type(self)(
                self._creator,
                pool_size=self._pool_size,
                max_overflow=self._max_overflow,
                timeout=self._timeout,
                use_lifo=self._use_lifo,
                **self._base_kwargs(),
            )
        )

    def status(self) -> str:
        slots = self._slots
        with self._lock:
            idle = len(slots.idle)
            out = slots.checked_out()
            opened = slots.opened
            waiting = len(slots.waiters)
        return (
            f"{self!r}: pool_size={self._pool_size}, checked in={idle}, "
            f"checked out={out}, overflow={opened - self._pool_size}/"
            f"{self._max_overflow}, waiting={waiting}"
        )

    def size(self) -> int:
        """The *pool_size* this pool was created with."""
        return self._pool_size

    def timeout(self) -> float:
        """The checkout *timeout*, in seconds."""
        return self._timeout

    def checkedin(self) -> int:
        """How many connections are idle in the pool."""
        return len(self._slots.idle)

    def checkedout(self) -> int:
        """How many connections are checked out (or being opened for a checkout)."""
        return self._slots.checked_out()

    def overflow(self) -> int:
        """Connections open minus *pool_size*: negative until *pool_size* are open."""
        return self._slots.opened - self._pool_size


class NullPool(Pool):
    """No pooling: each checkout opens a connection and each checkin closes it.

    :param creator: as for the pool base class.
    :param kw: the arguments of the pool base class.
    """

    def _do_get(self) -> _RecordLifecycle:
        return self._create_connection()

    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        rec._close_connection()

    def dispose(self) -> None:
        """Nothing to do: this pool holds no idle connection."""

    def recreate(self) -> NullPool:
        return self._recreated(type(self)(self._creator, **self._base_kwargs()))

    def status(self) -> str:
        return f"{self!r}: opens a connection per checkout"


class StaticPool(Pool):
    """One connection, shared by every checkout (e.g. an in-memory sqlite3).

    The shared connection is reset only when its last user returns it.

    :param creator: as for the pool base class.
    :param kw: the arguments of the pool base class.
    """

    _shares_records = True

    def __init__(self, creator: Creator, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._record: _RecordLifecycle | None = None

    def _shared_lock(self) -> Any:
        lock = self._connect_lock
        assert lock is not None  # _shares_records: created in __init__
        return lock

    def _do_get(self) -> _RecordLifecycle:
        rec = self._record
        if rec is not None and rec.dbapi_connection is not None:
            return rec
        with self._shared_lock():
            rec = self._record
            if rec is None:
                rec = self._record = self._create_connection()
            elif rec.dbapi_connection is None:
                rec._connect()
            return rec

    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        if rec is not self._record:
            # Replaced by dispose() while in use: its last user is done.
            rec._close_connection()

    def dispose(self) -> None:
        """Close the shared connection, or, while it is in use, close it when
        its last user returns it; the next checkout opens a new one."""
        with self._shared_lock():
            rec, self._record = self._record, None
        self.logger.info("disposed the shared connection")
        if rec is not None and not rec._checkouts:
            rec._close_connection()

    def recreate(self) -> StaticPool:
        return self._recreated(type(self)(self._creator, **self._base_kwargs()))

    def status(self) -> str:
        rec = self._record
        users = rec._checkouts if rec is not None else 0
        state = "open" if rec is not None and rec.dbapi_connection else "not open"
        return f"{self!r}: one shared connection, {state}, {users} users"


class AssertionPool(Pool):
    """Allows one checkout at a time: a test aid that finds leaked connections.

    A second concurrent checkout raises :class:`AssertionError` naming where
    the first one was checked out.

    :param creator: as for the pool base class.
    :param kw: the arguments of the pool base class.
    """

    def __init__(self, creator: Creator, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._record: _RecordLifecycle | None = None
        self._checked_out = False
        self._checkout_stack: str | None = None

    def _do_get(self) -> _RecordLifecycle:
        with self._lock:
            if self._checked_out:
                raise AssertionError(
                    f"{self!r}: a connection is already checked out; return it "
                    f"before checking out another. It was checked out at:\n"
                    f"{self._checkout_stack}"
                )
            self._checked_out = True
            self._checkout_stack = "".join(traceback.format_stack(limit=12)[:-2])
            rec = self._record
        if rec is None:
            try:
                rec = self._create_connection()
            except BaseException:
                with self._lock:
                    self._checked_out = False
                raise
            self._record = rec
        return rec

    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        with self._lock:
            if not self._checked_out:
                raise AssertionError(f"{self!r}: connection returned twice")
            self._checked_out = False
            self._checkout_stack = None

    def dispose(self) -> None:
        """Close the idle connection, if it is not checked out."""
        with self._lock:
            rec = None if self._checked_out else self._record
            if rec is not None:
                self._record = None
        # A checked-out connection is replaced at its next checkout.
        self._generation += 1
        if rec is not None:
            rec._close_connection()

    def recreate(self) -> AssertionPool:
        return self._recreated(type(self)(self._creator, **self._base_kwargs()))

    def status(self) -> str:
        state = "checked out" if self._checked_out else "not checked out"
        return f"{self!r}: one connection, {state}"
