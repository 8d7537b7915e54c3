"""Dialect for :mod:`aiosqlite`, asyncio access to sqlite3 through a thread."""

from __future__ import annotations

import sqlite3
from typing import Any

from .base import AsyncDialect


class AiosqliteDialect(AsyncDialect):
    """aiosqlite: "disconnect" means the connection (or its thread) was closed.

    The ping runs ``SELECT 1`` through the connection's worker thread.
    """

    driver = "aiosqlite"

    async def do_ping(self, dbapi_connection: Any) -> bool:
        """Run ``SELECT 1`` through the connection's worker thread.

        :param dbapi_connection: an :class:`aiosqlite.Connection`.
        :return: ``True``: the statement ran.
        :raises ValueError: "no active connection": the connection (and its
            thread) is closed, which :meth:`is_disconnect` recognises.
        :raises sqlite3.Error: the statement failed; "Cannot operate on a
            closed database" (:exc:`sqlite3.ProgrammingError`) is a disconnect.
        """
        cursor = await dbapi_connection.execute("SELECT 1")
        await cursor.close()
        return True

    async def do_close(self, dbapi_connection: Any) -> None:
        # Closing twice is harmless in sqlite3 but aiosqlite's worker thread
        # is gone after the first close; only close a live one.
        if getattr(dbapi_connection, "_connection", None) is not None:
            await dbapi_connection.close()

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        if isinstance(exception, ValueError):
            return "no active connection" in str(exception)
        return isinstance(exception, sqlite3.ProgrammingError) and (
            "closed database" in str(exception)
        )


dialect_class = AiosqliteDialect
