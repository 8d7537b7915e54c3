"""The thread pools' base classes: :class:`Pool`, :class:`ConnectionRecord` and
:class:`ConnectionFairy`.

A :class:`ConnectionRecord` is one slot of a pool and the DBAPI connection in
it, across reconnects.  A :class:`ConnectionFairy` is what
:meth:`Pool.connect` hands out: a proxy that returns its record to the pool
when closed, or when garbage-collected.  The lifecycle comes from
:mod:`poolhouse._lifecycle` (generated from the asyncio source) and the
decisions from :mod:`poolhouse._core`; this module adds what is particular to
threads: calling the creator, sending events, waking a waiting thread, and
returning a garbage-collected connection.
"""

from __future__ import annotations

import abc
import threading
from typing import TYPE_CHECKING
from typing import Any

from blinker import Signal

from ._core import PoolResetState
from ._lifecycle import _FairyLifecycle
from ._lifecycle import _PoolLifecycle
from ._lifecycle import _RecordLifecycle
from ._queue import Marker
from ._typing import DBAPIConnection
from .dialects import Dialect
from .dialects import dialect_for

__all__ = ["ConnectionFairy", "ConnectionRecord", "Pool", "PoolResetState"]


class Pool(_PoolLifecycle):
    """Abstract base of the pools: checkout, reset, checkin and invalidation.

    :param creator: a callable returning a new DBAPI connection; it takes no
        argument, or one: the :class:`ConnectionRecord` being filled.
    :param recycle: replace a connection at checkout once it is this many
        seconds old; ``-1`` (default) never.
    :param echo: ``True`` logs this pool's activity at INFO, ``"debug"`` at
        DEBUG, to stdout; ``None`` (default) leaves logging configuration alone.
    :param logging_name: appended to the logger name,
        ``poolhouse.pool.<Class>.<logging_name>``.
    :param reset_on_return: ``"rollback"``/``True`` (default), ``"commit"``, or
        ``None``/``False`` for no reset when a connection comes back.
    :param events: ``(fn, event_name)`` pairs registered with
        :func:`poolhouse.event.listen` at construction.
    :param dialect: the :class:`~poolhouse.dialects.Dialect` (or any object with
        its methods) used to reset, close, ping and recognise disconnects;
        ``None`` picks one from the first connection's driver.
    :param pre_ping: ping each connection at checkout and replace it
        transparently if it is dead.
    :raises TypeError: an argument has the wrong type.
    :raises ValueError: an argument is out of range.
    """

    if TYPE_CHECKING:

        def connect(self) -> ConnectionFairy: ...

    @abc.abstractmethod
    def recreate(self) -> Pool:
        """Return a new, empty pool of the same class and arguments.

        Listeners registered on this pool are carried over.
        """

    def _default_dialect(self) -> Dialect:
        return Dialect()

    def _dialect_for(self, dbapi_connection: Any) -> Dialect:
        return dialect_for(dbapi_connection)

    def _new_waiter(self) -> _Waiter:
        return _Waiter()

    def _new_io_lock(self) -> threading.Lock:
        return threading.Lock()

    def _invoke_creator(self, rec: Any) -> DBAPIConnection:
        conn: DBAPIConnection = self._call_creator(rec)
        return conn

    def _emit(self, signal: Signal, **kwargs: Any) -> None:
        signal.send(self, **kwargs)

    def _reclaim(self, rec: Any) -> None:
        """Return the record of a fairy that was dropped without ``close()``."""
        if self._reclaim_now():
            self._checkin(rec)
        else:
            self._reclaimed.append(rec)


class ConnectionRecord(_RecordLifecycle):
    """One slot of a pool and the DBAPI connection it holds, across reconnects.

    :param pool: the owning pool.
    """

    __slots__ = ()


class ConnectionFairy(_FairyLifecycle):
    """A checked-out connection: use it, then :meth:`close` it to return it.

    Attributes not defined here pass through to the DBAPI connection.  Use it
    as a context manager to return it at the end of the block; an error that
    the dialect recognises as a disconnect invalidates it on the way out.
    """

    __slots__ = ()


Pool._record_class = ConnectionRecord
Pool._fairy_class = ConnectionFairy


class _Waiter:
    """A thread parked in ``QueuePool._do_get``, woken by a hand-off."""

    __slots__ = ("_wake", "granted")

    def __init__(self) -> None:
        # A plain lock used as a one-shot event: cheaper than threading.Event.
        self._wake = threading.Lock()
        self._wake.acquire()
        self.granted: _RecordLifecycle | Marker | None = None

    def grant(self, what: _RecordLifecycle | Marker) -> None:
        """Hand *what* to the waiter (called under the pool lock)."""
        self.granted = what
        self._wake.release()

    def wait(self, timeout: float) -> bool:
        """Block until granted or *timeout* seconds pass; tell which."""
        # Lock.acquire() rejects huge timeouts; -1 blocks without limit.
        return self._wake.acquire(timeout=timeout if timeout < _FOREVER else -1)


_FOREVER = threading.TIMEOUT_MAX
