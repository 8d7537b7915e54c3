"""Dialects: how a pool resets, pings and recognises disconnects per driver.

A pool created with ``dialect=None`` picks its dialect from the module of its
first connection's class, through :func:`dialect_for`.  Driver dialect modules
are imported only then, so importing poolhouse never imports a driver.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import AsyncDialect
from .base import Dialect

__all__ = ["AsyncDialect", "Dialect", "async_dialect_for", "dialect_for"]

#: Top-level module of a driver's connection class -> poolhouse dialect module.
DRIVER_MODULES: dict[str, str] = {
    "sqlite3": "sqlite3",
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pymysql": "pymysql",
    "MySQLdb": "mysqldb",
}


#: The same, for the connections of asyncio drivers.
ASYNC_DRIVER_MODULES: dict[str, str] = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg_async",
    "aiosqlite": "aiosqlite",
}


def _driver_dialect(dbapi_connection: Any, table: dict[str, str]) -> Any:
    # The class's bases count too: drivers let applications subclass their
    # connection class (psycopg2's connection_factory, psycopg's
    # Connection), often in the application's own module.
    for cls in type(dbapi_connection).__mro__:
        name = table.get(cls.__module__.partition(".")[0])
        if name is not None:
            module = importlib.import_module(f"{__name__}.{name}")
            return module.dialect_class()
    return None


def dialect_for(dbapi_connection: Any) -> Dialect:
    """Return the dialect for the driver that made *dbapi_connection*.

    The driver is the top-level module of the connection's class or, for a
    subclass defined elsewhere, of its nearest base class that a driver
    defines.

    :param dbapi_connection: a connection returned by a creator.
    :return: an instance of that driver's dialect, or of the generic
        :class:`Dialect` for a driver poolhouse does not know.
    """
    dialect: Dialect | None = _driver_dialect(dbapi_connection, DRIVER_MODULES)
    return dialect if dialect is not None else Dialect()


def async_dialect_for(dbapi_connection: Any) -> AsyncDialect:
    """Return the asyncio dialect for the driver that made *dbapi_connection*.

    :param dbapi_connection: a connection returned by an asyncio pool's creator.
    :return: an instance of that driver's dialect, or of the generic
        :class:`~poolhouse.dialects.base.AsyncDialect`.
    """
    dialect: AsyncDialect | None = _driver_dialect(
        dbapi_connection, ASYNC_DRIVER_MODULES
    )
    return dialect if dialect is not None else AsyncDialect()
