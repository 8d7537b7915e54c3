"""Dialect for mysqlclient (:mod:`MySQLdb`)."""

from __future__ import annotations

from typing import Any

import MySQLdb

from . import _mysql
from .base import Dialect


class MySQLdbDialect(Dialect):
    """mysqlclient: pings with ``mysql_ping()`` and knows MySQL's disconnect codes."""

    driver = "MySQLdb"

    def do_close(self, dbapi_connection: Any) -> None:
        """Close the connection; one that is already closed is left as it is.

        mysqlclient raises ``OperationalError(2006, '')`` on a second
        ``close()``, e.g. for a connection the application closed itself.

        :param dbapi_connection: a :class:`MySQLdb.connections.Connection`.
        """
        if dbapi_connection.open:
            dbapi_connection.close()

    def do_ping(self, dbapi_connection: Any) -> bool:
        """Call ``ping()`` (``mysql_ping()``); it opens no transaction.

        The argument-less call leaves the client library's reconnect setting
        alone (off unless the application turned it on).

        :param dbapi_connection: a :class:`MySQLdb.connections.Connection`.
        :return: ``True``: the server answered.
        :raises MySQLdb.Error: the ping failed: ``InterfaceError(0, '')`` for a
            closed connection, ``OperationalError`` 2006/2013 for a lost one
            (both disconnects for :meth:`is_disconnect`), or any other error
            of the round trip.
        """
        dbapi_connection.ping()
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        True for a mysqlclient error raised on a closed connection, one with a
        lost-connection code (2006, 2013, 2014, 2055, 1053, MariaDB's 1927,
        MySQL's 4031 inactivity timeout), and ``InterfaceError(0, '')``.

        :param exception: the error raised by mysqlclient.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        if not isinstance(exception, MySQLdb.Error):
            return False
        if dbapi_connection is not None and not getattr(dbapi_connection, "open", True):
            return True
        if _mysql.is_disconnect_code(exception):
            return True
        return isinstance(
            exception, MySQLdb.InterfaceError
        ) and _mysql.is_closed_handle_error(exception)


dialect_class = MySQLdbDialect
