"""The pool lifecycle shared by every pool class.

:class:`Pool` owns the decisions: when a connection is stale, how it is reset,
how many times a checkout is retried.  A :class:`ConnectionRecord` is one slot
of a pool and the DBAPI connection in it, across reconnects.  A
:class:`ConnectionFairy` is what :meth:`Pool.connect` hands out: a proxy that
returns its record to the pool when closed, or when garbage-collected.

Subclasses in :mod:`poolhouse.impl` only decide where records come from and go
back to (``_do_get`` / ``_do_return_conn``).
"""

from __future__ import annotations

import abc
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from typing import ClassVar

from . import event
from . import events
from . import exc
from ._typing import Creator
from ._typing import DBAPIConnection
from ._typing import DialectLike
from ._typing import Echo
from ._typing import ResetOnReturn
from ._typing import ResetStyle
from .dialects import Dialect
from .dialects import dialect_for
from .log import pool_logger

_RESET_STYLES: dict[object, ResetStyle] = {
    "rollback": "rollback",
    True: "rollback",
    "commit": "commit",
    None: "none",
    False: "none",
}

#: How many connections one checkout may try when ``checkout`` listeners keep
#: raising :class:`~poolhouse.exc.DisconnectionError`.
CHECKOUT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PoolResetState:
    """What the ``reset`` event is told about the reset about to happen.

    :param transaction_was_reset: the transaction was already ended by the
        caller, so the pool's own rollback is a formality.
    :param terminate_only: the connection will be closed, not reused.
    :param asyncio_safe: awaiting I/O in the listener is allowed.
    """

    transaction_was_reset: bool
    terminate_only: bool
    asyncio_safe: bool


_PLAIN_RESET = PoolResetState(
    transaction_was_reset=False, terminate_only=False, asyncio_safe=True
)


def _creator_wants_record(creator: Creator) -> bool:
    """Tell whether *creator* takes the :class:`ConnectionRecord` argument.

    A creator with exactly one required positional parameter gets the record;
    one with none (or only defaulted ones) is called without arguments.
    """
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    if len(required) > 1:
        raise TypeError(
            f"creator {creator!r} requires {len(required)} positional arguments; "
            "a creator takes none, or one (the ConnectionRecord): wrap it, e.g. "
            "creator=lambda: driver.connect(dsn)"
        )
    return len(required) == 1


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _check_number(name: str, value: object, minimum: float, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return value


class Pool(abc.ABC):
    """Abstract base of the pools: checkout, reset, checkin and invalidation.

    :param creator: a callable returning a new DBAPI connection; it takes no
        argument, or one: the :class:`ConnectionRecord` being filled.
    :param recycle: replace a connection at checkout once it is this many
        seconds old; ``-1`` (default) never.
    :param echo: ``True`` logs this pool's activity at INFO, ``"debug"`` at
        DEBUG, to stdout; ``None`` (default) leaves logging configuration alone.
    :param logging_name: appended to the logger name,
        ``poolhouse.pool.<Class>.<logging_name>``.
    :param reset_on_return: ``"rollback"``/``True`` (default), ``"commit"``, or
        ``None``/``False`` for no reset when a connection comes back.
    :param events: ``(fn, event_name)`` pairs registered with
        :func:`poolhouse.event.listen` at construction.
    :param dialect: the :class:`~poolhouse.dialects.Dialect` (or any object with
        its methods) used to reset, close, ping and recognise disconnects;
        ``None`` picks one from the first connection's driver.
    :param pre_ping: ping each connection at checkout and replace it
        transparently if it is dead.
    :raises TypeError: an argument has the wrong type.
    :raises ValueError: an argument is out of range.
    """

    _is_event_target: ClassVar[bool] = True
    #: Whether records are checked out by several threads at once, so their
    #: user counts need the lock.
    _shares_records: ClassVar[bool] = False

    def __init__(
        self,
        creator: Creator,
        *,
        recycle: float = -1,
        echo: Echo = None,
        logging_name: str | None = None,
        reset_on_return: ResetOnReturn = True,
        events: Iterable[tuple[Callable[..., Any], str]] | None = None,
        dialect: DialectLike | None = None,
        pre_ping: bool = False,
    ) -> None:
        if not callable(creator):
            raise TypeError(
                f"creator must be a callable returning a DBAPI connection, got "
                f"{creator!r}; pass e.g. creator=lambda: sqlite3.connect(path)"
            )
        self._creator = creator
        self._creator_wants_record = _creator_wants_record(creator)
        self._recycle = _check_number(
            "recycle", recycle, -1, "use -1 (never) or a number of seconds >= 0"
        )
        if not (recycle == -1 or recycle >= 0):
            raise ValueError(
                f"recycle={recycle!r} is invalid: use -1 (never) or a number of "
                "seconds >= 0"
            )
        if not (echo is None or isinstance(echo, bool) or echo == "debug"):
            raise ValueError(f"echo={echo!r} is invalid: use None, True or 'debug'")
        self._echo: Echo = echo
        if logging_name is not None and not isinstance(logging_name, str):
            raise TypeError(f"logging_name must be a str, got {logging_name!r}")
        self._logging_name = logging_name
        try:
            if not isinstance(reset_on_return, bool | str | None):
                raise TypeError  # 0 and 1 would otherwise pass as False/True
            self._reset_style: ResetStyle = _RESET_STYLES[reset_on_return]
        except (KeyError, TypeError):
            raise ValueError(
                f"reset_on_return={reset_on_return!r} is invalid: use 'rollback' "
                "(or True), 'commit', or None (or False)"
            ) from None
        self._reset_on_return = reset_on_return
        if dialect is not None:
            missing = [
                m
                for m in (
                    "do_rollback",
                    "do_commit",
                    "do_close",
                    "do_ping",
                    "is_disconnect",
                )
                if not callable(getattr(dialect, m, None))
            ]
            if missing:
                raise TypeError(
                    f"dialect {dialect!r} lacks {', '.join(missing)}; pass a "
                    "poolhouse.dialects.Dialect or an object with its methods"
                )
        self._explicit_dialect = dialect
        self._dialect: DialectLike = dialect if dialect is not None else Dialect()
        self._pre_ping = _check_bool("pre_ping", pre_ping)

        self.logger: logging.Logger = pool_logger(type(self), logging_name, echo)
        # Computed once, as the hot path cannot afford a logging call per cycle.
        self._debug = self.logger.isEnabledFor(logging.DEBUG)
        #: Guards bookkeeping only: never held around I/O or listener calls.
        self._lock = threading.Lock()
        #: Monotonic clock for ages and deadlines; tests replace it.
        self._clock: Callable[[], float] = time.monotonic
        #: Records opened before the current generation are replaced at checkout.
        self._generation = 0
        self._first_connect_done = False
        self._first_connect_lock = threading.Lock()
        # Records whose fairy was garbage-collected while this pool's lock was
        # busy; returned at the next connect() or checkin.
        self._reclaimed: deque[ConnectionRecord] = deque()
        if events is not None:
            self._listen_at_construction(events)

    def _listen_at_construction(
        self, pairs: Iterable[tuple[Callable[..., Any], str]]
    ) -> None:
        """Register ``events=``; bad entries are argument errors, named as such."""
        if isinstance(pairs, str | bytes) or not isinstance(pairs, Iterable):
            raise TypeError(
                f"events= must be a list of (fn, event_name) pairs, got {pairs!r}"
            )
        checked = []
        for pair in pairs:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise TypeError(
                    f"events= must hold (fn, event_name) pairs, got {pair!r}"
                )
            fn, identifier = pair
            if identifier not in events.SIGNATURES:
                raise ValueError(
                    f"events=: no pool event named {identifier!r}; the events are "
                    f"{', '.join(sorted(events.SIGNATURES))}"
                )
            if not callable(fn):
                raise TypeError(
                    f"events=: the listener for {identifier!r} must be callable, "
                    f"got {fn!r}"
                )
            checked.append((fn, identifier))
        for fn, identifier in checked:
            event.listen(self, identifier, fn)

    # -- public API ---------------------------------------------------------

    def connect(self) -> ConnectionFairy:
        """Check out a connection, creating one if the pool has room.

        :raises poolhouse.exc.TimeoutError: no connection was freed in time
            (:class:`.QueuePool`).
        :raises poolhouse.exc.InvalidRequestError: ``checkout`` listeners
            rejected every connection tried.
        """
        if self._reclaimed:
            self._return_reclaimed()
        return self._checkout(self._do_get())

    def expire_connections(self) -> None:
        """Mark every connection open now to be replaced at its next checkout.

        Connections checked out at the moment stay usable until returned.
        """
        self._generation += 1
        self.logger.info("expired every connection opened so far")

    def handle_error(self, connection: ConnectionFairy, error: BaseException) -> bool:
        """Invalidate *connection* if *error* means its server link is lost.

        A disconnect also expires every connection opened before it, since
        they most likely went down together; they are replaced at their next
        checkout.  ``with pool.connect() as conn:`` calls this for you.

        :param connection: the connection *error* was raised on.
        :param error: the exception raised by the driver.
        :return: ``True`` if it was a disconnect and *connection* is now
            invalidated.
        """
        rec = connection._rec
        if rec is None or rec.dbapi_connection is None:
            return False
        if not self._dialect.is_disconnect(error, rec.dbapi_connection):
            return False
        self.expire_connections()
        connection.invalidate(error)
        return True

    @abc.abstractmethod
    def dispose(self) -> None:
        """Close every idle connection; checked-out ones are replaced on return."""

    @abc.abstractmethod
    def recreate(self) -> Pool:
        """Return a new, empty pool of the same class and arguments.

        Listeners registered on this pool are carried over.
        """

    @abc.abstractmethod
    def status(self) -> str:
        """Describe the pool's state in one line, for logs and debugging."""

    @property
    def dialect(self) -> DialectLike:
        """The dialect this pool resets, pings and closes connections with."""
        return self._dialect

    def __repr__(self) -> str:
        name = f" {self._logging_name!r}" if self._logging_name else ""
        return f"<{type(self).__name__}{name} at {id(self):#x}>"

    # -- to implement -------------------------------------------------------

    @abc.abstractmethod
    def _do_get(self) -> ConnectionRecord:
        """Return a record to check out (connected or not)."""

    @abc.abstractmethod
    def _do_return_conn(self, rec: ConnectionRecord) -> None:
        """Take back a record whose last user returned it."""

    def _base_kwargs(self) -> dict[str, Any]:
        """The :class:`Pool` arguments, for :meth:`recreate`."""
        return {
            "recycle": self._recycle,
            "echo": self._echo,
            "logging_name": self._logging_name,
            "reset_on_return": self._reset_on_return,
            "dialect": self._explicit_dialect,
            "pre_ping": self._pre_ping,
        }

    def _recreated(self, new: Pool) -> Pool:
        event._copy_listeners(self, new)
        new._clock = self._clock
        self.logger.info("recreated as %r", new)
        return new

    # -- connecting ---------------------------------------------------------

    def _create_connection(self) -> ConnectionRecord:
        """Open a new record (I/O; never called under the pool lock)."""
        rec = ConnectionRecord(self)
        rec._connect()
        return rec

    def _invoke_creator(self, rec: ConnectionRecord) -> DBAPIConnection:
        if self._creator_wants_record:
            return self._creator(rec)  # type: ignore[call-arg]  # checked in __init__
        return self._creator()  # type: ignore[call-arg]  # checked in __init__

    def _on_new_connection(self, rec: ConnectionRecord) -> None:
        """Fire ``first_connect`` (once per pool) and ``connect`` for *rec*."""
        conn = rec.dbapi_connection
        if not self._first_connect_done:
            # A dedicated lock, not the pool lock: racing first connections
            # wait here until first_connect listeners have finished.
            with self._first_connect_lock:
                if not self._first_connect_done:
                    if self._explicit_dialect is None:
                        self._dialect = dialect_for(conn)
                    if events.first_connect.receivers:
                        events.first_connect.send(
                            self, dbapi_connection=conn, connection_record=rec
                        )
                    self._first_connect_done = True
        if events.connect.receivers:
            events.connect.send(self, dbapi_connection=conn, connection_record=rec)

    # -- checkout -----------------------------------------------------------

    def _stale_reason(self, rec: ConnectionRecord) -> str | None:
        """Say why *rec*'s connection must be replaced before use, if it must."""
        if rec._soft_invalidated:
            return "soft-invalidated"
        if rec._generation != self._generation:
            return "expired"
        if self._recycle >= 0 and self._clock() - rec.starttime > self._recycle:
            return "older than recycle"
        return None

    def _checkout(self, rec: ConnectionRecord) -> ConnectionFairy:
        """Make *rec* usable and wrap it in a fairy; give it back on failure."""
        attempts = CHECKOUT_ATTEMPTS
        while True:
            try:
                conn = self._usable_connection(rec)
            except BaseException:
                self._do_return_conn(rec)
                raise
            if self._shares_records:
                self._count_user(rec, 1)
            else:
                rec._checkouts += 1
            fairy = ConnectionFairy(self, rec, conn)
            if self._debug:
                self.logger.debug("checked out %r", conn)
            if not events.checkout.receivers:
                return fairy
            try:
                events.checkout.send(
                    self,
                    dbapi_connection=conn,
                    connection_record=rec,
                    connection_proxy=fairy,
                )
            except exc.DisconnectionError as err:
                attempts -= 1
                self._reject_checkout(fairy, rec, err, attempts)
                continue
            except BaseException:
                fairy.close()
                raise
            return fairy

    def _usable_connection(self, rec: ConnectionRecord) -> DBAPIConnection:
        """Reconnect *rec* if it is empty or stale; ping it if *pre_ping*."""
        conn = rec.dbapi_connection
        if conn is not None and rec._checkouts == 0:
            reason = self._stale_reason(rec)
            if reason is not None:
                self.logger.info("replacing connection %r: %s", conn, reason)
                rec._close_connection()
                conn = None
            elif self._pre_ping and not rec._fresh and not self._dialect.do_ping(conn):
                self.logger.info("connection %r failed its pre-ping", conn)
                # One dead connection means the server went away: expire
                # every connection opened before it.
                self._generation += 1
                rec.invalidate(exc.DisconnectionError(f"{conn!r} failed its pre-ping"))
                conn = None
        if conn is None:
            rec._connect()
            conn = rec.dbapi_connection
            assert conn is not None  # _connect() sets it or raises
        rec._fresh = False
        return conn

    def _reject_checkout(
        self,
        fairy: ConnectionFairy,
        rec: ConnectionRecord,
        err: exc.DisconnectionError,
        attempts_left: int,
    ) -> None:
        """Handle a ``checkout`` listener's DisconnectionError: retry or give up."""
        self.logger.info("checkout listener rejected %r: %s", fairy, err)
        if isinstance(err, exc.InvalidatePoolError):
            self._generation += 1
        # The record stays with this checkout; the next attempt reconnects it.
        fairy._rec = None
        fairy._returned = True
        self._count_user(rec, -1)
        rec.invalidate(err)
        if attempts_left > 0:
            return
        self._do_return_conn(rec)
        raise exc.InvalidRequestError(
            f"{self!r}: checkout listeners rejected {CHECKOUT_ATTEMPTS} connections "
            f"in a row (last: {err}); check that the database is reachable and "
            "what the checkout listener tests",
            pool=self,
        ) from err

    def _count_user(self, rec: ConnectionRecord, delta: int) -> int:
        """Add *delta* to *rec*'s user count under the lock; return the count."""
        with self._lock:
            rec._checkouts += delta
            return rec._checkouts

    def _close_records(
        self,
        records: Iterable[ConnectionRecord],
        after_each: Callable[[ConnectionRecord], None] | None = None,
    ) -> None:
        """Close every record's connection, even if a ``close`` listener fails.

        :param after_each: called with each record once it is closed.
        :raises: the first listener error, once all are closed.
        """
        first_error: BaseException | None = None
        for rec in records:
            try:
                rec._close_connection()
            except BaseException as err:
                if first_error is None:
                    first_error = err
            finally:
                if after_each is not None:
                    after_each(rec)
        if first_error is not None:
            raise first_error

    # -- checkin ------------------------------------------------------------

    def _checkin(self, rec: ConnectionRecord) -> None:
        """Reset *rec* and give it back once its last user has returned it."""
        if self._shares_records:
            if self._count_user(rec, -1):
                return  # another thread still uses the shared connection
        else:
            rec._checkouts -= 1
            if rec._checkouts:
                return  # a nested checkout in the same thread still uses it
        try:
            conn = rec.dbapi_connection
            if self._debug:
                self.logger.debug("checking in %r", conn)
            if conn is not None:
                self._reset(rec, conn)
            if events.checkin.receivers:
                events.checkin.send(
                    self, dbapi_connection=rec.dbapi_connection, connection_record=rec
                )
        finally:
            self._do_return_conn(rec)
            if self._reclaimed:
                self._return_reclaimed()

    def _reset(self, rec: ConnectionRecord, conn: DBAPIConnection) -> None:
        """Fire ``reset`` then roll back or commit; invalidate on failure.

        A listener's error reaches the caller (after the connection is
        discarded, since its state is unknown); a failed rollback or commit
        only discards the connection, with a warning.
        """
        if events.reset.receivers:
            try:
                events.reset.send(
                    self,
                    dbapi_connection=conn,
                    connection_record=rec,
                    reset_state=_PLAIN_RESET,
                )
            except BaseException as err:
                rec.invalidate(err)
                raise
        style = self._reset_style
        if self._debug:
            self.logger.debug("reset (%s) of %r", style, conn)
        try:
            if style == "rollback":
                self._dialect.do_rollback(conn)
            elif style == "commit":
                self._dialect.do_commit(conn)
        except BaseException as err:
            self.logger.warning(
                "%r: %s of %r failed (%s: %s); the connection was discarded",
                self,
                style,
                conn,
                type(err).__name__,
                err,
            )
            rec.invalidate(err)
            if not isinstance(err, Exception):
                raise

    # -- garbage-collected fairies -------------------------------------------

    def _reclaim(self, rec: ConnectionRecord) -> None:
        """Return the record of a fairy that was dropped without ``close()``."""
        self.logger.warning(
            "%r: a connection was garbage-collected without close(); returning "
            "it to the pool. Close connections or use a with-block.",
            self,
        )
        # The collector may run inside this pool's own critical section, where
        # taking the lock again would deadlock; then leave the record for the
        # next connect() or checkin instead.
        if self._lock.acquire(blocking=False):
            self._lock.release()
            self._checkin(rec)
        else:
            self._reclaimed.append(rec)

    def _return_reclaimed(self) -> None:
        while True:
            try:
                rec = self._reclaimed.popleft()
            except IndexError:
                return
            self._checkin(rec)


_record_ids = itertools.count(1)


class ConnectionRecord:
    """One slot of a pool and the DBAPI connection it holds, across reconnects.

    :param pool: the owning pool.
    """

    __slots__ = (
        "_pool",
        "dbapi_connection",
        "starttime",
        "last_connect_time",
        "_generation",
        "_soft_invalidated",
        "_fresh",
        "_checkouts",
        "_info",
        "_record_info",
        "_id",
        "__weakref__",
    )

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        #: The PEP 249 connection, or ``None`` while invalidated.
        self.dbapi_connection: DBAPIConnection | None = None
        #: When the connection was opened, on the pool's monotonic clock.
        self.starttime = 0.0
        #: When the connection was opened, as :func:`time.time`.
        self.last_connect_time = 0.0
        self._generation = pool._generation
        self._soft_invalidated = False
        #: Opened and not yet checked out: no pre-ping needed.
        self._fresh = False
        self._checkouts = 0
        self._info: dict[Any, Any] | None = None
        self._record_info: dict[Any, Any] | None = None
        self._id = next(_record_ids)

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object (the DBAPI one for PEP 249 drivers)."""
        return self.dbapi_connection

    @property
    def info(self) -> dict[Any, Any]:
        """A dict for the current DBAPI connection; cleared when it is replaced."""
        if self._info is None:
            self._info = {}
        return self._info

    @property
    def record_info(self) -> dict[Any, Any]:
        """A dict that lives as long as this record, across reconnects."""
        if self._record_info is None:
            self._record_info = {}
        return self._record_info

    @property
    def in_use(self) -> bool:
        """Whether the record is checked out."""
        return self._checkouts > 0

    def invalidate(self, e: BaseException | None = None, soft: bool = False) -> None:
        """Discard this record's connection; a new one opens at next checkout.

        :param e: the error that caused it, passed to the ``invalidate`` event.
        :param soft: keep the connection usable by its current user and
            replace it when it is next checked out.
        """
        conn = self.dbapi_connection
        if conn is None:
            return
        pool = self._pool
        signal = events.soft_invalidate if soft else events.invalidate
        try:
            if signal.receivers:
                signal.send(
                    pool, dbapi_connection=conn, connection_record=self, exception=e
                )
        finally:
            # A failing listener must not keep a connection judged unusable.
            reason = f" ({type(e).__name__}: {e})" if e is not None else ""
            if soft:
                self._soft_invalidated = True
                pool.logger.info("soft-invalidated connection %r%s", conn, reason)
            else:
                pool.logger.info("invalidated connection %r%s", conn, reason)
                self._close_connection()

    def _connect(self) -> None:
        """Open a new DBAPI connection into this record (I/O)."""
        pool = self._pool
        self._info = None
        conn = pool._invoke_creator(self)
        self.dbapi_connection = conn
        self.starttime = pool._clock()
        self.last_connect_time = time.time()
        self._generation = pool._generation
        self._soft_invalidated = False
        self._fresh = True
        pool.logger.debug("created connection %r", conn)
        try:
            pool._on_new_connection(self)
        except BaseException:
            self._close_connection(fire=False)
            raise

    def _close_connection(self, fire: bool = True) -> None:
        """Close the DBAPI connection and leave the record empty."""
        conn = self.dbapi_connection
        if conn is None:
            return
        self.dbapi_connection = None
        self._info = None
        pool = self._pool
        try:
            if fire and events.close.receivers:
                events.close.send(pool, dbapi_connection=conn, connection_record=self)
        finally:
            pool.logger.debug("closing connection %r", conn)
            try:
                pool._dialect.do_close(conn)
            except Exception:
                pool.logger.exception("closing %r failed", conn)

    def __repr__(self) -> str:
        return f"<ConnectionRecord {self._id} {self.dbapi_connection!r}>"


class ConnectionFairy:
    """A checked-out connection: use it, then :meth:`close` it to return it.

    Attributes not defined here pass through to the DBAPI connection.  Use it
    as a context manager to return it at the end of the block; an error that
    the dialect recognises as a disconnect invalidates it on the way out.
    """

    __slots__ = ("_pool", "_rec", "_conn", "_returned", "_detached_info")

    def __init__(
        self, pool: Pool, rec: ConnectionRecord, dbapi_connection: DBAPIConnection
    ) -> None:
        self._pool = pool
        self._rec: ConnectionRecord | None = rec
        self._conn: DBAPIConnection | None = dbapi_connection
        self._returned = False
        self._detached_info: dict[Any, Any] | None = None

    # -- state ---------------------------------------------------------------

    def _live_connection(self) -> DBAPIConnection:
        if self._returned:
            raise exc.InvalidRequestError(
                f"{self!r} was returned to its pool; call pool.connect() for a "
                "new connection"
            )
        conn = self._conn
        if conn is None:
            raise exc.InvalidRequestError(
                f"{self!r} was invalidated; close it and call pool.connect() for "
                "a new connection"
            )
        return conn

    @property
    def dbapi_connection(self) -> DBAPIConnection:
        """The PEP 249 connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned
            or invalidated.
        """
        return self._live_connection()

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object.

        :raises poolhouse.exc.InvalidRequestError: as for
            :attr:`dbapi_connection`.
        """
        return self._live_connection()

    @property
    def is_valid(self) -> bool:
        """Whether the connection can still be used."""
        return not self._returned and self._conn is not None

    @property
    def is_detached(self) -> bool:
        """Whether the connection no longer belongs to a pool record.

        True after :meth:`detach` and after :meth:`close`.
        """
        return self._rec is None

    @property
    def info(self) -> dict[Any, Any]:
        """The record's :attr:`ConnectionRecord.info` (a private copy once detached)."""
        self._check_not_returned()
        if self._rec is not None:
            return self._rec.info
        if self._detached_info is None:
            self._detached_info = {}
        return self._detached_info

    @property
    def record_info(self) -> dict[Any, Any] | None:
        """The record's :attr:`ConnectionRecord.record_info`; ``None`` once detached."""
        self._check_not_returned()
        return self._rec.record_info if self._rec is not None else None

    def _check_not_returned(self) -> None:
        if self._returned:
            raise exc.InvalidRequestError(
                f"{self!r} was returned to its pool; call pool.connect() for a "
                "new connection"
            )

    # -- use -----------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return a new cursor of the DBAPI connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned
            or invalidated.
        """
        return self._live_connection().cursor(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self.__slots__:
            # Unset slots (a half-built fairy) and dunder probes are not the
            # driver's business.
            raise AttributeError(name)
        return getattr(self._live_connection(), name)

    def close(self) -> None:
        """Return the connection to its pool (reset first); a second call does nothing.

        A detached connection is closed for good instead.
        """
        if self._returned:
            return
        self._returned = True
        rec = self._rec
        if rec is not None:
            self._rec = None
            self._conn = None
            self._pool._checkin(rec)
            return
        conn = self._conn
        self._conn = None
        if conn is not None:
            pool = self._pool
            try:
                if events.close_detached.receivers:
                    events.close_detached.send(pool, dbapi_connection=conn)
            finally:
                pool._dialect.do_close(conn)

    def invalidate(self, e: BaseException | None = None, soft: bool = False) -> None:
        """Discard the connection: it is closed and never reused.

        The fairy stays checked out until :meth:`close`; a new connection opens
        at the next checkout.

        :param e: the error that caused it, passed to the ``invalidate`` event.
        :param soft: let the current user finish; replace it at next checkout.
        :raises poolhouse.exc.InvalidRequestError: the connection was returned.
        """
        self._check_not_returned()
        rec = self._rec
        if rec is not None:
            try:
                rec.invalidate(e, soft=soft)
            finally:
                if not soft:
                    self._conn = None
        elif not soft and self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool._dialect.do_close(conn)

    def detach(self) -> None:
        """Take the connection out of the pool; it is yours to close.

        The pool's record reconnects at its next checkout, and :meth:`close`
        now closes the DBAPI connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned.
        """
        self._check_not_returned()
        rec = self._rec
        if rec is None:
            return
        pool = self._pool
        self._detached_info = dict(rec.info)
        self._rec = None
        conn = rec.dbapi_connection
        rec.dbapi_connection = None
        rec._info = None
        remaining = pool._count_user(rec, -1)
        try:
            if events.detach.receivers:
                events.detach.send(pool, dbapi_connection=conn, connection_record=rec)
        finally:
            if not remaining:
                pool._do_return_conn(rec)

    # -- context manager and finalizer ----------------------------------------

    def __enter__(self) -> ConnectionFairy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_value is not None and not self._returned:
                self._pool.handle_error(self, exc_value)
        finally:
            self.close()

    def __del__(self) -> None:
        try:
            rec = self._rec
            if rec is not None and not self._returned:
                self._rec = None
                self._returned = True
                self._pool._reclaim(rec)
        except Exception:
            # Nothing can be raised from a finalizer; the pool logged already
            # if it got that far.
            logging.getLogger(__name__).exception(
                "returning a garbage-collected connection failed"
            )

    def __repr__(self) -> str:
        state = "returned" if self._returned else f"{self._conn!r}"
        return f"<ConnectionFairy {state} of {self._pool!r}>"
