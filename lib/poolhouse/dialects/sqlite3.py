"""Dialect for the standard library's :mod:`sqlite3`."""

from __future__ import annotations

import sqlite3
from typing import Any

from .base import Dialect


class SQLite3Dialect(Dialect):
    """sqlite3: an in-process database, so "disconnect" means a closed handle.

    The ping runs ``SELECT 1`` directly on the connection (no cursor object).
    """

    driver = "sqlite3"

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back, including a transaction begun explicitly with autocommit on.

        With ``autocommit=True`` (Python 3.12+) ``rollback()`` does nothing,
        even after the application ran ``BEGIN``; the reset then sends
        ``ROLLBACK`` so the database stays unlocked.

        :param dbapi_connection: a :class:`sqlite3.Connection`.
        """
        dbapi_connection.rollback()
        # Only with autocommit=True: with autocommit=False (3.12+) a
        # transaction is always open by design, and legacy mode's rollback()
        # already ends an explicit BEGIN.
        if (
            getattr(dbapi_connection, "autocommit", None) is True
            and dbapi_connection.in_transaction
        ):
            dbapi_connection.execute("ROLLBACK")

    def do_ping(self, dbapi_connection: Any) -> bool:
        """Run ``SELECT 1`` on the connection.

        :param dbapi_connection: a :class:`sqlite3.Connection`.
        :return: ``True``: the statement ran.
        :raises sqlite3.ProgrammingError: "Cannot operate on a closed
            database": the connection is closed, which :meth:`is_disconnect`
            recognises.
        :raises sqlite3.Error: any other failure of the statement.
        """
        dbapi_connection.execute("SELECT 1").fetchone()
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        return isinstance(exception, sqlite3.ProgrammingError) and (
            "closed database" in str(exception)
        )


dialect_class = SQLite3Dialect
