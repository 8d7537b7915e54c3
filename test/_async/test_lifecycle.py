"""The connection lifecycle, exercised through QueuePool: event arguments,
recycle, expiry and pre-ping, checkout retries, failing listeners, and errors
while a connection is in use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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
from .support import checkout_records
from .support import fake
from .support import names_of
from .support import number
from .support import raiser
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


async def test_invalidate_events_carry_the_exception(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "invalidate", "soft_invalidate", "close", "checkin")
    error = FakeOperationalError("gone")
    async with pool.connect() as conn:
        raw = fake(conn)
        await conn.invalidate(error)
    rec = seen[0][1][1]
    assert seen == [
        ("invalidate", (raw, rec, error)),
        ("close", (raw, rec)),
        ("checkin", (None, rec)),
    ]
    del seen[:]
    async with pool.connect() as conn:
        raw = fake(conn)
        await conn.invalidate(error, soft=True)
    assert seen == [
        ("soft_invalidate", (raw, rec, error)),
        ("checkin", (raw, rec)),
    ]


async def test_detach_and_close_detached_events(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "detach", "close_detached", "close", "reset", "checkin")
    conn = await pool.connect()
    raw = fake(conn)
    await conn.detach()
    rec = seen[0][1][1]
    assert seen == [("detach", (raw, rec))]
    await conn.close()
    # Reset (terminate only, no record), then close_detached; the pool's
    # checkin and close events are not the detached connection's.
    assert seen == [
        ("detach", (raw, rec)),
        (
            "reset",
            (
                raw,
                None,
                PoolResetState(
                    transaction_was_reset=False, terminate_only=True, asyncio_safe=True
                ),
            ),
        ),
        ("close_detached", (raw,)),
    ]
    assert raw.closed


async def test_first_connect_fires_once_per_pool(
    make_queue_pool: MakeQueuePool,
) -> None:
    pools = [make_queue_pool() for _ in range(2)]
    seen = [record(p, "first_connect", "connect") for p in pools]
    for p in pools:
        held = [await p.connect() for _ in range(3)]
        for conn in held:
            await conn.close()
    for log in seen:
        assert names_of(log) == ["first_connect", "connect", "connect", "connect"]


async def test_close_listener_still_sees_the_connection_info(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    seen: list[object] = []
    event.listen(pool, "close", lambda conn, rec: seen.append(rec.info.get("tag")))
    async with pool.connect() as conn:
        conn.info["tag"] = "mine"
    await pool.dispose()
    assert seen == ["mine"]


async def test_pool_events_argument_registers_at_construction(
    make_queue_pool: MakeQueuePool,
) -> None:
    order: list[str] = []

    def on_connect(*args: Any) -> None:
        order.append("connect")

    def on_checkout(*args: Any) -> None:
        order.append("checkout")

    pool = make_queue_pool(
        events=[(on_checkout, "checkout"), (on_connect, "connect")],
    )
    assert event.contains(pool, "connect", on_connect)
    assert event.contains(pool, "checkout", on_checkout)
    conn = await pool.connect()
    await conn.close()
    assert order == ["connect", "checkout"]


async def test_logging_configured_after_the_pool_shows_checkouts(
    make_queue_pool: MakeQueuePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_queue_pool(logging_name="late")
    assert pool.logger.name == f"poolhouse.pool.{AsyncQueuePool.__name__}.late"
    with caplog.at_level(logging.DEBUG, logger=pool.logger.name):
        conn = await pool.connect()
        await conn.close()
    assert any("checked out" in r.getMessage() for r in caplog.records)


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


async def test_without_recycle_connections_never_age(
    make_queue_pool: MakeQueuePool, clock: FakeClock
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    await conn.close()
    clock.advance(10**9)
    async with pool.connect() as conn:
        assert number(conn) == 1


async def test_without_pre_ping_nothing_is_pinged(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    for _ in range(2):
        conn = await pool.connect()
        await conn.close()
    assert dbapi.calls_named("cursor", "execute") == []


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


async def test_expire_connections_replaces_idle_and_checked_out_at_next_checkout(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    idle = await pool.connect()
    busy = await pool.connect()
    await idle.close()
    pool.expire_connections()
    await busy.cursor().execute("SELECT 1")  # still usable until returned
    assert not dbapi.connections[1].closed
    await busy.close()
    first, second = await pool.connect(), await pool.connect()
    assert [number(first), number(second)] == [3, 4]
    assert dbapi.connections[0].closed and dbapi.connections[1].closed
    await first.close()
    await second.close()
    async with pool.connect() as conn:  # opened after the expiry: kept
        assert number(conn) == 3


async def test_pre_ping_replaces_a_dead_connection_and_only_the_dead_others(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=3, max_overflow=0, pre_ping=True)
    held = [await pool.connect() for _ in range(3)]
    for conn in held:
        await conn.close()  # idle, oldest first: 1, 2, 3
    dbapi.calls.clear()
    dbapi.connections[0].kill()  # FIFO: connection 1 is checked out first
    dbapi.connections[2].kill()  # 3 went down too; 2 did not
    async with pool.connect() as conn:
        assert number(conn) == 4  # no error for the caller
        assert dbapi.calls == [
            ("cursor", 1),  # the ping of 1 fails
            ("close", 1),
            ("connect", 4),
        ]
        await conn.cursor().execute("SELECT 1")
        assert dbapi.connections[0].closed
        # Not expired: the idle ones are suspect, to be pinged.
        assert not dbapi.connections[1].closed
        assert not dbapi.connections[2].closed
        assert [rec._suspect for rec in pool._slots.idle] == [True, True]
        mark = len(dbapi.calls)
        second = await pool.connect()
        third = await pool.connect()
        # The live one is kept, the dead one replaced.
        assert [number(second), number(third)] == [2, 5]
        assert dbapi.calls[mark:] == [
            ("cursor", 2),  # the ping of 2 succeeds
            ("execute", 2, "SELECT 1"),
            ("cursor", 3),  # the ping of 3 fails
            ("close", 3),
            ("connect", 5),
        ]
        assert not dbapi.connections[1].closed and dbapi.connections[2].closed
        await second.close()
        await third.close()
    assert dbapi.calls_named("connect") == [("connect", 4), ("connect", 5)]
    assert [c.number for c in dbapi.connections if c.closed] == [1, 3]
    assert_nothing_leaked(pool, dbapi)


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


async def test_checkout_invalidate_pool_error_expires_every_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    first, second = await pool.connect(), await pool.connect()
    await first.close()
    await second.close()
    rejected: list[int] = []

    def reject_once(conn: FakeAsyncConnection, rec: object, fairy: object) -> None:
        if not rejected:
            rejected.append(conn.number)
            raise exc.InvalidatePoolError("server restarted")

    event.listen(pool, "checkout", reject_once)
    async with pool.connect() as conn:
        assert number(conn) == 3
        async with pool.connect() as other:
            assert number(other) == 4
    assert rejected == [1]
    assert dbapi.connections[0].closed and dbapi.connections[1].closed


# -- other listener errors -----------------------------------------------------


async def test_failing_connect_listener_closes_the_new_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    error = RuntimeError("connect listener failed")
    fail = raiser(error)
    event.listen(pool, "connect", fail)
    with pytest.raises(RuntimeError) as raised:
        await pool.connect()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 0)
    event.remove(pool, "connect", fail)
    async with pool.connect() as conn:
        assert number(conn) == 2


async def test_failing_first_connect_listener_fires_again_on_next_connect(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    calls: list[int] = []
    error = RuntimeError("first_connect listener failed")

    def on_first_connect(conn: FakeAsyncConnection, rec: object) -> None:
        calls.append(conn.number)
        if len(calls) == 1:
            raise error

    event.listen(pool, "first_connect", on_first_connect)
    with pytest.raises(RuntimeError) as raised:
        await pool.connect()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 0)
    first = await pool.connect()
    second = await pool.connect()
    assert calls == [1, 2]
    assert [number(first), number(second)] == [2, 3]
    await first.close()
    await second.close()


async def test_failing_checkout_listener_returns_the_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    error = RuntimeError("checkout listener failed")
    fail = raiser(error)
    event.listen(pool, "checkout", fail)
    with pytest.raises(RuntimeError) as raised:
        await pool.connect()
    assert raised.value is error
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    event.remove(pool, "checkout", fail)
    async with pool.connect() as conn:
        assert number(conn) == 1


async def test_failing_reset_listener_propagates_but_the_record_is_returned(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    error = RuntimeError("reset listener failed")
    event.listen(pool, "reset", raiser(error))
    conn = await pool.connect()
    with pytest.raises(RuntimeError) as raised:
        await conn.close()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert not conn.is_valid
    await conn.close()  # already returned: nothing happens
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


async def test_failing_checkin_listener_propagates_after_the_connection_is_back(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    error = RuntimeError("checkin listener failed")
    event.listen(pool, "checkin", raiser(error))
    conn = await pool.connect()
    with pytest.raises(RuntimeError) as raised:
        await conn.close()
    assert raised.value is error
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert not conn.is_valid


async def test_failing_invalidate_listener_still_discards_the_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    error = RuntimeError("invalidate listener failed")
    fail = raiser(error)
    event.listen(pool, "invalidate", fail)
    conn = await pool.connect()
    with pytest.raises(RuntimeError) as raised:
        await conn.invalidate()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert not conn.is_valid
    await conn.close()
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    event.remove(pool, "invalidate", fail)
    async with pool.connect() as again:
        assert number(again) == 2


async def test_failing_close_listener_at_dispose_still_closes_every_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    first, second = await pool.connect(), await pool.connect()
    await first.close()
    await second.close()
    error = RuntimeError("close listener failed")
    event.listen(pool, "close", raiser(error))
    with pytest.raises(RuntimeError) as raised:
        await pool.dispose()
    assert raised.value is error
    assert dbapi.open_connections() == []


async def test_failing_close_detached_listener_still_closes_the_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    error = RuntimeError("close_detached listener failed")
    event.listen(pool, "close_detached", raiser(error))
    conn = await pool.connect()
    await conn.detach()
    with pytest.raises(RuntimeError) as raised:
        await conn.close()
    assert raised.value is error
    assert dbapi.connections[0].closed


async def test_failing_detach_listener_propagates_after_the_record_is_back(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    error = RuntimeError("detach listener failed")
    event.listen(pool, "detach", raiser(error))
    conn = await pool.connect()
    with pytest.raises(RuntimeError) as raised:
        await conn.detach()
    assert raised.value is error
    assert conn.is_detached
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    await conn.close()
    assert dbapi.connections[0].closed


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


async def test_interrupted_rollback_discards_the_connection_and_reraises(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    dbapi.fail_rollback = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        await conn.close()
    dbapi.fail_rollback = None
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


async def test_error_in_with_block_propagates_unchanged(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    error = FakeOperationalError("server closed")
    with pytest.raises(FakeOperationalError) as raised:
        async with pool.connect():
            raise error
    assert raised.value is error


async def test_disconnect_in_with_block_invalidates_and_makes_the_idle_others_suspect(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=4, max_overflow=0)
    seen = record(pool, "invalidate")
    idle = [await pool.connect() for _ in range(3)]
    busy = await pool.connect()  # 4: checked out during the disconnect
    for conn in idle:
        await conn.close()  # idle, oldest first: 1, 2, 3
    dbapi.connections[2].kill()  # 3 went down with the server; 2 did not
    recs = checkout_records(pool)
    caught: list[FakeOperationalError] = []
    with pytest.raises(FakeOperationalError) as raised:
        async with pool.connect() as conn:
            raw = fake(conn)
            assert raw.number == 1
            raw.kill()
            try:
                conn.cursor()
            except FakeOperationalError as err:
                caught.append(err)
                raise
    assert caught == [raised.value]  # propagated unchanged
    assert raw.number == 1 and raw.closed
    assert seen == [("invalidate", (raw, recs[0], raised.value))]
    # Not expired: the idle ones are suspect, pinged at their next checkout.
    assert not dbapi.connections[1].closed and not dbapi.connections[2].closed
    assert [
        (rec.dbapi_connection is not None, rec._suspect) for rec in pool._slots.idle
    ] == [(True, True), (True, True), (False, False)]
    await busy.cursor().execute("SELECT 1")  # checked out: usable until returned
    assert await busy.execute("SELECT 1") == [(1,)]
    mark = len(dbapi.calls)
    first, second = await pool.connect(), await pool.connect()
    # pre_ping is off, yet each suspect is pinged: kept if alive, else replaced.
    assert [number(first), number(second)] == [2, 5]
    assert dbapi.calls[mark:] == [
        ("cursor", 2),  # the ping of 2 succeeds
        ("execute", 2, "SELECT 1"),
        ("cursor", 3),  # the ping of 3 fails
        ("close", 3),
        ("connect", 5),
    ]
    assert dbapi.connections[2].closed
    await busy.close()
    await first.close()
    await second.close()
    mark = len(dbapi.calls)
    # The invalidated record reconnects; 4, checked out during the disconnect,
    # was never suspect: reused without a ping.
    third, fourth = await pool.connect(), await pool.connect()
    assert [number(third), number(fourth)] == [6, 4]
    assert dbapi.calls[mark:] == [("connect", 6)]
    assert [c.number for c in dbapi.open_connections()] == [2, 4, 5, 6]
    await third.close()
    await fourth.close()
    assert_nothing_leaked(pool, dbapi)


async def test_handle_error_without_with_block(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    other = await pool.connect()
    await other.close()  # idle, opened before the error
    assert await pool.handle_error(conn, FakeProgrammingError("syntax")) is False
    assert conn.is_valid
    assert await pool.handle_error(conn, FakeOperationalError("gone")) is True
    assert not conn.is_valid
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 2)  # returned at once
    calls = list(dbapi.calls)
    await conn.close()  # does nothing
    assert dbapi.calls == calls
    async with pool.connect() as suspect:
        assert number(suspect) == 2  # pinged and kept, not replaced
        assert dbapi.calls[len(calls) :] == [
            ("cursor", 2),
            ("execute", 2, "SELECT 1"),
        ]
        async with pool.connect() as invalidated:
            assert number(invalidated) == 3  # the empty record reconnects
    assert not dbapi.connections[1].closed


# -- detach --------------------------------------------------------------------


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
