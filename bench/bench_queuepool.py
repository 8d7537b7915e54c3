"""Checkout + checkin cost of poolhouse's QueuePool against its peers.

Pool overhead only: the connection is a no-op object, so what is measured is
the pool's own work per cycle (default rollback reset included).  Run with
``python3 -m tox -e bench``; the ratios print at the end of the run.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from typing import Any

import prometheus_client
import pytest
import sqlalchemy.event
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import pool as sqlalchemy_pool

import poolhouse
from poolhouse import event
from poolhouse import events
from poolhouse.metrics import opentelemetry as otel_metrics
from poolhouse.metrics import prometheus as prom_metrics

CYCLES = 1000


class NoOpConnection:
    """A PEP 249 connection whose methods do nothing."""

    def rollback(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass

    def cursor(self) -> Any:
        raise NotImplementedError


def _cycles(pool: Any) -> None:
    connect = pool.connect
    for _ in range(CYCLES):
        connect().close()


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_sqlalchemy_queuepool(benchmark: Any) -> None:
    benchmark.extra_info["reference"] = True
    pool = sqlalchemy_pool.QueuePool(NoOpConnection, pool_size=5)
    benchmark(_cycles, pool)


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_poolhouse_queuepool(benchmark: Any) -> None:
    pool = poolhouse.QueuePool(NoOpConnection, pool_size=5)
    assert not any(signal.receivers for signal, _ in events.SIGNATURES.values())
    benchmark(_cycles, pool)
    assert pool.checkedout() == 0


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_poolhouse_queuepool_background(benchmark: Any) -> None:
    """The background worker on (target: within 10% of the plain cycle)."""
    pool = poolhouse.QueuePool(NoOpConnection, pool_size=5, background=True)
    benchmark(_cycles, pool)
    assert pool.checkedout() == 0
    pool.close()


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_bare_lock_and_deque(benchmark: Any) -> None:
    """The floor: one lock round trip each way around a deque."""
    lock = threading.Lock()
    idle = deque([NoOpConnection()])

    def cycles() -> None:
        for _ in range(CYCLES):
            with lock:
                conn = idle.pop()
            conn.rollback()
            with lock:
                idle.append(conn)

    benchmark(cycles)


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_poolhouse_event_checks_alone(benchmark: Any) -> None:
    """What unlistened events cost a cycle: the checkout, reset and checkin
    "is anyone listening" tests, done exactly as the pool does them."""

    listeners = poolhouse.QueuePool(NoOpConnection)._listeners

    def cycles() -> None:
        for _ in range(CYCLES):
            if listeners.checkout:
                raise AssertionError("no listener expected")
            if listeners.reset:
                raise AssertionError("no listener expected")
            if listeners.checkin:
                raise AssertionError("no listener expected")

    benchmark(cycles)


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_poolhouse_queuepool_one_checkout_listener(benchmark: Any) -> None:
    """One checkout listener on this pool (target: <= 1.3x the plain cycle),
    while another pool has three (which must cost this one nothing)."""
    pool = poolhouse.QueuePool(NoOpConnection, pool_size=5)
    other = poolhouse.QueuePool(NoOpConnection, pool_size=5)
    for _ in range(3):
        event.listen(other, "checkout", _on_checkout)
    seen: list[int] = []
    event.listen(pool, "checkout", lambda conn, rec, proxy: seen.append(1))
    benchmark(_cycles, pool)
    assert seen and pool.checkedout() == 0


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_sqlalchemy_queuepool_one_checkout_listener(benchmark: Any) -> None:
    pool = sqlalchemy_pool.QueuePool(NoOpConnection, pool_size=5)
    seen: list[int] = []
    sqlalchemy.event.listen(pool, "checkout", lambda conn, rec, proxy: seen.append(1))
    benchmark(_cycles, pool)
    assert seen


def _on_checkout(conn: Any, rec: Any, proxy: Any) -> None:
    pass


@pytest.mark.benchmark(group="checkout+SELECT 1+checkin x1000, sqlite3")
def test_sqlalchemy_sqlite3(benchmark: Any) -> None:
    benchmark.extra_info["reference"] = True
    pool = sqlalchemy_pool.QueuePool(
        lambda: sqlite3.connect(":memory:", check_same_thread=False), pool_size=5
    )
    benchmark(_select_cycles, pool)


@pytest.mark.benchmark(group="checkout+SELECT 1+checkin x1000, sqlite3")
def test_poolhouse_sqlite3(benchmark: Any) -> None:
    pool = poolhouse.QueuePool(
        lambda: sqlite3.connect(":memory:", check_same_thread=False), pool_size=5
    )
    benchmark(_select_cycles, pool)


def _select_cycles(pool: Any) -> None:
    for _ in range(CYCLES):
        conn = pool.connect()
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchone()
        cursor.close()
        conn.close()


@pytest.mark.benchmark(group="checkout+checkin x1000, no-op connection")
def test_empty_loop(benchmark: Any) -> None:
    """Calibration: the loop alone, to subtract from the event-check figure."""

    def cycles() -> None:
        for _ in range(CYCLES):
            pass

    benchmark(cycles)


# -- metrics exporters (poolhouse.metrics) against the plain pool ---------------------

METRICS = "metrics: checkout+checkin x1000, no-op connection"
METRICS_SQLITE = "metrics: checkout+SELECT 1+checkin x1000, sqlite3"


def _metered_pool(exporter: str, creator: Any) -> Any:
    """A QueuePool with *exporter* on: ``plain``, ``observer`` (a timing
    observer that does nothing: the pool's own cost of timing), ``prometheus``,
    ``otel`` (an SDK provider with an in-memory reader), each with
    ``-no-histograms`` for the counts and limits alone."""
    pool = poolhouse.QueuePool(creator, pool_size=5, logging_name="bench")
    name, _, variant = exporter.partition("-")
    histograms = variant != "no-histograms"
    if name == "observer":
        pool.add_timing_observer(lambda kind, seconds: None)
    elif name == "prometheus":
        prom_metrics.PoolCollector(
            pool, registry=prometheus_client.CollectorRegistry(), histograms=histograms
        )
    elif name == "otel":
        provider = MeterProvider(
            metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False
        )
        otel_metrics.instrument(pool, provider, histograms=histograms)
    return pool


EXPORTERS = [
    "plain",
    "observer",
    "prometheus",
    "prometheus-no-histograms",
    "otel",
    "otel-no-histograms",
]


@pytest.mark.benchmark(group=METRICS)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_metrics_exporter(benchmark: Any, exporter: str) -> None:
    """Each exporter on a no-op connection (target: within 10% of plain)."""
    benchmark.extra_info["reference"] = exporter == "plain"
    pool = _metered_pool(exporter, NoOpConnection)
    benchmark(_cycles, pool)
    assert pool.checkedout() == 0
    assert pool.stats().checkouts >= CYCLES


@pytest.mark.benchmark(group=METRICS_SQLITE)
@pytest.mark.parametrize("exporter", ["plain", "prometheus", "otel"])
def test_metrics_exporter_sqlite3(benchmark: Any, exporter: str) -> None:
    """The same, end to end on sqlite3."""
    benchmark.extra_info["reference"] = exporter == "plain"
    pool = _metered_pool(
        exporter, lambda: sqlite3.connect(":memory:", check_same_thread=False)
    )
    benchmark(_select_cycles, pool)
