"""What a pool can tell about itself: :class:`PoolStats`, a snapshot of its
state and counters, and :class:`CheckedOutConnection`, one connection out now.

Pools keep their counters in a ``Counters`` object, updated on the
checkout and checkin paths without a lock.  An update (``+=``) is a load, an
add and a store; CPython's eval loop (3.10 to 3.13, with the GIL) does not
switch threads in between for these, so none was lost in tests with eight
threads, but nothing guarantees it, and a free-threaded build may lose one
under contention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Literal

#: What a timing observer is told about: how long a checkout waited in line,
#: how long a connection was used, how long opening one took.
Timing = Literal["wait", "use", "create"]

#: A callable given each timing as it happens: ``observer(kind, seconds)``.
TimingObserver = Callable[[Timing, float], None]


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A pool's state now and its counters since it was created.

    Times are in seconds.  Counters only grow; compare two snapshots for
    rates.

    .. versionadded:: 0.1.0
    """

    #: Connections open now (idle and in use).
    size: int
    #: Connections open and idle in the pool.
    idle: int
    #: Connections checked out (including ones being opened for a checkout).
    in_use: int
    #: Connections open beyond *pool_size* (0 for pools without one).
    overflow: int
    #: Callers waiting in line for a connection.
    waiting: int
    #: The most connections the pool may have open; ``None``: no limit.
    max_size: int | None
    #: The most idle connections the pool keeps (its *pool_size*);
    #: ``None``: no limit.
    pool_size: int | None
    #: The idle connections a background worker keeps open.
    min_idle: int
    #: Connections opened.
    connects: int
    #: Connects that failed (the creator or a ``connect`` listener raised).
    connect_errors: int
    #: Connections handed out.
    checkouts: int
    #: Connections returned, including detached ones and checkouts a
    #: ``checkout`` listener rejected, so ``checkouts - checkins`` is the
    #: number of users holding a connection now (several users share one
    #: connection in a :class:`.StaticPool`).
    checkins: int
    #: Connections invalidated (hard or soft), for any reason.
    invalidations: int
    #: Connections replaced at checkout because of their age, use count or
    #: an expiry (*recycle*, *max_lifetime*, *max_uses*, a soft invalidation,
    #: a connection opened before ``dispose()``/``drain()`` and out then),
    #: and idle ones a background worker retired at the end of their
    #: *max_lifetime*.  Idle connections ``dispose()`` closes are not counted.
    recycles: int
    #: Checkouts that failed because no connection came in time.
    timeouts: int
    #: Connections found disconnected (a failed ping, a disconnect error).
    disconnects: int
    #: Returned connections discarded because their reset failed.
    returns_bad: int
    #: Seconds checkouts spent waiting in line, in all.
    wait_time_total: float
    #: The longest any checkout waited in line.
    wait_time_max: float
    #: Seconds connections were checked out, in all (returned ones only).
    use_time_total: float
    #: The longest any connection was checked out before it came back.
    use_time_max: float


@dataclass(frozen=True, slots=True)
class CheckedOutConnection:
    """One connection checked out now, as :meth:`.Pool.checked_out_connections`
    lists it.

    .. versionadded:: 0.1.0
    """

    #: The driver connection (``None`` if it was invalidated meanwhile).
    dbapi_connection: Any
    #: When it was checked out, as :func:`time.time`.
    checked_out_at: float
    #: How long it has been out, in seconds.
    age: float
    #: The thread or task that checked it out, by name.
    holder: str
    #: Where it was checked out (a formatted stack), when the pool has a
    #: *leak_threshold*; else ``None``.
    stack: str | None


class Counters:
    """The mutable counters behind :class:`PoolStats` (one per pool)."""

    __slots__ = (
        "connects",
        "connect_errors",
        "checkouts",
        "checkins",
        "invalidations",
        "recycles",
        "timeouts",
        "disconnects",
        "returns_bad",
        "wait_time_total",
        "wait_time_max",
        "use_time_total",
        "use_time_max",
    )

    def __init__(self) -> None:
        self.connects = 0
        self.connect_errors = 0
        self.checkouts = 0
        self.checkins = 0
        self.invalidations = 0
        self.recycles = 0
        self.timeouts = 0
        self.disconnects = 0
        self.returns_bad = 0
        self.wait_time_total = 0.0
        self.wait_time_max = 0.0
        self.use_time_total = 0.0
        self.use_time_max = 0.0

    def note_wait(self, seconds: float) -> None:
        """Count one wait in line of *seconds*."""
        self.wait_time_total += seconds
        if seconds > self.wait_time_max:
            self.wait_time_max = seconds

    def snapshot(
        self,
        *,
        size: int,
        idle: int,
        in_use: int,
        overflow: int,
        waiting: int,
        max_size: int | None,
        pool_size: int | None,
        min_idle: int,
    ) -> PoolStats:
        """Combine the pool's state with these counters."""
        return PoolStats(
            size=size,
            idle=idle,
            in_use=in_use,
            overflow=overflow,
            waiting=waiting,
            max_size=max_size,
            pool_size=pool_size,
            min_idle=min_idle,
            connects=self.connects,
            connect_errors=self.connect_errors,
            checkouts=self.checkouts,
            checkins=self.checkins,
            invalidations=self.invalidations,
            recycles=self.recycles,
            timeouts=self.timeouts,
            disconnects=self.disconnects,
            returns_bad=self.returns_bad,
            wait_time_total=self.wait_time_total,
            wait_time_max=self.wait_time_max,
            use_time_total=self.use_time_total,
            use_time_max=self.use_time_max,
        )
