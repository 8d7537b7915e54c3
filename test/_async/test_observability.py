"""What a pool tells about itself: stats(), checked_out_connections(), leak
reports, timing observers and self-explaining errors.

Timings run on the fake clock; the leak watcher's step (``_check_leaks()``)
is called directly, except in one test that lets the real watcher run,
synchronised on the ``leak`` event.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest

from poolhouse import event
from poolhouse import exc
from poolhouse._async.pool import _PACKAGE_DIR
from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool
from poolhouse.stats import CheckedOutConnection
from poolhouse.stats import PoolStats

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeAsyncDialect
from ..fakedbapi import FakeOperationalError
from ._acompat import ONLY_HERE
from ._acompat import Background
from ._acompat import Flag
from ._acompat import actor_name
from ._acompat import ended
from .support import fake
from .support import wait_until_queued

pytestmark = pytest.mark.asyncio

MakeQueuePool = Any

POOL_CLASSES = [
    AsyncQueuePool,
    AsyncNullPool,
    AsyncStaticPool,
    AsyncAssertionPool,
    *ONLY_HERE,
]


def counters(stats: PoolStats) -> dict[str, Any]:
    """The counters of *stats*, without its state now."""
    state = {"size", "idle", "in_use", "overflow", "waiting"}
    limits = {"max_size", "pool_size", "min_idle"}
    return {
        name: getattr(stats, name)
        for name in PoolStats.__dataclass_fields__
        if name not in state | limits
    }


# -- stats() ---------------------------------------------------------------------


async def test_a_new_pool_reports_its_limits_and_nothing_else(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(pool_size=3, max_overflow=2)
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use, stats.waiting) == (0, 0, 0, 0)
    assert (stats.overflow, stats.max_size, stats.pool_size, stats.min_idle) == (
        -3,
        5,
        3,
        0,
    )
    assert set(counters(stats).values()) == {0}


async def test_unlimited_pools_report_no_limit(make_queue_pool: MakeQueuePool) -> None:
    assert make_queue_pool(pool_size=0).stats().max_size is None
    assert make_queue_pool(pool_size=0).stats().pool_size is None
    assert make_queue_pool(pool_size=2, max_overflow=-1).stats().max_size is None
    worker = make_queue_pool(pool_size=4, background=True, min_idle=2)
    assert worker.stats().min_idle == 2


async def test_counters_follow_a_workload(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=0, timeout=0)
    a = await pool.connect()
    clock.advance(1.5)
    b = await pool.connect()
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use, stats.overflow) == (2, 0, 2, 0)
    with pytest.raises(exc.TimeoutError):
        await pool.connect()  # full, and timeout=0
    await a.close()  # out for 1.5 s
    clock.advance(0.5)
    await b.close()  # out for 0.5 s
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use) == (2, 2, 0)

    c = await pool.connect()
    await c.invalidate()  # its record goes back empty
    assert (pool.stats().size, pool.stats().idle) == (1, 1)
    d = await pool.connect()
    await d.invalidate(soft=True)
    await d.close()
    e = await pool.connect()  # the empty record: a new connection
    f = await pool.connect()  # soft-invalidated: replaced
    dbapi.fail_rollback = FakeOperationalError("rollback failed")
    await e.close()  # reset failed: discarded
    dbapi.fail_rollback = None
    assert await pool.handle_error(f, FakeOperationalError("server gone"))
    dbapi.refuse_connect = FakeOperationalError("server down")
    with pytest.raises(FakeOperationalError):
        await pool.connect()
    dbapi.refuse_connect = None

    stats = pool.stats()
    assert (stats.size, stats.idle, stats.in_use) == (0, 0, 0)
    assert counters(stats) == {
        "connects": 4,
        "connect_errors": 1,
        "checkouts": 6,
        "checkins": 6,
        "invalidations": 4,  # c, d (soft), e (reset failed), f (disconnect)
        "recycles": 1,  # d's connection, replaced at f's checkout
        "timeouts": 1,
        "disconnects": 1,
        "returns_bad": 1,
        "wait_time_total": 0.0,
        "wait_time_max": 0.0,
        "use_time_total": 2.0,
        "use_time_max": 1.5,
    }


async def test_wait_time_is_the_time_spent_in_line(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=None)
    held = await pool.connect()
    waiting = Background(pool.connect)
    await wait_until_queued(pool, waiting)
    assert pool.stats().waiting == 1
    clock.advance(2.0)
    await held.close()
    conn = await waiting.result()
    await conn.close()
    stats = pool.stats()
    assert (stats.wait_time_total, stats.wait_time_max, stats.waiting) == (2.0, 2.0, 0)


async def test_expired_connections_count_as_recycled(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool(recycle=10)
    await (await pool.connect()).close()
    clock.advance(11)
    await (await pool.connect()).close()
    assert (pool.stats().recycles, pool.stats().connects) == (1, 2)


@pytest.mark.parametrize("pool_class", POOL_CLASSES, ids=lambda cls: cls.__name__)
async def test_every_pool_counts_checkouts_and_use_time(
    pool_class: type[AsyncPool],
    dbapi: FakeAsyncDBAPI,
    dialect: FakeAsyncDialect,
    clock: FakeClock,
) -> None:
    pool = pool_class(dbapi.connect, dialect=dialect)
    pool._clock = clock
    for _ in range(3):
        conn = await pool.connect()
        assert (pool.stats().in_use, pool.stats().size) == (1, 1)
        clock.advance(1.0)
        await conn.close()
    stats = pool.stats()
    assert (stats.checkouts, stats.checkins, stats.in_use) == (3, 3, 0)
    assert (stats.use_time_total, stats.use_time_max) == (3.0, 1.0)
    assert stats.connects == (3 if pool_class is AsyncNullPool else 1)


async def test_shared_connection_users_each_count(
    dbapi: FakeAsyncDBAPI, dialect: FakeAsyncDialect, clock: FakeClock
) -> None:
    pool = AsyncStaticPool(dbapi.connect, dialect=dialect)
    pool._clock = clock
    first = await pool.connect()
    second = await pool.connect()
    assert (pool.stats().checkouts, pool.stats().in_use) == (2, 1)
    clock.advance(1.0)
    await second.close()
    await first.close()
    stats = pool.stats()
    # One connection, out from its first user's checkout to its last return.
    assert (stats.checkins, stats.use_time_total, stats.in_use) == (2, 1.0, 0)


async def test_detached_connections_count_as_checked_in(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    await conn.detach()
    stats = pool.stats()
    assert (stats.checkouts, stats.checkins, stats.in_use) == (1, 1, 0)
    await conn.close()


async def test_status_keeps_sqlalchemys_words_and_adds_counters(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=1)
    held = await pool.connect()
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 0 Current Overflow: -1 Current Checked "
        "out connections: 1 Waiting: 0 Connects: 1 Connect errors: 0 Checkouts: 1 "
        "Timeouts: 0 Invalidations: 0"
    )
    await held.close()


# -- who holds what ---------------------------------------------------------------


async def test_checked_out_connections_name_holder_and_age(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool()
    first = await pool.connect()
    clock.advance(3.0)
    second = await pool.connect()
    clock.advance(1.0)
    out = pool.checked_out_connections()
    assert [entry.dbapi_connection for entry in out] == [fake(first), fake(second)]
    assert [entry.age for entry in out] == [4.0, 1.0]
    assert {entry.holder for entry in out} == {actor_name()}
    assert [entry.stack for entry in out] == [None, None]  # no leak_threshold
    assert out[0].checked_out_at < out[1].checked_out_at
    await first.close()
    assert [entry.dbapi_connection for entry in pool.checked_out_connections()] == [
        fake(second)
    ]
    await second.close()
    assert pool.checked_out_connections() == []


async def test_leak_threshold_captures_the_callers_stack(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(leak_threshold=60)
    conn = await pool.connect()
    (entry,) = pool.checked_out_connections()
    assert entry.stack is not None
    assert "test_leak_threshold_captures_the_callers_stack" in entry.stack
    assert _PACKAGE_DIR not in entry.stack  # the pool's own frames left out
    await conn.close()
    await pool.close()


# -- leaks ------------------------------------------------------------------------


async def test_a_leak_is_reported_once_then_its_return(
    make_queue_pool: MakeQueuePool,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = make_queue_pool(leak_threshold=5, logging_name="leaky")
    reported: list[tuple[Any, ...]] = []
    event.listen(pool, "leak", lambda *args: reported.append(args))
    caplog.set_level(logging.INFO, logger=pool.logger.name)
    conn = await pool.connect()
    raw = fake(conn)
    clock.advance(2)
    assert await pool._check_leaks() == 3.0  # seconds until it could leak
    assert reported == []
    clock.advance(4)
    assert await pool._check_leaks() == 5.0  # nothing else out
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    for part in (
        repr(pool),
        "checked out for 6.0s",
        "leak_threshold=5.0s",
        actor_name(),
        "test_a_leak_is_reported_once_then_its_return",
    ):
        assert part in message
    (args,) = reported
    assert args[0] is fake(conn)
    assert isinstance(args[2], CheckedOutConnection) and args[2].age == 6.0
    await pool._check_leaks()
    assert len(reported) == 1  # once per checkout
    caplog.clear()
    await conn.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        f"{pool!r}: connection {raw!r} reported as leaked came back after 6.0s"
    ]
    await pool.close()


async def test_the_leak_watcher_reports_by_itself_and_ends_with_the_pool(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool(leak_threshold=0.01)
    reported = Flag()
    event.listen(pool, "leak", lambda *args: reported.set())
    conn = await pool.connect()
    clock.advance(1)  # the watcher checks again within 0.01 s
    assert await reported.wait()
    await conn.close()
    await pool.close()
    assert await ended(pool._leak_watch)


async def test_no_watcher_without_leak_threshold(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    await (await pool.connect()).close()
    assert pool._leak_watch is None


async def test_a_collected_connection_names_where_it_was_checked_out(
    make_queue_pool: MakeQueuePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_queue_pool(leak_threshold=60)
    conn = await pool.connect()
    del conn
    gc.collect()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "garbage-collected without close()" in warning.getMessage()
    assert "test_a_collected_connection_names_where_it_was_checked_out" in (
        warning.getMessage()
    )
    await pool.close()


# -- errors that explain themselves ------------------------------------------------


async def test_timeout_names_the_oldest_checkout_with_leak_tracking(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=0, leak_threshold=60)
    held = await pool.connect()
    clock.advance(7)
    with pytest.raises(exc.TimeoutError) as info:
        await pool.connect()
    message = str(info.value)
    assert f"the oldest checkout is 7.0s old, held by {actor_name()}" in message
    assert "1 open of 1, 1 in use, 0 idle, 0 waiting" in message
    assert info.value.stats.timeouts == 1
    await held.close()
    await pool.close()


async def test_failed_ping_chains_the_driver_error(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(pre_ping=True)
    conn = await pool.connect()
    raw = fake(conn)
    await conn.close()
    raw.kill()
    seen: list[BaseException] = []
    event.listen(pool, "invalidate", lambda conn, rec, error: seen.append(error))
    await (await pool.connect()).close()
    (error,) = seen
    assert isinstance(error, exc.DisconnectionError)
    assert isinstance(error.__cause__, FakeOperationalError)
    assert str(error.__cause__) in str(error)
    assert pool.stats().disconnects == 1


# -- timing observers -----------------------------------------------------------


async def test_observers_get_wait_use_and_create_times(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool()
    seen: list[tuple[str, float]] = []

    def observer(kind: str, seconds: float) -> None:
        seen.append((kind, seconds))

    pool.add_timing_observer(observer)
    conn = await pool.connect()
    clock.advance(2.5)
    await conn.close()
    assert seen == [("create", 0.0), ("wait", 0.0), ("use", 2.5)]
    pool.remove_timing_observer(observer)
    await (await pool.connect()).close()
    assert len(seen) == 3
    with pytest.raises(ValueError, match="is not an observer"):
        pool.remove_timing_observer(observer)
    with pytest.raises(TypeError, match="observer must be callable"):
        pool.add_timing_observer("nope")


async def test_a_failing_observer_is_logged_not_raised(
    make_queue_pool: MakeQueuePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_queue_pool()

    def broken(kind: str, seconds: float) -> None:
        raise RuntimeError("exporter down")

    pool.add_timing_observer(broken)
    await (await pool.connect()).close()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3  # create, wait, use
    assert all("timing observer" in r.getMessage() for r in errors)
    assert pool.stats().checkins == 1


# -- counting on the rarer paths ------------------------------------------------


async def test_a_rejected_checkout_counts_as_checked_out_and_back(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    rejected: list[int] = []

    def reject_once(*args: Any) -> None:
        if not rejected:
            rejected.append(1)
            raise exc.DisconnectionError("stale")

    event.listen(pool, "checkout", reject_once)
    conn = await pool.connect()
    stats = pool.stats()
    assert (stats.checkouts, stats.checkins, stats.in_use) == (2, 1, 1)
    await conn.close()
    stats = pool.stats()
    assert (stats.checkouts, stats.checkins, stats.in_use) == (2, 2, 0)


async def test_a_failing_checkout_listener_counts_both_ways(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()

    def broken(*args: Any) -> None:
        raise RuntimeError("listener bug")

    event.listen(pool, "checkout", broken)
    with pytest.raises(RuntimeError):
        await pool.connect()
    stats = pool.stats()
    assert (stats.checkouts, stats.checkins, stats.in_use) == (1, 1, 0)
