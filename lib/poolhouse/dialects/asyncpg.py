"""Dialect for :mod:`asyncpg`."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.exceptions import InFailedSQLTransactionError
from asyncpg.exceptions import InternalClientError

from . import _postgresql
from .base import AsyncDialect

# asyncpg's own messages for an operation on a closed connection ("connection
# is closed", "cannot call ...: the underlying connection is closed"), and the
# InternalClientError of a protocol out of step with the server, raised when
# the server's last words (e.g. the FATAL error of pg_terminate_backend())
# arrived before its end of stream.
_CLIENT_MESSAGES = ("connection is closed", "cannot switch to state")

# Errors asyncpg raises itself, or lets through from the transport.
_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, InternalClientError)

# What a socket raises when the peer is gone, as opposed to any other OSError.
_LOST_LINK_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class AsyncpgDialect(AsyncDialect):
    """asyncpg: ends a transaction only if there is one, and knows ``is_closed()``.

    asyncpg has no ``rollback()``: the reset sends ``ROLLBACK`` (``COMMIT``
    for ``reset_on_return="commit"``) when ``is_in_transaction()`` says a
    transaction is open, which asyncpg tracks client-side, so returning an
    idle connection costs no round trip.  Like asyncpg's own pool, the reset
    also retires the checkout's :class:`asyncpg.transaction.Transaction`
    objects (see :meth:`do_rollback`).

    :param reset_session: also clean the session at each reset, as
        :class:`asyncpg.Pool` does when a connection is released (with
        ``Connection.reset()``): run the connection's
        ``get_reset_query()`` (close cursors, release advisory locks,
        ``UNLISTEN *``, ``RESET ALL``) and remove its listener callbacks.
        One more round trip per checkin, always; use it when code sets
        session state (``SET``, ``LISTEN``, advisory locks) that the next
        user must not see.  Default ``False``: only the transaction is
        ended.  With ``reset_on_return=None`` the pool resets nothing,
        whatever this says.
    :raises TypeError: *reset_session* is not a bool.
    """

    driver = "asyncpg"

    def __init__(self, *, reset_session: bool = False) -> None:
        if not isinstance(reset_session, bool):
            raise TypeError(
                f"reset_session must be True or False, got {reset_session!r}"
            )
        #: Whether each reset also cleans the session.
        self.reset_session = reset_session

    async def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back the open transaction, if any; then reset the session if
        *reset_session*.

        A :class:`~asyncpg.transaction.Transaction` left open (started with
        ``start()``, or an ``async with conn.transaction()`` block the
        connection was returned from) no longer counts as the connection's
        current transaction, so the next user's ``conn.transaction()`` starts
        a real one; and, as after a release from :class:`asyncpg.Pool`, any
        later call on it (or on a cursor or prepared statement of this
        checkout) raises asyncpg's :exc:`~asyncpg.exceptions.InterfaceError`
        "released back to the pool" instead of acting on the next user's
        session.

        :param dbapi_connection: an :class:`asyncpg.Connection`.
        :raises asyncpg.exceptions.InterfaceError: the connection is closed;
            the pool discards it.
        """
        await self._end_transaction(dbapi_connection, "ROLLBACK")

    async def do_commit(self, dbapi_connection: Any) -> None:
        """Commit the open transaction, if any; then reset the session if
        *reset_session*.

        Open :class:`~asyncpg.transaction.Transaction` objects are retired as
        by :meth:`do_rollback`.

        :param dbapi_connection: an :class:`asyncpg.Connection`.
        :raises asyncpg.exceptions.InterfaceError: the connection is closed;
            the pool discards it.
        """
        await self._end_transaction(dbapi_connection, "COMMIT")

    async def do_close(self, dbapi_connection: Any) -> None:
        """Close the connection gracefully; do nothing if it is closed already.

        A connection still waiting for the answer to a cancelled command is
        terminated (its socket closed without a goodbye to the server), and so
        is one whose graceful close fails.  A failure that means the link
        was lost anyway is not reported; any other is re-raised.

        :param dbapi_connection: an :class:`asyncpg.Connection`.
        """
        conn = dbapi_connection
        if conn.is_closed():
            return
        if _is_cancelling(conn):
            # A graceful close would first wait for the server to answer the
            # cancelled command (forever, on a dead network): a connection
            # invalidated because its reset was cancelled must not hold its
            # cancelled caller.
            conn.terminate()
            return
        try:
            await conn.close()
        except BaseException as err:
            # asyncpg aborts the transport itself when close() fails; this
            # makes sure of it whatever the version.
            conn.terminate()
            # Judge the error alone: the connection is closed now either way.
            if isinstance(err, Exception) and self.is_disconnect(err, None):
                return
            raise

    async def do_ping(self, dbapi_connection: Any) -> bool:
        """Run ``SELECT 1`` as a simple query: one round trip, no prepared
        statement, and no transaction begun (asyncpg never sends ``BEGIN`` by
        itself).

        :param dbapi_connection: an :class:`asyncpg.Connection`.
        :return: ``True``: the server answered; inside a failed transaction,
            its refusal proves the link.  ``False``, with no round trip, if
            ``is_closed()`` says the connection is closed.
        :raises asyncpg.exceptions.ConnectionDoesNotExistError: the link was
            lost during the ping; this and asyncpg's other errors for a lost
            connection (or an :exc:`OSError` once ``is_closed()``) are
            disconnects for :meth:`is_disconnect`.
        :raises Exception: any other error of the round trip, unchanged.
        """
        conn = dbapi_connection
        if conn.is_closed():
            return False
        try:
            await conn.execute("SELECT 1")
        except InFailedSQLTransactionError:
            return True
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        True for an asyncpg error or an :exc:`OSError` once ``is_closed()``
        is true; a connection-exception SQLSTATE (class 08, including
        :exc:`~asyncpg.exceptions.ConnectionDoesNotExistError`); a
        server-ended session (57P01 terminated, 57P02 crash, 57P03, 57P04,
        57P05 and 25P03/25P04 timeouts); asyncpg's "connection is closed"
        :exc:`~asyncpg.exceptions.InterfaceError`; and, when the connection
        is not given, a reset, broken or aborted socket
        (:exc:`ConnectionResetError`, :exc:`BrokenPipeError`,
        :exc:`ConnectionAbortedError`).  asyncpg marks a connection closed
        before it reports a lost transport, so with the connection given, an
        unrelated network error raised inside a checkout (an HTTP call, say)
        does not discard a live connection.

        :param exception: the error raised by asyncpg.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        if not isinstance(exception, _DRIVER_ERRORS + (OSError,)):
            return False
        if dbapi_connection is not None and dbapi_connection.is_closed():
            return True
        if isinstance(exception, OSError):
            return dbapi_connection is None and isinstance(exception, _LOST_LINK_ERRORS)
        return _postgresql.is_disconnect_error(
            getattr(exception, "sqlstate", None), str(exception), _CLIENT_MESSAGES
        )

    async def _end_transaction(self, conn: Any, statement: str) -> None:
        if conn.is_closed():
            # What asyncpg itself raises for any operation on it.
            raise asyncpg.InterfaceError("connection is closed")
        _retire_checkout_objects(conn)
        # While a cancelled command's answer is due, the transaction state is
        # not known yet (a cancelled BEGIN may have run); asyncpg runs the
        # statement once that answer is in.  Outside a transaction the server
        # only warns.
        end = conn.is_in_transaction() or _is_cancelling(conn)
        if not self.reset_session:
            if end:
                await conn.execute(statement)
            return
        # What Connection.reset() does, without its timeout scope.  The two
        # statements go separately, as there: a custom reset query may hold
        # one that cannot run in a transaction block (DISCARD ALL).
        if end:
            await conn.execute(statement)
        _forget_listeners(conn)
        reset_query = conn.get_reset_query()
        if reset_query:
            await conn.execute(reset_query)

    def __repr__(self) -> str:
        extra = " reset_session=True" if self.reset_session else ""
        return f"<{type(self).__name__} driver={self.driver!r}{extra}>"


# asyncpg has no public API for what follows; these are the attributes
# asyncpg.Pool itself uses when it releases a connection.


def _is_cancelling(conn: Any) -> bool:
    """Whether asyncpg still waits for the server to answer a cancelled command."""
    is_cancelling = getattr(conn._protocol, "_is_cancelling", None)
    return bool(is_cancelling is not None and is_cancelling())


def _forget_listeners(conn: Any) -> None:
    """Drop the checkout's notification and log callbacks, as
    ``Connection.reset()`` does (``UNLISTEN *`` ends the subscriptions)."""
    conn._listeners.clear()
    conn._log_listeners.clear()


def _retire_checkout_objects(conn: Any) -> None:
    """Detach what asyncpg tracks for the user who is returning *conn*, as
    :class:`asyncpg.Pool` does on release.

    A transaction ended by a plain ``ROLLBACK`` would otherwise stay asyncpg's
    top-level transaction, and the next ``conn.transaction()`` would send
    ``SAVEPOINT`` outside any transaction.  The release counter is what
    asyncpg's Transaction, cursor and prepared-statement objects check before
    each call.
    """
    conn._top_xact = None
    conn._pool_release_ctr += 1


dialect_class = AsyncpgDialect
