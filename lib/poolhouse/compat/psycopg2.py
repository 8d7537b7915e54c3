"""psycopg2's ``psycopg2.pool`` API on top of a :class:`.QueuePool`.

:class:`SimpleConnectionPool` and :class:`ThreadedConnectionPool` take the
same arguments, return the same raw driver connections and raise the same
errors as psycopg2's classes of those names, so code written for
``psycopg2.pool`` switches by changing its import.  Through the *pool_options*
keyword they also gain what ``psycopg2.pool`` lacks: waiting for a connection
(*timeout*), pre-ping, recycling, events and statistics.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from .. import exc
from .._sync.fairy import ConnectionFairy
from .._sync.queue_pool import QueuePool

__all__ = [
    "AbstractConnectionPool",
    "PoolError",
    "SimpleConnectionPool",
    "ThreadedConnectionPool",
]

#: QueuePool arguments the facade derives from its own; *pool_options* may
#: not set them.
_FACADE_OPTIONS = {
    "creator": "it is made from the connect function and its arguments",
    "pool_size": "use maxconn",
    "max_overflow": "use maxconn (the pool never opens more than maxconn)",
}

#: ``TRANSACTION_STATUS_UNKNOWN`` in psycopg2 and ``TransactionStatus.UNKNOWN``
#: in psycopg 3: the link to the server is lost.
_STATUS_UNKNOWN = 4


def _error_base() -> type[Exception]:
    # psycopg2.pool.PoolError when psycopg2 is there, so that existing
    # ``except psycopg2.pool.PoolError`` (or ``psycopg2.Error``) clauses
    # still catch the facade's errors.
    try:
        import psycopg2.pool
    except ImportError:
        return exc.PoolError
    return psycopg2.pool.PoolError


if TYPE_CHECKING:
    _ErrorBase = Exception
else:
    _ErrorBase = _error_base()


class PoolError(_ErrorBase):
    """A pool refused a request, with psycopg2's message for it.

    It subclasses ``psycopg2.pool.PoolError`` when psycopg2 is installed
    (:class:`poolhouse.exc.PoolError` otherwise), so existing handlers keep
    catching it.  Its message is psycopg2's, word for word: ``connection pool
    exhausted``, ``trying to put unkeyed connection`` or ``connection pool is
    closed``.  When the pool's own error says more (its limits and counts
    after a timeout), that error is chained as ``__cause__``.
    """


class AbstractConnectionPool:
    """Key-based pooling of raw driver connections over a :class:`.QueuePool`.

    *minconn* connections are opened at once and kept idle; at most *maxconn*
    are open.  Returning a connection while *minconn* are already idle closes
    it, as psycopg2 does.

    :param minconn: connections to open now and keep idle.
    :param maxconn: most connections open at a time; :meth:`getconn` beyond
        it raises ``connection pool exhausted``, or waits up to the *timeout*
        of *pool_options*.
    :param args: positional arguments for *connect*, e.g. a DSN.
    :param connect: the driver's connect function; ``None`` means
        ``psycopg2.connect``.  Pass ``psycopg.connect`` for psycopg 3.
    :param pool_options: keyword arguments for the underlying
        :class:`.QueuePool`, such as ``{"timeout": 5, "pre_ping": True}``.
        By default *timeout* is 0 (fail at once, like psycopg2) and
        *use_lifo* is ``True`` (reuse the last returned connection, like
        psycopg2).  *pool_size* and *max_overflow* come from *maxconn*.
    :param kwargs: keyword arguments for *connect*.
    :raises ValueError: *minconn* or *maxconn* is out of range, or
        *pool_options* sets what the facade derives itself.
    :raises TypeError: *pool_options* names an option :class:`.QueuePool`
        does not take.
    :raises ImportError: *connect* is ``None`` and psycopg2 is not installed.
    """

    def __init__(
        self,
        minconn: int,
        maxconn: int,
        *args: Any,
        connect: Callable[..., Any] | None = None,
        pool_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.minconn = int(minconn)
        self.maxconn = int(maxconn)
        if self.maxconn < 1:
            raise ValueError(
                f"maxconn={maxconn!r} is invalid: the pool could never hand out "
                "a connection; use an int >= 1"
            )
        if not 0 <= self.minconn <= self.maxconn:
            raise ValueError(
                f"minconn={minconn!r} is invalid with maxconn={maxconn!r}: use "
                "an int from 0 to maxconn"
            )
        options = dict(pool_options or {})
        for name, rule in _FACADE_OPTIONS.items():
            if name in options:
                raise ValueError(
                    f"pool_options may not set {name!r}: {rule}; "
                    f"got minconn={self.minconn}, maxconn={self.maxconn}"
                )
        if connect is None:
            connect = _psycopg2_connect()
        driver_connect = connect

        def creator() -> Any:
            return driver_connect(*args, **kwargs)

        options.setdefault("timeout", 0.0)
        options.setdefault("use_lifo", True)
        if options.get("background") and not options["timeout"]:
            raise ValueError(
                "pool_options background=True needs a timeout > 0: with the "
                "worker, getconn() waits for the connection it opens, and "
                "timeout=0 (psycopg2's fail-at-once) would never wait; set "
                "pool_options['timeout']"
            )
        # psycopg2 keeps up to minconn connections and closes the others as
        # they come back: the queue pool's own rule with pool_size=minconn.
        # With minconn=0 it keeps none (pool_size=0 would mean no limit, so
        # putconn() discards them itself).
        self._keeps_none = self.minconn == 0
        pool_size = self.maxconn if self._keeps_none else self.minconn
        self._pool: QueuePool[Any] = QueuePool(
            creator,
            pool_size=pool_size,
            max_overflow=self.maxconn - pool_size,
            **options,
        )
        #: Whether :meth:`closeall` was called.
        self.closed = False
        #: Guards the two maps below; never held around I/O.
        self._lock = threading.Lock()
        #: key -> (fairy, raw connection) of every connection handed out.
        self._used: dict[Hashable, tuple[ConnectionFairy[Any], Any]] = {}
        #: id(raw connection) -> its key.
        self._rused: dict[int, Hashable] = {}
        #: key -> set once the connection being opened for it is bound, so a
        #: second getconn(key) meanwhile waits for it instead of opening one.
        self._pending: dict[Hashable, threading.Event] = {}
        self._open_minconn()

    def _open_minconn(self) -> None:
        opened: list[ConnectionFairy[Any]] = []
        try:
            for _ in range(self.minconn):
                opened.append(self._pool.connect())
        except BaseException:
            for fairy in opened:
                fairy.close()
            self._pool.close(timeout=0)
            raise
        for fairy in opened:
            fairy.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._used)} in use"
        return (
            f"<{type(self).__name__} minconn={self.minconn} "
            f"maxconn={self.maxconn} {state}>"
        )

    def getconn(self, key: Hashable | None = None) -> Any:
        """Check out a raw driver connection, bound to *key*.

        While a connection is bound to *key*, asking for *key* again returns
        that same connection.

        :param key: any hashable; ``None`` binds the connection to a new key.
        :return: the driver's own connection object.
        :raises PoolError: ``connection pool exhausted``: *maxconn*
            connections are in use (and none came back within the *timeout*
            of *pool_options*; the :class:`poolhouse.exc.TimeoutError` is
            chained); ``connection pool is closed``: after :meth:`closeall`.
        """
        while True:
            with self._lock:
                if self.closed:
                    raise PoolError("connection pool is closed")
                if key is None:
                    # A key of its own kind: an int, as psycopg2 uses, could
                    # be a key the application chose, and two users would
                    # then share one connection.
                    key = _AutoKey()
                bound = self._used.get(key)
                if bound is not None:
                    return bound[1]
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = threading.Event()
                    break
            pending.wait()  # another thread is opening this key's connection
        try:
            try:
                fairy = self._pool.connect()
            except exc.PoolClosedError as err:
                raise PoolError("connection pool is closed") from err
            except exc.TimeoutError as err:
                raise PoolError("connection pool exhausted") from err
            conn = fairy.dbapi_connection
            with self._lock:
                closed = self.closed
                if not closed:
                    self._used[key] = (fairy, conn)
                    self._rused[id(conn)] = key
                    return conn
            # closeall() ran while we connected.
            fairy.invalidate()
            raise PoolError("connection pool is closed")
        finally:
            with self._lock:
                del self._pending[key]
            pending.set()

    def putconn(
        self, conn: Any = None, key: Hashable | None = None, close: bool = False
    ) -> None:
        """Return *conn*, handed out by :meth:`getconn`, to the pool.

        A connection in a transaction is rolled back; a closed or broken one
        is discarded, and so is any connection returned while *minconn* are
        already idle.

        :param conn: the raw connection :meth:`getconn` returned.
        :param key: the key it was bound to; ``None`` looks it up.
        :param close: close the connection instead of keeping it.
        :raises PoolError: ``trying to put unkeyed connection``: *conn* is
            not checked out from this pool; ``connection pool is closed``:
            after :meth:`closeall`.
        """
        with self._lock:
            if self.closed:
                raise PoolError("connection pool is closed")
            if key is None:
                key = self._rused.get(id(conn))
                if key is None:
                    raise PoolError("trying to put unkeyed connection")
            bound = self._used.get(key)
            if bound is None or bound[1] is not conn:
                raise PoolError(
                    f"{self!r}: the connection put back under key {key!r} is "
                    "not the one getconn() bound to it; pass the connection "
                    "getconn(key) returned, or no key"
                )
            del self._used[key]
            del self._rused[id(conn)]
        fairy = bound[0]
        if close or self._keeps_none or _is_broken(conn):
            fairy.invalidate()
        else:
            # The pool rolls back an open transaction, and closes the
            # connection if minconn are idle already.
            fairy.close()

    def closeall(self) -> None:
        """Close every connection, those in use too, and close the pool.

        Code still holding a connection then fails when it uses it.

        :raises PoolError: ``connection pool is closed``: it was already
            called.
        """
        with self._lock:
            if self.closed:
                raise PoolError("connection pool is closed")
            self.closed = True
            used = list(self._used.values())
            self._used.clear()
            self._rused.clear()
        for fairy, _ in used:
            try:
                fairy.invalidate()
            except Exception:  # psycopg2 ignores these too: close the rest
                self._pool.logger.exception("error closing a connection in closeall()")
        # Nothing of ours is out now; a getconn() racing this one closes what
        # it got once it sees the pool closed.
        self._pool.terminate()


class SimpleConnectionPool(AbstractConnectionPool):
    """A connection pool for a single thread, as ``psycopg2.pool`` has.

    It shares :class:`ThreadedConnectionPool`'s implementation, so it is in
    fact safe to share between threads.
    """


class ThreadedConnectionPool(AbstractConnectionPool):
    """A connection pool that threads can share, as ``psycopg2.pool`` has."""


class _AutoKey:
    """The key of a connection checked out without one: equal only to
    itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<automatic key at {id(self):#x}>"


def _is_broken(conn: Any) -> bool:
    # Both psycopg generations expose these; other drivers count as healthy
    # and the pool's reset finds out otherwise.
    if getattr(conn, "closed", False):
        return True
    info = getattr(conn, "info", None)
    return getattr(info, "transaction_status", None) == _STATUS_UNKNOWN


def _psycopg2_connect() -> Callable[..., Any]:
    try:
        import psycopg2
    except ImportError as err:
        raise ImportError(
            "poolhouse.compat.psycopg2 connects with psycopg2.connect by "
            "default, but psycopg2 is not installed: pip install "
            "psycopg2-binary, or pass connect=psycopg.connect for psycopg 3"
        ) from err
    connect: Callable[..., Any] = psycopg2.connect
    return connect
