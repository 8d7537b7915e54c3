"""State and decisions shared by the thread and asyncio pools.

Nothing here blocks, awaits or calls a driver: these classes hold a pool's
configuration and bookkeeping and decide what must happen (is a connection
stale, how is it reset, may a checkout be retried).  The lifecycle that acts
on those decisions is written once, in :mod:`poolhouse.aio._lifecycle`, and
generated for threads into :mod:`poolhouse._lifecycle`.
"""

from __future__ import annotations

import abc
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from typing import ClassVar
from typing import TypeVar

from . import event
from . import events
from . import exc
from ._typing import Creator
from ._typing import DBAPIConnection
from ._typing import DialectLike
from ._typing import Echo
from ._typing import ResetOnReturn
from ._typing import ResetStyle
from .log import pool_logger

_RESET_STYLES: dict[object, ResetStyle] = {
    "rollback": "rollback",
    True: "rollback",
    "commit": "commit",
    None: "none",
    False: "none",
}

#: How many connections one checkout may try when ``checkout`` listeners keep
#: raising :class:`~poolhouse.exc.DisconnectionError`.
CHECKOUT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PoolResetState:
    """What the ``reset`` event is told about the reset about to happen.

    :param transaction_was_reset: the transaction was already ended by the
        caller, so the pool's own rollback is a formality.
    :param terminate_only: the connection will be closed, not reused.
    :param asyncio_safe: awaiting I/O in the listener is allowed.
    """

    transaction_was_reset: bool
    terminate_only: bool
    asyncio_safe: bool


_PLAIN_RESET = PoolResetState(
    transaction_was_reset=False, terminate_only=False, asyncio_safe=True
)


def _creator_wants_record(creator: Creator) -> bool:
    """Tell whether *creator* takes the :class:`ConnectionRecord` argument.

    A creator with exactly one required positional parameter gets the record;
    one with none (or only defaulted ones) is called without arguments.
    """
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    if len(required) > 1:
        raise TypeError(
            f"creator {creator!r} requires {len(required)} positional arguments; "
            "a creator takes none, or one (the ConnectionRecord): wrap it, e.g. "
            "creator=lambda: driver.connect(dsn)"
        )
    return len(required) == 1


def _check_int(name: str, value: object, minimum: int, rule: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _check_number(name: str, value: object, minimum: float, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return value


class _PoolCore(abc.ABC):
    """Configuration, bookkeeping and decisions common to every pool.

    The arguments are documented on :class:`poolhouse.Pool`.
    """

    _is_event_target: ClassVar[bool] = True
    #: Whether records are checked out by several threads at once, so their
    #: user counts need the lock.
    _shares_records: ClassVar[bool] = False

    def __init__(
        self,
        creator: Creator,
        *,
        recycle: float = -1,
        echo: Echo = None,
        logging_name: str | None = None,
        reset_on_return: ResetOnReturn = True,
        events: Iterable[tuple[Callable[..., Any], str]] | None = None,
        dialect: DialectLike | None = None,
        pre_ping: bool = False,
    ) -> None:
        if not callable(creator):
            raise TypeError(
                f"creator must be a callable returning a DBAPI connection, got "
                f"{creator!r}; pass e.g. creator=lambda: sqlite3.connect(path)"
            )
        self._creator = creator
        self._creator_wants_record = _creator_wants_record(creator)
        self._recycle = _check_number(
            "recycle", recycle, -1, "use -1 (never) or a number of seconds >= 0"
        )
        if not (recycle == -1 or recycle >= 0):
            raise ValueError(
                f"recycle={recycle!r} is invalid: use -1 (never) or a number of "
                "seconds >= 0"
            )
        if not (echo is None or isinstance(echo, bool) or echo == "debug"):
            raise ValueError(f"echo={echo!r} is invalid: use None, True or 'debug'")
        self._echo: Echo = echo
        if logging_name is not None and not isinstance(logging_name, str):
            raise TypeError(f"logging_name must be a str, got {logging_name!r}")
        self._logging_name = logging_name
        try:
            if not isinstance(reset_on_return, bool | str | None):
                raise TypeError  # 0 and 1 would otherwise pass as False/True
            self._reset_style: ResetStyle = _RESET_STYLES[reset_on_return]
        except (KeyError, TypeError):
            raise ValueError(
                f"reset_on_return={reset_on_return!r} is invalid: use 'rollback' "
                "(or True), 'commit', or None (or False)"
            ) from None
        self._reset_on_return = reset_on_return
        if dialect is not None:
            missing = [
                m
                for m in (
                    "do_rollback",
                    "do_commit",
                    "do_close",
                    "do_ping",
                    "is_disconnect",
                )
                if not callable(getattr(dialect, m, None))
            ]
            if missing:
                raise TypeError(
                    f"dialect {dialect!r} lacks {', '.join(missing)}; pass a "
                    "poolhouse.dialects.Dialect or an object with its methods"
                )
        self._explicit_dialect = dialect
        self._dialect: Any = dialect if dialect is not None else self._default_dialect()
        self._pre_ping = _check_bool("pre_ping", pre_ping)

        self.logger: logging.Logger = pool_logger(type(self), logging_name, echo)
        # Computed once, as the hot path cannot afford a logging call per cycle.
        self._debug = self.logger.isEnabledFor(logging.DEBUG)
        #: Guards bookkeeping only: never held around I/O or listener calls.
        self._lock = threading.Lock()
        #: Monotonic clock for ages and deadlines; tests replace it.
        self._clock: Callable[[], float] = time.monotonic
        #: Records opened before the current generation are replaced at checkout.
        self._generation = 0
        self._first_connect_done = False
        self._first_connect_lock = self._new_io_lock()
        #: Serialises opening and replacing a shared record's connection; held
        #: around I/O, so never the bookkeeping lock.
        self._connect_lock = self._new_io_lock() if self._shares_records else None
        # Records whose fairy was garbage-collected while this pool's lock was
        # busy; returned at the next connect() or checkin.
        self._reclaimed: deque[Any] = deque()
        if events is not None:
            self._listen_at_construction(events)

    def _listen_at_construction(
        self, pairs: Iterable[tuple[Callable[..., Any], str]]
    ) -> None:
        """Register ``events=``; bad entries are argument errors, named as such."""
        if isinstance(pairs, str | bytes) or not isinstance(pairs, Iterable):
            raise TypeError(
                f"events= must be a list of (fn, event_name) pairs, got {pairs!r}"
            )
        checked = []
        for pair in pairs:
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise TypeError(
                    f"events= must hold (fn, event_name) pairs, got {pair!r}"
                )
            fn, identifier = pair
            if identifier not in events.SIGNATURES:
                raise ValueError(
                    f"events=: no pool event named {identifier!r}; the events are "
                    f"{', '.join(sorted(events.SIGNATURES))}"
                )
            if not callable(fn):
                raise TypeError(
                    f"events=: the listener for {identifier!r} must be callable, "
                    f"got {fn!r}"
                )
            checked.append((fn, identifier))
        for fn, identifier in checked:
            event.listen(self, identifier, fn)

    # -- decisions ----------------------------------------------------------

    def expire_connections(self) -> None:
        """Mark every connection open now to be replaced at its next checkout.

        Connections checked out at the moment stay usable until returned.
        """
        self._generation += 1
        self.logger.info("expired every connection opened so far")

    @abc.abstractmethod
    def status(self) -> str:
        """Describe the pool's state in one line, for logs and debugging."""

    @property
    def dialect(self) -> Any:
        """The dialect this pool resets, pings and closes connections with."""
        return self._dialect

    def __repr__(self) -> str:
        name = f" {self._logging_name!r}" if self._logging_name else ""
        return f"<{type(self).__name__}{name} at {id(self):#x}>"

    @abc.abstractmethod
    def _default_dialect(self) -> Any:
        """The dialect used until the first connection shows the driver."""

    @abc.abstractmethod
    def _new_io_lock(self) -> Any:
        """A lock that may be held around I/O: threading's, or asyncio's."""

    def _base_kwargs(self) -> dict[str, Any]:
        """The common constructor arguments, for ``recreate()``."""
        return {
            "recycle": self._recycle,
            "echo": self._echo,
            "logging_name": self._logging_name,
            "reset_on_return": self._reset_on_return,
            "dialect": self._explicit_dialect,
            "pre_ping": self._pre_ping,
        }

    def _recreated(self, new: _P) -> _P:
        event._copy_listeners(self, new)
        new._clock = self._clock
        self.logger.info("recreated as %r", new)
        return new

    def _stale_reason(self, rec: _RecordCore) -> str | None:
        """Say why *rec*'s connection must be replaced before use, if it must."""
        if rec._soft_invalidated:
            return "soft-invalidated"
        if rec._generation != self._generation:
            return "expired"
        if self._recycle >= 0 and self._clock() - rec.starttime > self._recycle:
            return "older than recycle"
        return None

    def _call_creator(self, rec: Any) -> Any:
        """Call the creator with the record if it takes one (an async creator
        returns an awaitable, which the asyncio shell awaits)."""
        if self._creator_wants_record:
            return self._creator(rec)  # type: ignore[call-arg]  # checked in __init__
        return self._creator()  # type: ignore[call-arg]  # checked in __init__

    def _retry_error(self, err: exc.DisconnectionError) -> exc.InvalidRequestError:
        """The error for a checkout whose every attempt listeners rejected."""
        return exc.InvalidRequestError(
            f"{self!r}: checkout listeners rejected {CHECKOUT_ATTEMPTS} connections "
            f"in a row (last: {err}); check that the database is reachable and "
            "what the checkout listener tests",
            pool=self,
        )

    def _count_user(self, rec: _RecordCore, delta: int) -> int:
        """Add *delta* to *rec*'s user count under the lock; return the count."""
        with self._lock:
            rec._checkouts += delta
            return rec._checkouts

    def _reclaim_now(self) -> bool:
        """Tell whether a garbage-collected fairy's record can be returned now.

        The collector may run inside this pool's own critical section, where
        taking the lock again would deadlock; then the record waits in
        ``_reclaimed`` for the next checkout or checkin.
        """
        self.logger.warning(
            "%r: a connection was garbage-collected without close(); returning "
            "it to the pool. Close connections or use a with-block.",
            self,
        )
        if self._lock.acquire(blocking=False):
            self._lock.release()
            return True
        return False


_P = TypeVar("_P", bound=_PoolCore)


_record_ids = itertools.count(1)


class _RecordCore:
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
        "_checkouts",
        "_info",
        "_record_info",
        "_id",
        "__weakref__",
    )

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        #: The PEP 249 connection, or ``None`` while invalidated.
        self.dbapi_connection: DBAPIConnection | None = None
        #: When the connection was opened, on the pool's monotonic clock.
        self.starttime = 0.0
        #: When the connection was opened, as :func:`time.time`.
        self.last_connect_time = 0.0
        self._generation = pool._generation
        self._soft_invalidated = False
        #: Opened and not yet checked out: no pre-ping needed.
        self._fresh = False
        self._checkouts = 0
        self._info: dict[Any, Any] | None = None
        self._record_info: dict[Any, Any] | None = None
        self._id = next(_record_ids)

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object (the DBAPI one for PEP 249 drivers)."""
        return self.dbapi_connection

    @property
    def info(self) -> dict[Any, Any]:
        """A dict for the current DBAPI connection; cleared when it is replaced."""
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._id} {self.dbapi_connection!r}>"


class _FairyCore:
    """The state of a checked-out connection and its pass-through attributes."""

    __slots__ = ("_pool", "_rec", "_conn", "_returned", "_detached_info")

    def __init__(self, pool: Any, rec: Any, dbapi_connection: Any) -> None:
        self._pool = pool
        self._rec: Any = rec  # a record of the pool's own kind
        self._conn: Any = dbapi_connection
        self._returned = False
        self._detached_info: dict[Any, Any] | None = None

    # -- state ---------------------------------------------------------------

    def _live_connection(self) -> Any:
        if self._returned:
            raise exc.InvalidRequestError(
                f"{self!r} was returned to its pool; call pool.connect() for a "
                "new connection"
            )
        conn = self._conn
        if conn is None:
            raise exc.InvalidRequestError(
                f"{self!r} was invalidated; close it and call pool.connect() for "
                "a new connection"
            )
        return conn

    @property
    def dbapi_connection(self) -> Any:
        """The PEP 249 connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned
            or invalidated.
        """
        return self._live_connection()

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object.

        :raises poolhouse.exc.InvalidRequestError: as for
            :attr:`dbapi_connection`.
        """
        return self._live_connection()

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
        """The record's :attr:`ConnectionRecord.info` (a private copy once detached)."""
        self._check_not_returned()
        if self._rec is not None:
            info: dict[Any, Any] = self._rec.info
            return info
        if self._detached_info is None:
            self._detached_info = {}
        return self._detached_info

    @property
    def record_info(self) -> dict[Any, Any] | None:
        """The record's :attr:`ConnectionRecord.record_info`; ``None`` once detached."""
        self._check_not_returned()
        return self._rec.record_info if self._rec is not None else None

    def _check_not_returned(self) -> None:
        if self._returned:
            raise exc.InvalidRequestError(
                f"{self!r} was returned to its pool; call pool.connect() for a "
                "new connection"
            )

    # -- use -----------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return a new cursor of the DBAPI connection.

        :raises poolhouse.exc.InvalidRequestError: the connection was returned
            or invalidated.
        """
        return self._live_connection().cursor(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in self.__slots__:
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
                self._pool._reclaim(rec)
        except Exception:
            # Nothing can be raised from a finalizer; the pool logged already
            # if it got that far.
            logging.getLogger(__name__).exception(
                "returning a garbage-collected connection failed"
            )

    def __repr__(self) -> str:
        state = "returned" if self._returned else f"{self._conn!r}"
        return f"<{type(self).__name__} {state} of {self._pool!r}>"
