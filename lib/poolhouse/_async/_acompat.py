"""The primitives the asyncio lifecycle uses where the thread one differs.

:mod:`poolhouse._sync._acompat` has the same names for threads.  Everything
else in :mod:`poolhouse._async` is turned into thread code by
``tools/unasync.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Generator
from types import TracebackType
from typing import Any
from typing import Generic
from typing import TypeVar

from .. import exc

#: Whether this side is the asyncio one.
IS_ASYNCIO = True

#: The pool lock: guards bookkeeping only, never held around I/O or an
#: await, so a thread lock serves both sides (finalizers take it too).
BookkeepingLock = threading.Lock

#: A lock that may be held around I/O (opening a shared connection, the
#: first connect); it binds to the running loop at first use.
IOLock = asyncio.Lock

_T = TypeVar("_T")
_S = TypeVar("_S")


async def call_creator(creator: Callable[..., Any], *args: Any) -> Any:
    """Call *creator*, awaiting the result if it is awaitable."""
    conn = creator(*args)
    if inspect.isawaitable(conn):
        conn = await conn
    return conn


async def emit(
    listeners: tuple[Callable[[dict[str, Any]], Any], ...], kwargs: dict[str, Any]
) -> None:
    """Call each listener in order with the event's *kwargs*, awaiting
    ``async def`` ones before the next starts."""
    for listener in listeners:
        result = listener(kwargs)
        if result is not None and inspect.isawaitable(result):
            await result


#: Set once, waited for by one or more tasks (``close()`` waiting for the
#: connections still out); binds to the running loop at first use.
Event = asyncio.Event


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until *event* is set or *timeout* seconds pass; tell which."""
    if timeout is None:
        await event.wait()
        return True
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return event.is_set()
    return True


def bind_loop(pool: Any) -> None:
    """Bind *pool* to the running loop at its first checkout; refuse another."""
    loop = asyncio.get_running_loop()
    if pool._loop is loop:
        return
    if pool._loop is None:
        pool._loop = loop
        return
    raise exc.InvalidRequestError(
        f"{pool!r} belongs to event loop {pool._loop!r} and was used from "
        f"{loop!r}; create one pool per event loop (e.g. with recreate())",
        pool=pool,
    )


class Checkout(Generic[_T]):
    """What ``AsyncPool.connect()`` returns: awaitable, and an async context
    manager that closes the connection on exit.

    :param pool: the pool, bound to the running loop at its first checkout.
    :param start: the pool class's checkout coroutine function.
    """

    __slots__ = ("_pool", "_start", "_fairy")

    def __init__(self, pool: Any, start: Callable[[Any], Awaitable[_T]]) -> None:
        self._pool = pool
        self._start = start
        self._fairy: _T | None = None

    async def _run(self) -> _T:
        bind_loop(self._pool)
        return await self._start(self._pool)

    def __await__(self) -> Generator[Any, None, _T]:
        return self._run().__await__()

    async def __aenter__(self) -> _T:
        self._fairy = await self._run()
        return self._fairy

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        fairy: Any = self._fairy
        if fairy is not None:
            self._fairy = None
            await fairy.__aexit__(exc_type, exc_value, traceback)


def connect_method(
    checkout: Callable[[_S], Awaitable[_T]],
) -> Callable[[_S], Checkout[_T]]:
    """Make a pool's public ``connect()`` from its checkout coroutine
    function: it returns a :class:`Checkout` to await or ``async with``."""

    def connect(self: _S) -> Checkout[_T]:
        return Checkout(self, checkout)

    connect.__doc__ = checkout.__doc__
    connect.__module__ = checkout.__module__
    connect.__qualname__ = checkout.__qualname__.rpartition(".")[0] + ".connect"
    return connect


#: Who holds a checkout: the current task.
current_holder = asyncio.current_task


#: Who holds a checkout, for leak tracking: the task too.
exact_holder = asyncio.current_task


def holder_name(holder: Any) -> str:
    """Name the task *holder*."""
    if holder is None:
        return "no task"
    state = " (done)" if holder.done() else ""
    return f"task {holder.get_name()!r}{state}"


def reclaim(pool: Any, rec: Any) -> None:
    """Return the record of a fairy dropped without ``close()``, on the pool's
    loop (a finalizer cannot await)."""
    pool._warn_reclaimed(rec)
    loop = pool._loop
    if loop is None or loop.is_closed():
        return  # the loop, and so the driver connection, are gone
    loop.call_soon_threadsafe(_spawn_checkin, pool, rec)


def _spawn_checkin(pool: Any, rec: Any) -> None:
    task = asyncio.ensure_future(pool._checkin(rec))
    pool._background.add(task)
    task.add_done_callback(pool._background.discard)
    task.add_done_callback(functools.partial(_log_failed_checkin, pool))


def _log_failed_checkin(pool: Any, task: asyncio.Task[None]) -> None:
    """Log a reclaimed connection's failed check-in (nobody awaits it)."""
    if not task.cancelled() and task.exception() is not None:
        pool.logger.error(
            "returning a garbage-collected connection failed",
            exc_info=task.exception(),
        )


def new_waiter(pool: Any) -> Waiter:
    """A waiter for a task about to queue in *pool*."""
    if pool._deadlines is None:
        # Loop-bound: made at the first wait, on the pool's loop.
        pool._deadlines = Deadlines(asyncio.get_running_loop())
    return Waiter(pool._deadlines)


class Waiter:
    """A task parked in ``AsyncQueuePool._do_get``, woken by a hand-off.

    :param deadlines: times the waiter out.
    """

    __slots__ = ("_future", "_deadlines", "deadline", "granted")

    def __init__(self, deadlines: Deadlines) -> None:
        self._deadlines = deadlines
        self._future: asyncio.Future[None] = deadlines.loop.create_future()
        #: Loop time at which the wait times out (set by :meth:`wait`).
        self.deadline = float("inf")
        #: What the waiter was handed: a record, or a slot marker.
        self.granted: Any = None

    def grant(self, what: Any) -> None:
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

    async def wait(self, timeout: float | None) -> bool:
        """Wait until granted or *timeout* seconds pass (``None``: no limit);
        tell whether granted."""
        if timeout is None:
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


class Deadlines:
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
        self._line: deque[Waiter] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, waiter: Waiter) -> None:
        """Watch *waiter*, whose :attr:`~Waiter.deadline` is set."""
        self._line.append(waiter)
        if self._timer is None:
            self._timer = self.loop.call_at(waiter.deadline, self._expire)

    def remove(self, waiter: Waiter) -> None:
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


#: A wake-up call for a background worker, set by whoever has work for it.
Wakeup = asyncio.Event


async def wait_wakeup(wakeup: asyncio.Event, timeout: float | None) -> None:
    """Sleep until *wakeup* is set or *timeout* seconds pass."""
    if timeout is None:
        await wakeup.wait()
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wakeup.wait(), timeout)


def start_worker(
    run: Callable[[Any], Awaitable[None]], pool: Any, wakeup: asyncio.Event, name: str
) -> Any:
    """Start ``run(weakref to pool)`` as a task on the running loop; when the
    pool is collected, *wakeup* is set (on the loop) so the worker ends."""
    loop = asyncio.get_running_loop()

    def collected(_: Any) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    return asyncio.ensure_future(run(weakref.ref(pool, collected)))


def worker_running(worker: Any) -> bool:
    """Tell whether the worker started by :func:`start_worker` still runs."""
    return worker is not None and not worker.done()
