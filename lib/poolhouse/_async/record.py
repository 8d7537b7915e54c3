"""The connection record: one slot of a pool and the connection it holds.

A record lives as long as its slot; its connection is opened, replaced
(recycle, expiry, a failed ping) and closed many times over.
"""

from __future__ import annotations

import itertools
import time
from typing import Any
from typing import Generic

from .._decisions import creator_returned_none
from .._decisions import jittered_lifetime
from .._typing import ConnT
from . import _acompat

_record_ids = itertools.count(1)


class AsyncConnectionRecord(Generic[ConnT]):
    """One slot of a pool and the connection it holds, across reconnects.

    :param pool: the owning pool.
    """

    __slots__ = (
        "_pool",
        "dbapi_connection",
        "starttime",
        "last_connect_time",
        "_generation",
        "_soft_invalidated",
        "_fresh",
        "_suspect",
        "_uses",
        "_lifetime",
        "_last_used",
        "_checkouts",
        "_out_since",
        "_holder",
        "_stack",
        "_leak_warned",
        "_info",
        "_record_info",
        "_id",
        "__weakref__",
    )

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        #: The driver connection, or ``None`` while invalidated.
        self.dbapi_connection: ConnT | None = None
        #: When the connection was opened, on the pool's monotonic clock.
        self.starttime = 0.0
        #: When the connection was opened, as :func:`time.time`.
        self.last_connect_time = 0.0
        self._generation = pool._generation
        self._soft_invalidated = False
        #: Opened and not yet checked out: no pre-ping needed.
        self._fresh = False
        #: Idle while another connection of the pool was found disconnected:
        #: pinged at its next checkout.
        self._suspect = False
        #: Checkouts of the current connection (counted with *max_uses*).
        self._uses = 0
        #: This connection's *max_lifetime*, jitter applied (``inf``: none).
        self._lifetime = float("inf")
        #: When it was last returned, on the pool's clock.
        self._last_used = 0.0
        #: Users holding the record: 0 or 1, more for a shared record.
        self._checkouts = 0
        #: When, and by which thread or task, it was checked out (the first
        #: user of a shared record).
        self._out_since = 0.0
        self._holder: Any = None
        #: Where it was checked out, with the pool's *leak_threshold*.
        self._stack: Any = None
        #: Whether this checkout was reported as a leak.
        self._leak_warned = False
        self._info: dict[Any, Any] | None = None
        self._record_info: dict[Any, Any] | None = None
        self._id = next(_record_ids)

    @property
    def driver_connection(self) -> ConnT | None:
        """The driver's own connection object (the DBAPI one for PEP 249 drivers)."""
        return self.dbapi_connection

    @property
    def info(self) -> dict[Any, Any]:
        """A dict for the current connection; cleared when it is replaced."""
        if self._info is None:
            self._info = {}
        return self._info

    @property
    def record_info(self) -> dict[Any, Any]:
        """A dict that lives as long as this record, across reconnects."""
        if self._record_info is None:
            self._record_info = {}
        return self._record_info

    @property
    def in_use(self) -> bool:
        """Whether the record is checked out."""
        return self._checkouts > 0

    async def invalidate(
        self, e: BaseException | None = None, soft: bool = False
    ) -> None:
        """Discard this record's connection; a new one opens at next checkout.

        :param e: the error that caused it, passed to the ``invalidate`` event.
        :param soft: keep the connection usable by its current user and
            replace it when it is next checked out.
        """
        await self._invalidate(e, soft, log=True)

    async def _invalidate(self, e: BaseException | None, soft: bool, log: bool) -> None:
        conn = self.dbapi_connection
        if conn is None:
            return
        pool = self._pool
        pool._counters.invalidations += 1
        listeners = (
            pool._listeners.soft_invalidate if soft else pool._listeners.invalidate
        )
        try:
            if listeners:
                await _acompat.emit(
                    listeners,
                    {
                        "dbapi_connection": conn,
                        "connection_record": self,
                        "exception": e,
                    },
                )
        finally:
            # A failing listener must not keep a connection judged unusable.
            reason = f" ({type(e).__name__}: {e})" if e is not None else ""
            if soft:
                self._soft_invalidated = True
                if log:
                    pool.logger.info("soft-invalidated connection %r%s", conn, reason)
            else:
                if log:
                    pool.logger.info("invalidated connection %r%s", conn, reason)
                await self._close_connection()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id} {self.dbapi_connection!r}>"

    async def _connect(self) -> None:
        """Open a new connection into this record (I/O)."""
        pool = self._pool
        self._info = None
        started = pool._clock()
        try:
            if pool._creator_wants_record:
                conn = await _acompat.call_creator(pool._creator, self)
            else:
                conn = await _acompat.call_creator(pool._creator)
            if conn is None:
                raise creator_returned_none(pool._creator)
        except BaseException:
            pool._counters.connect_errors += 1
            raise
        self.dbapi_connection = conn
        self.starttime = now = pool._clock()
        self.last_connect_time = time.time()
        self._generation = pool._generation
        self._soft_invalidated = False
        self._suspect = False
        self._uses = 0
        self._lifetime = jittered_lifetime(pool._max_lifetime, pool._random)
        self._fresh = True
        pool.logger.debug("created connection %r", conn)
        try:
            await pool._on_new_connection(self)
        except BaseException:
            pool._counters.connect_errors += 1
            await self._close_connection(fire=False)
            raise
        pool._counters.connects += 1
        if pool._observers:
            pool._observe("create", now - started)

    async def _close_connection(self, fire: bool = True) -> None:
        """Close the connection and leave the record empty."""
        conn = self.dbapi_connection
        if conn is None:
            return
        pool = self._pool
        if self._generation <= pool._disowned_generation:
            # Another process's connection (dispose(close=False) after
            # fork): forget it, never close it.
            pool._abandoned.append(self._drop_connection())
            return
        self.dbapi_connection = None
        try:
            listeners = pool._listeners.close
            if fire and listeners:
                await _acompat.emit(
                    listeners, {"dbapi_connection": conn, "connection_record": self}
                )
        finally:
            # Cleared only now: close listeners still see this connection's info.
            self._info = None
            pool.logger.debug("closing connection %r", conn)
            try:
                await pool._dialect.do_close(conn)
            except Exception:
                pool.logger.exception("closing %r failed", conn)

    def _drop_connection(self) -> ConnT | None:
        """Forget the connection without closing it; return it."""
        conn, self.dbapi_connection = self.dbapi_connection, None
        self._info = None
        return conn
