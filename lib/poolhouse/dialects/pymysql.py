"""Dialect for :mod:`pymysql` (PyMySQL)."""

from __future__ import annotations

from typing import Any

import pymysql

from . import _mysql
from .base import Dialect

# What ping() and close() raise once PyMySQL has closed the connection.
_ALREADY_CLOSED = "Already closed"


class PyMySQLDialect(Dialect):
    """PyMySQL: pings with ``COM_PING`` and knows MySQL's disconnect codes."""

    driver = "pymysql"

    def do_close(self, dbapi_connection: Any) -> None:
        """Close the connection; one that is already closed is left as it is.

        PyMySQL raises ``Error('Already closed')`` on a second ``close()``,
        e.g. for a connection the application closed itself.

        :param dbapi_connection: a :class:`pymysql.connections.Connection`.
        """
        try:
            dbapi_connection.close()
        except pymysql.err.Error as err:
            if tuple(err.args) != (_ALREADY_CLOSED,):
                raise

    def do_ping(self, dbapi_connection: Any) -> bool:
        """Send ``COM_PING`` without reconnecting; it opens no transaction.

        :param dbapi_connection: a :class:`pymysql.connections.Connection`.
        :return: ``True``: the server answered.
        :raises pymysql.err.Error: the ping failed: ``Error('Already closed')``
            for a closed connection, ``OperationalError`` 2006/2013 for a lost
            one (both disconnects for :meth:`is_disconnect`), or any other
            error of the round trip.
        """
        dbapi_connection.ping(reconnect=False)
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        True for a PyMySQL error raised on a closed connection, one with a
        lost-connection code (2006, 2013, 2014, 2055, 1053, MariaDB's 1927,
        MySQL's 4031 inactivity timeout), ``InterfaceError(0, '')`` from a
        closed connection, and ``Error('Already closed')``.

        :param exception: the error raised by PyMySQL.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        if not isinstance(exception, pymysql.err.Error):
            return False
        if dbapi_connection is not None and not getattr(dbapi_connection, "open", True):
            return True
        if _mysql.is_disconnect_code(exception):
            return True
        if isinstance(exception, pymysql.err.InterfaceError):
            return _mysql.is_closed_handle_error(exception)
        return tuple(exception.args) == (_ALREADY_CLOSED,)


dialect_class = PyMySQLDialect
