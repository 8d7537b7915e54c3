"""SingletonThreadPool: one connection per thread (hand-written; threads only)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from .._decisions import check_int
from .._typing import ConnT
from .._typing import Creator
from .._typing import DialectLike
from .._typing import Echo
from .._typing import ResetOnReturn
from .fairy import ConnectionFairy
from .pool import Pool
from .record import ConnectionRecord


class _ThreadFairy(ConnectionFairy[ConnT]):
    """A thread's connection, shared by its nested checkouts.

    ``close()`` returns it only when the outermost user closes it;
    :meth:`invalidate` returns it at once.
    """

    __slots__ = ("_users",)

    def __init__(
        self, pool: Any, rec: ConnectionRecord[ConnT], dbapi_connection: ConnT
    ) -> None:
        super().__init__(pool, rec, dbapi_connection)
        self._users = 1

    def close(self) -> None:
        """Return the connection once every nested user of it has closed it."""
        if self._users > 1:
            self._users -= 1
            return
        self._users = 0
        super().close()


class SingletonThreadPool(Pool[ConnT]):
    """One connection per thread, for drivers whose connections must stay in
    the thread that opened them (e.g. sqlite3).

    A thread that calls :meth:`connect` again while it holds its connection
    gets the *same* connection object back (the ``checkout`` event fires
    once); the connection goes back to the pool, reset, when the outermost
    of those users closes it.

    :param creator: as for :class:`.Pool`.
    :param pool_size: how many threads may keep a connection at once; when a
        new thread would exceed it, the oldest idle connection is closed.
        Default 5.
    :param recycle: as for :class:`.Pool`.
    :param echo: as for :class:`.Pool`.
    :param logging_name: as for :class:`.Pool`.
    :param reset_on_return: as for :class:`.Pool`.
    :param events: as for :class:`.Pool`.
    :param dialect: as for :class:`.Pool`.
    :param pre_ping: as for :class:`.Pool`.
    :param ping_interval: as for :class:`.Pool`.
    :param max_lifetime: as for :class:`.Pool`.
    :param max_uses: as for :class:`.Pool`.
    :param leak_threshold: as for :class:`.Pool`.
    """

    _fairy_class = _ThreadFairy

    def __init__(
        self,
        creator: Creator[ConnT],
        pool_size: int = 5,
        *,
        recycle: float = -1,
        echo: Echo = None,
        logging_name: str | None = None,
        reset_on_return: ResetOnReturn = True,
        events: Iterable[tuple[Callable[..., Any], str]] | None = None,
        dialect: DialectLike | None = None,
        pre_ping: bool = False,
        ping_interval: float = 0.0,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
        leak_threshold: float | None = None,
    ) -> None:
        check_int("pool_size", pool_size, 1, "use a positive int")
        super().__init__(
            creator,
            recycle=recycle,
            echo=echo,
            logging_name=logging_name,
            reset_on_return=reset_on_return,
            events=events,
            dialect=dialect,
            pre_ping=pre_ping,
            ping_interval=ping_interval,
            max_lifetime=max_lifetime,
            max_uses=max_uses,
            leak_threshold=leak_threshold,
        )
        self._pool_size = pool_size
        self._local = threading.local()
        # Every record, oldest first, so surplus ones can be closed.
        self._all: dict[ConnectionRecord[ConnT], None] = {}

    def connect(self) -> ConnectionFairy[ConnT]:
        """Return this thread's connection, checking it out if it is not.

        :raises poolhouse.exc.InvalidRequestError: ``checkout`` listeners
            rejected every connection tried.
        """
        ref: weakref.ref[_ThreadFairy[ConnT]] | None = getattr(
            self._local, "fairy", None
        )
        fairy = ref() if ref is not None else None
        if fairy is not None and not fairy._returned and fairy._rec is not None:
            fairy._users += 1
            return fairy
        new = super().connect()
        assert isinstance(new, _ThreadFairy)  # _fairy_class
        self._local.fairy = weakref.ref(new)
        return new

    def _do_get(self) -> ConnectionRecord[ConnT]:
        ref: weakref.ref[ConnectionRecord[ConnT]] | None = getattr(
            self._local, "rec", None
        )
        rec = ref() if ref is not None else None
        if rec is not None:
            with self._lock:
                # Reserved under the lock, or another thread's _surplus()
                # could pick it as idle and close it under this one.
                if rec in self._all and not rec._checkouts:
                    rec._checkouts = 1
                    return rec
        rec = self._create_connection()
        self._local.rec = weakref.ref(rec)
        with self._lock:
            rec._checkouts = 1
            self._all[rec] = None
            surplus = self._surplus()
        try:
            self._discard_records(surplus)
        except BaseException:
            # A failing close listener: the new record is not handed out,
            # so it must not stay reserved.
            rec._checkouts = 0
            raise
        return rec

    def _surplus(self) -> list[ConnectionRecord[ConnT]]:
        """Pick idle records beyond *pool_size* to close (under the lock)."""
        excess = len(self._all) - self._pool_size
        chosen = []
        for rec in self._all:
            if excess <= 0:
                break
            if not rec._checkouts:
                chosen.append(rec)
                excess -= 1
        for rec in chosen:
            del self._all[rec]
        return chosen

    def _do_return_conn(self, rec: ConnectionRecord[ConnT]) -> None:
        with self._lock:
            surplus = self._surplus()
        self._discard_records(surplus)

    def _forget_records(self) -> None:
        self._all = {}
        self._local = threading.local()

    def _idle_records(self) -> Iterable[ConnectionRecord[ConnT]]:
        return [rec for rec in self._all if not rec._checkouts]

    def dispose(self, close: bool = True) -> None:
        """Close every thread's idle connection.

        :param close: ``False`` drops them without closing them (for a child
            process after ``fork()``).
        """
        with self._lock:
            idle = [rec for rec in self._all if not rec._checkouts]
            for rec in idle:
                del self._all[rec]
        self._dispose_idle(idle, close)

    def recreate(self) -> SingletonThreadPool[ConnT]:
        return self._recreated(
            type(self)(self._creator, pool_size=self._pool_size, **self._base_kwargs())
        )

    def size(self) -> int:
        """The *pool_size* this pool was created with."""
        return self._pool_size

    def status(self) -> str:
        with self._lock:
            total = len(self._all)
            busy = sum(1 for rec in self._all if rec._checkouts)
        return (
            f"{self!r}: pool_size={self._pool_size}, thread connections={total}, "
            f"checked out={busy}"
        )
