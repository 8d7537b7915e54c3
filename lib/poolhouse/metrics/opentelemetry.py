"""OpenTelemetry metrics for pools: the connection-pool metrics of the
semantic conventions for database clients (``db.client.connection.*``).

Needs the ``otel`` extra (``pip install poolhouse[otel]``), which brings
``opentelemetry-api``.  This module uses the API only: the application
chooses and configures the SDK, or leaves the API's no-op provider in place.

The counts and limits are read from :meth:`.Pool.stats` when the SDK
collects, so they cost the pool nothing in between.  The three histograms are
fed by a timing observer (:meth:`.Pool.add_timing_observer`), one
``Histogram.record()`` per checkout, checkin and connect.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions
from opentelemetry.metrics import Histogram
from opentelemetry.metrics import Meter
from opentelemetry.metrics import MeterProvider
from opentelemetry.metrics import Observation
from opentelemetry.metrics import get_meter

from .._async.pool import AsyncPool
from .._sync.pool import Pool
from ..stats import PoolStats
from ..stats import Timing
from ..stats import TimingObserver
from ._common import BUCKETS
from ._common import AnyPool
from ._common import admit
from ._common import check_pool
from ._common import resolve_pool_name

__all__ = ["Instrumentation", "instrument"]

#: The attribute naming the pool on every data point.
POOL_NAME = "db.client.connection.pool.name"
#: The attribute of ``db.client.connection.count``: ``idle`` or ``used``.
STATE = "db.client.connection.state"

#: Guards ``_by_provider`` and each ``_Instruments.entries``.
_lock = threading.Lock()

#: The instruments made on each meter provider.  An instrument name is
#: created once per provider (a second one would be a duplicate stream), so
#: every pool reported through a provider shares them.
_by_provider: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = (
    weakref.WeakKeyDictionary()
)


class _Entry:
    """One pool as reported: a weak reference to it and its attributes."""

    __slots__ = ("ref", "name", "attributes", "idle", "used")

    def __init__(self, pool: AnyPool, name: str) -> None:
        self.ref: weakref.ref[AnyPool] = weakref.ref(pool)
        self.name = name
        self.attributes = {POOL_NAME: name}
        self.idle = {POOL_NAME: name, STATE: "idle"}
        self.used = {POOL_NAME: name, STATE: "used"}


class _Recorder:
    """A pool's timing observer: records each timing in its histogram.

    It holds no reference to the pool, so the pool (which holds it) can be
    collected.
    """

    __slots__ = ("_record", "_attributes")

    def __init__(
        self, histograms: Mapping[str, Histogram], attributes: dict[str, str]
    ) -> None:
        self._record = {kind: h.record for kind, h in histograms.items()}
        self._attributes = attributes

    def observe(self, kind: Timing, seconds: float) -> None:
        self._record[kind](seconds, self._attributes)


class _Instruments:
    """The instruments of one meter provider and the pools they report on."""

    def __init__(self, meter: Meter) -> None:
        #: Replaced, never changed in place, so callbacks read it unlocked.
        self.entries: tuple[_Entry, ...] = ()
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            [self._count],
            unit="{connection}",
            description="The number of connections that are currently in "
            "state described by the `state` attribute.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.idle.max",
            [self._idle_max],
            unit="{connection}",
            description="The maximum number of idle open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.idle.min",
            [self._idle_min],
            unit="{connection}",
            description="The minimum number of idle open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            [self._max],
            unit="{connection}",
            description="The maximum number of open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            [self._pending_requests],
            unit="{request}",
            description="The number of current pending requests for an open "
            "connection.",
        )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            [self._timeouts],
            unit="{timeout}",
            description="The number of connection timeouts that have occurred "
            "trying to obtain a connection from the pool.",
        )
        self.histograms: dict[str, Histogram] = {
            "create": meter.create_histogram(
                "db.client.connection.create_time",
                unit="s",
                description="The time it took to create a new connection.",
                explicit_bucket_boundaries_advisory=BUCKETS,
            ),
            "wait": meter.create_histogram(
                "db.client.connection.wait_time",
                unit="s",
                description="The time it took to obtain an open connection "
                "from the pool.",
                explicit_bucket_boundaries_advisory=BUCKETS,
            ),
            "use": meter.create_histogram(
                "db.client.connection.use_time",
                unit="s",
                description="The time between borrowing a connection and "
                "returning it to the pool.",
                explicit_bucket_boundaries_advisory=BUCKETS,
            ),
        }

    def _stats(self) -> Iterator[tuple[_Entry, PoolStats]]:
        for entry in self.entries:
            pool = entry.ref()
            if pool is not None:
                yield entry, pool.stats()

    # Each callback reads the pools' stats afresh: stats() is a few
    # attribute reads under the pool's lock, cheaper than keeping one
    # snapshot per collection consistent across callbacks.

    def _count(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            yield Observation(stats.idle, entry.idle)
            yield Observation(stats.in_use, entry.used)

    def _idle_max(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            if stats.pool_size is not None:
                yield Observation(stats.pool_size, entry.attributes)

    def _idle_min(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            yield Observation(stats.min_idle, entry.attributes)

    def _max(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            if stats.max_size is not None:
                yield Observation(stats.max_size, entry.attributes)

    def _pending_requests(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            yield Observation(stats.waiting, entry.attributes)

    def _timeouts(self, options: CallbackOptions) -> Iterator[Observation]:
        for entry, stats in self._stats():
            yield Observation(stats.timeouts, entry.attributes)


#: The instruments of the global meter provider (``meter_provider=None``):
#: one set, made with the API's own meter, which forwards to whichever
#: provider the application sets, before or after a pool is instrumented.
_global_instruments: _Instruments | None = None


def _instruments_for(provider: MeterProvider | None) -> _Instruments:
    """The instruments of *provider* (``None``: the global one), made at its
    first pool (under ``_lock``)."""
    global _global_instruments
    if provider is None:
        if _global_instruments is None:
            _global_instruments = _Instruments(get_meter("poolhouse"))
        return _global_instruments
    try:
        instruments = _by_provider.get(provider)
    except TypeError:  # a provider that cannot be weakly referenced
        return _Instruments(provider.get_meter("poolhouse"))
    if instruments is None:
        instruments = _Instruments(provider.get_meter("poolhouse"))
        _by_provider[provider] = instruments
    return instruments


class Instrumentation:
    """A pool reported through a meter provider, as :func:`instrument`
    returns it.

    Dropping this object does not stop the reporting; :meth:`uninstrument`
    does.
    """

    __slots__ = ("_instruments", "_entry", "_observer", "_name")

    _instruments: _Instruments
    _entry: _Entry | None
    _observer: TimingObserver | None
    _name: str

    def __init__(self) -> None:
        raise TypeError("Instrumentation objects are made by instrument()")

    @classmethod
    def _made(
        cls,
        instruments: _Instruments,
        entry: _Entry,
        observer: TimingObserver | None,
    ) -> Instrumentation:
        handle = cls.__new__(cls)
        handle._instruments = instruments
        handle._entry = entry
        handle._observer = observer
        handle._name = entry.name
        return handle

    @property
    def pool_name(self) -> str:
        """The ``db.client.connection.pool.name`` of the pool's data points."""
        return self._name

    @property
    def pool(self) -> Pool[Any] | AsyncPool[Any] | None:
        """The pool, or ``None`` once it was uninstrumented or collected."""
        entry = self._entry
        return entry.ref() if entry is not None else None

    def uninstrument(self) -> None:
        """Stop reporting the pool: its data points are left out of the next
        collection on, and its timing observer is removed.

        The instruments stay on the meter provider (the API cannot remove
        them) and go on reporting any other pool.  Calling it again does
        nothing.
        """
        with _lock:
            entry, self._entry = self._entry, None
            if entry is None:
                return
            instruments = self._instruments
            instruments.entries = tuple(
                e for e in instruments.entries if e is not entry and e.ref() is not None
            )
        pool = entry.ref()
        if pool is not None and self._observer is not None:
            pool.remove_timing_observer(self._observer)

    def __repr__(self) -> str:
        state = "active" if self._entry is not None else "uninstrumented"
        return f"<{type(self).__name__} {self._name!r} {state}>"


def instrument(
    pool: Pool[Any] | AsyncPool[Any],
    meter_provider: MeterProvider | None = None,
    *,
    pool_name: str | None = None,
    histograms: bool = True,
) -> Instrumentation:
    """Report *pool* through OpenTelemetry, under the database-client
    connection-pool semantic conventions.

    Every data point carries ``db.client.connection.pool.name``.  The
    counts, limits and timeouts are observable instruments read from
    :meth:`.Pool.stats` at each collection; a pool without a limit (a
    ``max_size`` or ``pool_size`` of ``None`` in its stats) reports no
    ``db.client.connection.max`` or ``db.client.connection.idle.max`` point.
    The three histograms (unit ``s``, advisory buckets from 1 ms to 30 s)
    are recorded by a timing observer as each checkout, checkin and connect
    happens.

    The instruments hold the pool weakly: an instrumented pool can still be
    garbage-collected, and its points then stop.

    :param pool: a thread or asyncio pool.
    :param meter_provider: the provider to create the instruments with;
        ``None`` (default): the global one,
        ``opentelemetry.metrics.get_meter_provider()``.  Its meter is named
        ``poolhouse``.  Several pools share one set of instruments per
        provider.
    :param pool_name: the ``db.client.connection.pool.name``; ``None``
        (default): the pool's *logging_name*, or, for a pool without one,
        its class name and id (``QueuePool@0x7f3a...``), which changes from
        one process to the next.
    :param histograms: ``False`` leaves out the three timing histograms, and
        with them the timing observer and its cost on every checkout.
    :return: the handle whose :meth:`~Instrumentation.uninstrument` stops it.
    :raises TypeError: *pool* is not a poolhouse pool, or *pool_name* not a
        string.
    :raises ValueError: *pool* is already instrumented with this meter
        provider, or another pool is, under the same name.

    .. versionadded:: 0.1.0
    """
    check_pool(pool)
    name = resolve_pool_name(pool, pool_name)
    provider = meter_provider
    entry = _Entry(pool, name)
    with _lock:
        instruments = _instruments_for(provider)
        live = admit(
            instruments.entries,
            pool,
            name,
            f"instrumented with {provider or 'the global meter provider'!r}",
            "call uninstrument() on the handle instrument() returned to remove",
        )
        instruments.entries = (*live, entry)
    observer: TimingObserver | None = None
    if histograms:
        observer = _Recorder(instruments.histograms, entry.attributes).observe
        pool.add_timing_observer(observer)
    return Instrumentation._made(instruments, entry, observer)
