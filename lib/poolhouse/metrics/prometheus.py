"""Prometheus metrics for pools: a collector for ``prometheus_client``.

Needs the ``prometheus`` extra (``pip install poolhouse[prometheus]``).

:class:`PoolCollector` reads each pool's :meth:`.Pool.stats` when the
registry is scraped, so the gauges and counters cost the pool nothing in
between.  The timing histograms are counted by a timing observer
(:meth:`.Pool.add_timing_observer`): one bisection and two additions per
checkout, checkin and connect, into buckets the collector keeps itself.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import cast

import prometheus_client
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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

__all__ = ["Instrumentation", "PoolCollector", "instrument"]

#: How ``prometheus_client`` writes an ``le`` label (``0.001``, ``30.0``);
#: cast, as it is not annotated.
_go_float = cast(Callable[[float], str], floatToGoString)

#: The counters, by their :class:`~poolhouse.stats.PoolStats` field; each is
#: exposed as ``poolhouse_<field>_total``.
_COUNTERS: tuple[tuple[str, str], ...] = (
    ("connects", "Connections opened."),
    (
        "connect_errors",
        "Connects that failed (the creator or a connect listener raised).",
    ),
    ("checkouts", "Connections handed out."),
    ("checkins", "Connections returned, detached ones included."),
    ("invalidations", "Connections invalidated, hard or soft, for any reason."),
    (
        "recycles",
        "Connections replaced or retired for their age, use count or an expiry.",
    ),
    ("timeouts", "Checkouts that failed because no connection came in time."),
    ("disconnects", "Connections found disconnected."),
    ("returns_bad", "Returned connections discarded because their reset failed."),
)

#: The histograms, by timing kind.
_HISTOGRAMS: tuple[tuple[Timing, str, str], ...] = (
    (
        "wait",
        "poolhouse_wait_time_seconds",
        "Seconds a checkout took to hand out a connection, waiting in line and "
        "connecting included.",
    ),
    (
        "use",
        "poolhouse_use_time_seconds",
        "Seconds a connection was checked out, counted when it came back.",
    ),
    (
        "create",
        "poolhouse_create_time_seconds",
        "Seconds the creator took to open a connection.",
    ),
)

#: Guards ``_by_registry``; reentrant, as :func:`instrument` makes a
#: collector (which registers itself) while holding it.
_lock = threading.RLock()

#: The collector registered with each registry through this module: a
#: registry takes one collector per metric name, so all pools share it.
_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)


class _Histogram:
    """One timing's bucket counts (not cumulative; the last is +Inf) and sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)
        self.sum = 0.0


class _Timings:
    """A pool's timing histograms, and the observer that fills them.

    It holds no reference to the pool, so the pool (which holds the
    observer) can be collected.
    """

    __slots__ = ("_bounds", "by_kind")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.by_kind = {kind: _Histogram(len(bounds)) for kind, _, _ in _HISTOGRAMS}

    def observe(self, kind: Timing, seconds: float) -> None:
        # No lock: each update below is one read-modify-write of a list item
        # or an attribute, with no Python code (so no thread switch) between
        # the read and the write on CPython with the GIL, so none is lost.
        # A free-threaded build may lose one under contention, as it may the
        # pool's own counters.  A scrape may read the buckets and the sum one
        # observation apart; the count is the buckets' total, so these agree.
        histogram = self.by_kind[kind]
        histogram.counts[bisect_left(self._bounds, seconds)] += 1
        histogram.sum += seconds


class _Entry:
    """One pool as collected: a weak reference, its label, its timings."""

    __slots__ = ("ref", "name", "timings", "observer")

    def __init__(self, pool: AnyPool, name: str, timings: _Timings | None) -> None:
        self.ref: weakref.ref[AnyPool] = weakref.ref(pool)
        self.name = name
        self.timings = timings
        # Kept so that the same object is removed as was added.
        self.observer: TimingObserver | None = (
            timings.observe if timings is not None else None
        )


def _check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(float(b) for b in buckets)
    if not bounds:
        raise ValueError("buckets must not be empty; pass upper bounds in seconds")
    if any(not math.isfinite(b) or b < 0 for b in bounds):
        raise ValueError(
            f"buckets={list(buckets)!r} must be finite seconds >= 0; +Inf is "
            "always added"
        )
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"buckets={list(buckets)!r} must be strictly increasing")
    return bounds


class PoolCollector(Collector):
    """A ``prometheus_client`` collector for one or more pools, each labelled
    ``pool`` with its name.

    ========================================= =========================================
    metric                                    value
    ========================================= =========================================
    ``poolhouse_connections{state="idle"}``   ``stats().idle``
    ``poolhouse_connections{state="used"}``   ``stats().in_use``
    ``poolhouse_connections_max``             ``stats().max_size`` (absent: no limit)
    ``poolhouse_connections_idle_max``        ``stats().pool_size`` (absent: no limit)
    ``poolhouse_connections_idle_min``        ``stats().min_idle``
    ``poolhouse_pending_requests``            ``stats().waiting``
    ``poolhouse_<counter>_total``             ``stats().<counter>``, for ``connects``,
                                              ``connect_errors``, ``checkouts``,
                                              ``checkins``, ``invalidations``,
                                              ``recycles``, ``timeouts``,
                                              ``disconnects``, ``returns_bad``
    ``poolhouse_wait_time_seconds``           histogram: time each checkout took
    ``poolhouse_use_time_seconds``            histogram: time each connection was out
    ``poolhouse_create_time_seconds``         histogram: time each connect took
    ========================================= =========================================

    A registry takes one collector per metric name: put every pool in one
    collector (:meth:`add`), or let :func:`instrument` do it.

    :param pools: pools to collect, each under its *logging_name* (see
        :meth:`add` for pools without one).
    :param registry: a registry to register with (and to find this collector
        by, for :func:`instrument`); ``None`` (default): none, register it
        yourself.
    :param buckets: the histograms' bucket upper bounds, in seconds, strictly
        increasing (``+Inf`` is added); default 0.001 to 30.
    :param histograms: for *pools*: ``False`` leaves out their histogram
        samples, and with them the timing observer and its cost on every
        checkout.
    :raises TypeError: an item of *pools* is not a poolhouse pool.
    :raises ValueError: *buckets* is invalid; *registry* has a
        :class:`PoolCollector` already; two pools share a name.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *pools: Pool[Any] | AsyncPool[Any],
        # Qualified: the docs render this signature's annotations as written.
        registry: prometheus_client.CollectorRegistry | None = None,
        buckets: Sequence[float] = BUCKETS,
        histograms: bool = True,
    ) -> None:
        self._bounds = _check_buckets(buckets)
        self._les = [_go_float(b) for b in self._bounds] + ["+Inf"]
        #: Guards changes to ``_entries``; scrapes read the tuple unlocked.
        self._lock = threading.Lock()
        self._entries: tuple[_Entry, ...] = ()
        self._registry: weakref.ref[CollectorRegistry] | None = None
        #: Unregister once the last pool leaves (made by :func:`instrument`).
        self._transient = False
        if registry is not None:
            self._register(registry)
        try:
            for pool in pools:
                self.add(pool, histograms=histograms)
        except BaseException:
            self.close()
            raise

    def _register(self, registry: CollectorRegistry) -> None:
        with _lock:
            other = _by_registry.get(registry)
            if other is not None:
                raise ValueError(
                    f"{registry!r} has a PoolCollector already; add this pool to "
                    "it with its add() method, or use instrument()"
                )
            registry.register(self)
            _by_registry[registry] = self
            self._registry = weakref.ref(registry)

    def add(
        self,
        pool: Pool[Any] | AsyncPool[Any],
        *,
        pool_name: str | None = None,
        histograms: bool = True,
    ) -> None:
        """Collect *pool* too.

        :param pool: a thread or asyncio pool; it is held weakly, and left out
            once it has been garbage-collected.
        :param pool_name: its ``pool`` label; ``None`` (default): the pool's
            *logging_name*, or, for a pool without one, its class name and id
            (``QueuePool@0x7f3a...``), which changes from one process to the
            next.
        :param histograms: ``False`` leaves out the pool's histogram samples,
            and with them the timing observer and its cost on every checkout.
        :raises TypeError: *pool* is not a poolhouse pool, or *pool_name* not
            a string.
        :raises ValueError: *pool*, or another pool under the same name, is
            in this collector already.
        """
        check_pool(pool)
        name = resolve_pool_name(pool, pool_name)
        timings = _Timings(self._bounds) if histograms else None
        entry = _Entry(pool, name, timings)
        with self._lock:
            live = admit(
                self._entries, pool, name, f"collected by {self!r}", "remove()"
            )
            self._entries = (*live, entry)
        if entry.observer is not None:
            pool.add_timing_observer(entry.observer)

    def remove(self, pool: Pool[Any] | AsyncPool[Any]) -> None:
        """Stop collecting *pool*, and remove its timing observer.

        :raises ValueError: *pool* is not in this collector.
        """
        with self._lock:
            found = [e for e in self._entries if e.ref() is pool]
            if not found:
                raise ValueError(f"{pool!r} is not in {self!r}")
            self._entries = tuple(
                e for e in self._entries if e.ref() is not pool and e.ref() is not None
            )
        if found[0].observer is not None:
            pool.remove_timing_observer(found[0].observer)

    def __contains__(self, pool: object) -> bool:
        return any(e.ref() is pool for e in self._entries)

    def __len__(self) -> int:
        """The number of pools collected (collected pools not counted)."""
        return sum(1 for e in self._entries if e.ref() is not None)

    def close(self) -> None:
        """Remove every pool and, if this collector registered itself,
        unregister it.  Calling it again does nothing."""
        with self._lock:
            entries, self._entries = self._entries, ()
        for entry in entries:
            pool = entry.ref()
            if pool is not None and entry.observer is not None:
                pool.remove_timing_observer(entry.observer)
        with _lock:
            registry = self._registry() if self._registry is not None else None
            self._registry = None
            if registry is not None:
                registry.unregister(self)
                if _by_registry.get(registry) is self:
                    del _by_registry[registry]

    def describe(self) -> list[Metric]:
        """The metric families this collector yields, without samples: lets a
        registry check the names when the collector is registered."""
        return list(self._families([]))

    def collect(self) -> list[Metric]:
        """Read every pool's stats and timings now, as metric families."""
        rows = []
        for entry in self._entries:
            pool = entry.ref()
            if pool is not None:
                rows.append((entry, pool.stats()))
        return list(self._families(rows))

    def _families(self, rows: list[tuple[_Entry, PoolStats]]) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "poolhouse_connections",
            "Connections open, by state: idle in the pool, or used (checked out).",
            labels=["pool", "state"],
        )
        for entry, stats in rows:
            connections.add_metric([entry.name, "idle"], float(stats.idle))
            connections.add_metric([entry.name, "used"], float(stats.in_use))
        yield connections
        yield self._gauge(
            rows,
            "poolhouse_connections_max",
            "The most connections the pool may have open (absent: no limit).",
            lambda stats: stats.max_size,
        )
        yield self._gauge(
            rows,
            "poolhouse_connections_idle_max",
            "The most idle connections the pool keeps (absent: no limit).",
            lambda stats: stats.pool_size,
        )
        yield self._gauge(
            rows,
            "poolhouse_connections_idle_min",
            "The idle connections a background worker keeps open.",
            lambda stats: stats.min_idle,
        )
        yield self._gauge(
            rows,
            "poolhouse_pending_requests",
            "Callers waiting in line for a connection.",
            lambda stats: stats.waiting,
        )
        for field, documentation in _COUNTERS:
            counter = CounterMetricFamily(
                f"poolhouse_{field}", documentation, labels=["pool"]
            )
            for entry, stats in rows:
                counter.add_metric([entry.name], float(getattr(stats, field)))
            yield counter
        for kind, name, documentation in _HISTOGRAMS:
            family = HistogramMetricFamily(
                name, documentation, labels=["pool"], unit="seconds"
            )
            for entry, _ in rows:
                if entry.timings is None:
                    continue  # added with histograms=False
                histogram = entry.timings.by_kind[kind]
                counts = [float(c) for c in histogram.counts]  # one copy
                cumulative = itertools.accumulate(counts)
                family.add_metric(
                    [entry.name],
                    list(zip(self._les, cumulative, strict=True)),
                    histogram.sum,
                )
            yield family

    @staticmethod
    def _gauge(
        rows: list[tuple[_Entry, PoolStats]],
        name: str,
        documentation: str,
        value: Callable[[PoolStats], int | None],
    ) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily(name, documentation, labels=["pool"])
        for entry, stats in rows:
            figure = value(stats)
            if figure is not None:
                gauge.add_metric([entry.name], float(figure))
        return gauge

    def __repr__(self) -> str:
        names = ", ".join(repr(e.name) for e in self._entries if e.ref() is not None)
        return f"<{type(self).__name__} [{names}] at {id(self):#x}>"


class Instrumentation:
    """A pool collected through a registry, as :func:`instrument` returns
    it.

    Dropping this object does not stop the collection; :meth:`uninstrument`
    does.
    """

    def __init__(
        self, collector: PoolCollector, pool: Pool[Any] | AsyncPool[Any]
    ) -> None:
        self._collector = collector
        self._ref: weakref.ref[AnyPool] | None = weakref.ref(pool)

    @property
    def collector(self) -> PoolCollector:
        """The registry's collector the pool was added to."""
        return self._collector

    @property
    def pool(self) -> Pool[Any] | AsyncPool[Any] | None:
        """The pool, or ``None`` once it was uninstrumented or collected."""
        return self._ref() if self._ref is not None else None

    def uninstrument(self) -> None:
        """Remove the pool from the collector (and its timing observer);
        the collector :func:`instrument` made is unregistered once its last
        pool leaves.  Calling it again does nothing."""
        with _lock:
            ref, self._ref = self._ref, None
            pool = ref() if ref is not None else None
            collector = self._collector
            if pool is not None and pool in collector:
                collector.remove(pool)
            if collector._transient and not len(collector):
                collector.close()

    def __repr__(self) -> str:
        state = "active" if self._ref is not None else "uninstrumented"
        return f"<{type(self).__name__} {self._collector!r} {state}>"


def instrument(
    pool: Pool[Any] | AsyncPool[Any],
    registry: CollectorRegistry = REGISTRY,
    *,
    pool_name: str | None = None,
    histograms: bool = True,
) -> Instrumentation:
    """Collect *pool* into *registry*, with the registry's
    :class:`PoolCollector`, made and registered at its first pool.

    :param pool: a thread or asyncio pool; it is held weakly.
    :param registry: default: ``prometheus_client``'s global ``REGISTRY``.
    :param pool_name: its ``pool`` label, as for :meth:`PoolCollector.add`.
    :param histograms: ``False`` leaves out the pool's histogram samples, and
        with them the timing observer and its cost on every checkout.
    :return: the handle whose :meth:`~Instrumentation.uninstrument` stops it.
    :raises TypeError: *pool* is not a poolhouse pool, or *pool_name* not a
        string.
    :raises ValueError: *pool*, or another pool under the same name, is
        collected into *registry* already; *registry* has metrics of these
        names from another collector (``prometheus_client``'s
        ``DuplicateTimeseries``).

    .. versionadded:: 0.1.0
    """
    check_pool(pool)
    with _lock:
        collector = _by_registry.get(registry)
        if collector is None:
            collector = PoolCollector(registry=registry)
            collector._transient = True
        try:
            collector.add(pool, pool_name=pool_name, histograms=histograms)
        except BaseException:
            if collector._transient and not len(collector):
                collector.close()
            raise
    return Instrumentation(collector, pool)
