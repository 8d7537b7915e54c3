# generated from aio/_lifecycle.py by tools/unasync.py: do not edit
"""The connection lifecycle: checkout, reset, checkin, invalidation, close.

This is the one hand-written copy.  ``tools/unasync.py`` turns it into the
thread version, :mod:`poolhouse._lifecycle`, by dropping ``async``/``await``
and renaming; edit this file and regenerate, never the output.

The classes here are mixins: the decisions they act on live in
:mod:`poolhouse._core`, and the few primitives that differ between threads and
asyncio (calling the creator, sending an event, reclaiming a garbage-collected
connection) are abstract here and defined by :mod:`poolhouse.base` and
:mod:`poolhouse.aio.base`.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from typing import ClassVar

from blinker import Signal

from . import events
from . import exc
from ._core import _PLAIN_RESET
from ._core import CHECKOUT_ATTEMPTS
from ._core import _FairyCore
from ._core import _PoolCore
from ._core import _RecordCore


class _PoolLifecycle(_PoolCore):
    """Checkout and checkin, over the pool class's ``_do_get``/``_do_return_conn``."""

    _record_class: ClassVar[type[_RecordLifecycle]]
    _fairy_class: ClassVar[type[_FairyLifecycle]]

    def connect(self) -> Any:
        """Check out a connection, creating one if the pool has room.

        :raises poolhouse.exc.TimeoutError: no connection was freed in time.
        :raises poolhouse.exc.InvalidRequestError: ``checkout`` listeners
            rejected every connection tried.
        """
        if self._reclaimed:
            self._return_reclaimed()
        return self._checkout(self._do_get())

    def handle_error(self, connection: Any, error: BaseException) -> bool:
        """Invalidate *connection* if *error* means its server link is lost.

        A disconnect also expires every connection opened before it, since
        they most likely went down together; they are replaced at their next
        checkout.  Leaving a ``with pool.connect()`` block with an error does
        this for you.

        :param connection: the checked-out connection *error* was raised on.
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

    # -- to implement -------------------------------------------------------

    @abc.abstractmethod
    def dispose(self) -> None:
        """Close every idle connection; checked-out ones are replaced on return."""

    @abc.abstractmethod
    def _do_get(self) -> _RecordLifecycle:
        """Return a record to check out (connected or not)."""

    @abc.abstractmethod
    def _do_return_conn(self, rec: _RecordLifecycle) -> None:
        """Take back a record whose last user returned it."""

    @abc.abstractmethod
    def _invoke_creator(self, rec: _RecordLifecycle) -> Any:
        """Call the creator (awaiting it if it is a coroutine function)."""

    @abc.abstractmethod
    def _emit(self, signal: Signal, **kwargs: Any) -> None:
        """Send *signal* for this pool to every receiver, in order."""

    @abc.abstractmethod
    def _dialect_for(self, dbapi_connection: Any) -> Any:
        """Pick the dialect for the driver of *dbapi_connection*."""

    # -- connecting ---------------------------------------------------------

    def _create_connection(self) -> _RecordLifecycle:
        """Open a new record (I/O; never called under the pool lock)."""
        rec = self._record_class(self)
        rec._connect()
        return rec

    def _on_new_connection(self, rec: _RecordLifecycle) -> None:
        """Fire ``first_connect`` (once per pool) and ``connect`` for *rec*."""
        conn = rec.dbapi_connection
        if not self._first_connect_done:
            # A dedicated lock, not the pool lock: racing first connections
            # wait here until first_connect listeners have finished.
            with self._first_connect_lock:
                if not self._first_connect_done:
                    if self._explicit_dialect is None:
                        self._dialect = self._dialect_for(conn)
                    if events.first_connect.receivers:
                        self._emit(
                            events.first_connect,
                            dbapi_connection=conn,
                            connection_record=rec,
                        )
                    self._first_connect_done = True
        if events.connect.receivers:
            self._emit(events.connect, dbapi_connection=conn, connection_record=rec)

    # -- checkout -----------------------------------------------------------

    def _checkout(self, rec: _RecordLifecycle) -> Any:
        """Make *rec* usable and wrap it in a fairy; give it back on failure."""
        attempts = CHECKOUT_ATTEMPTS
        while True:
            try:
                if self._connect_lock is not None:
                    # A shared record: its users must not each replace it.
                    with self._connect_lock:
                        conn = self._usable_connection(rec)
                else:
                    conn = self._usable_connection(rec)
            except BaseException:
                self._do_return_conn(rec)
                raise
            if self._shares_records:
                self._count_user(rec, 1)
            else:
                rec._checkouts += 1
            fairy = self._fairy_class(self, rec, conn)
            if self._debug:
                self.logger.debug("checked out %r", conn)
            if not events.checkout.receivers:
                return fairy
            try:
                self._emit(
                    events.checkout,
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

    def _usable_connection(self, rec: _RecordLifecycle) -> Any:
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
        fairy: _FairyLifecycle,
        rec: _RecordLifecycle,
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
        remaining = self._count_user(rec, -1)
        try:
            rec.invalidate(err)
        except BaseException:
            # A failing invalidate listener (or a cancel) ends the retries;
            # the record must still go back.
            if not remaining:
                self._do_return_conn(rec)
            raise
        if attempts_left > 0:
            return
        self._do_return_conn(rec)
        raise self._retry_error(err) from err

    def _close_records(
        self,
        records: Iterable[_RecordLifecycle],
        after_each: Callable[[_RecordLifecycle], None] | None = None,
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

    def _checkin(self, rec: _RecordLifecycle) -> None:
        """Reset *rec* and give it back once its last user has returned it."""
        if self._shares_records:
            if self._count_user(rec, -1):
                return  # another user still has the shared connection
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
                self._emit(
                    events.checkin,
                    dbapi_connection=rec.dbapi_connection,
                    connection_record=rec,
                )
        finally:
            self._do_return_conn(rec)
            if self._reclaimed:
                self._return_reclaimed()

    def _reset(self, rec: _RecordLifecycle, conn: Any) -> None:
        """Fire ``reset`` then roll back or commit; invalidate on failure.

        A listener's error reaches the caller (after the connection is
        discarded, since its state is unknown); a failed rollback or commit
        only discards the connection, with a warning.
        """
        if events.reset.receivers:
            try:
                self._emit(
                    events.reset,
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

    def _return_reclaimed(self) -> None:
        """Check in the records of garbage-collected fairies left for later."""
        while True:
            try:
                rec = self._reclaimed.popleft()
            except IndexError:
                return
            self._checkin(rec)


class _RecordLifecycle(_RecordCore):
    """Opening, invalidating and closing one record's connection."""

    __slots__ = ()

    _pool: _PoolLifecycle

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
                pool._emit(
                    signal, dbapi_connection=conn, connection_record=self, exception=e
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
        """Open a new connection into this record (I/O)."""
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
        """Close the connection and leave the record empty."""
        conn = self.dbapi_connection
        if conn is None:
            return
        self.dbapi_connection = None
        pool = self._pool
        try:
            if fire and events.close.receivers:
                pool._emit(events.close, dbapi_connection=conn, connection_record=self)
        finally:
            # Cleared only now: close listeners still see this connection's info.
            self._info = None
            pool.logger.debug("closing connection %r", conn)
            try:
                pool._dialect.do_close(conn)
            except Exception:
                pool.logger.exception("closing %r failed", conn)


class _FairyLifecycle(_FairyCore):
    """Returning, invalidating and detaching a checked-out connection."""

    __slots__ = ()

    _pool: _PoolLifecycle

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
                    pool._emit(events.close_detached, dbapi_connection=conn)
            finally:
                pool._dialect.do_close(conn)

    def invalidate(self, e: BaseException | None = None, soft: bool = False) -> None:
        """Discard the connection: it is closed and never reused.

        The connection stays checked out until closed; a new connection opens
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

        The pool's record reconnects at its next checkout, and closing this
        connection now closes the driver connection.

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
                pool._emit(events.detach, dbapi_connection=conn, connection_record=rec)
        finally:
            if not remaining:
                pool._do_return_conn(rec)

    def __enter__(self) -> Any:
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
