"""The primitives the thread lifecycle uses where the asyncio one differs.

:mod:`poolhouse._async._acompat` has the same names for asyncio.  Everything
else in this package but :mod:`.singleton` is generated from
:mod:`poolhouse._async` by ``tools/unasync.py``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any
from typing import TypeVar

#: Whether this side is the asyncio one.
IS_ASYNCIO = False

#: The pool lock: guards bookkeeping only, never held around I/O or an
#: await, so a thread lock serves both sides (finalizers take it too).
BookkeepingLock = threading.Lock

#: A lock that may be held around I/O (opening a shared connection, the
#: first connect).
IOLock = threading.Lock

_F = TypeVar("_F", bound=Callable[..., Any])


#: Set once, waited for by one or more threads (``close()`` waiting for the
#: connections still out).
Event = threading.Event


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """Wait until *event* is set or *timeout* seconds pass; tell which."""
    return event.wait(timeout)


def call_creator(creator: Callable[..., Any], *args: Any) -> Any:
    """Call *creator*."""
    return creator(*args)


def emit(
    listeners: tuple[Callable[[dict[str, Any]], Any], ...], kwargs: dict[str, Any]
) -> None:
    """Call each listener in order with the event's *kwargs*."""
    for listener in listeners:
        listener(kwargs)


def connect_method(checkout: _F) -> _F:
    """A thread pool's public ``connect()`` is its checkout method itself."""
    return checkout


#: Who holds a checkout: the thread's ident (cheap; named when listed).
current_holder = threading.get_ident


def exact_holder() -> Any:
    """Who holds a checkout, for leak tracking: the thread itself, since an
    ident could later name another thread that reused it."""
    return threading.current_thread()


def holder_name(holder: Any) -> str:
    """Name the thread *holder*: a thread, or a thread's ident."""
    if isinstance(holder, threading.Thread):
        state = "" if holder.is_alive() else " (ended)"
        return f"thread {holder.name!r}{state}"
    for thread in threading.enumerate():
        if thread.ident == holder:
            return f"thread {thread.name!r}"
    return f"thread {holder} (ended)"


def reclaim(pool: Any, rec: Any) -> None:
    """Return the record of a fairy that was dropped without ``close()``.

    The collector may run while this very thread holds the pool's lock,
    where checking in here would deadlock; then a short-lived thread checks
    the record in as soon as the lock is free, so that no waiter times out
    while the connection sits unreturned.
    """
    pool._warn_reclaimed(rec)
    if pool._lock.acquire(blocking=False):
        pool._lock.release()
        pool._checkin(rec)
    else:
        threading.Thread(
            target=_checkin_logged,
            args=(pool, rec),
            name="poolhouse-reclaim",
            daemon=True,
        ).start()


def _checkin_logged(pool: Any, rec: Any) -> None:
    try:
        pool._checkin(rec)
    except Exception:
        pool.logger.exception("returning a garbage-collected connection failed")


def new_waiter(pool: Any) -> Waiter:
    """A waiter for a thread about to queue in *pool*."""
    return Waiter()


class Waiter:
    """A thread parked in ``QueuePool._do_get``, woken by a hand-off."""

    __slots__ = ("_wake", "granted")

    def __init__(self) -> None:
        # A plain lock used as a one-shot event: cheaper than threading.Event.
        self._wake = threading.Lock()
        self._wake.acquire()
        #: What the waiter was handed: a record, or a slot marker.
        self.granted: Any = None

    def grant(self, what: Any) -> None:
        """Hand *what* to the waiter (called under the pool lock)."""
        self.granted = what
        self._wake.release()

    def wait(self, timeout: float | None) -> bool:
        """Block until granted or *timeout* seconds pass (``None``: no limit);
        tell which."""
        if timeout is None or timeout >= threading.TIMEOUT_MAX:
            return self._wake.acquire()
        return self._wake.acquire(timeout=timeout)


#: A wake-up call for a background worker, set by whoever has work for it.
Wakeup = threading.Event


def wait_wakeup(wakeup: threading.Event, timeout: float | None) -> None:
    """Sleep until *wakeup* is set or *timeout* seconds pass."""
    wakeup.wait(timeout)


def start_worker(
    run: Callable[[Any], None], pool: Any, wakeup: threading.Event, name: str
) -> Any:
    """Start ``run(weakref to pool)`` in a daemon thread; when the pool is
    collected, *wakeup* is set so the worker ends."""
    ref = weakref.ref(pool, lambda _: wakeup.set())
    thread = threading.Thread(target=run, args=(ref,), name=name, daemon=True)
    thread.start()
    return thread


def worker_running(worker: Any) -> bool:
    """Tell whether the worker started by :func:`start_worker` still runs."""
    return worker is not None and worker.is_alive()
