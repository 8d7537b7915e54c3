"""The asyncio pools' base classes: :class:`AsyncPool`,
:class:`AsyncConnectionRecord` and :class:`AsyncConnectionFairy`.

They share the lifecycle (:mod:`poolhouse.aio._lifecycle`) and the decisions
(:mod:`poolhouse._core`) with the thread pools; this module adds what is
particular to asyncio: awaiting an async creator and async listeners, binding
the pool to one event loop, waking and timing out waiting tasks, and
reclaiming a garbage-collected connection on the pool's loop.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import time
from collections import deque
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING
from typing import Any

from blinker import Signal

from .. import event
from .. import exc
from .._queue import Marker
from .._typing import AsyncCreator
from ..dialects import async_dialect_for
from ..dialects.base import AsyncDialect
from ._lifecycle import _AsyncFairyLifecycle
from ._lifecycle import _AsyncPoolLifecycle
from ._lifecycle import _AsyncRecordLifecycle


class AsyncPool(_AsyncPoolLifecycle):
    """Abstract base of the asyncio pools.

    Takes the arguments of :class:`poolhouse.Pool`; *creator* may also be an
    ``async def`` function (taking no argument, or the
    :class:`AsyncConnectionRecord`) returning a driver connection, and
    *dialect* an :class:`~poolhouse.dialects.base.AsyncDialect`.  The pool binds
    to the event loop of its first checkout.

    :raises TypeError: an argument has the wrong type.
    :raises ValueError: an argument is out of range.
    """

    def __init__(self, creator: AsyncCreator, **kw: Any) -> None:
        super().__init__(creator, **kw)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Strong references keep reclaim tasks alive until they finish.
        self._background: set[asyncio.Future[None]] = set()
        self._deadlines: _Deadlines | None = None

    if TYPE_CHECKING:

        async def _acquire(self) -> AsyncConnectionFairy: ...

    def connect(self) -> _Checkout:
        """Check out a connection: ``await pool.connect()`` or
        ``async with pool.connect() as conn:``.

        :raises poolhouse.exc.TimeoutError: no connection was freed in time.
        :raises poolhouse.exc.InvalidRequestError: the pool is used from a
            second event loop, or ``checkout`` listeners rejected every
            connection tried.
        """
        return _Checkout(self)

    @abc.abstractmethod
    def recreate(self) -> AsyncPool:
        """Return a new, empty pool of the same class and arguments.

        Listeners registered on this pool are carried over.
        """

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is None:
            self._loop = loop
            return
        raise exc.InvalidRequestError(
            f"{self!r} belongs to event loop {self._loop!r} and was used from "
            f"{loop!r}; create one pool per event loop (e.g. with recreate())",
            pool=self,
        )

    def _default_dialect(self) -> AsyncDialect:
        return AsyncDialect()

    def _dialect_for(self, dbapi_connection: Any) -> AsyncDialect:
        return async_dialect_for(dbapi_connection)

    def _new_waiter(self) -> _AsyncWaiter:
        if self._deadlines is None:
            # Loop-bound: made at the first wait, on the pool's loop.
            self._deadlines = _Deadlines(asyncio.get_running_loop())
        return _AsyncWaiter(self._deadlines)

    def _new_io_lock(self) -> asyncio.Lock:
        # Binds to the running loop at first use, not here.
        return asyncio.Lock()

    async def _invoke_creator(self, rec: Any) -> Any:
        conn = self._call_creator(rec)
        if inspect.isawaitable(conn):
            conn = await conn
        return conn

    async def _emit(self, signal: Signal, **kwargs: Any) -> None:
        await event._send_async(signal, self, kwargs)

    def _reclaim(self, rec: Any) -> None:
        """Return the record of a fairy dropped without ``close()``, on the
        pool's loop (a finalizer cannot await)."""
        self.logger.warning(
            "%r: a connection was garbage-collected without close(); returning "
            "it to the pool. Close connections or use async with.",
            self,
        )
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # the loop, and so the driver connection, are gone
        loop.call_soon_threadsafe(self._spawn_checkin, rec)

    def _spawn_checkin(self, rec: Any) -> None:
        task = asyncio.ensure_future(self._checkin(rec))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class AsyncConnectionRecord(_AsyncRecordLifecycle):
    """One slot of an asyncio pool and the driver connection it holds.

    :param pool: the owning pool.
    """

    __slots__ = ()


class AsyncConnectionFairy(_AsyncFairyLifecycle):
    """A checked-out connection of an asyncio pool.

    ``await conn.close()`` returns it; ``async with pool.connect() as conn:``
    does so at the end of the block.  Attributes not defined here pass through
    to the driver connection (:attr:`driver_connection`).

    The return runs in the caller's task, so a timeout the driver or a
    listener takes meanwhile (:func:`asyncio.timeout`) works as anywhere else.
    If that task is cancelled during the return, the cancel cuts the reset
    short; the connection, whose state is then unknown, is invalidated, and
    its slot is freed before the :exc:`asyncio.CancelledError` goes on.
    """

    __slots__ = ()


AsyncPool._record_class = AsyncConnectionRecord
AsyncPool._fairy_class = AsyncConnectionFairy


class _Checkout:
    """What :meth:`AsyncPool.connect` returns: awaitable, and an async context
    manager that closes the connection on exit."""

    __slots__ = ("_pool", "_fairy")

    def __init__(self, pool: AsyncPool) -> None:
        self._pool = pool
        self._fairy: AsyncConnectionFairy | None = None

    async def _checkout(self) -> AsyncConnectionFairy:
        pool = self._pool
        pool._bind_loop()
        return await pool._acquire()

    def __await__(self) -> Generator[Any, None, AsyncConnectionFairy]:
        return self._checkout().__await__()

    async def __aenter__(self) -> AsyncConnectionFairy:
        self._fairy = await self._checkout()
        return self._fairy

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        fairy = self._fairy
        if fairy is not None:
            self._fairy = None
            await fairy.__aexit__(exc_type, exc_value, traceback)


class _AsyncWaiter:
    """A task parked in ``AsyncQueuePool._do_get``, woken by a hand-off.

    :param deadlines: times the waiter out.
    """

    __slots__ = ("_future", "_deadlines", "deadline", "granted")

    def __init__(self, deadlines: _Deadlines) -> None:
        self._deadlines = deadlines
        self._future: asyncio.Future[None] = deadlines.loop.create_future()
        #: Loop time at which the wait times out (set by :meth:`wait`).
        self.deadline = float("inf")
        self.granted: _AsyncRecordLifecycle | Marker | None = None

    def grant(self, what: _AsyncRecordLifecycle | Marker) -> None:
        """Hand *what* to the waiter (called under the pool lock, in its loop).

        A task cancelled or timed out meanwhile still owns *what*: it finds it
        in :attr:`granted` when it leaves the line, and passes it on.
        """
        self.granted = what
        self.wake()

    def wake(self) -> None:
        """End the wait, granted or not."""
        if not self._future.done():
            self._future.set_result(None)

    def is_waiting(self) -> bool:
        """Tell whether the wait is still on (not granted, timed out or cancelled)."""
        return not self._future.done()

    async def wait(self, timeout: float) -> bool:
        """Wait until granted or *timeout* seconds pass; tell whether granted."""
        if timeout == float("inf"):
            await self._future
            return True
        deadlines = self._deadlines
        self.deadline = deadlines.loop.time() + timeout
        deadlines.add(self)
        try:
            await self._future
        finally:
            deadlines.remove(self)
        return self.granted is not None


#: How early asyncio may run a timer (it runs those due within this).
_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


class _Deadlines:
    """Times out the waiters of one pool with a single timer.

    A pool's waiters all wait with its timeout and queue in arrival order, so
    their deadlines come in that order too, and one timer set for the oldest
    pending deadline is enough.  A timer per waiter would add a heap push and
    a cancelled handle to every checkout of a busy pool.

    :param loop: the pool's event loop.
    """

    __slots__ = ("loop", "_line", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: The waiters with a deadline, in arrival order.
        self._line: deque[_AsyncWaiter] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, waiter: _AsyncWaiter) -> None:
        """Watch *waiter*, whose :attr:`~_AsyncWaiter.deadline` is set."""
        self._line.append(waiter)
        if self._timer is None:
            self._timer = self.loop.call_at(waiter.deadline, self._expire)

    def remove(self, waiter: _AsyncWaiter) -> None:
        """Stop watching *waiter*, whose wait is over."""
        line = self._line
        if line[0] is waiter:
            line.popleft()  # served in arrival order: the usual case
        else:
            line.remove(waiter)  # cancelled, or woken out of order

    def _expire(self) -> None:
        """Wake the waiters whose deadline has passed; re-arm for the next one."""
        self._timer = None
        # Due as asyncio judges its own timers, or a timer run a little early
        # would re-arm for a deadline that is due at once, again and again.
        now = self.loop.time() + _CLOCK_RESOLUTION
        for waiter in self._line:
            if not waiter.is_waiting():
                continue  # woken, and leaving the line when its task runs
            if waiter.deadline > now:
                self._timer = self.loop.call_at(waiter.deadline, self._expire)
                return
            waiter.wake()
