"""The connection fairy: what a checkout hands out.

A fairy proxies one checked-out connection: attributes it does not define
pass through to the driver connection, and closing it (or leaving its
``async with`` block) returns the connection to the pool.
"""

from __future__ import annotations

import logging
import warnings
from types import TracebackType
from typing import Any
from typing import Generic

from .. import exc
from .._typing import ConnT
from . import _acompat
from .record import AsyncConnectionRecord


class AsyncConnectionFairy(Generic[ConnT]):
    """A checked-out connection: use it, then ``await conn.close()`` to return it.

    Attributes not defined here pass through to the driver connection
    (:attr:`driver_connection`).  ``async with pool.connect() as conn:``
    returns it at the end of the block; an error that the dialect recognises
    as a disconnect invalidates it on the way out.  Fairies take attributes
    and weak references, so they can be kept in a
    :class:`weakref.WeakKeyDictionary`.
    """

    __slots__ = (
        "_pool",
        "_rec",
        "_conn",
        "_returned",
        "_detached_info",
        "__weakref__",
        "__dict__",
    )

    def __init__(
        self, pool: Any, rec: AsyncConnectionRecord[ConnT], dbapi_connection: ConnT
    ) -> None:
        self._pool = pool
        self._rec: AsyncConnectionRecord[ConnT] | None = rec
        self._conn: ConnT | None = dbapi_connection
        self._returned = False
        self._detached_info: dict[Any, Any] | None = None

    # -- state ---------------------------------------------------------------

    @property
    def dbapi_connection(self) -> ConnT | None:
        """The driver connection; ``None`` once invalidated or returned."""
        return None if self._returned else self._conn

    @property
    def driver_connection(self) -> ConnT | None:
        """The driver's own connection object; ``None`` once invalidated or
        returned."""
        return None if self._returned else self._conn

    @property
    def is_valid(self) -> bool:
        """Whether the connection can still be used."""
        return not self._returned and self._conn is not None

    @property
    def is_detached(self) -> bool:
        """Whether the connection no longer belongs to a pool record.

        True after :meth:`detach` and after :meth:`close`.
        """
        return self._rec is None

    @property
    def info(self) -> dict[Any, Any]:
        """The record's :attr:`~.ConnectionRecord.info` (a private copy once
        detached).

        :raises poolhouse.exc.InvalidRequestError: the connection was returned.
        """
        self._check_not_returned()
        if self._rec is not None:
            info: dict[Any, Any] = self._rec.info
            return info
        if self._detached_info is None:
            self._detached_info = {}
        return self._detached_info

    @property
    def record_info(self) -> dict[Any, Any] | None:
        """The record's :attr:`~.ConnectionRecord.record_info`; ``None`` once
        detached.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned.
        """
        self._check_not_returned()
        return self._rec.record_info if self._rec is not None else None

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return a new cursor of the driver connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned
            or invalidated.
        """
        return self._live_connection().cursor(*args, **kwargs)

    # -- ending --------------------------------------------------------------

    async def close(self) -> None:
        """Return the connection to its pool (reset first); a second call does
        nothing.

        A detached connection is reset and closed for good instead.
        """
        if self._returned:
            return
        self._returned = True
        rec = self._rec
        if rec is not None:
            self._rec = None
            self._conn = None
            await self._pool._checkin(rec)
            return
        conn = self._conn
        self._conn = None
        if conn is not None:
            await self._pool._close_detached(conn)

    # Give the connection back whoever else shares this fairy (invalidate
    # does): an alias, not a wrapper, which would cost every close() a call.
    _return = close

    async def invalidate(
        self, e: BaseException | None = None, soft: bool = False
    ) -> None:
        """Discard the connection: it is closed, never reused, and its slot
        goes back to the pool at once.

        With *soft*, the connection stays usable until closed and is replaced
        at its next checkout instead.  Invalidating a connection already
        returned only warns.

        :param e: the error that caused it, passed to the ``invalidate`` event.
        :param soft: let the current user finish; replace it at next checkout.
        """
        if self._returned:
            warnings.warn(
                f"{self!r}: can't invalidate an already-closed connection",
                exc.PoolWarning,
                stacklevel=2,
            )
            return
        rec = self._rec
        try:
            if rec is not None:
                await rec.invalidate(e, soft=soft)
            elif not soft and self._conn is not None:
                await self._pool._dialect.do_close(self._conn)
        finally:
            if not soft:
                # No reset on an invalidated connection: the check-in only
                # gives the slot back, even if a listener above raised.
                self._conn = None
                await self._return()

    async def detach(self) -> None:
        """Take the connection out of the pool; it is yours to close.

        The pool's record reconnects at its next checkout, and closing this
        connection now closes the driver connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned.
        """
        self._check_not_returned()
        rec = self._rec
        if rec is None:
            return
        self._detached_info = dict(rec.info)
        self._rec = None
        await self._pool._detach(rec)

    async def __aenter__(self) -> AsyncConnectionFairy[ConnT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_value is not None and not self._returned:
                await self._pool.handle_error(self, exc_value)
        finally:
            await self.close()

    # -- internals -------------------------------------------------------------

    def _live_connection(self) -> Any:
        self._check_not_returned()
        conn = self._conn
        if conn is None:
            raise exc.InvalidRequestError(
                f"{self!r} was invalidated; close it and call pool.connect() for "
                "a new connection"
            )
        rec = self._rec
        if rec is not None and rec.dbapi_connection is not conn:
            raise exc.InvalidRequestError(
                f"{self!r}: the pool closed this connection under you (terminate(), "
                "or another user of a shared connection invalidated it); close it "
                "and call pool.connect() for a new one"
            )
        return conn

    def _check_not_returned(self) -> None:
        if self._returned:
            raise exc.InvalidRequestError(
                f"{self!r} was returned to its pool; call pool.connect() for a "
                "new connection"
            )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in AsyncConnectionFairy.__slots__:
            # Unset slots (a half-built fairy) and dunder probes are not the
            # driver's business.
            raise AttributeError(name)
        return getattr(self._live_connection(), name)

    def __del__(self) -> None:
        try:
            rec = self._rec
            if rec is not None and not self._returned:
                self._rec = None
                self._returned = True
                _acompat.reclaim(self._pool, rec)
        except Exception:
            # Nothing can be raised from a finalizer, even by a half-built
            # fairy without a pool.
            pool = getattr(self, "_pool", None)
            logger = pool.logger if pool is not None else logging.getLogger(__name__)
            logger.exception("returning a garbage-collected connection failed")

    def __repr__(self) -> str:
        state = "returned" if self._returned else f"{self._conn!r}"
        return f"<{type(self).__name__} {state} of {self._pool!r}>"
