"""Exceptions raised by poolhouse.

Every exception derives from :class:`PoolError`.  Those that concern one pool
carry it as the ``pool`` attribute; pickling drops that attribute, so the
exception can cross a process boundary.
"""

from __future__ import annotations

import builtins
from typing import Any


class PoolError(Exception):
    """Base class for every poolhouse error.

    :param message: the full, human-readable explanation.
    :param pool: the pool concerned, or ``None``.
    """

    def __init__(self, message: str = "", *, pool: Any = None) -> None:
        super().__init__(message)
        self.pool = pool

    def __reduce__(self) -> tuple[Any, ...]:
        # The pool holds locks and live connections: it cannot be pickled,
        # and the message already names it.
        return (_rebuild, (type(self), self.args, self._picklable_state()))

    def _picklable_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "pool"}


def _rebuild(
    cls: type[PoolError], args: tuple[Any, ...], state: dict[str, Any]
) -> PoolError:
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.pool = None
    err.__dict__.update(state)
    return err


class TimeoutError(PoolError, builtins.TimeoutError):  # noqa: A001
    """No connection became available within the pool's *timeout*.

    Also a builtin :class:`TimeoutError`, so generic handlers catch it.

    :param message: the explanation, with the pool's limits and counts.
    :param pool: the pool that timed out.
    :param timeout: the timeout that expired, in seconds.
    :param waited: how long this caller waited, in seconds.
    :param stats: the pool's :class:`~poolhouse.stats.PoolStats` when it
        gave up.
    """

    def __init__(
        self,
        message: str = "",
        *,
        pool: Any = None,
        timeout: float | None = None,
        waited: float | None = None,
        stats: Any = None,
    ) -> None:
        super().__init__(message, pool=pool)
        self.timeout = timeout
        self.waited = waited
        self.stats = stats


class DisconnectionError(PoolError):
    """A connection was found to be unusable.

    Raised by a ``checkout`` listener, it makes the pool discard that connection
    and try again with a fresh one.
    """


class InvalidatePoolError(DisconnectionError):
    """A disconnect that also expires every other connection in the pool.

    Raised by a ``checkout`` listener when the whole server went away, not only
    one connection.
    """


class InvalidRequestError(PoolError):
    """The pool or connection was used in a way its state does not allow."""


class PoolClosedError(InvalidRequestError):
    """The pool was closed and can no longer hand out connections."""


class PoolWarning(UserWarning):
    """A pool or connection was misused in a way that does no harm yet, such as
    invalidating a connection that was already returned."""
