"""The pool classes: where records come from and where they go back.

Each class overrides only ``_do_get``, ``_do_return_conn``, ``recreate``,
``dispose`` and ``status`` (plus its own counters); the lifecycle itself is in
:mod:`poolhouse.base`.
"""

from __future__ import annotations

import threading
import traceback
import weakref
from typing import Any

from . import exc
from ._queue import CREATE
from ._queue import Marker
from ._queue import SlotQueue
from ._typing import Creator
from .base import ConnectionRecord
from .base import Pool


def _check_int(name: str, value: object, minimum: int, rule: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return value


class _Waiter:
    """A thread parked in :meth:`QueuePool._do_get`, woken by a hand-off."""

    __slots__ = ("_wake", "granted")

    def __init__(self) -> None:
        # A plain lock used as a one-shot event: cheaper than threading.Event.
        self._wake = threading.Lock()
        self._wake.acquire()
        self.granted: ConnectionRecord | Marker | None = None

    def grant(self, what: ConnectionRecord | Marker) -> None:
        """Hand *what* to the waiter (called under the pool lock)."""
        self.granted = what
        self._wake.release()

    def wait(self, timeout: float) -> bool:
        return self._wake.acquire(timeout=timeout)


class QueuePool(Pool):
    """A bounded pool: keeps up to *pool_size* idle connections and opens up to
    *max_overflow* more under load.

    Threads that find no connection wait in line and are served first come,
    first served: a returned connection goes straight to the oldest waiter.

    :param creator: as for :class:`.Pool`.
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
    :param kw: the :class:`.Pool` arguments.
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
        # Lock.acquire() rejects huge timeouts; -1 blocks without limit.
        self._lock_timeout = timeout if timeout < threading.TIMEOUT_MAX else -1
        self._use_lifo = use_lifo
        self._slots: SlotQueue[ConnectionRecord, _Waiter] = SlotQueue(
            pool_size, max_overflow, use_lifo
        )

    def _do_get(self) -> ConnectionRecord:
        slots = self._slots
        with self._lock:
            got = slots.take()
            if got is None:
                waiter = _Waiter()
                slots.enqueue(waiter)
        if got is None:
            got = self._wait(waiter)
        if got is CREATE:
            try:
                return self._create_connection()
            except BaseException:
                self._free_slot()
                raise
        assert isinstance(got, ConnectionRecord)
        return got

    def _wait(self, waiter: _Waiter) -> ConnectionRecord | Marker | None:
        timeout = self._timeout
        try:
            woken = waiter.wait(self._lock_timeout)
        except BaseException:
            # Interrupted (e.g. KeyboardInterrupt): leave the line, and pass on
            # anything granted meanwhile, or it would be lost.
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

    def _pass_on(self, granted: ConnectionRecord | Marker | None) -> None:
        """Give back what a waiter was granted but will not use."""
        if isinstance(granted, ConnectionRecord):
            self._do_return_conn(granted)
        elif granted is CREATE:
            self._free_slot()

    def _free_slot(self, closed: bool = False) -> None:
        with self._lock:
            heir = self._slots.free_slot(closed)
            if heir is not None:
                heir.grant(CREATE)

    def _do_return_conn(self, rec: ConnectionRecord) -> None:
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

    def _closed_one(self, rec: ConnectionRecord) -> None:
        self._free_slot(closed=True)

    def recreate(self) -> QueuePool:
        return self._recreated(  # type: ignore[return-value]  # same class
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

    :param creator: as for :class:`.Pool`.
    :param kw: the :class:`.Pool` arguments.
    """

    def _do_get(self) -> ConnectionRecord:
        return self._create_connection()

    def _do_return_conn(self, rec: ConnectionRecord) -> None:
        rec._close_connection()

    def dispose(self) -> None:
        """Nothing to do: a NullPool holds no idle connection."""

    def recreate(self) -> NullPool:
        return self._recreated(  # type: ignore[return-value]  # same class
            type(self)(self._creator, **self._base_kwargs())
        )

    def status(self) -> str:
        return f"{self!r}: opens a connection per checkout"


class StaticPool(Pool):
    """One connection, shared by every checkout (e.g. an in-memory sqlite3).

    The shared connection is reset only when its last user returns it.

    :param creator: as for :class:`.Pool`.
    :param kw: the :class:`.Pool` arguments.
    """

    _shares_records = True

    def __init__(self, creator: Creator, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._record: ConnectionRecord | None = None
        # Serialises opening the one connection; separate from the
        # bookkeeping lock, which is never held around I/O.
        self._open_lock = threading.Lock()

    def _do_get(self) -> ConnectionRecord:
        rec = self._record
        if rec is not None and rec.dbapi_connection is not None:
            return rec
        with self._open_lock:
            rec = self._record
            if rec is None:
                rec = self._record = self._create_connection()
            elif rec.dbapi_connection is None:
                rec._connect()
            return rec

    def _do_return_conn(self, rec: ConnectionRecord) -> None:
        if rec is not self._record:
            # Replaced by dispose() while in use: its last user is done.
            rec._close_connection()

    def dispose(self) -> None:
        """Close the shared connection, or, while it is in use, close it when
        its last user returns it; the next checkout opens a new one."""
        with self._open_lock:
            rec, self._record = self._record, None
        self.logger.info("disposed the shared connection")
        if rec is not None and not rec._checkouts:
            rec._close_connection()

    def recreate(self) -> StaticPool:
        return self._recreated(  # type: ignore[return-value]  # same class
            type(self)(self._creator, **self._base_kwargs())
        )

    def status(self) -> str:
        rec = self._record
        users = rec._checkouts if rec is not None else 0
        state = "open" if rec is not None and rec.dbapi_connection else "not open"
        return f"{self!r}: one shared connection, {state}, {users} users"


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
        self._all: dict[ConnectionRecord, None] = {}

    def _do_get(self) -> ConnectionRecord:
        ref: weakref.ref[ConnectionRecord] | None = getattr(self._local, "rec", None)
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

    def _surplus(self, keep: ConnectionRecord | None = None) -> list[ConnectionRecord]:
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

    def _do_return_conn(self, rec: ConnectionRecord) -> None:
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
        return self._recreated(  # type: ignore[return-value]  # same class
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


class AssertionPool(Pool):
    """Allows one checkout at a time: a test aid that finds leaked connections.

    A second concurrent checkout raises :class:`AssertionError` naming where
    the first one was checked out.

    :param creator: as for :class:`.Pool`.
    :param kw: the :class:`.Pool` arguments.
    """

    def __init__(self, creator: Creator, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._record: ConnectionRecord | None = None
        self._checked_out = False
        self._checkout_stack: str | None = None

    def _do_get(self) -> ConnectionRecord:
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

    def _do_return_conn(self, rec: ConnectionRecord) -> None:
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
        return self._recreated(  # type: ignore[return-value]  # same class
            type(self)(self._creator, **self._base_kwargs())
        )

    def status(self) -> str:
        state = "checked out" if self._checked_out else "not checked out"
        return f"{self!r}: one connection, {state}"
