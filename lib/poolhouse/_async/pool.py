"""The pools: :class:`AsyncPool` and the classes that decide where
connections come from and where they go back.

The checkout path is :meth:`AsyncPool.connect` → the class's ``_do_get`` (a
record) → ``_usable_connection`` (reconnect if stale, ping if suspect) →
``checkout`` event → a fairy.  The checkin path is the fairy's ``close()`` →
``_checkin`` (``reset`` event, rollback or commit, ``checkin`` event) → the
class's ``_do_return_conn``.  Each pool class overrides only ``_do_get``,
``_do_return_conn``, ``_idle_records``, ``dispose``, ``recreate`` and
``status`` (plus its own counters).
"""

from __future__ import annotations

import abc
import logging
import math
import os
import random
import sys
import time
import traceback
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import TypeVar

from .. import event
from .. import exc
from .._decisions import CHECKIN_RESET
from .._decisions import CHECKOUT_ATTEMPTS
from .._decisions import DETACHED_RESET
from .._decisions import PoolResetState
from .._decisions import check_bool
from .._decisions import check_dialect
from .._decisions import check_events
from .._decisions import check_optional_count
from .._decisions import check_optional_seconds
from .._decisions import check_recycle
from .._decisions import check_seconds
from .._decisions import creator_wants_record
from .._decisions import disconnect_test
from .._decisions import pool_closed_error
from .._decisions import publish_signature
from .._decisions import reset_style
from .._decisions import retry_error
from .._decisions import stale_reason
from .._decisions import unknown_keywords
from .._typing import AsyncCreator
from .._typing import AsyncDialectLike
from .._typing import ConnT
from .._typing import Echo
from .._typing import ResetOnReturn
from ..dialects import async_dialect_for
from ..dialects.base import AsyncDialect
from ..log import pool_logger
from ..stats import CheckedOutConnection
from ..stats import Counters
from ..stats import PoolStats
from ..stats import TimingObserver
from . import _acompat
from ._acompat import current_holder
from .fairy import AsyncConnectionFairy
from .record import AsyncConnectionRecord

_PoolT = TypeVar("_PoolT", bound="AsyncPool[Any]")

_DEBUG = logging.DEBUG

#: Frames from files under this directory are left out of checkout stacks.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _LeaveItToTheWorker(Exception):
    """Raised inside a checkout whose record has no connection, in a pool
    whose background worker does all the connecting."""


#: Every pool alive in this process, for the fork handler.
_live_pools: weakref.WeakSet[AsyncPool[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Make every pool forget the parent's connections (``os.fork()``)."""
    for pool in list(_live_pools):
        pool._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncPool(abc.ABC, Generic[ConnT]):
    """Abstract base of the pools: checkout, reset, checkin and invalidation.

    :param creator: a callable returning a new driver connection; it takes no
        argument, or one: the :class:`.ConnectionRecord` being filled.  An
        asyncio pool's creator may be an ``async def`` function.
    :param recycle: replace a connection at checkout once it is this many
        seconds old; ``-1`` (default) never.
    :param echo: ``True`` logs this pool's activity at INFO, ``"debug"`` at
        DEBUG, printing to stdout only the lines that no handler of the
        application's logging configuration takes, so each appears once;
        ``None`` (default) leaves levels and handlers alone.  Passwords are
        masked either way.
    :param logging_name: appended to the logger name,
        ``poolhouse.pool.<Class>.<logging_name>``.
    :param reset_on_return: ``"rollback"``/``True`` (default), ``"commit"``, or
        ``None``/``False`` for no reset when a connection comes back.
    :param events: ``(fn, event_name)`` pairs registered with
        :func:`poolhouse.event.listen` at construction.
    :param dialect: the dialect (any object with ``do_rollback``,
        ``do_commit`` and ``do_close``; ``do_ping`` for *pre_ping*;
        ``is_disconnect`` optional) used to reset, close, ping and recognise
        disconnects; ``None`` picks one from the first connection's driver.
    :param pre_ping: ping each connection at checkout and replace it
        transparently if it is dead.
    :param ping_interval: with *pre_ping*, skip the ping of a connection
        returned less than this many seconds ago.  Default 0 (always ping).
    :param max_lifetime: replace a connection at checkout once it is this
        many seconds old; unlike *recycle*, each connection's limit is up to
        5% shorter, drawn at random, so connections opened together are not
        all replaced together.  ``None`` (default): never.
    :param max_uses: replace a connection after this many checkouts; ``None``
        (default): never.
    :param leak_threshold: log a warning and send the ``leak`` event for a
        connection checked out longer than this many seconds, naming the
        thread or task and the stack that checked it out; ``None``
        (default): no leak tracking, and no stack is captured.
    :raises TypeError: an argument has the wrong type, or is not one this
        pool class takes.
    :raises ValueError: an argument is out of range.
    """

    _is_event_target: ClassVar[bool] = True
    _is_asyncio: ClassVar[bool] = _acompat.IS_ASYNCIO
    #: Whether a caller opens a connection itself when its record has none
    #: (not with a queue pool's background worker, which does all dialling).
    _callers_dial = True
    #: Whether one record is checked out by several users at once, so its
    #: user count needs the lock.
    _shares_records: ClassVar[bool] = False
    _record_class: ClassVar[type[AsyncConnectionRecord[Any]]] = AsyncConnectionRecord
    _fairy_class: ClassVar[type[AsyncConnectionFairy[Any]]] = AsyncConnectionFairy

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        publish_signature(cls)

    def __new__(cls: type[_PoolT], *args: Any, **kwargs: Any) -> _PoolT:
        # Checked here, before Python's own "unexpected keyword" error, to
        # name the class and the option meant.
        error = unknown_keywords(cls, kwargs)
        if error is not None:
            raise error
        return super().__new__(cls)

    def __init__(
        self,
        creator: AsyncCreator[ConnT],
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
        leak_threshold: float | None = None,
    ) -> None:
        if not callable(creator):
            raise TypeError(
                f"creator must be a callable returning a connection, got "
                f"{creator!r}; pass e.g. creator=lambda: sqlite3.connect(path)"
            )
        self._creator = creator
        self._creator_wants_record = creator_wants_record(creator)
        self._recycle = check_recycle(recycle)
        if not (echo is None or isinstance(echo, bool) or echo == "debug"):
            raise ValueError(f"echo={echo!r} is invalid: use None, True or 'debug'")
        self._echo: Echo = echo
        if logging_name is not None and not isinstance(logging_name, str):
            raise TypeError(f"logging_name must be a str, got {logging_name!r}")
        self._logging_name = logging_name
        self._reset_style = reset_style(reset_on_return)
        self._rollback_only = self._reset_style == "rollback"
        self._reset_on_return = reset_on_return
        self._pre_ping = check_bool("pre_ping", pre_ping)
        self._ping_interval = check_seconds(
            "ping_interval", ping_interval, "use seconds >= 0 (0: ping every checkout)"
        )
        self._max_lifetime = check_optional_seconds("max_lifetime", max_lifetime)
        self._max_uses = check_optional_count("max_uses", max_uses)
        self._leak_threshold = check_optional_seconds("leak_threshold", leak_threshold)
        #: The leak watcher (a thread, or a task), started at the first
        #: checkout of a pool with *leak_threshold*.
        self._leak_watch: Any = None
        self._leak_wakeup: Any = None
        self._counters = Counters()
        #: Called with each wait, use and connect time (metrics exporters).
        self._observers: tuple[TimingObserver, ...] = ()
        #: Whether checkouts and checkins have more to do than count: time
        #: for observers, or track leaks.  One test on the hot path.
        self._extras = self._leak_threshold is not None
        #: Whether a checkout must look at the connection's age or use count.
        self._ages = recycle >= 0 or max_lifetime is not None or max_uses is not None
        #: Draws each connection's *max_lifetime* jitter; tests replace it.
        self._random: Callable[[], float] = random.random
        if dialect is not None:
            check_dialect(dialect, self._pre_ping)
        self._explicit_dialect = dialect
        self._set_dialect(dialect if dialect is not None else AsyncDialect())

        self.logger: logging.Logger = pool_logger(type(self), logging_name, echo)
        # The logger's own level cache, which logging empties whenever its
        # configuration changes: a known False skips a debug call on the hot
        # path, anything else asks the logger, so logging configured after
        # the pool was made still shows checkouts.
        self._log_cache: dict[int, bool] = getattr(self.logger, "_cache", {})
        #: Guards bookkeeping only: never held around I/O or listener calls.
        self._lock = _acompat.BookkeepingLock()
        #: Monotonic clock for ages and deadlines; tests replace it.
        self._clock: Callable[[], float] = time.monotonic
        #: Records opened before the current generation are replaced at checkout.
        self._generation = 0
        self._first_connect_done = False
        self._first_connect_lock = _acompat.IOLock()
        #: Serialises opening and replacing a shared record's connection; held
        #: around I/O, so never the bookkeeping lock.
        self._connect_lock = _acompat.IOLock() if self._shares_records else None
        # Instance copies of class-level settings read on every checkout:
        # Python looks an instance attribute up faster than a class one.
        self._shared = self._shares_records
        #: Whether every checkout looks at the connection's age or pings it.
        self._checks_at_checkout = self._ages or self._pre_ping
        self._new_fairy = self._fairy_class
        #: Connections dropped by ``dispose(close=False)``: kept referenced so
        #: that no finalizer closes them (their sockets belong to a parent
        #: process).
        self._abandoned: list[Any] = []
        #: Connections of this generation or older were disowned by
        #: ``dispose(close=False)``: dropped, never closed, when they come back.
        self._disowned_generation = -1
        #: The event loop of an asyncio pool (bound at first checkout).
        self._loop: Any = None
        #: Waiter deadlines of an asyncio pool (made at the first wait).
        self._deadlines: Any = None
        # Strong references keep an asyncio pool's reclaim tasks alive.
        self._background: set[Any] = set()
        #: Set by close(): checkouts fail, returned connections are closed.
        self._closed = False
        #: Records of this generation or older need care when returned: all
        #: of them once the pool is closed, those from before a drain() or a
        #: fork.  One comparison on the checkin path covers them all.
        self._special_generation: float = -1
        #: Records of this generation or older came from the parent process.
        self._forked_generation = -1
        #: Set once the last connection out at close() came back.
        self._all_returned: Any = None
        #: Every record alive, for terminate().
        self._records: weakref.WeakSet[AsyncConnectionRecord[ConnT]] = weakref.WeakSet()
        _live_pools.add(self)
        self._listeners = event._register_pool(self)
        if events is not None:
            self._listen_at_construction(events)

    # -- public API -----------------------------------------------------------

    async def handle_error(
        self, connection: AsyncConnectionFairy[ConnT], error: BaseException
    ) -> bool:
        """Invalidate *connection* if *error* means its server link is lost.

        The pool's idle connections become suspect: each is pinged at its
        next checkout (even without *pre_ping*) and replaced only if the ping
        fails.  Leaving a ``with pool.connect()`` block with an error does
        this for you.

        :param connection: the checked-out connection *error* was raised on.
        :param error: the exception raised by the driver.
        :return: ``True`` if it was a disconnect and *connection* is now
            invalidated (and returned to the pool).
        """
        rec = connection._rec
        if rec is None or rec.dbapi_connection is None:
            return False
        if not self._is_disconnect(error, rec.dbapi_connection):
            return False
        self._counters.disconnects += 1
        self._mark_suspects()
        await connection.invalidate(error)
        return True

    def expire_connections(self) -> None:
        """Mark every connection open now to be replaced at its next checkout.

        Connections checked out at the moment stay usable until returned.
        """
        self._generation += 1
        self.logger.info("expired every connection opened so far")

    async def close(self, timeout: float | None = None) -> None:
        """Close the pool: no more checkouts, idle connections closed now.

        New checkouts (and callers waiting for one) fail with
        :class:`~poolhouse.exc.PoolClosedError`; connections checked out now
        are closed when they come back.  Calling it again only waits again.

        :param timeout: seconds to wait for the connections checked out now
            to come back; ``None`` waits for ever, ``0`` not at all.
        :return: once every connection came back, or *timeout* passed (a
            warning then says how many are still out).
        """
        await self._close(timeout, warn=True)

    async def _close(self, timeout: float | None, warn: bool) -> None:
        if timeout is not None:
            check_seconds("timeout", timeout, "use seconds >= 0, or None to wait")
        if not self._closed:
            self._all_returned = _acompat.Event()
            self._closed = True
            with self._lock:
                self._special_generation = math.inf
            self.logger.info("closing: %d connections checked out", self._in_use())
            if self._leak_wakeup is not None:
                self._leak_wakeup.set()  # the watcher sees the pool closed
            self._fail_waiters()
            await self.dispose()
        if not self._in_use():
            return
        if not await _acompat.wait_event(self._all_returned, timeout) and warn:
            self.logger.warning(
                "%r: closed with %d connections still checked out after %.2fs; "
                "they are closed when returned",
                self,
                self._in_use(),
                timeout,
            )

    async def terminate(self) -> None:
        """Close the pool and every connection now, checked-out ones included.

        A connection checked out now then refuses every use with a clear
        :class:`~poolhouse.exc.InvalidRequestError`; closing it is still
        fine.  Idempotent.
        """
        await self._close(timeout=0, warn=False)  # it closes those in use next
        busy = [rec for rec in self._record_list() if rec.dbapi_connection is not None]
        self.logger.info("terminating: closing %d connections in use", len(busy))
        await self._discard_records(busy)

    async def drain(self) -> None:
        """Replace every connection, calling the creator afresh (so rotated
        credentials apply): idle connections are closed now, checked-out
        ones when they come back.
        """
        with self._lock:  # never lowering close()'s inf
            self._special_generation = max(self._special_generation, self._generation)
        self.logger.info("draining: every connection open now is replaced")
        await self.dispose()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`terminate` was called."""
        return self._closed

    async def __aenter__(self) -> AsyncPool[ConnT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def dispose(self, close: bool = True) -> None:
        """Close every idle connection; checked-out ones are replaced on return.

        :param close: ``False`` drops the idle connections without closing
            them, for a child process after ``fork()`` whose inherited
            connections belong to its parent.
        """

    def recreate(self) -> AsyncPool[ConnT]:
        """Return a new, empty pool of the same class and arguments.

        Listeners registered on this pool are carried over.
        """
        return self._recreated(type(self)(self._creator, **self._base_kwargs()))

    @abc.abstractmethod
    def status(self) -> str:
        """Describe the pool's state in one line, for logs and debugging."""

    @property
    def dialect(self) -> Any:
        """The dialect this pool resets, pings and closes connections with."""
        return self._dialect

    def stats(self) -> PoolStats:
        """Return the pool's state now and its counters since creation.

        .. versionadded:: 0.1.0
        """
        idle, in_use, waiting = self._occupancy()
        return self._counters.snapshot(
            size=idle + in_use,
            idle=idle,
            in_use=in_use,
            waiting=waiting,
            **self._limits(),
        )

    def checked_out_connections(self) -> list[CheckedOutConnection]:
        """List the connections checked out now, the longest-held first: since
        when, by which thread or task, and (with *leak_threshold*) from where.

        .. versionadded:: 0.1.0
        """
        now = self._clock()
        wall_now = time.time()
        out = [rec for rec in self._record_list() if rec._checkouts]
        out.sort(key=lambda rec: rec._out_since)
        return [self._describe_checkout(rec, now, wall_now) for rec in out]

    def add_timing_observer(self, observer: TimingObserver) -> None:
        """Call *observer* with each timing the pool measures:
        ``observer("wait", seconds)`` when a checkout hands out a connection
        (the time it took, waiting and connecting included),
        ``observer("use", seconds)`` when one comes back, and
        ``observer("create", seconds)`` when one was opened.

        For metrics exporters (``poolhouse.metrics``): the observer runs
        on the checkout and checkin paths, so it must be quick, and an error
        it raises is logged, not raised.

        .. versionadded:: 0.1.0
        """
        if not callable(observer):
            raise TypeError(f"observer must be callable, got {observer!r}")
        with self._lock:
            self._observers = (*self._observers, observer)
            self._extras = True

    def remove_timing_observer(self, observer: TimingObserver) -> None:
        """Stop calling *observer* (added by :meth:`add_timing_observer`).

        :raises ValueError: *observer* was not added.
        """
        with self._lock:
            if observer not in self._observers:
                raise ValueError(f"{observer!r} is not an observer of {self!r}")
            self._observers = tuple(o for o in self._observers if o != observer)
            self._extras = bool(self._observers) or self._leak_threshold is not None

    def __repr__(self) -> str:
        name = f" {self._logging_name!r}" if self._logging_name else ""
        return f"<{type(self).__name__}{name} at {id(self):#x}>"

    # -- observability ----------------------------------------------------------

    def _occupancy(self) -> tuple[int, int, int]:
        """Idle connections, connections in use, callers waiting (pools that
        keep these counts override it)."""
        records = self._record_list()
        in_use = sum(1 for rec in records if rec._checkouts)
        idle = sum(
            1
            for rec in records
            if not rec._checkouts and rec.dbapi_connection is not None
        )
        return idle, in_use, 0

    def _limits(self) -> dict[str, Any]:
        """The size limits :meth:`stats` reports (no limits here)."""
        return {"overflow": 0, "max_size": None, "pool_size": None, "min_idle": 0}

    def _checkout_extras(
        self, rec: AsyncConnectionRecord[ConnT], started: float | None
    ) -> None:
        """Track a leak and time the checkout, for pools that ask for it.

        :param started: when the checkout began; ``None`` if it began before
            the pool had anything extra to do (no timing then).
        """
        if self._leak_threshold is not None and rec._checkouts == 1:
            self._track_leak(rec)
        if self._observers and started is not None:
            self._observe("wait", self._clock() - started)

    def _checkin_extras(self, rec: AsyncConnectionRecord[ConnT], used: float) -> None:
        if self._observers:
            self._observe("use", used)
        rec._stack = None  # not reported for a later checkout by mistake
        if rec._leak_warned:
            rec._leak_warned = False
            self.logger.info(
                "%r: connection %r reported as leaked came back after %.1fs",
                self,
                rec.dbapi_connection,
                used,
            )

    def _observe(self, kind: Any, seconds: float) -> None:
        for observer in self._observers:
            try:
                observer(kind, seconds)
            except Exception:
                self.logger.exception("timing observer %r failed", observer)

    def _describe_checkout(
        self, rec: AsyncConnectionRecord[ConnT], now: float, wall_now: float
    ) -> CheckedOutConnection:
        age = now - rec._out_since
        stack = rec._stack
        return CheckedOutConnection(
            dbapi_connection=rec.dbapi_connection,
            checked_out_at=wall_now - age,
            age=age,
            holder=_acompat.holder_name(rec._holder),
            stack="".join(stack.format()) if stack is not None else None,
        )

    def _track_leak(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Note where *rec* was checked out, and make sure the watcher runs."""
        # Leave out poolhouse's own frames: the caller's are what matter.
        frames = traceback.extract_stack(sys._getframe(1))
        rec._stack = traceback.StackSummary.from_list(
            [f for f in frames if not f.filename.startswith(_PACKAGE_DIR)]
        )
        rec._holder = _acompat.exact_holder()
        if not _acompat.worker_running(self._leak_watch):
            with self._lock:
                if self._closed or _acompat.worker_running(self._leak_watch):
                    return
                self._leak_wakeup = _acompat.Wakeup()
                self._leak_watch = _acompat.start_worker(
                    _run_leak_watch,
                    self,
                    self._leak_wakeup,
                    f"poolhouse-leaks-{id(self):#x}",
                )

    async def _check_leaks(self) -> float:
        """Report each connection out longer than *leak_threshold* (once per
        checkout).

        :return: seconds until the next one could pass the threshold.
        """
        threshold = self._leak_threshold
        assert threshold is not None  # the watcher runs only with one
        now = self._clock()
        wall_now = time.time()
        next_check = threshold
        for rec in self._record_list():
            if not rec._checkouts or rec._leak_warned:
                continue
            age = now - rec._out_since
            if age < threshold:
                next_check = min(next_check, threshold - age)
                continue
            rec._leak_warned = True
            found = self._describe_checkout(rec, now, wall_now)
            self.logger.warning(
                "%r: connection %r has been checked out for %.1fs (leak_threshold="
                "%.1fs) by %s; return it with close() or a with-block. It was "
                "checked out at:\n%s",
                self,
                found.dbapi_connection,
                age,
                threshold,
                found.holder,
                found.stack or "(unknown)\n",
            )
            listeners = self._listeners.leak
            if listeners:
                await _acompat.emit(
                    listeners,
                    {
                        "dbapi_connection": found.dbapi_connection,
                        "connection_record": rec,
                        "checked_out": found,
                    },
                )
        return next_check

    def _warn_reclaimed(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Warn that a fairy was garbage-collected while checked out."""
        stack = rec._stack
        where = (
            " It was checked out at:\n" + "".join(stack.format())
            if stack is not None
            else " Give the pool a leak_threshold to see where it was checked out."
        )
        self.logger.warning(
            "%r: a connection was garbage-collected without close(); returning "
            "it to the pool. Close connections or use a with-block.%s",
            self,
            where,
        )

    # -- to implement -----------------------------------------------------------

    @abc.abstractmethod
    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
        """Return a record reserved for this checkout (connected or not)."""

    @abc.abstractmethod
    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Take back a record whose last user returned it."""

    @abc.abstractmethod
    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        """The records not checked out now (called under the lock)."""

    def _in_use(self) -> int:
        """How many connections are checked out now."""
        return sum(1 for rec in self._record_list() if rec._checkouts)

    async def _give_up_empty(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Drop an empty record a caller got, and its slot (pools whose
        callers never dial override this)."""
        raise NotImplementedError

    def _fail_waiters(self) -> None:
        """Wake the callers waiting for a connection with PoolClosedError
        (pools that make callers wait override this)."""

    # -- construction -------------------------------------------------------------

    def _set_dialect(self, dialect: Any) -> None:
        self._dialect = dialect
        ping = getattr(dialect, "do_ping", None)
        self._ping: Any = ping if callable(ping) else None
        self._is_disconnect = disconnect_test(dialect)

    def _listen_at_construction(
        self, pairs: Iterable[tuple[Callable[..., Any], str]]
    ) -> None:
        """Register ``events=``; bad entries are argument errors, named as such."""
        for fn, identifier in check_events(pairs):
            event.listen(self, identifier, fn)

    def _base_kwargs(self) -> dict[str, Any]:
        """The common constructor arguments, for ``recreate()``."""
        return {
            "recycle": self._recycle,
            "echo": self._echo,
            "logging_name": self._logging_name,
            "reset_on_return": self._reset_on_return,
            "dialect": self._explicit_dialect,
            "pre_ping": self._pre_ping,
            "ping_interval": self._ping_interval,
            "max_lifetime": self._max_lifetime,
            "max_uses": self._max_uses,
            "leak_threshold": self._leak_threshold,
        }

    def _recreated(self, new: _PoolT) -> _PoolT:
        # Timing observers are not carried over: an exporter instruments one
        # pool, and the new one is instrumented anew.
        event._copy_listeners(self, new)
        new._clock = self._clock
        self.logger.info("recreated as %r", new)
        return new

    # -- connecting ---------------------------------------------------------------

    async def _create_connection(self) -> AsyncConnectionRecord[ConnT]:
        """Open a new record (I/O; never called under the pool lock)."""
        rec = self._record_class(self)
        await rec._connect()
        with self._lock:
            self._records.add(rec)
        return rec

    def _record_list(self) -> list[AsyncConnectionRecord[ConnT]]:
        """Every record alive, copied under the lock (a set being added to
        cannot be iterated)."""
        with self._lock:
            return list(self._records)

    async def _on_new_connection(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Fire ``first_connect`` (once per pool) and ``connect`` for *rec*."""
        conn = rec.dbapi_connection
        if not self._first_connect_done:
            # A dedicated lock, not the pool lock: racing first connections
            # wait here until first_connect listeners have finished.
            async with self._first_connect_lock:
                if not self._first_connect_done:
                    if self._explicit_dialect is None:
                        self._set_dialect(async_dialect_for(conn))
                    listeners = self._listeners.first_connect
                    if listeners:
                        await _acompat.emit(
                            listeners,
                            {"dbapi_connection": conn, "connection_record": rec},
                        )
                    self._first_connect_done = True
        listeners = self._listeners.connect
        if listeners:
            await _acompat.emit(
                listeners, {"dbapi_connection": conn, "connection_record": rec}
            )

    # -- checkout -------------------------------------------------------------------

    async def _checkout(self) -> AsyncConnectionFairy[ConnT]:
        """Check out a connection, creating one if the pool has room.

        ``conn = await pool.connect()``, then ``await conn.close()``; or
        ``async with pool.connect() as conn:``.

        :raises poolhouse.exc.TimeoutError: no connection was freed in time.
        :raises poolhouse.exc.InvalidRequestError: ``checkout`` listeners
            rejected every connection tried, or an asyncio pool was used from
            a second event loop.
        """
        # Make a record usable and wrap it in a fairy; give it back on failure.
        if self._closed:
            raise pool_closed_error(self)
        started = self._clock() if self._extras else None
        rec = await self._do_get()
        attempts = CHECKOUT_ATTEMPTS
        while True:
            try:
                if self._connect_lock is not None:
                    # A shared record: its users must not each replace it,
                    # and dispose() must see this user once it is counted.
                    async with self._connect_lock:
                        conn = await self._usable_connection(rec)
                        if self._count_user(rec, 1) == 1:
                            rec._out_since = self._clock()
                            rec._holder = current_holder()
                else:
                    found = rec.dbapi_connection
                    if (
                        found is None
                        or self._checks_at_checkout
                        or rec._soft_invalidated
                        or rec._suspect
                        or rec._generation != self._generation
                    ):
                        conn = await self._usable_connection(rec)
                    else:
                        # _usable_connection() of a connection with nothing
                        # to check, written out: this is the hot path.
                        conn = found
                        rec._fresh = False
                        rec._uses += 1
                    rec._checkouts = 1
                    rec._out_since = self._clock()
                    rec._holder = current_holder()
            except _LeaveItToTheWorker:
                # Its connection is gone, and callers do not dial: wait in
                # line again for a returned one or one the worker opens.
                await self._give_up_empty(rec)
                rec = await self._do_get()
                continue
            except BaseException:
                await self._give_back(rec)
                raise
            fairy: AsyncConnectionFairy[ConnT] = self._new_fairy(self, rec, conn)
            if self._log_cache.get(_DEBUG) is not False:
                self.logger.debug("checked out %r", conn)
            self._counters.checkouts += 1
            listeners = self._listeners.checkout
            if listeners:
                try:
                    await _acompat.emit(
                        listeners,
                        {
                            "dbapi_connection": conn,
                            "connection_record": rec,
                            "connection_proxy": fairy,
                        },
                    )
                except exc.DisconnectionError as err:
                    attempts -= 1
                    await self._reject_checkout(fairy, rec, err, attempts)
                    continue
                except BaseException:
                    await fairy.close()
                    raise
            if self._extras:
                self._checkout_extras(rec, started)
            return fairy

    # The public name: for threads the checkout itself (a wrapper would cost
    # every checkout a call); for asyncio an awaitable context manager.
    connect = _acompat.connect_method(_checkout)

    async def _usable_connection(self, rec: AsyncConnectionRecord[ConnT]) -> ConnT:
        """Reconnect *rec* if it is empty or stale; ping it if it is suspect,
        or with *pre_ping*."""
        conn = rec.dbapi_connection
        if conn is not None and (not self._shared or not rec._checkouts):
            reason = None
            if (
                rec._soft_invalidated
                or rec._generation != self._generation
                or self._ages
            ):
                reason = stale_reason(
                    soft_invalidated=rec._soft_invalidated,
                    generation=rec._generation,
                    pool_generation=self._generation,
                    age=self._clock() - rec.starttime,
                    recycle=self._recycle,
                    lifetime=rec._lifetime,
                    uses=rec._uses,
                    max_uses=self._max_uses,
                )
            if reason is not None:
                self.logger.info("replacing connection %r: %s", conn, reason)
                self._counters.recycles += 1
                await rec._close_connection()
                conn = None
            elif rec._suspect or (
                self._pre_ping and not rec._fresh and not self._used_lately(rec)
            ):
                conn = await self._pinged(rec, conn)
        if conn is None:
            if self._callers_dial:
                await rec._connect()
            else:
                raise _LeaveItToTheWorker
            conn = rec.dbapi_connection
            assert conn is not None  # _connect() sets it or raises
        rec._fresh = False
        rec._uses += 1
        return conn

    def _used_lately(self, rec: AsyncConnectionRecord[ConnT]) -> bool:
        """Tell whether *rec* came back less than *ping_interval* ago."""
        interval = self._ping_interval
        return interval > 0 and self._clock() - rec._last_used < interval

    async def _pinged(
        self, rec: AsyncConnectionRecord[ConnT], conn: ConnT
    ) -> ConnT | None:
        """Ping *rec*'s connection; return it if alive, else ``None`` (closed)."""
        was_suspect, rec._suspect = rec._suspect, False
        ping = self._ping
        if ping is None:
            # A suspect connection that the dialect cannot ping: replace it.
            self.logger.info("replacing suspect connection %r (no ping)", conn)
            await rec._close_connection()
            return None
        cause: BaseException | None = None
        try:
            alive = await ping(conn)
        except Exception as err:
            if not self._is_disconnect(err, conn):
                rec._suspect = was_suspect  # not answered: still suspect
                raise
            alive, cause = False, err
        except BaseException:
            rec._suspect = was_suspect
            raise
        if alive:
            return conn
        # Logged once, by the invalidation, whose message says why.
        what = "suspect connection" if was_suspect else "connection"
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        self._counters.disconnects += 1
        self._mark_suspects()
        error = exc.DisconnectionError(f"{what} {conn!r} failed its ping{detail}")
        error.__cause__ = cause  # the driver's own error, for the invalidate event
        await rec.invalidate(error)
        return None

    async def _reject_checkout(
        self,
        fairy: AsyncConnectionFairy[ConnT],
        rec: AsyncConnectionRecord[ConnT],
        err: exc.DisconnectionError,
        attempts_left: int,
    ) -> None:
        """Handle a ``checkout`` listener's DisconnectionError: retry or give up.

        The record stays reserved for this checkout; the next attempt
        reconnects it.
        """
        # DEBUG: the invalidation below logs the error at INFO.
        self.logger.debug("checkout listener rejected %r: %s", fairy, err)
        self._counters.disconnects += 1
        self._counters.checkins += 1  # its checkout was counted: it is back
        if isinstance(err, exc.InvalidatePoolError):
            self._generation += 1
        fairy._rec = None
        fairy._conn = None
        fairy._returned = True
        if self._shares_records:
            self._count_user(rec, -1)
        try:
            await rec.invalidate(err)
        except BaseException:
            # A failing invalidate listener (or a cancel) ends the retries;
            # the record must still go back.
            await self._give_back(rec)
            raise
        if attempts_left > 0:
            return
        await self._give_back(rec)
        raise retry_error(self, err) from err

    def _count_user(self, rec: AsyncConnectionRecord[ConnT], delta: int) -> int:
        """Add *delta* to a shared *rec*'s user count; return the count."""
        with self._lock:
            rec._checkouts += delta
            return rec._checkouts

    async def _give_back(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Return a record this checkout reserved but will not hand out."""
        if self._shares_records:
            if rec._checkouts:
                return  # other users still hold the shared record
        else:
            rec._checkouts = 0
        await self._return_record(rec)

    async def _return_record(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Hand a record back to the pool class, by the special path when the
        pool is closed or drained, or the record predates a fork."""
        if rec._generation <= self._special_generation:
            await self._checkin_special(rec)
        else:
            await self._do_return_conn(rec)

    # -- checkin ----------------------------------------------------------------------

    async def _checkin(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Reset *rec* and give it back once its last user has returned it."""
        if self._shared and self._count_user(rec, -1):
            self._counters.checkins += 1
            return  # another user still has the shared connection
        try:
            conn = rec.dbapi_connection
            if self._log_cache.get(_DEBUG) is not False:
                self.logger.debug("checking in %r (reset: %s)", conn, self._reset_style)
            if conn is not None and rec._generation > self._disowned_generation:
                if self._rollback_only and not self._listeners.reset:
                    # _reset(), written out for its commonest case.
                    try:
                        await self._dialect.do_rollback(conn)
                    except BaseException as err:
                        await self._reset_failed(rec, conn, err)
                else:
                    await self._reset(rec, conn)
            listeners = self._listeners.checkin
            if listeners:
                await _acompat.emit(
                    listeners,
                    {
                        "dbapi_connection": rec.dbapi_connection,
                        "connection_record": rec,
                    },
                )
        finally:
            if not self._shared:
                rec._checkouts = 0
            rec._last_used = now = self._clock()
            rec._holder = None  # a finished task is not kept alive
            used = now - rec._out_since
            counters = self._counters
            counters.checkins += 1
            counters.use_time_total += used
            if used > counters.use_time_max:
                counters.use_time_max = used
            if self._extras:
                self._checkin_extras(rec, used)
            # _return_record(), written out: this is the hot path.
            if rec._generation <= self._special_generation:
                await self._checkin_special(rec)
            else:
                await self._do_return_conn(rec)

    async def _checkin_special(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Take back a record into a closed or drained pool, or one from
        before a fork."""
        if rec._generation <= self._forked_generation:
            # Checked out by the parent process: its connection and its slot
            # are the parent's.  Keep the connection referenced, unclosed.
            if rec.dbapi_connection is not None:
                self._abandoned.append(rec._drop_connection())
            return
        try:
            await rec._close_connection()  # the pool is closed, or drained
        finally:
            await self._do_return_conn(rec)
            self._note_if_all_returned()

    def _note_if_all_returned(self) -> None:
        """Wake close() once the last connection out at close time is back."""
        if self._all_returned is not None and not self._in_use():
            self._all_returned.set()

    async def _reset(
        self,
        rec: AsyncConnectionRecord[ConnT] | None,
        conn: Any,
        state: PoolResetState = CHECKIN_RESET,
    ) -> None:
        """Fire ``reset`` then roll back or commit; invalidate *rec* on failure.

        A listener's error reaches the caller (after the connection is
        discarded, since its state is unknown); a failed rollback or commit
        only discards the connection, with a warning.

        :param rec: the record, or ``None`` for a detached connection.
        """
        listeners = self._listeners.reset
        if listeners:
            try:
                await _acompat.emit(
                    listeners,
                    {
                        "dbapi_connection": conn,
                        "connection_record": rec,
                        "reset_state": state,
                    },
                )
            except BaseException as err:
                self._counters.returns_bad += 1
                if rec is not None:
                    await rec.invalidate(err)
                raise
        style = self._reset_style
        try:
            if style == "rollback":
                await self._dialect.do_rollback(conn)
            elif style == "commit":
                await self._dialect.do_commit(conn)
        except BaseException as err:
            await self._reset_failed(rec, conn, err)

    async def _reset_failed(
        self,
        rec: AsyncConnectionRecord[ConnT] | None,
        conn: Any,
        err: BaseException,
    ) -> None:
        """Discard a connection whose rollback or commit failed, with a
        warning; re-raise *err* unless it is an ordinary error."""
        self._counters.returns_bad += 1
        if not isinstance(err, Exception):
            # Interrupted (a cancel, Ctrl-C): it goes on to the caller, and
            # is not logged too.
            if rec is not None:
                await rec._invalidate(err, soft=False, log=False)
            raise err
        self.logger.warning(
            "%r: %s of %r failed (%s: %s); the connection was discarded",
            self,
            self._reset_style,
            conn,
            type(err).__name__,
            err,
        )
        if rec is not None:
            await rec._invalidate(err, soft=False, log=False)  # logged above

    # -- detached connections ---------------------------------------------------------

    async def _detach(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        """Take *rec*'s connection away from it and give the record back."""
        conn = rec._drop_connection()
        self._counters.checkins += 1  # it left the pool's hands
        remaining = self._count_user(rec, -1) if self._shares_records else 0
        try:
            listeners = self._listeners.detach
            if listeners:
                await _acompat.emit(
                    listeners, {"dbapi_connection": conn, "connection_record": rec}
                )
        finally:
            if not remaining:
                if not self._shares_records:
                    rec._checkouts = 0
                await self._return_record(rec)

    async def _close_detached(self, conn: Any) -> None:
        """Reset and close a detached connection for good.

        The ``reset`` event says ``terminate_only=True``; a listener's error
        reaches the caller once the connection is closed.
        """
        try:
            await self._reset(None, conn, DETACHED_RESET)
            listeners = self._listeners.close_detached
            if listeners:
                await _acompat.emit(listeners, {"dbapi_connection": conn})
        finally:
            try:
                await self._dialect.do_close(conn)
            except Exception:
                self.logger.exception("closing detached %r failed", conn)

    # -- disconnects and disposal ---------------------------------------------------

    def _after_fork(self) -> None:
        """In a child process just forked: forget every connection of the
        parent, never closing one (its socket is the parent's), and start
        afresh with new locks."""
        self._lock = _acompat.BookkeepingLock()
        self._first_connect_lock = _acompat.IOLock()
        if self._connect_lock is not None:
            self._connect_lock = _acompat.IOLock()
        self._loop = None
        self._deadlines = None
        self._background = set()
        self._leak_watch = self._leak_wakeup = None  # the parent's
        self._forked_generation = self._disowned_generation = self._generation
        self._special_generation = max(self._special_generation, self._generation)
        self._generation += 1
        for rec in self._record_list():
            if rec.dbapi_connection is not None:
                self._abandoned.append(rec._drop_connection())
        self._records = weakref.WeakSet()
        self._forget_records()

    @abc.abstractmethod
    def _forget_records(self) -> None:
        """Drop the bookkeeping of every record (after a fork: the parent's)."""

    def _mark_suspects(self) -> None:
        """Mark every idle connection to be pinged at its next checkout: one
        was found disconnected, and these may have gone with it."""
        with self._lock:
            for rec in self._idle_records():
                if rec.dbapi_connection is not None:
                    rec._suspect = True

    async def _discard_records(
        self,
        records: Iterable[AsyncConnectionRecord[ConnT]],
        after_each: Callable[[AsyncConnectionRecord[ConnT]], None] | None = None,
    ) -> None:
        """Close every record's connection (drop a disowned one), even if a
        ``close`` listener fails.

        :param after_each: called with each record once it is done.
        :raises: the first listener error, once all are done.
        """
        first_error: BaseException | None = None
        for rec in records:
            try:
                await rec._close_connection()
            except BaseException as err:
                if first_error is None:
                    first_error = err
            finally:
                if after_each is not None:
                    after_each(rec)
        if first_error is not None:
            raise first_error

    async def _dispose_idle(
        self,
        idle: list[AsyncConnectionRecord[ConnT]],
        close: bool,
        after_each: Callable[[AsyncConnectionRecord[ConnT]], None] | None = None,
    ) -> None:
        """Expire every connection opened so far, and log and discard the idle
        records *dispose* took out of the pool.

        With ``close=False`` the expired connections are disowned too: they
        are dropped, never reset or closed, including those checked out now
        when they come back.  Call it once, right after ``fork()``: a second
        call would disown the child's own connections as well.
        """
        if not close:
            self._disowned_generation = self._generation
        self._generation += 1
        how = "closing" if close else "dropping (not closing)"
        self.logger.info("disposing: %s %d idle connections", how, len(idle))
        await self._discard_records(idle, after_each)


publish_signature(AsyncPool)


async def _run_leak_watch(ref: weakref.ref[AsyncPool[Any]]) -> None:
    """The leak watcher's loop: it holds the pool only while checking."""
    while True:
        pool = ref()
        if pool is None or pool._closed:
            return
        wakeup = pool._leak_wakeup
        wakeup.clear()
        delay: float | None
        try:
            delay = await pool._check_leaks()
        except Exception:
            pool.logger.exception("checking for leaked connections failed")
            delay = pool._leak_threshold
        del pool
        await _acompat.wait_wakeup(wakeup, delay)


class AsyncNullPool(AsyncPool[ConnT]):
    """No pooling: each checkout opens a connection and each checkin closes it.

    Takes the arguments of the pool base class.
    """

    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
        return await self._create_connection()

    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        await rec._close_connection()

    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        return ()

    def _forget_records(self) -> None:
        pass  # this pool keeps none

    async def dispose(self, close: bool = True) -> None:
        """Nothing to do: this pool holds no idle connection.

        :param close: ignored.
        """

    def status(self) -> str:
        return f"{self!r}: opens a connection per checkout"


class AsyncStaticPool(AsyncPool[ConnT]):
    """One connection, shared by every checkout (e.g. an in-memory sqlite3).

    The shared connection is reset only when its last user returns it.
    Takes the arguments of the pool base class.
    """

    _shares_records = True
    _record: AsyncConnectionRecord[ConnT] | None = None

    def _shared_lock(self) -> Any:
        return self._connect_lock

    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
        rec = self._record
        if rec is not None and rec.dbapi_connection is not None:
            return rec
        async with self._shared_lock():
            rec = self._record
            if rec is None:
                rec = self._record = await self._create_connection()
            elif rec.dbapi_connection is None:
                await rec._connect()
            return rec

    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        if rec is not self._record:
            # Replaced by dispose() while in use: its last user is done.
            await rec._close_connection()

    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        rec = self._record
        return (rec,) if rec is not None and not rec._checkouts else ()

    def _forget_records(self) -> None:
        self._record = None

    async def dispose(self, close: bool = True) -> None:
        """Close the shared connection, or, while it is in use, close it when
        its last user returns it; the next checkout opens a new one.

        :param close: ``False`` drops an idle shared connection without
            closing it (for a child process after ``fork()``).
        """
        # All under the connect lock: a checkout that found this record
        # either counted itself before (so it is not idle), or waits and
        # then reopens it for itself.
        async with self._shared_lock():
            rec, self._record = self._record, None
            idle = [rec] if rec is not None and not rec._checkouts else []
            await self._dispose_idle(idle, close)

    def status(self) -> str:
        rec = self._record
        users = rec._checkouts if rec is not None else 0
        state = "open" if rec is not None and rec.dbapi_connection else "not open"
        return f"{self!r}: one shared connection, {state}, {users} users"


class AsyncAssertionPool(AsyncPool[ConnT]):
    """Allows one checkout at a time: a test aid that finds leaked connections.

    A second concurrent checkout raises :class:`AssertionError` naming where
    the first one was checked out.  Takes the arguments of the pool base
    class.
    """

    _record: AsyncConnectionRecord[ConnT] | None = None
    _checked_out = False
    _checkout_stack: str | None = None

    async def _do_get(self) -> AsyncConnectionRecord[ConnT]:
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
                rec = await self._create_connection()
            except BaseException:
                with self._lock:
                    self._checked_out = False
                raise
            self._record = rec
        return rec

    async def _do_return_conn(self, rec: AsyncConnectionRecord[ConnT]) -> None:
        with self._lock:
            if not self._checked_out:
                raise AssertionError(f"{self!r}: connection returned twice")
            self._checked_out = False
            self._checkout_stack = None

    def _idle_records(self) -> Iterable[AsyncConnectionRecord[ConnT]]:
        rec = self._record
        return (rec,) if rec is not None and not self._checked_out else ()

    def _forget_records(self) -> None:
        self._record = None
        self._checked_out = False
        self._checkout_stack = None

    async def dispose(self, close: bool = True) -> None:
        """Close the idle connection, if it is not checked out.

        :param close: ``False`` drops it without closing it (for a child
            process after ``fork()``).
        """
        with self._lock:
            rec = None if self._checked_out else self._record
            if rec is not None:
                self._record = None
        # A checked-out connection is replaced at its next checkout.
        idle = [rec] if rec is not None else []
        await self._dispose_idle(idle, close)

    def status(self) -> str:
        state = "checked out" if self._checked_out else "not checked out"
        return f"{self!r}: one connection, {state}"
