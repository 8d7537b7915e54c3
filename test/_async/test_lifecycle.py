"""The connection lifecycle, exercised through QueuePool: events, recycle,
pre-ping, checkout retries, and errors while a connection is in use."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from poolhouse import PoolResetState
from poolhouse import event
from poolhouse import exc
from poolhouse.aio import AsyncConnectionRecord
from poolhouse.aio import AsyncQueuePool

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncConnection
from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeOperationalError
from ..fakedbapi import FakeProgrammingError
from . import _acompat
from .support import assert_nothing_leaked
from .support import fake
from .support import names_of
from .support import number
from .support import record

pytestmark = pytest.mark.asyncio

MakeQueuePool = Callable[..., AsyncQueuePool]


# -- events --------------------------------------------------------------------


@pytest.mark.parametrize("awaited", [False, True], ids=["plain", "awaited"])
async def test_events_fire_in_lifecycle_order(
    make_queue_pool: MakeQueuePool, awaited: bool
) -> None:
    pool = make_queue_pool()
    seen = record(pool, awaited=awaited)
    conn = await pool.connect()
    raw = fake(conn)
    assert names_of(seen) == ["first_connect", "connect", "checkout"]
    await conn.close()
    assert names_of(seen) == [
        "first_connect",
        "connect",
        "checkout",
        "reset",
        "checkin",
    ]
    again = await pool.connect()
    await again.close()
    assert names_of(seen)[5:] == ["checkout", "reset", "checkin"]
    await pool.dispose()
    assert names_of(seen)[8:] == ["close"]
    rec = seen[0][1][1]
    assert isinstance(rec, AsyncConnectionRecord)
    assert seen[0][1] == (raw, rec)
    assert seen[2][1] == (raw, rec, conn)
    assert seen[3][1] == (
        raw,
        rec,
        PoolResetState(
            transaction_was_reset=False, terminate_only=False, asyncio_safe=True
        ),
    )
    assert seen[4][1] == (raw, rec)
    assert seen[8][1] == (raw, rec)


# -- recycle and pre-ping ------------------------------------------------------


async def test_connection_older_than_recycle_is_replaced_at_checkout(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(recycle=60)
    conn = await pool.connect()
    await conn.close()
    clock.advance(59)
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[0]
    clock.advance(2)
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.calls_named("connect", "close") == [
        ("connect", 1),
        ("close", 1),
        ("connect", 2),
    ]
    assert dbapi.connections[0].closed
    assert_nothing_leaked(pool, dbapi)


async def test_pre_ping_pings_at_checkout_but_not_a_new_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pre_ping=True)
    conn = await pool.connect()
    await conn.close()  # a fresh connection is not pinged
    assert dbapi.calls_named("execute") == []
    mark = len(dbapi.calls)
    async with pool.connect() as conn:
        assert number(conn) == 1
    assert ("execute", 1, "SELECT 1") in dbapi.calls[mark:]
    assert dbapi.calls_named("execute") == [("execute", 1, "SELECT 1")]


# -- checkout listeners raising DisconnectionError -----------------------------


async def test_checkout_disconnection_error_retries_with_a_fresh_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    rejected: list[int] = []

    async def reject_twice(
        conn: FakeAsyncConnection, rec: object, proxy: object
    ) -> None:
        await _acompat.checkpoint()
        if len(rejected) < 2:
            rejected.append(conn.number)
            raise exc.DisconnectionError(f"{conn!r} is stale")

    event.listen(pool, "checkout", reject_twice)
    async with pool.connect() as conn:
        assert number(conn) == 3
        assert pool.checkedout() == 1
    assert rejected == [1, 2]
    assert dbapi.connections[0].closed and dbapi.connections[1].closed
    assert [c.number for c in dbapi.open_connections()] == [3]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert_nothing_leaked(pool, dbapi)


@pytest.mark.parametrize("idle_first", [False, True], ids=["empty", "one-idle"])
async def test_checkout_gives_up_after_three_rejected_connections(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, idle_first: bool
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    if idle_first:
        conn = await pool.connect()
        await conn.close()
    tried: list[int] = []

    async def reject(conn: FakeAsyncConnection, rec: object, fairy: object) -> None:
        tried.append(conn.number)
        raise exc.DisconnectionError(f"connection {conn.number} is stale")

    event.listen(pool, "checkout", reject)
    with pytest.raises(exc.InvalidRequestError, match="rejected 3") as raised:
        await pool.connect()
    assert not isinstance(raised.value, exc.DisconnectionError)
    assert raised.value.pool is pool
    assert isinstance(raised.value.__cause__, exc.DisconnectionError)
    assert tried == [1, 2, 3]
    assert len(dbapi.calls_named("connect")) == 3
    assert dbapi.open_connections() == []
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert_nothing_leaked(pool, dbapi)
    event.remove(pool, "checkout", reject)
    async with pool.connect() as conn:
        assert number(conn) == 4
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0


async def test_failing_invalidate_listener_during_checkout_retry_keeps_the_slot(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=5)
    rejected: list[int] = []

    def reject_first(conn: FakeAsyncConnection, rec: object, proxy: object) -> None:
        if not rejected:
            rejected.append(conn.number)
            raise exc.DisconnectionError("stale")

    def fail(conn: object, rec: object, error: object) -> None:
        raise ValueError("invalidate listener failed")

    event.listen(pool, "checkout", reject_first)
    event.listen(pool, "invalidate", fail)
    with pytest.raises(ValueError, match="invalidate listener failed"):
        await pool.connect()
    event.remove(pool, "invalidate", fail)
    assert dbapi.connections[0].closed  # discarded all the same
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)  # the slot came back
    async with pool.connect() as conn:  # the only slot
        assert number(conn) == 2
    assert_nothing_leaked(pool, dbapi)


# -- errors while in use, and on return ----------------------------------------


async def test_other_error_in_with_block_keeps_the_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    error = FakeProgrammingError("syntax error")
    with pytest.raises(FakeProgrammingError) as raised:
        async with pool.connect():
            raise error
    assert raised.value is error
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    assert dbapi.open_connections() == [dbapi.connections[0]]
    async with pool.connect() as conn:
        assert number(conn) == 1


@pytest.mark.parametrize(
    "error",
    [
        FakeProgrammingError("rollback refused"),
        FakeOperationalError("rollback failed"),
    ],
    ids=["error", "disconnect"],
)
async def test_failed_rollback_discards_the_connection_with_a_warning(
    make_queue_pool: MakeQueuePool,
    dbapi: FakeAsyncDBAPI,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    caplog.set_level(logging.WARNING, logger=pool.logger.name)
    seen = record(pool, "invalidate", "checkin")
    conn = await pool.connect()
    dbapi.fail_rollback = error
    await conn.close()  # does not raise: the failed reset is not the caller's error
    dbapi.fail_rollback = None
    assert dbapi.connections[0].closed
    assert names_of(seen) == ["invalidate", "checkin"]
    assert seen[0][1][2] is not None
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    warnings = [r for r in caplog.records if r.name == pool.logger.name]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == warnings
    assert repr(pool) in warnings[0].getMessage()
    assert str(error) in warnings[0].getMessage()
    assert "discarded" in warnings[0].getMessage()
    assert_nothing_leaked(pool, dbapi)
    async with pool.connect() as again:
        assert fake(again) is dbapi.connections[1]


# -- detach --------------------------------------------------------------------


def checkout_records(pool: AsyncQueuePool) -> list[AsyncConnectionRecord]:
    """Collect the record of every checkout of *pool* from here on."""
    recs: list[AsyncConnectionRecord] = []
    event.listen(pool, "checkout", lambda conn, rec, fairy: recs.append(rec))
    return recs


async def test_detach_takes_the_connection_out_of_the_pool(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    seen = record(pool, "detach", "close_detached")
    recs = checkout_records(pool)
    conn = await pool.connect()
    conn.info["k"] = "v"
    raw = fake(conn)
    await conn.detach()
    assert conn.is_detached
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert recs[0].dbapi_connection is None
    assert conn.info == {"k": "v"}
    conn.info["k2"] = "v2"  # a private copy now
    assert recs[0].info == {}
    assert conn.record_info is None
    await conn.cursor().execute("SELECT 1")
    assert await conn.execute("SELECT 1") == [(1,)]
    async with pool.connect() as other:  # the only slot is free again
        assert fake(other) is dbapi.connections[1]
    assert not raw.closed
    await conn.close()
    assert raw.closed
    assert names_of(seen) == ["detach", "close_detached"]
