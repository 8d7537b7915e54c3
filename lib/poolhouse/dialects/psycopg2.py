"""Dialect for :mod:`psycopg2`."""

from __future__ import annotations

from typing import Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import TRANSACTION_STATUS_INERROR
from psycopg2.extensions import TRANSACTION_STATUS_INTRANS

from . import _postgresql
from .base import Dialect
from .base import _close_quietly

# psycopg2's own message for a connection it has closed or found broken.
_CLIENT_MESSAGES = ("connection already closed",)

# in_failed_sql_transaction: the server answered, so the link is alive.
_IN_FAILED_TRANSACTION = "25P02"


class Psycopg2Dialect(Dialect):
    """psycopg2: knows ``closed``, and ends explicit transactions in autocommit mode.

    In autocommit mode psycopg2's ``rollback()`` sends nothing, even when
    the application ran ``BEGIN`` itself; the reset then sends ``ROLLBACK``
    so no transaction, and none of its locks, outlives the checkout.
    """

    driver = "psycopg2"

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back, including a transaction begun explicitly in autocommit mode.

        :param dbapi_connection: a psycopg2 connection.
        """
        conn = dbapi_connection
        conn.rollback()
        if conn.autocommit and conn.get_transaction_status() in (
            TRANSACTION_STATUS_INTRANS,
            TRANSACTION_STATUS_INERROR,
        ):
            cursor = conn.cursor()
            try:
                cursor.execute("ROLLBACK")
            finally:
                _close_quietly(cursor)

    def do_ping(self, dbapi_connection: Any) -> bool:
        """Run ``SELECT 1``: one round trip, and no transaction left open.

        Outside a transaction with autocommit off, autocommit is switched on
        for the ping (a client-side setting), so psycopg2 sends no ``BEGIN``.
        Inside a failed transaction the server's refusal proves the link.

        :param dbapi_connection: a psycopg2 connection.
        :return: ``True``: the server answered, possibly with the refusal of
            a failed transaction; ``False``, with no round trip, if psycopg2
            already knows the connection is closed.
        :raises psycopg2.Error: the round trip failed, e.g.
            ``OperationalError`` for a link lost during the ping (a disconnect
            for :meth:`is_disconnect`).
        """
        conn = dbapi_connection
        if conn.closed:
            return False
        switch = (
            not conn.autocommit
            and conn.get_transaction_status() == TRANSACTION_STATUS_IDLE
        )
        cursor = None
        try:
            if switch:
                conn.autocommit = True
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
        except psycopg2.Error as err:
            # The server's refusal in a failed transaction proves the link.
            if err.pgcode == _IN_FAILED_TRANSACTION and not conn.closed:
                return True
            raise
        finally:
            if cursor is not None:
                _close_quietly(cursor)
            # A lost connection is closed and rejects the setting; it is
            # discarded anyway.
            if switch and not conn.closed:
                conn.autocommit = False
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        True for a psycopg2 error raised on a closed or broken connection
        (``closed`` non-zero), a connection-exception SQLSTATE (class 08), a
        server-ended session (57P01 terminated, 57P02 crash, 57P03, 57P04,
        57P05 and 25P03/25P04 timeouts), or a client-side error whose message
        libpq or psycopg2 uses for a lost link.

        :param exception: the error raised by psycopg2.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        if not isinstance(exception, psycopg2.Error):
            return False
        if dbapi_connection is not None and getattr(dbapi_connection, "closed", False):
            return True
        if exception.pgcode is None and not isinstance(
            exception, psycopg2.OperationalError | psycopg2.InterfaceError
        ):
            return False
        return _postgresql.is_disconnect_error(
            exception.pgcode, str(exception), _CLIENT_MESSAGES
        )


dialect_class = Psycopg2Dialect
