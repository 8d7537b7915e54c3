"""poolhouse.metrics: OpenTelemetry and Prometheus export of a pool's figures.

The figures are read back the way a user's system reads them: through the
OpenTelemetry SDK's in-memory reader and a ``prometheus_client`` registry.
The pools run on the fake clock, and the creator moves it, so every timing is
known exactly (the values are binary fractions: their sums are exact too).
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.export import Metric
from opentelemetry.sdk.metrics.export import NumberDataPoint
from opentelemetry.sdk.metrics.export import Sum

import poolhouse
from poolhouse import AssertionPool
from poolhouse import NullPool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import exc
from poolhouse.aio import AsyncQueuePool
from poolhouse.metrics import opentelemetry as otel_metrics
from poolhouse.metrics import prometheus as prom_metrics
from poolhouse.metrics._common import BUCKETS

from .conftest import FakeClock
from .fakedbapi import FakeAsyncDBAPI
from .fakedbapi import FakeAsyncDialect
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError

#: How long the creator takes on the fake clock.
CREATE = 0.125
#: Bound of every wait and join.
WAIT = 5.0
#: The histogram metrics, by timing kind: OpenTelemetry and Prometheus names.
OTEL_HISTOGRAMS = {
    "create": "db.client.connection.create_time",
    "wait": "db.client.connection.wait_time",
    "use": "db.client.connection.use_time",
}
PROM_HISTOGRAMS = {
    "create": "poolhouse_create_time_seconds",
    "wait": "poolhouse_wait_time_seconds",
    "use": "poolhouse_use_time_seconds",
}
COUNTERS = (
    "connects",
    "connect_errors",
    "checkouts",
    "checkins",
    "invalidations",
    "recycles",
    "timeouts",
    "disconnects",
    "returns_bad",
)


# -- reading the figures back --------------------------------------------------


class OTel:
    """An SDK meter provider with an in-memory reader; each read collects."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.reader], shutdown_on_exit=False
        )

    def collect(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    @staticmethod
    def points(metrics: dict[str, Metric], name: str) -> dict[frozenset[Any], Any]:
        """The data points of *name*, by attribute set (none: no points)."""
        if name not in metrics:
            return {}
        return {
            frozenset((p.attributes or {}).items()): p
            for p in metrics[name].data.data_points
        }

    @classmethod
    def value(
        cls, metrics: dict[str, Metric], name: str, pool: str, **attributes: str
    ) -> float | None:
        key = {"db.client.connection.pool.name": pool}
        key.update({f"db.client.connection.{k}": v for k, v in attributes.items()})
        point = cls.points(metrics, name).get(frozenset(key.items()))
        if point is None:
            return None
        assert isinstance(point, NumberDataPoint)
        return point.value

    @classmethod
    def histogram(
        cls, metrics: dict[str, Metric], name: str, pool: str
    ) -> HistogramDataPoint:
        key = frozenset({"db.client.connection.pool.name": pool}.items())
        point = cls.points(metrics, name)[key]
        assert isinstance(point, HistogramDataPoint)
        return point


@pytest.fixture
def otel() -> Iterator[OTel]:
    sdk = OTel()
    yield sdk
    sdk.provider.shutdown()


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


def prom(
    registry: prometheus_client.CollectorRegistry, name: str, **labels: str
) -> Any:
    return registry.get_sample_value(name, labels)


def bucket_counts(values: list[float]) -> list[int]:
    """How many of *values* fall in each bucket (upper bound included), the
    last one +Inf: worked out without bisect, to check the exporters'."""
    counts = []
    lower = -1.0
    for upper in (*BUCKETS, float("inf")):
        counts.append(sum(1 for v in values if lower < v <= upper))
        lower = upper
    return counts


def go_float(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


# -- a workload whose every figure is known ------------------------------------


class Expected:
    """What a workload leaves behind: timings, counters and, at the moment
    one caller waits in line, the pool's state."""

    def __init__(
        self,
        *,
        create: list[float],
        wait: list[float],
        use: list[float],
        counters: dict[str, int],
        queued: dict[str, int],
        final: dict[str, int],
        limits: dict[str, int],
        queued_timings: dict[str, int],
    ) -> None:
        self.timings = {"create": create, "wait": wait, "use": use}
        self.counters = counters
        self.queued = queued
        self.final = final
        self.limits = limits
        #: The number of each timing when the caller was in line.
        self.queued_timings = queued_timings


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll *predicate* until it holds; ``False`` if it did not within *timeout*."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.005)
    return True


def make_queue_pool(dbapi: FakeDBAPI, clock: FakeClock, **kwargs: Any) -> QueuePool:
    def creator() -> Any:
        clock.advance(CREATE)
        return dbapi.connect()

    kwargs.setdefault("logging_name", "main")
    pool = QueuePool(
        creator,
        dialect=FakeDialect(),
        pool_size=2,
        max_overflow=1,
        timeout=0.05,
        **kwargs,
    )
    pool._clock = clock
    return pool


#: What :func:`run_workload` leaves behind.
WORKLOAD = Expected(
    create=[CREATE] * 4,
    wait=[CREATE, 0.0, CREATE, CREATE, CREATE, 0.25],
    use=[0.5, 0.0, 0.25, 2.0, 2.5, 2.375],
    counters={
        "connects": 4,
        "connect_errors": 1,
        "checkouts": 6,
        "checkins": 6,
        "invalidations": 1,
        "recycles": 0,
        "timeouts": 1,
        "disconnects": 0,
        "returns_bad": 0,
    },
    queued={"idle": 0, "used": 3, "pending": 1, "timeouts": 1},
    final={"idle": 2, "used": 0, "pending": 0, "timeouts": 1},
    limits={"max": 3, "idle_max": 2, "idle_min": 0},
    queued_timings={"create": 4, "wait": 5, "use": 2},
)


def run_workload(
    pool: QueuePool,
    dbapi: FakeDBAPI,
    clock: FakeClock,
    while_queued: Callable[[], object],
) -> None:
    """A failed connect, checkouts, an invalidation, a timeout and a caller
    waiting in line (*while_queued* runs then), on ``pool_size=2,
    max_overflow=1``: see :data:`WORKLOAD` for the figures."""
    dbapi.refuse_connect = FakeOperationalError("connection refused")
    with pytest.raises(FakeOperationalError):
        pool.connect()
    dbapi.refuse_connect = None

    conn = pool.connect()  # opens one: create 0.125, wait 0.125
    clock.advance(0.5)
    conn.close()  # use 0.5
    conn = pool.connect()  # the idle one: wait 0
    conn.invalidate()  # use 0

    c1 = pool.connect()  # each opens one (c1 re-fills the invalidated record)
    c2 = pool.connect()
    c3 = pool.connect()
    with pytest.raises(exc.TimeoutError):
        pool.connect()  # a real 0.05 s timeout: the behaviour under test

    # A caller in line: long enough to read the figures while it waits (the
    # pool has no per-call timeout).
    pool._timeout = WAIT
    got, release = threading.Event(), threading.Event()

    def take() -> None:
        with pool.connect():
            got.set()
            assert release.wait(WAIT)

    waiter = threading.Thread(target=take)
    waiter.start()
    assert wait_until(lambda: pool.stats().waiting == 1)
    while_queued()
    clock.advance(0.25)
    c3.close()  # use 0.25, handed to the waiter: its wait is 0.25
    assert got.wait(WAIT)
    clock.advance(2.0)
    release.set()  # the waiter's use: 2.0
    waiter.join(WAIT)
    assert not waiter.is_alive()
    c1.close()  # use 2.5
    c2.close()  # use 2.375


def check_stats(pool: Any, expected: Expected) -> None:
    """The workload did what it says (so the exporters are checked against
    known figures, not only against stats())."""
    stats = pool.stats()
    for field, value in expected.counters.items():
        assert getattr(stats, field) == value, field
    assert stats.use_time_total == sum(expected.timings["use"])
    assert stats.use_time_max == max(expected.timings["use"])
    assert (stats.idle, stats.in_use, stats.waiting) == (
        expected.final["idle"],
        expected.final["used"],
        expected.final["pending"],
    )


# -- checking each exporter against it -----------------------------------------


def check_otel_state(
    metrics: dict[str, Metric], name: str, state: dict[str, int], limits: dict[str, int]
) -> None:
    assert (
        OTel.value(metrics, "db.client.connection.count", name, state="idle")
        == (state["idle"])
    )
    assert (
        OTel.value(metrics, "db.client.connection.count", name, state="used")
        == (state["used"])
    )
    assert (
        OTel.value(metrics, "db.client.connection.pending_requests", name)
        == state["pending"]
    )
    assert (
        OTel.value(metrics, "db.client.connection.timeouts", name)
        == (state["timeouts"])
    )
    assert OTel.value(metrics, "db.client.connection.max", name) == limits["max"]
    assert (
        OTel.value(metrics, "db.client.connection.idle.max", name)
        == (limits["idle_max"])
    )
    assert (
        OTel.value(metrics, "db.client.connection.idle.min", name)
        == (limits["idle_min"])
    )


def check_otel_histograms(
    metrics: dict[str, Metric], name: str, timings: dict[str, list[float]]
) -> None:
    for kind, values in timings.items():
        point = OTel.histogram(metrics, OTEL_HISTOGRAMS[kind], name)
        assert point.count == len(values), kind
        assert point.sum == sum(values), kind
        assert point.min == min(values), kind
        assert point.max == max(values), kind
        assert list(point.explicit_bounds) == list(BUCKETS), kind
        assert list(point.bucket_counts) == bucket_counts(values), kind


def check_prom_state(
    registry: prometheus_client.CollectorRegistry,
    name: str,
    state: dict[str, int],
    limits: dict[str, int],
) -> None:
    assert (
        prom(registry, "poolhouse_connections", pool=name, state="idle")
        == (state["idle"])
    )
    assert (
        prom(registry, "poolhouse_connections", pool=name, state="used")
        == (state["used"])
    )
    assert prom(registry, "poolhouse_pending_requests", pool=name) == state["pending"]
    assert prom(registry, "poolhouse_timeouts_total", pool=name) == state["timeouts"]
    assert prom(registry, "poolhouse_connections_max", pool=name) == limits["max"]
    assert (
        prom(registry, "poolhouse_connections_idle_max", pool=name)
        == (limits["idle_max"])
    )
    assert (
        prom(registry, "poolhouse_connections_idle_min", pool=name)
        == (limits["idle_min"])
    )


def check_prom_histograms(
    registry: prometheus_client.CollectorRegistry,
    name: str,
    timings: dict[str, list[float]],
) -> None:
    for kind, values in timings.items():
        metric = PROM_HISTOGRAMS[kind]
        assert prom(registry, f"{metric}_count", pool=name) == len(values), kind
        assert prom(registry, f"{metric}_sum", pool=name) == sum(values), kind
        cumulative = 0
        for bound, count in zip(
            (*BUCKETS, float("inf")), bucket_counts(values), strict=True
        ):
            cumulative += count
            assert (
                prom(registry, f"{metric}_bucket", pool=name, le=go_float(bound))
                == cumulative
            ), (kind, bound)


def check_prom_counters(
    registry: prometheus_client.CollectorRegistry, name: str, stats: Any
) -> None:
    for field in COUNTERS:
        assert prom(registry, f"poolhouse_{field}_total", pool=name) == getattr(
            stats, field
        ), field


# -- the workload, read back ---------------------------------------------------


def test_queuepool_workload_read_back_through_otel(
    otel: OTel, dbapi: FakeDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(dbapi, clock)
    handle = otel_metrics.instrument(pool, otel.provider)
    assert handle.pool_name == "main" and handle.pool is pool
    seen: dict[str, dict[str, Metric]] = {}
    run_workload(pool, dbapi, clock, lambda: seen.setdefault("queued", otel.collect()))
    expected = WORKLOAD
    check_stats(pool, expected)

    queued = seen["queued"]
    check_otel_state(queued, "main", expected.queued, expected.limits)
    for kind, count in expected.queued_timings.items():
        assert OTel.histogram(queued, OTEL_HISTOGRAMS[kind], "main").count == count

    final = otel.collect()
    check_otel_state(final, "main", expected.final, expected.limits)
    check_otel_histograms(final, "main", expected.timings)
    stats = pool.stats()
    assert OTel.histogram(final, OTEL_HISTOGRAMS["wait"], "main").count == (
        stats.checkouts
    )
    assert OTel.histogram(final, OTEL_HISTOGRAMS["use"], "main").count == (
        stats.checkins
    )
    assert OTel.histogram(final, OTEL_HISTOGRAMS["use"], "main").sum == (
        stats.use_time_total
    )
    assert OTel.histogram(final, OTEL_HISTOGRAMS["create"], "main").count == (
        stats.connects
    )


def test_queuepool_workload_read_back_through_prometheus(
    registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(dbapi, clock)
    prom_metrics.instrument(pool, registry)
    expected = WORKLOAD

    def read_while_queued() -> None:
        check_prom_state(registry, "main", expected.queued, expected.limits)
        for kind, count in expected.queued_timings.items():
            assert (
                prom(registry, f"{PROM_HISTOGRAMS[kind]}_count", pool="main") == count
            )

    run_workload(pool, dbapi, clock, read_while_queued)
    check_stats(pool, expected)

    check_prom_state(registry, "main", expected.final, expected.limits)
    check_prom_histograms(registry, "main", expected.timings)
    stats = pool.stats()
    check_prom_counters(registry, "main", stats)
    for field, value in expected.counters.items():
        assert prom(registry, f"poolhouse_{field}_total", pool="main") == value
    assert prom(registry, "poolhouse_use_time_seconds_sum", pool="main") == (
        stats.use_time_total
    )
    assert prom(registry, "poolhouse_wait_time_seconds_count", pool="main") == (
        stats.checkouts
    )


def test_both_exporters_on_one_pool_agree(
    otel: OTel,
    registry: prometheus_client.CollectorRegistry,
    dbapi: FakeDBAPI,
    clock: FakeClock,
) -> None:
    pool = make_queue_pool(dbapi, clock)
    otel_metrics.instrument(pool, otel.provider)
    prom_metrics.instrument(pool, registry)
    run_workload(pool, dbapi, clock, lambda: None)
    check_stats(pool, WORKLOAD)
    metrics = otel.collect()
    check_otel_histograms(metrics, "main", WORKLOAD.timings)
    check_otel_state(metrics, "main", WORKLOAD.final, WORKLOAD.limits)
    check_prom_histograms(registry, "main", WORKLOAD.timings)
    check_prom_state(registry, "main", WORKLOAD.final, WORKLOAD.limits)
    check_prom_counters(registry, "main", pool.stats())


@pytest.mark.asyncio
async def test_asyncio_queuepool_workload_read_back(
    otel: OTel, registry: prometheus_client.CollectorRegistry, clock: FakeClock
) -> None:
    adbapi = FakeAsyncDBAPI()

    async def creator() -> Any:
        clock.advance(CREATE)
        return await adbapi.connect()

    pool = AsyncQueuePool(
        creator,
        dialect=FakeAsyncDialect(),
        pool_size=1,
        max_overflow=0,
        timeout=0.05,
        logging_name="aio",
    )
    pool._clock = clock
    otel_metrics.instrument(pool, otel.provider)
    prom_metrics.instrument(pool, registry)

    adbapi.refuse_connect = FakeOperationalError("connection refused")
    with pytest.raises(FakeOperationalError):
        await pool.connect()
    adbapi.refuse_connect = None
    conn = await pool.connect()  # create 0.125, wait 0.125
    clock.advance(0.5)
    await conn.close()  # use 0.5
    conn = await pool.connect()  # wait 0
    await conn.invalidate()  # use 0
    held = await pool.connect()  # re-fills the record: create 0.125, wait 0.125
    with pytest.raises(exc.TimeoutError):
        await pool.connect()

    pool._timeout = WAIT  # long enough to read the figures while it waits
    got, release = asyncio.Event(), asyncio.Event()

    async def take() -> None:
        async with pool.connect():
            got.set()
            await release.wait()

    task = asyncio.create_task(take())
    for _ in range(200):
        if pool.stats().waiting == 1:
            break
        await asyncio.sleep(0)
    assert pool.stats().waiting == 1
    state = {"idle": 0, "used": 1, "pending": 1, "timeouts": 1}
    limits = {"max": 1, "idle_max": 1, "idle_min": 0}
    check_otel_state(otel.collect(), "aio", state, limits)
    check_prom_state(registry, "aio", state, limits)

    clock.advance(0.25)
    await held.close()  # use 0.25; the task's wait: 0.25
    await asyncio.wait_for(got.wait(), WAIT)
    clock.advance(2.0)
    release.set()  # the task's use: 2.0
    await asyncio.wait_for(task, WAIT)

    timings = {
        "create": [CREATE, CREATE],
        "wait": [CREATE, 0.0, CREATE, 0.25],
        "use": [0.5, 0.0, 0.25, 2.0],
    }
    stats = pool.stats()
    assert (stats.connects, stats.connect_errors, stats.invalidations) == (2, 1, 1)
    assert (stats.checkouts, stats.checkins, stats.timeouts) == (4, 4, 1)
    state = {"idle": 1, "used": 0, "pending": 0, "timeouts": 1}
    metrics = otel.collect()
    check_otel_state(metrics, "aio", state, limits)
    check_otel_histograms(metrics, "aio", timings)
    check_prom_state(registry, "aio", state, limits)
    check_prom_histograms(registry, "aio", timings)
    check_prom_counters(registry, "aio", stats)
    await pool.close()


# -- names, units, types -------------------------------------------------------


def test_otel_instruments_follow_the_semantic_conventions(
    otel: OTel, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    otel_metrics.instrument(pool, otel.provider)
    pool.connect().close()
    metrics = otel.collect()
    units = {
        "db.client.connection.count": "{connection}",
        "db.client.connection.idle.max": "{connection}",
        "db.client.connection.idle.min": "{connection}",
        "db.client.connection.max": "{connection}",
        "db.client.connection.pending_requests": "{request}",
        "db.client.connection.timeouts": "{timeout}",
        "db.client.connection.create_time": "s",
        "db.client.connection.wait_time": "s",
        "db.client.connection.use_time": "s",
    }
    assert {name: metric.unit for name, metric in metrics.items()} == units
    assert all(metric.description for metric in metrics.values())
    for name in units:
        data = metrics[name].data
        if name.endswith("_time"):
            assert not isinstance(data, Sum)
        else:
            assert isinstance(data, Sum), name
            # The timeouts only grow; the other counts go up and down.
            assert data.is_monotonic == (name == "db.client.connection.timeouts")
    assert set(OTel.points(metrics, "db.client.connection.count")) == {
        frozenset(
            {
                "db.client.connection.pool.name": "main",
                "db.client.connection.state": state,
            }.items()
        )
        for state in ("idle", "used")
    }
    collected = otel.reader.get_metrics_data()
    assert collected is not None
    scopes = [s.scope.name for r in collected.resource_metrics for s in r.scope_metrics]
    assert scopes == ["poolhouse"]


def test_prometheus_families_and_types(
    registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    prom_metrics.instrument(pool, registry)
    types = {family.name: family.type for family in registry.collect()}
    assert types == {
        "poolhouse_connections": "gauge",
        "poolhouse_connections_max": "gauge",
        "poolhouse_connections_idle_max": "gauge",
        "poolhouse_connections_idle_min": "gauge",
        "poolhouse_pending_requests": "gauge",
        **{f"poolhouse_{field}": "counter" for field in COUNTERS},
        "poolhouse_wait_time_seconds": "histogram",
        "poolhouse_use_time_seconds": "histogram",
        "poolhouse_create_time_seconds": "histogram",
    }
    text = prometheus_client.generate_latest(registry).decode()
    assert 'poolhouse_checkouts_total{pool="main"} 0.0' in text
    assert 'poolhouse_wait_time_seconds_bucket{le="+Inf",pool="main"} 0.0' in text


# -- limits --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "limits"),
    [
        pytest.param(
            lambda c: QueuePool(c, dialect=FakeDialect(), pool_size=3, max_overflow=2),
            {"max": 5, "idle_max": 3, "idle_min": 0},
            id="QueuePool",
        ),
        pytest.param(
            lambda c: QueuePool(c, dialect=FakeDialect(), pool_size=3, max_overflow=-1),
            {"max": None, "idle_max": 3, "idle_min": 0},
            id="QueuePool-no-overflow-limit",
        ),
        pytest.param(
            lambda c: QueuePool(c, dialect=FakeDialect(), pool_size=0),
            {"max": None, "idle_max": None, "idle_min": 0},
            id="QueuePool-no-limit",
        ),
        pytest.param(
            lambda c: QueuePool(
                c, dialect=FakeDialect(), pool_size=2, background=True, min_idle=1
            ),
            {"max": 12, "idle_max": 2, "idle_min": 1},
            id="QueuePool-min_idle",
        ),
        pytest.param(
            lambda c: NullPool(c, dialect=FakeDialect()),
            {"max": None, "idle_max": None, "idle_min": 0},
            id="NullPool",
        ),
    ],
)
def test_limits_and_no_limit(
    make: Callable[[Any], Any],
    limits: dict[str, int | None],
    otel: OTel,
    registry: prometheus_client.CollectorRegistry,
    dbapi: FakeDBAPI,
) -> None:
    """A limit is reported as its stats() figure; no limit, as no point."""
    pool = make(dbapi.connect)
    stats = pool.stats()
    assert (stats.max_size, stats.pool_size, stats.min_idle) == (
        limits["max"],
        limits["idle_max"],
        limits["idle_min"],
    )
    handle = otel_metrics.instrument(pool, otel.provider, pool_name="p")
    prom_metrics.instrument(pool, registry, pool_name="p")
    metrics = otel.collect()
    assert OTel.value(metrics, "db.client.connection.max", "p") == limits["max"]
    assert (
        OTel.value(metrics, "db.client.connection.idle.max", "p")
        == (limits["idle_max"])
    )
    assert (
        OTel.value(metrics, "db.client.connection.idle.min", "p")
        == (limits["idle_min"])
    )
    assert prom(registry, "poolhouse_connections_max", pool="p") == limits["max"]
    assert (
        prom(registry, "poolhouse_connections_idle_max", pool="p")
        == (limits["idle_max"])
    )
    assert (
        prom(registry, "poolhouse_connections_idle_min", pool="p")
        == (limits["idle_min"])
    )
    handle.uninstrument()
    pool.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda c: QueuePool(c, dialect=FakeDialect()), id="QueuePool"),
        pytest.param(lambda c: NullPool(c, dialect=FakeDialect()), id="NullPool"),
        pytest.param(lambda c: StaticPool(c, dialect=FakeDialect()), id="StaticPool"),
        pytest.param(
            lambda c: SingletonThreadPool(c, dialect=FakeDialect()),
            id="SingletonThreadPool",
        ),
        pytest.param(
            lambda c: AssertionPool(c, dialect=FakeDialect()), id="AssertionPool"
        ),
    ],
)
def test_every_pool_class_reports_its_connections(
    make: Callable[[Any], Any],
    otel: OTel,
    registry: prometheus_client.CollectorRegistry,
    dbapi: FakeDBAPI,
) -> None:
    pool = make(dbapi.connect)
    otel_metrics.instrument(pool, otel.provider, pool_name="p")
    prom_metrics.instrument(pool, registry, pool_name="p")
    with pool.connect():
        metrics = otel.collect()
        assert OTel.value(metrics, "db.client.connection.count", "p", state="used") == 1
        assert prom(registry, "poolhouse_connections", pool="p", state="used") == 1
    stats = pool.stats()
    metrics = otel.collect()
    assert OTel.value(metrics, "db.client.connection.count", "p", state="used") == 0
    assert OTel.value(metrics, "db.client.connection.count", "p", state="idle") == (
        stats.idle
    )
    assert prom(registry, "poolhouse_connections", pool="p", state="idle") == (
        stats.idle
    )
    for kind in ("wait", "use", "create"):
        assert OTel.histogram(metrics, OTEL_HISTOGRAMS[kind], "p").count == 1
        assert prom(registry, f"{PROM_HISTOGRAMS[kind]}_count", pool="p") == 1
    pool.close()


# -- names ---------------------------------------------------------------------


def test_pool_without_logging_name_is_named_by_class_and_id(
    otel: OTel, registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect())
    assert pool._logging_name is None
    name = f"QueuePool@{id(pool):#x}"
    assert otel_metrics.instrument(pool, otel.provider).pool_name == name
    prom_metrics.instrument(pool, registry)
    pool.connect().close()
    assert OTel.histogram(otel.collect(), OTEL_HISTOGRAMS["use"], name).count == 1
    assert prom(registry, "poolhouse_checkouts_total", pool=name) == 1


def test_pool_name_overrides_logging_name(
    otel: OTel, registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    assert otel_metrics.instrument(pool, otel.provider, pool_name="orders").pool_name
    prom_metrics.instrument(pool, registry, pool_name="orders")
    assert OTel.value(otel.collect(), "db.client.connection.max", "orders") == 15
    assert prom(registry, "poolhouse_connections_max", pool="orders") == 15
    assert prom(registry, "poolhouse_connections_max", pool="main") is None


@pytest.mark.parametrize("module", [otel_metrics, prom_metrics])
def test_bad_arguments(module: Any, dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect())
    sink = MeterProvider(shutdown_on_exit=False) if module is otel_metrics else None
    target = sink if sink is not None else prometheus_client.CollectorRegistry()
    with pytest.raises(TypeError, match="expected a poolhouse pool"):
        module.instrument(object(), target)
    with pytest.raises(TypeError, match="pool_name must be a str"):
        module.instrument(pool, target, pool_name=1)
    with pytest.raises(ValueError, match="pool_name must not be empty"):
        module.instrument(pool, target, pool_name="")
    assert pool._observers == ()


# -- instrumenting twice, uninstrumenting --------------------------------------


def test_otel_instrumenting_twice(otel: OTel, dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    other = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    handle = otel_metrics.instrument(pool, otel.provider)
    with pytest.raises(ValueError, match="already instrumented"):
        otel_metrics.instrument(pool, otel.provider)
    with pytest.raises(ValueError, match="give each pool its own logging_name"):
        otel_metrics.instrument(other, otel.provider)
    assert len(pool._observers) == 1 and other._observers == ()

    # Another provider is another set of instruments: fine.
    second = OTel()
    try:
        otel_metrics.instrument(pool, second.provider)
        assert len(pool._observers) == 2
        pool.connect().close()
        for sdk in (otel, second):
            assert (
                OTel.histogram(sdk.collect(), OTEL_HISTOGRAMS["use"], "main").count == 1
            )
    finally:
        second.provider.shutdown()

    # Two pools, two names, one provider: one set of instruments for both.
    third = otel_metrics.instrument(other, otel.provider, pool_name="other")
    other.connect().close()
    metrics = otel.collect()
    assert OTel.histogram(metrics, OTEL_HISTOGRAMS["use"], "other").count == 1
    assert OTel.histogram(metrics, OTEL_HISTOGRAMS["use"], "main").count == 1
    assert len(OTel.points(metrics, "db.client.connection.count")) == 4

    handle.uninstrument()
    otel_metrics.instrument(pool, otel.provider)  # again, once uninstrumented
    third.uninstrument()


def test_otel_uninstrument_stops_reporting(otel: OTel, dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    handle = otel_metrics.instrument(pool, otel.provider)
    pool.connect().close()
    assert len(pool._observers) == 1
    handle.uninstrument()
    assert not pool._observers and handle.pool is None
    assert "uninstrumented" in repr(handle)
    pool.connect().close()
    metrics = otel.collect()
    # Observable points are gone; the SDK keeps the histogram's cumulative
    # point, which no longer grows.
    assert OTel.points(metrics, "db.client.connection.count") == {}
    assert OTel.points(metrics, "db.client.connection.timeouts") == {}
    for kind in ("wait", "use", "create"):
        assert OTel.histogram(metrics, OTEL_HISTOGRAMS[kind], "main").count == 1
    handle.uninstrument()  # again: nothing to do
    assert pool.stats().checkouts == 2


def test_prometheus_instrumenting_twice_and_uninstrument(
    registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    other = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    first = prom_metrics.instrument(pool, registry)
    with pytest.raises(ValueError, match="already"):
        prom_metrics.instrument(pool, registry)
    with pytest.raises(ValueError, match="give each pool its own logging_name"):
        prom_metrics.instrument(other, registry)
    second = prom_metrics.instrument(other, registry, pool_name="other")
    assert first.collector is second.collector and len(first.collector) == 2
    pool.connect().close()
    other.connect().close()
    other.connect().close()
    assert prom(registry, "poolhouse_checkouts_total", pool="main") == 1
    assert prom(registry, "poolhouse_checkouts_total", pool="other") == 2

    first.uninstrument()
    assert not pool._observers and first.pool is None
    pool.connect().close()
    assert prom(registry, "poolhouse_checkouts_total", pool="main") is None
    assert prom(registry, "poolhouse_checkouts_total", pool="other") == 2
    first.uninstrument()  # again: nothing to do

    # The collector instrument() made leaves the registry with its last pool.
    second.uninstrument()
    assert other._observers == ()
    assert list(registry.collect()) == []
    again = prom_metrics.instrument(pool, registry)
    assert prom(registry, "poolhouse_checkouts_total", pool="main") == 2
    again.uninstrument()


def test_prometheus_collector_made_by_hand(
    registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    one = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="one")
    two = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="two")
    collector = prom_metrics.PoolCollector(one, registry=registry, buckets=[0.5, 1])
    assert one in collector and two not in collector
    with pytest.raises(ValueError, match="has a PoolCollector already"):
        prom_metrics.PoolCollector(two, registry=registry)
    assert two._observers == ()
    # instrument() adds to the registry's collector, and leaves it registered.
    handle = prom_metrics.instrument(two, registry)
    assert handle.collector is collector and len(collector) == 2
    two.connect().close()
    assert (
        prom(registry, "poolhouse_use_time_seconds_bucket", pool="two", le="0.5") == 1
    )
    assert (
        prom(registry, "poolhouse_use_time_seconds_bucket", pool="two", le="1.0") == 1
    )
    handle.uninstrument()
    assert len(collector) == 1
    assert prom(registry, "poolhouse_checkouts_total", pool="one") == 0
    collector.remove(one)
    with pytest.raises(ValueError, match="is not in"):
        collector.remove(one)
    collector.add(one, pool_name="first")
    collector.close()
    assert one._observers == () and list(registry.collect()) == []
    collector.close()  # again: nothing to do

    # Not registered anywhere: the caller registers it.
    free = prom_metrics.PoolCollector(one, two)
    registry.register(free)
    assert prom(registry, "poolhouse_checkouts_total", pool="two") == 1
    registry.unregister(free)
    free.close()


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ([], "must not be empty"),
        ([1.0, 0.5], "strictly increasing"),
        ([0.1, 0.1], "strictly increasing"),
        ([-1.0], "finite seconds >= 0"),
        ([1.0, float("inf")], "finite seconds >= 0"),
    ],
)
def test_prometheus_bad_buckets(buckets: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prom_metrics.PoolCollector(buckets=buckets)


def test_histograms_off(
    otel: OTel, registry: prometheus_client.CollectorRegistry, dbapi: FakeDBAPI
) -> None:
    """No observer at all: the pool's checkouts pay nothing for the metrics."""
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="main")
    otel_metrics.instrument(pool, otel.provider, histograms=False)
    prom_metrics.instrument(pool, registry, histograms=False)
    assert pool._observers == () and not pool._extras
    pool.connect().close()
    metrics = otel.collect()
    assert OTel.value(metrics, "db.client.connection.count", "main", state="idle") == 1
    assert "db.client.connection.use_time" not in metrics
    assert prom(registry, "poolhouse_checkouts_total", pool="main") == 1
    assert prom(registry, "poolhouse_use_time_seconds_count", pool="main") is None

    # Per pool: another pool of the same collector has its histograms.
    other = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="other")
    prom_metrics.instrument(other, registry)
    other.connect().close()
    assert prom(registry, "poolhouse_use_time_seconds_count", pool="other") == 1
    assert prom(registry, "poolhouse_use_time_seconds_count", pool="main") is None

    # A collector made by hand: the flag applies to the pools it is given.
    third = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="third")
    collector = prom_metrics.PoolCollector(third, histograms=False)
    assert third._observers == ()
    collector.close()


# -- garbage collection --------------------------------------------------------


@pytest.mark.parametrize("exporter", ["otel", "prometheus"])
def test_instrumented_pool_can_be_garbage_collected(
    exporter: str,
    otel: OTel,
    registry: prometheus_client.CollectorRegistry,
    dbapi: FakeDBAPI,
) -> None:
    pool = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="gone")
    if exporter == "otel":
        handle: Any = otel_metrics.instrument(pool, otel.provider)
    else:
        handle = prom_metrics.instrument(pool, registry)
    pool.connect().close()
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    assert handle.pool is None
    # The next collection leaves it out, and a new pool may take its name.
    if exporter == "otel":
        assert OTel.points(otel.collect(), "db.client.connection.count") == {}
        new = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="gone")
        otel_metrics.instrument(new, otel.provider)
    else:
        assert prom(registry, "poolhouse_checkouts_total", pool="gone") is None
        new = QueuePool(dbapi.connect, dialect=FakeDialect(), logging_name="gone")
        prom_metrics.instrument(new, registry)
        assert prom(registry, "poolhouse_checkouts_total", pool="gone") == 0
    handle.uninstrument()  # nothing left to undo


# -- imports -------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    lib = os.path.dirname(os.path.dirname(os.path.abspath(poolhouse.__file__)))
    env = dict(os.environ, PYTHONPATH=lib)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_poolhouse_imports_no_metrics_library() -> None:
    done = _python(
        "import sys, poolhouse, poolhouse.aio, poolhouse.metrics\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in "
        "('opentelemetry', 'prometheus_client')]\n"
        "assert not loaded, loaded\n"
    )
    assert done.returncode == 0, done.stderr


def test_opentelemetry_module_imports_the_api_only() -> None:
    done = _python(
        "import sys, poolhouse.metrics.opentelemetry\n"
        "assert 'opentelemetry.metrics' in sys.modules\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry.sdk')]\n"
        "assert not loaded, loaded\n"
        "assert 'prometheus_client' not in sys.modules\n"
    )
    assert done.returncode == 0, done.stderr


def test_otel_global_provider_set_after_a_pool_was_instrumented() -> None:
    """Pools instrumented with the global provider before and after the
    application sets it both report (a process may set it only once, so
    this runs in a subprocess)."""
    done = _python(
        "import sqlite3\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from poolhouse import QueuePool\n"
        "from poolhouse.metrics.opentelemetry import instrument\n"
        "def make(name):\n"
        "    return QueuePool(lambda: sqlite3.connect(':memory:'), logging_name=name)\n"
        "early, late = make('early'), make('late')\n"
        "instrument(early)\n"
        "reader = InMemoryMetricReader()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "instrument(late)\n"
        "held = [early.connect(), late.connect()]\n"
        "seen = {}\n"
        "for rm in reader.get_metrics_data().resource_metrics:\n"
        "    for sm in rm.scope_metrics:\n"
        "        for m in sm.metrics:\n"
        "            for p in m.data.data_points:\n"
        "                name = p.attributes['db.client.connection.pool.name']\n"
        "                seen.setdefault(m.name, set()).add(name)\n"
        "for metric in ('db.client.connection.count', 'db.client.connection.max',\n"
        "               'db.client.connection.wait_time'):\n"
        "    assert seen.get(metric) == {'early', 'late'}, (metric, seen)\n"
    )
    assert done.returncode == 0, done.stderr
