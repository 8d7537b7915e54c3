"""AsyncQueuePool: the bounded pool with overflow and first-come, first-served
waiters.

Which record a checkout gets, when it waits and which returned connection is
closed are decided by :class:`poolhouse._queue.SlotQueue`; this class does the
I/O those answers ask for, and the waiting.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from .. import exc
from .._decisions import backoff_delay
from .._decisions import check_bool
from .._decisions import check_int
from .._decisions import check_seconds
from .._decisions import check_worker_options
from .._decisions import pool_closed_error
from .._decisions import queue_status
from .._queue import CLOSED
from .._queue import CREATE
from .._queue import UNREACHABLE
from .._queue import Marker
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
    :param background: run a worker (a daemon thread; for an asyncio pool a
        task on its loop), started at the first checkout, that does all the
        connecting: callers that find nothing idle wait in line for a
        returned connection or one the worker opens, one at a time.  While
        connects fail it retries with backoff instead of every caller
        dialling.  It keeps only a weak reference to the pool and ends with
        :meth:`.Pool.close`.  Default ``False``: no thread, no task.
    :param min_idle: with *background*, how many idle connections the worker
        keeps open.  Default 0.
    :param max_idle_time: with *background*, close connections idle for this
        many seconds, down to *min_idle*.  Default ``None``: never.
    :param reconnect_backoff_max: with *background*, the longest wait between
        two connect attempts while the database is down: the wait starts at
        0.1 s and doubles, each cut by up to half at random.  Default 10.
    :param reconnect_timeout: with *background*, after the database has been
        unreachable this many seconds, fire ``reconnect_failed`` and fail
        checkouts at once (instead of letting them wait) until a connect
        succeeds.  Default ``None``: callers wait up to their *timeout*.
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
    :param leak_threshold: as for the pool base class.
    """

    def __init__(
        self,
        creator: AsyncCreator[ConnT],
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float | None = 30.0,
        use_lifo: bool = False,
        *,
        background: bool = False,
        min_idle: int = 0,
        max_idle_time: float | None = None,
        reconnect_backoff_max: float = 10.0,
        reconnect_timeout: float | None = None,
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
        leak_threshold: float | None = None,
    ) -> None:
        check_int("pool_size", pool_size, 0, "use 0 (no limit) or a positive int")
        check_int("max_overflow", max_overflow, -1, "use -1 (no limit) or an int >= 0")
        if timeout is not None:
            timeout = check_seconds(
                "timeout", timeout, "use seconds >= 0, or None to wait forever"
            )
        check_bool("use_lifo", use_lifo)
        check_worker_options(
            pool_size=pool_size,
            background=background,
            min_idle=min_idle,
            max_idle_time=max_idle_time,
            reconnect_backoff_max=reconnect_backoff_max,
            reconnect_timeout=reconnect_timeout,
        )
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
            leak_threshold=leak_threshold,
        )
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._timeout = timeout
        self._use_lifo = use_lifo
        self._slots: SlotQueue[AsyncConnectionRecord[ConnT], _acompat.Waiter] = (
            SlotQueue(pool_size, max_overflow, use_lifo)
        )
        self._background_worker = background
        self._callers_dial = not background
        self._slots.grown_by_worker = background
        self._min_idle = min_idle
        self._max_idle_time = max_idle_time
        self._reconnect_backoff_max = float(reconnect_backoff_max)
        self._reconnect_timeout = reconnect_timeout
        #: The worker (a thread, or a task), started at the first checkout.
        self._worker: Any = None
        self._wakeup: Any = None
        #: Connect failures in a row, the last one, and since when (on the
        #: pool's clock) connects have been failing.
        self._connect_failures = 0
        self._last_connect_error: BaseException | None = None
        self._down_since: float | None = None
        #: reconnect_timeout passed: checkouts fail at once until a connect
        #: succeeds.
        self._unreachable = False

    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
        slots = self._slots
        with self._lock:
            if self._closed:
                raise pool_closed_error(self)
            got = slots.take()
            if got is None:
                unreachable = self._unreachable
                if not unreachable:
                    waiter = _acompat.new_waiter(self)
                    slots.enqueue(waiter)
        if self._background_worker and (got is None or self._worker is None):
            self._call_worker()
        if got is None:
            if unreachable:
                raise self._unreachable_error()
            got = await self._wait(waiter)
            if self._closed and got is not CLOSED and got is not UNREACHABLE:
                # Granted a record or a slot just before close() failed the
                # line: give it back.
                await self._pass_on(got)
                raise pool_closed_error(self)
        if type(got) is not Marker:  # an idle record, the common case
            return got  # type: ignore[return-value]  # cheaper than isinstance()
        if got is CREATE:
            try:
                rec = await self._create_connection()
            except BaseException as err:
                self._free_slot()
                if isinstance(err, Exception):
                    await self._note_connect_failure(err)
                raise
            if self._down_since is not None:
                self._note_connect_success()
            return rec
        if got is CLOSED:
            raise pool_closed_error(self)
        raise self._unreachable_error()

    async def _wait(self, waiter: _acompat.Waiter) -> Any:
        timeout = self._timeout
        started = self._clock()
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
        waited = self._clock() - started
        self._counters.note_wait(waited)
        if woken:
            return waiter.granted
        with self._lock:
            if not self._slots.cancel(waiter):
                # Granted between the timeout and taking the lock: it is ours.
                return waiter.granted
        raise self._timeout_error(waited)

    def _timeout_error(self, waited: float) -> exc.TimeoutError:
        """Explain a checkout that waited *waited* seconds in vain: the
        pool's state, the oldest checkout, and why connects fail."""
        self._counters.timeouts += 1
        stats = self.stats()
        oldest = ""
        if self._leak_threshold is not None:
            out = self.checked_out_connections()
            if out:
                oldest = (
                    f"; the oldest checkout is {out[0].age:.1f}s old, held by "
                    f"{out[0].holder}"
                )
        down = ""
        if self._down_since is not None:
            down = (
                f"; the database has been unreachable for "
                f"{self._clock() - self._down_since:.1f}s "
                f"(last connect error: {self._last_connect_error!r})"
            )
        limit = "no limit" if stats.max_size is None else f"{stats.max_size}"
        err = exc.TimeoutError(
            f"{self!r}: no connection freed within {self._timeout:.2f}s; waited "
            f"{waited:.2f}s (pool_size={self._pool_size}, max_overflow="
            f"{self._max_overflow}: {stats.size} open of {limit}, {stats.in_use} "
            f"in use, {stats.idle} idle, {stats.waiting} waiting){oldest}{down}; "
            "return connections with close() or a with-block, or raise "
            "pool_size/max_overflow/timeout",
            pool=self,
            timeout=self._timeout,
            waited=waited,
            stats=stats,
        )
        if down:
            err.__cause__ = self._last_connect_error
        return err

    async def _pass_on(self, granted: Any) -> None:
        """Give back what a waiter was granted but will not use."""
        if isinstance(granted, AsyncConnectionRecord):
            await self._return_record(granted)
        elif granted is CREATE:
            self._free_slot()

    def _free_slot(self, closed: bool = False) -> None:
        with self._lock:
            heir = self._slots.free_slot(closed)
            if heir is not None:
                heir.grant(CREATE)
        if self._closed:
            self._note_if_all_returned()
        elif self._background_worker:
            self._wake_worker()  # room: the worker opens one if it is needed

    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        if self._background_worker and rec.dbapi_connection is None:
            # An empty record would only send its next caller back to the
            # line: give up its slot, and let the worker open a new one.
            self._free_slot()
            return
        with self._lock:
            # Looked at under the lock: close() may have drained the idle
            # set since the checkin decided to come here.
            closed = self._closed
            if not closed:
                heir = self._slots.give_back(rec)
                if heir is None:
                    return
                if isinstance(heir, _acompat.Waiter):
                    heir.grant(rec)
                    return
        if closed:
            try:
                await rec._close_connection()
            finally:
                self._free_slot()  # notes the return for close()
            return
        # CLOSE: pool_size connections are idle already.  Its slot is freed
        # only once it is closed, so the limit holds even during the close.
        try:
            await rec._close_connection()
        finally:
            self._free_slot(closed=True)

    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        return self._slots.idle

    def _occupancy(self) -> tuple[int, int, int]:
        slots = self._slots
        with self._lock:
            # An idle record may be empty (invalidated): not a connection.
            idle = sum(1 for rec in slots.idle if rec.dbapi_connection is not None)
            return idle, slots.checked_out(), len(slots.waiters)

    def _limits(self) -> dict[str, Any]:
        unlimited = self._pool_size == 0
        return {
            "overflow": self.overflow(),
            "max_size": (
                None
                if unlimited or self._max_overflow < 0
                else self._pool_size + self._max_overflow
            ),
            "pool_size": None if unlimited else self._pool_size,
            "min_idle": self._min_idle,
        }

    def _in_use(self) -> int:
        return self._slots.checked_out()

    def _forget_records(self) -> None:
        self._slots = SlotQueue(self._pool_size, self._max_overflow, self._use_lifo)
        self._slots.grown_by_worker = self._background_worker
        self._worker = self._wakeup = None  # the parent's thread is not here
        self._connect_failures = 0
        self._down_since = None
        self._unreachable = False

    def _fail_waiters(self) -> None:
        with self._lock:
            waiters = self._slots.remove_waiters()
            for waiter in waiters:
                waiter.grant(CLOSED)
        if self._wakeup is not None:
            self._wakeup.set()  # the worker sees the pool closed and ends

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
        if self._background_worker:
            self._wake_worker()  # a larger pool: room for its waiters

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
                background=self._background_worker,
                min_idle=self._min_idle,
                max_idle_time=self._max_idle_time,
                reconnect_backoff_max=self._reconnect_backoff_max,
                reconnect_timeout=self._reconnect_timeout,
                **self._base_kwargs(),
            )
        )

    def status(self) -> str:
        return queue_status(self.stats())

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

    # -- the background worker --------------------------------------------------

    async def _give_up_empty(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        with self._lock:
            self._slots.free_slot()  # no heir: the worker opens the next one
        if self._closed:
            self._note_if_all_returned()
        else:
            self._wake_worker()

    def _call_worker(self) -> None:
        """Start the worker if it is not running (at first use, after a
        fork), and wake it: a caller waits, or a slot was freed.  While
        connects fail it is left to its backoff: callers waking it would
        make it dial as often as they arrive."""
        if not _acompat.worker_running(self._worker):
            with self._lock:
                if self._closed or _acompat.worker_running(self._worker):
                    return
                self._wakeup = _acompat.Wakeup()
                self._worker = _acompat.start_worker(
                    _run_worker, self, self._wakeup, f"poolhouse-worker-{id(self):#x}"
                )
        self._wake_worker()

    def _wake_worker(self) -> None:
        """Wake the worker if it runs and is not backing off."""
        if self._wakeup is not None and self._down_since is None:
            self._wakeup.set()

    async def _maintain(self) -> float | None:
        """Do the worker's next piece of work: open one connection (a caller
        waits, or fewer than *min_idle* are idle) or retire idle ones past
        *max_idle_time* or their lifetime.

        :return: seconds until there is work again (``None``: until woken,
            ``0``: at once).
        """
        now = self._clock()
        with self._lock:
            # While the database is down, keep probing even if nobody waits:
            # only a successful connect ends the outage.
            grow = self._slots.reserve_growth(
                self._min_idle, probe=self._down_since is not None
            )
            retired = [] if grow else self._retirable(now)
            self._slots.remove_idle(retired)
        if retired:
            self.logger.info("retiring %d idle connections", len(retired))
            await self._discard_records(retired, after_each=self._closed_one)
            return 0
        if not grow:
            due = self._next_retirement(now)
            if self._down_since is None:
                return due
            # No room to probe: look again after the backoff, since callers
            # do not wake a worker that is backing off.
            backoff = backoff_delay(
                self._connect_failures, self._reconnect_backoff_max, self._random
            )
            return backoff if due is None else min(due, backoff)
        try:
            rec = await self._create_connection()
        except BaseException as err:
            with self._lock:
                self._slots.free_slot()  # without waking the worker: it backs off
            if self._closed:
                self._note_if_all_returned()
            if not isinstance(err, Exception):
                raise
            return await self._note_connect_failure(err)
        self._note_connect_success()
        rec._last_used = self._clock()
        # A pool closed meanwhile closes it (the special path).
        await self._return_record(rec)
        return 0

    def _retirable(self, now: float) -> list[AsyncConnectionRecord[ConnT]]:
        """Idle records to close: idle above *min_idle* for *max_idle_time*,
        or past their lifetime (under the lock)."""
        idle = list(self._slots.idle)
        spare = len(idle) - self._min_idle
        chosen = []
        for rec in idle:
            if now - rec.starttime >= rec._lifetime:
                chosen.append(rec)
                self._counters.recycles += 1
            elif (
                spare > 0
                and self._max_idle_time is not None
                and now - rec._last_used >= self._max_idle_time
            ):
                chosen.append(rec)
                spare -= 1
        return chosen

    def _next_retirement(self, now: float) -> float | None:
        """Seconds until an idle record can be retired (``None``: none can)."""
        idle = list(self._slots.idle)
        due = [
            rec.starttime + rec._lifetime for rec in idle if rec._lifetime != math.inf
        ]
        if self._max_idle_time is not None and len(self._slots.idle) > self._min_idle:
            due += [rec._last_used + self._max_idle_time for rec in idle]
        return max(min(due) - now, 0.0) if due else None

    def _note_connect_success(self) -> None:
        if self._down_since is not None:
            self.logger.info(
                "connected again after %d failed attempts", self._connect_failures
            )
        self._connect_failures = 0
        self._down_since = None
        self._unreachable = False

    async def _note_connect_failure(self, err: BaseException) -> float:
        """Remember a failed connect; return the worker's backoff delay."""
        now = self._clock()
        self._last_connect_error = err
        if self._down_since is None:
            self._down_since = now
        self._connect_failures += 1
        delay = backoff_delay(
            self._connect_failures, self._reconnect_backoff_max, self._random
        )
        if self._background_worker:
            # The worker swallows the error (a caller gets it as the cause of
            # a timeout), so it is logged here; a caller's own failed connect
            # reaches the caller, and is not logged twice.
            self.logger.warning(
                "%r: connecting failed %d times in a row (%s: %s); next try in %.2fs",
                self,
                self._connect_failures,
                type(err).__name__,
                err,
                delay,
            )
        limit = self._reconnect_timeout
        if limit is not None and not self._unreachable:
            if now - self._down_since >= limit:
                await self._give_up_waiting()
        return delay

    async def _give_up_waiting(self) -> None:
        """*reconnect_timeout* passed: fail the waiters and, until a connect
        succeeds, every checkout that finds nothing idle."""
        with self._lock:
            self._unreachable = True
            waiters = self._slots.remove_waiters()
            for waiter in waiters:
                waiter.grant(UNREACHABLE)
        listeners = self._listeners.reconnect_failed
        if listeners:
            down_for = self._clock() - (self._down_since or self._clock())
            await _acompat.emit(
                listeners,
                {"exception": self._last_connect_error, "down_for": down_for},
            )

    def _unreachable_error(self) -> exc.TimeoutError:
        self._counters.timeouts += 1
        down_for = self._clock() - (self._down_since or self._clock())
        err = exc.TimeoutError(
            f"{self!r}: the database has been unreachable for {down_for:.1f}s, "
            f"beyond reconnect_timeout={self._reconnect_timeout}s (last connect "
            f"error: {self._last_connect_error!r}); the pool keeps retrying in "
            "the background",
            pool=self,
            timeout=self._reconnect_timeout,
            waited=0.0,
            stats=self.stats(),
        )
        err.__cause__ = self._last_connect_error
        return err


async def _run_worker(ref: weakref.ref[AsyncQueuePool[Any]]) -> None:
    """The worker's loop.  It holds the pool only while working, so a pool
    nobody uses any more is collected, and the worker then ends."""
    while True:
        pool = ref()
        if pool is None or pool._closed:
            return
        wakeup = pool._wakeup
        wakeup.clear()
        try:
            delay = await pool._maintain()
        except Exception:
            pool.logger.exception("the background worker failed; it goes on")
            delay = pool._reconnect_backoff_max
        del pool
        if delay != 0:
            await _acompat.wait_wakeup(wakeup, delay)
