"""The generic dialect: plain PEP 249 calls, usable with any driver."""

from __future__ import annotations

import inspect
from typing import Any
from typing import ClassVar

from .._typing import DBAPIConnection


class Dialect:
    """How a pool talks to one driver: reset, close, ping and disconnect checks.

    The base class works with any PEP 249 driver: it rolls back, commits and
    closes through the connection's own methods and pings by running
    ``SELECT 1`` on a cursor.  Driver modules in :mod:`poolhouse.dialects`
    subclass it with cheaper pings and the driver's real disconnect errors.
    A pool accepts any object with these five methods as *dialect*.
    """

    #: The name of the driver's top-level module, used to pick a dialect.
    driver: ClassVar[str] = "generic"

    def do_rollback(self, dbapi_connection: DBAPIConnection) -> None:
        """Roll back the connection's current transaction.

        :param dbapi_connection: the PEP 249 connection.
        """
        dbapi_connection.rollback()

    def do_commit(self, dbapi_connection: DBAPIConnection) -> None:
        """Commit the connection's current transaction.

        :param dbapi_connection: the PEP 249 connection.
        """
        dbapi_connection.commit()

    def do_close(self, dbapi_connection: DBAPIConnection) -> None:
        """Close the connection.

        :param dbapi_connection: the PEP 249 connection.
        """
        dbapi_connection.close()

    def do_ping(self, dbapi_connection: DBAPIConnection) -> bool:
        """Check that the connection still reaches its server.

        As SQLAlchemy 2.0's ``DefaultDialect.do_ping``: a failed round trip
        raises the driver's error unchanged, and the pool asks
        :meth:`is_disconnect` whether it means the connection is lost (then
        the connection is replaced, with the error as the cause of its
        invalidation) or not (then the error propagates to the caller).

        :param dbapi_connection: the PEP 249 connection.
        :return: ``True``: the round trip succeeded.  A subclass may return
            ``False`` for a connection it knows is dead without a round trip.
        :raises Exception: the driver's error from ``cursor()``,
            ``execute("SELECT 1")`` or ``fetchone()``.
        """
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        finally:
            _close_quietly(cursor)
        return True

    def is_disconnect(
        self, exception: BaseException, dbapi_connection: DBAPIConnection | None
    ) -> bool:
        """Tell whether *exception* means the connection is lost.

        The generic dialect cannot tell a lost connection from any other
        error, so it answers ``False``; driver dialects know better.

        :param exception: the error raised by the driver.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} driver={self.driver!r}>"


def _close_quietly(cursor: Any) -> None:
    try:
        cursor.close()
    except Exception:  # noqa: BLE001  # a dead cursor must not hide the real outcome
        pass


class AsyncDialect:
    """How an asyncio pool talks to one driver; every method but
    :meth:`is_disconnect` is a coroutine.

    The base class calls the connection's ``rollback``/``commit``/``close`` and
    ``execute("SELECT 1")``, awaiting whatever they return; driver modules in
    :mod:`poolhouse.dialects` subclass it for asyncpg, psycopg's
    ``AsyncConnection`` and aiosqlite.
    """

    #: The name of the driver's top-level module, used to pick a dialect.
    driver: ClassVar[str] = "generic"

    async def do_rollback(self, dbapi_connection: Any) -> None:
        """Roll back the connection's current transaction.

        :param dbapi_connection: the driver connection.
        """
        await _maybe_await(dbapi_connection.rollback())

    async def do_commit(self, dbapi_connection: Any) -> None:
        """Commit the connection's current transaction.

        :param dbapi_connection: the driver connection.
        """
        await _maybe_await(dbapi_connection.commit())

    async def do_close(self, dbapi_connection: Any) -> None:
        """Close the connection.

        :param dbapi_connection: the driver connection.
        """
        await _maybe_await(dbapi_connection.close())

    async def do_ping(self, dbapi_connection: Any) -> bool:
        """Check that the connection still reaches its server.

        As :meth:`.Dialect.do_ping`: a failed round trip raises the driver's
        error unchanged, and the pool asks :meth:`is_disconnect` what it means.

        :param dbapi_connection: the driver connection.
        :return: ``True``: the round trip succeeded.  A subclass may return
            ``False`` for a connection it knows is dead without a round trip.
        :raises Exception: the driver's error from ``execute("SELECT 1")``.
        """
        await _maybe_await(dbapi_connection.execute("SELECT 1"))
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        The generic dialect cannot tell, so it answers ``False``.

        :param exception: the error raised by the driver.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} driver={self.driver!r}>"


async def _maybe_await(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result
