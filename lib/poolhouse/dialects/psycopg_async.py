"""Dialect for psycopg 3's :class:`psycopg.AsyncConnection`.

The same decisions as the synchronous :mod:`poolhouse.dialects.psycopg`, from
the same functions; only the I/O is awaited.
"""

from __future__ import annotations

from typing import Any

from .base import AsyncDialect
from .psycopg import _is_disconnect
from .psycopg import _is_unusable
from .psycopg import _ping_switches_autocommit


class AsyncPsycopgDialect(AsyncDialect):
    """psycopg 3, asyncio: pings with an empty statement, knows ``closed`` and
    ``broken``.

    Rolls back, commits and closes with the connection's own coroutines;
    ``rollback()`` also ends an explicit ``BEGIN`` in autocommit mode, as
    psycopg asks the server's transaction status.
    """

    driver = "psycopg"

    async def do_ping(self, dbapi_connection: Any) -> bool:
        """Run an empty statement: one round trip, and no transaction left open.

        Outside a transaction with autocommit off, autocommit is switched on
        for the ping with ``set_autocommit()`` (a client-side setting), so
        psycopg sends no ``BEGIN``.  Inside a transaction, even a failed one,
        the empty statement runs in it and changes nothing.

        :param dbapi_connection: a :class:`psycopg.AsyncConnection`.
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
                await conn.set_autocommit(True)
            cursor = await conn.execute("")
            await cursor.close()
        finally:
            # A lost connection is closed and rejects the setting; it is
            # discarded anyway.
            if switch and not conn.closed:
                await conn.set_autocommit(False)
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        """Tell whether *exception* means the connection is lost.

        The rules of :meth:`.PsycopgDialect.is_disconnect`: a psycopg error on
        a closed or broken connection, SQLSTATE class 08, 57P01-57P05,
        25P03/25P04, or a client-side error with a lost-link message.

        :param exception: the error raised by psycopg.
        :param dbapi_connection: the connection it was raised on, if known.
        """
        return _is_disconnect(exception, dbapi_connection)


dialect_class = AsyncPsycopgDialect
