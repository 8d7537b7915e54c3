"""What both exporters share: the pool types they take, the name a pool is
reported under, and the default histogram buckets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from typing import Protocol
from typing import TypeAlias
from typing import TypeVar

from .._async.pool import AsyncPool
from .._sync.pool import Pool

#: A thread pool or an asyncio pool: both have the same ``stats()`` and
#: timing observers.
AnyPool: TypeAlias = Pool[Any] | AsyncPool[Any]

#: Upper bounds, in seconds, of the timing histograms' buckets: from a
#: checkout served at once (well under a millisecond) to one that waited out
#: the default 30-second *timeout*.
BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


def resolve_pool_name(pool: AnyPool, pool_name: str | None) -> str:
    """The name *pool* is reported under: *pool_name*, else the pool's
    *logging_name*, else its class name and id (``QueuePool@0x7f...``)."""
    if pool_name is not None:
        if not isinstance(pool_name, str):
            raise TypeError(f"pool_name must be a str, got {pool_name!r}")
        if not pool_name:
            raise ValueError(
                "pool_name must not be empty; pass a name, or None for the "
                "pool's logging_name"
            )
        return pool_name
    logging_name: str | None = pool._logging_name
    if logging_name:
        return logging_name
    return f"{type(pool).__name__}@{id(pool):#x}"


def check_pool(pool: Any) -> None:
    """Raise :class:`TypeError` unless *pool* is a poolhouse pool."""
    if not isinstance(pool, (Pool, AsyncPool)):
        raise TypeError(
            f"expected a poolhouse pool (QueuePool, aio.AsyncQueuePool, ...), "
            f"got {pool!r}"
        )


class _Reported(Protocol):
    """An exporter's entry for one pool: a weak reference and a name."""

    name: str

    def ref(self) -> Any: ...


_E = TypeVar("_E", bound=_Reported)


def admit(
    entries: Iterable[_E], pool: AnyPool, name: str, where: str, undo: str
) -> list[_E]:
    """The entries whose pool is still alive, once checked that neither
    *pool* nor another pool named *name* is among them.

    :param where: how a pool is in the exporter, for the messages
        (``"instrumented with <provider>"``).
    :param undo: how to take a pool out of it (``"uninstrument"``).
    :raises ValueError: *pool*, or another pool under *name*, is there.
    """
    live = []
    for other in entries:
        other_pool = other.ref()
        if other_pool is None:
            continue  # collected: forget it
        if other_pool is pool:
            raise ValueError(
                f"{pool!r} is already {where} as {other.name!r}; "
                f"{undo} it before adding it again"
            )
        if other.name == name:
            raise ValueError(
                f"{other_pool!r} is already {where} as {name!r}, so "
                f"{pool!r} cannot be: give each pool its own logging_name or "
                f"pass pool_name=, or {undo} the other pool first"
            )
        live.append(other)
    return live
