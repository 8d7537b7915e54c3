"""Dialect for psycopg 3 (:mod:`psycopg`), synchronous connections.

The decisions (is it a disconnect, does the ping switch autocommit) are plain
functions that :mod:`poolhouse.dialects.psycopg_async` calls too.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from . import _postgresql
from .base import Dialect

# psycopg's own messages for a connection it knows is unusable.
_CLIENT_MESSAGES = ("the connection is closed", "the connection is lost")


class PsycopgDialect(Dialect):
    """psycopg 3: pings with an empty statement, knows ``closed`` and ``broken``.

    ``rollback()`` already ends an explicit ``BEGIN`` in autocommit mode, as
    psycopg asks the server's transaction status, so the reset is the plain
    PEP 249 one.
    """

    driver = "psycopg"

    def do_ping(self, dbapi_connection: Any) -> bool:
        """Run an empty statement: one round trip, and no transaction left open.

        Outside a transaction with autocommit off, autocommit is switched on
        for the ping (a client-side setting), so psycopg sends no ``BEGIN``.
        Inside a transaction, even a failed one, the empty statement runs in
        it and changes nothing.

        :param dbapi_connection: a :class:`psycopg.Connection`.
        :return: ``True``: the server answered; ``False``, with no round
            trip, if psycopg already knows the connection is closed or broken.
        :raises psycopg.Error: the round trip failed, e.g.
            ``OperationalError`` for a link lost during the ping (a disconnect
            for :meth:`is_disconnect`).
        """
        conn = dbapi_connection
        if _is_unusable(conn):
            return False
        switch = _ping_switches_autocommit(conn)
        try:
            if switch:
                conn.autocommit = True
            conn.execute("").close()
        finally:
            # A lost connection is closed and rejects the setting; it is
            # discarded anyway.
            if switch and not conn.closed:
                conn.autocommit = False
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        True for a psycopg error raised on a closed or broken connection, a
        connection-exception SQLSTATE (class 08), a server-ended session
        (57P01 terminated, 57P02 crash, 57P03, 57P04, 57P05 and 25P03/25P04
        timeouts), or a client-side error whose message libpq or psycopg uses
        for a lost link.

        :param exception: the error raised by psycopg.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        return _is_disconnect(exception, dbapi_connection)


# -- decisions shared with the asyncio dialect (psycopg_async) -----------------------


def _is_unusable(conn: Any) -> bool:
    """Whether psycopg already knows *conn* is closed or its link lost."""
    return bool(conn.closed or conn.broken)


def _ping_switches_autocommit(conn: Any) -> bool:
    """Whether the ping must run in autocommit mode so psycopg sends no ``BEGIN``.

    Only outside a transaction: inside one the ping joins it and changes nothing.
    """
    return (
        not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
    )


def _is_disconnect(exception: BaseException, conn: Any) -> bool:
    """:meth:`PsycopgDialect.is_disconnect`, for sync and async connections."""
    if not isinstance(exception, psycopg.Error):
        return False
    if conn is not None and (
        getattr(conn, "closed", False) or getattr(conn, "broken", False)
    ):
        return True
    if exception.sqlstate is None and not isinstance(
        exception, psycopg.OperationalError | psycopg.InterfaceError
    ):
        return False
    return _postgresql.is_disconnect_error(
        exception.sqlstate, str(exception), _CLIENT_MESSAGES
    )


dialect_class = PsycopgDialect
