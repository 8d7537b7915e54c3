"""AsyncQueuePool: the bounded pool with overflow and first-come, first-served
waiters.

Which record a checkout gets, when it waits and which returned connection is
closed are decided by :class:`poolhouse._queue.SlotQueue`; this class does the
I/O those answers ask for, and the waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from .. import exc
from .._decisions import check_bool
from .._decisions import check_int
from .._decisions import check_seconds
from .._decisions import pool_closed_error
from .._decisions import queue_status
from .._queue import CLOSED
from .._queue import CREATE
from .._queue import SlotQueue
from .._typing import AsyncCreator
from .._typing import AsyncDialectLike
from .._typing import ConnT
from .._typing import Echo
from .._typing import ResetOnReturn
from . import _acompat
from .pool import AsyncPool
from .record import AsyncConnectionRecord


class AsyncQueuePool(AsyncPool[ConnT]):
    """A bounded pool: keeps up to *pool_size* idle connections and opens up to
    *max_overflow* more under load.

    Callers that find no connection wait in line and are served first come,
    first served: a returned connection goes straight to the oldest waiter.

    :param creator: as for the pool base class.
    :param pool_size: how many connections to keep idle; ``0`` means no
        limit at all (*max_overflow* is then ignored).  Default 5.
    :param max_overflow: how many connections may be open beyond *pool_size*;
        ``-1`` means no limit.  A connection returned while *pool_size* are
        already idle is closed.  Default 10.
    :param timeout: seconds to wait for a connection before raising
        :class:`~poolhouse.exc.TimeoutError`; ``None`` waits forever.
        Default 30.
    :param use_lifo: reuse the most recently returned idle connection first
        (lets surplus ones age out with *recycle*); it does not change the
        order in which waiting callers are served.
    :param recycle: as for the pool base class.
    :param echo: as for the pool base class.
    :param logging_name: as for the pool base class.
    :param reset_on_return: as for the pool base class.
    :param events: as for the pool base class.
    :param dialect: as for the pool base class.
    :param pre_ping: as for the pool base class.
    :param ping_interval: as for the pool base class.
    :param max_lifetime: as for the pool base class.
    :param max_uses: as for the pool base class.
    """

    def __init__(
        self,
        creator: AsyncCreator[ConnT],
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float | None = 30.0,
        use_lifo: bool = False,
        *,
        recycle: float = -1,
        echo: Echo = None,
        logging_name: str | None = None,
        reset_on_return: ResetOnReturn = True,
        events: Iterable[tuple[Callable[..., Any], str]] | None = None,
        dialect: AsyncDialectLike | None = None,
        pre_ping: bool = False,
        ping_interval: float = 0.0,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
    ) -> None:
        check_int("pool_size", pool_size, 0, "use 0 (no limit) or a positive int")
        check_int("max_overflow", max_overflow, -1, "use -1 (no limit) or an int >= 0")
        if timeout is not None:
            timeout = check_seconds(
                "timeout", timeout, "use seconds >= 0, or None to wait forever"
            )
        check_bool("use_lifo", use_lifo)
        super().__init__(
            creator,
            recycle=recycle,
            echo=echo,
            logging_name=logging_name,
            reset_on_return=reset_on_return,
            events=events,
            dialect=dialect,
            pre_ping=pre_ping,
            ping_interval=ping_interval,
            max_lifetime=max_lifetime,
            max_uses=max_uses,
        )
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._timeout = timeout
        self._use_lifo = use_lifo
        self._slots: SlotQueue[AsyncConnectionRecord[ConnT], _acompat.Waiter] = (
            SlotQueue(pool_size, max_overflow, use_lifo)
        )

    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
        slots = self._slots
        with self._lock:
            if self._closed:
                raise pool_closed_error(self)
            got = slots.take()
            if got is None:
                waiter = _acompat.new_waiter(self)
                slots.enqueue(waiter)
        if got is None:
            got = await self._wait(waiter)
        if got is CREATE:
            try:
                return await self._create_connection()
            except BaseException:
                self._free_slot()
                raise
        if got is CLOSED:
            raise pool_closed_error(self)
        return got  # type: ignore[return-value]  # a record: CREATE is handled

    async def _wait(self, waiter: _acompat.Waiter) -> Any:
        timeout = self._timeout
        try:
            woken = await waiter.wait(timeout)
        except BaseException:
            # Interrupted (Ctrl-C, a cancelled task): leave the line, and pass
            # on anything granted meanwhile, or it would be lost.
            with self._lock:
                cancelled = self._slots.cancel(waiter)
            if not cancelled:
                await self._pass_on(waiter.granted)
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

    async def _pass_on(self, granted: Any) -> None:
        """Give back what a waiter was granted but will not use."""
        if isinstance(granted, AsyncConnectionRecord):
            await self._do_return_conn(granted)
        elif granted is CREATE:
            self._free_slot()

    def _free_slot(self, closed: bool = False) -> None:
        with self._lock:
            heir = self._slots.free_slot(closed)
            if heir is not None:
                heir.grant(CREATE)

    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        with self._lock:
            heir = self._slots.give_back(rec)
            if heir is None:
                return
            if isinstance(heir, _acompat.Waiter):
                heir.grant(rec)
                return
        # CLOSE: pool_size connections are idle already.  Its slot is freed
        # only once it is closed, so the limit holds even during the close.
        try:
            await rec._close_connection()
        finally:
            self._free_slot(closed=True)

    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        return self._slots.idle

    def _in_use(self) -> int:
        return self._slots.checked_out()

    def _forget_records(self) -> None:
        self._slots = SlotQueue(self._pool_size, self._max_overflow, self._use_lifo)

    def _fail_waiters(self) -> None:
        with self._lock:
            waiters = self._slots.remove_waiters()
            for waiter in waiters:
                waiter.grant(CLOSED)

    async def dispose(self, close: bool = True) -> None:
        """Close every idle connection and expire the checked-out ones.

        Connections checked out now are replaced when next checked out, so
        the pool ends up with none opened before the call.

        :param close: ``False`` drops the idle connections without closing
            them (for a child process after ``fork()``).
        """
        with self._lock:
            idle = self._slots.drain_idle()
        await self._dispose_idle(idle, close, after_each=self._closed_one)

    async def resize(self, pool_size: int, max_overflow: int | None = None) -> None:
        """Change *pool_size* (and *max_overflow*) of a running pool.

        Idle connections beyond the new *pool_size* are closed now; callers
        waiting get the room a larger limit makes; connections in use beyond
        a smaller one are closed as they come back.

        :param pool_size: as for the constructor.
        :param max_overflow: as for the constructor; ``None`` keeps it.
        """
        check_int("pool_size", pool_size, 0, "use 0 (no limit) or a positive int")
        if max_overflow is None:
            max_overflow = self._max_overflow
        check_int("max_overflow", max_overflow, -1, "use -1 (no limit) or an int >= 0")
        with self._lock:
            self._pool_size, self._max_overflow = pool_size, max_overflow
            surplus, admitted = self._slots.resize(pool_size, max_overflow)
            for waiter in admitted:
                waiter.grant(CREATE)
        self.logger.info(
            "resized to pool_size=%d, max_overflow=%d: closing %d idle connections",
            pool_size,
            max_overflow,
            len(surplus),
        )
        await self._discard_records(surplus, after_each=self._closed_one)

    def _closed_one(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        self._free_slot(closed=True)

    def recreate(self) -> AsyncQueuePool[ConnT]:
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
            return queue_status(
                self,
                pool_size=self._pool_size,
                max_overflow=self._max_overflow,
                idle=len(slots.idle),
                checked_out=slots.checked_out(),
                opened=slots.opened,
                waiting=len(slots.waiters),
            )

    def size(self) -> int:
        """The *pool_size* this pool was created with."""
        return self._pool_size

    def timeout(self) -> float | None:
        """The checkout *timeout*, in seconds (``None``: no limit)."""
        return self._timeout

    def checkedin(self) -> int:
        """How many connections are idle in the pool."""
        return len(self._slots.idle)

    def checkedout(self) -> int:
        """How many connections are checked out (or being opened for a checkout)."""
        return self._slots.checked_out()

    def overflow(self) -> int:
        """Connections open minus *pool_size*: negative until *pool_size* are
        open; always 0 for ``pool_size=0`` (no limit)."""
        if self._pool_size == 0:
            return 0
        return self._slots.opened - self._pool_size
