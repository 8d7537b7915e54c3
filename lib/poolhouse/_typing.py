"""Protocols and aliases for the DBAPI objects and callables a pool handles."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from typing import Literal
from typing import Protocol
from typing import TypeVar


class DBAPICursor(Protocol):
    """The part of a PEP 249 cursor that poolhouse uses."""

    def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any: ...

    def fetchone(self) -> Any: ...

    def close(self) -> Any: ...


class DBAPIConnection(Protocol):
    """The part of a PEP 249 connection that poolhouse uses."""

    def close(self) -> Any: ...

    def commit(self) -> Any: ...

    def rollback(self) -> Any: ...

    def cursor(self, *args: Any, **kwargs: Any) -> Any: ...


#: The driver connection type a pool hands out (``QueuePool[sqlite3.Connection]``).
ConnT = TypeVar("ConnT")

#: What ``creator=`` accepts: a callable taking no argument, or the
#: :class:`.ConnectionRecord` it fills, and returning a driver connection.
Creator = Callable[[], ConnT] | Callable[[Any], ConnT]

#: What an asyncio pool's ``creator=`` accepts: an ``async def`` function (or
#: one returning an awaitable), taking no argument or the record.  A plain
#: function works at run time too, but cannot be typed as well.
AsyncCreator = Callable[[], Awaitable[ConnT]] | Callable[[Any], Awaitable[ConnT]]

#: What ``reset_on_return=`` accepts.
ResetOnReturn = Literal["rollback", "commit", True, False, None]
#: The normalised reset style.
ResetStyle = Literal["rollback", "commit", "none"]
#: What ``echo=`` accepts.
Echo = bool | Literal["debug"] | None


class DialectLike(Protocol):
    """What a thread pool's ``dialect=`` accepts: any object with these methods.

    ``do_ping(dbapi_connection) -> bool`` is needed too with ``pre_ping=True``.
    As in SQLAlchemy 2.x, it returns ``True`` when the round trip succeeded
    and lets the driver's error propagate when it failed; the pool then asks
    ``is_disconnect`` whether the connection is lost (it is replaced, with
    the error as the cause of its invalidation) or not (the error
    propagates).  A ``do_ping`` that returns ``False`` for a dead connection
    is accepted too.
    ``is_disconnect(exception, dbapi_connection)`` (or SQLAlchemy's
    ``is_disconnect(exception, connection, cursor)``) is optional: without
    it no error counts as a disconnect.
    :class:`poolhouse.dialects.Dialect` is the default implementation.
    """

    def do_rollback(self, dbapi_connection: Any) -> Any: ...

    def do_commit(self, dbapi_connection: Any) -> Any: ...

    def do_close(self, dbapi_connection: Any) -> Any: ...


class AsyncDialectLike(Protocol):
    """What an asyncio pool's ``dialect=`` accepts: as :class:`DialectLike`,
    with coroutine methods (``is_disconnect`` stays a plain method).

    :class:`poolhouse.dialects.AsyncDialect` is the default implementation.
    """

    async def do_rollback(self, dbapi_connection: Any) -> Any: ...

    async def do_commit(self, dbapi_connection: Any) -> Any: ...

    async def do_close(self, dbapi_connection: Any) -> Any: ...
