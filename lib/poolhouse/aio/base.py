"""The asyncio pools' base classes: :class:`AsyncPool`,
:class:`AsyncConnectionRecord` and :class:`AsyncConnectionFairy`.

They share the lifecycle (:mod:`poolhouse.aio._lifecycle`) and the decisions
(:mod:`poolhouse._core`) with the thread pools; this module adds what is
particular to asyncio: awaiting an async creator and async listeners, binding
the pool to one event loop, waking a waiting task, shielding the return of a
connection from cancellation, and reclaiming a garbage-collected connection
on the pool's loop.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
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
    """

    __slots__ = ()

    async def close(self) -> None:
        """Return the connection to its pool (reset first); a second call does
        nothing.

        The return runs in its own task, shielded from the caller's
        cancellation.  A cancelled caller also cuts the reset short rather than
        wait on it: the connection is then invalidated, and its slot freed
        either way.
        """
        if self._returned:
            return
        returning = asyncio.ensure_future(_AsyncFairyLifecycle.close(self))
        try:
            await asyncio.shield(returning)
        except asyncio.CancelledError:
            returning.cancel()  # _reset() invalidates; _checkin() frees the slot
            raise


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
    """A task parked in ``AsyncQueuePool._do_get``, woken by a hand-off."""

    __slots__ = ("_future", "_loop", "granted")

    def __init__(self) -> None:
        # Created inside the pool's running loop, at first wait.
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()
        self.granted: _AsyncRecordLifecycle | Marker | None = None

    def grant(self, what: _AsyncRecordLifecycle | Marker) -> None:
        """Hand *what* to the waiter (called under the pool lock, in its loop).

        A task cancelled or timed out meanwhile still owns *what*: it finds it
        in :attr:`granted` when it leaves the line, and passes it on.
        """
        self.granted = what
        self._wake()

    def _wake(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Wait until granted or *timeout* seconds pass; tell whether granted."""
        if timeout == float("inf"):
            await self._future
            return True
        # One timer that wakes the same future: lighter than wait_for(), which
        # adds a future and callbacks per wait, and every checkout of a busy
        # pool waits.
        timer = self._loop.call_later(timeout, self._wake)
        try:
            await self._future
        finally:
            timer.cancel()
        return self.granted is not None
