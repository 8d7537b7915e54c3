"""Replacing connections by age and use: max_lifetime, max_uses, ping_interval."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncDBAPI
from .support import number

pytestmark = pytest.mark.asyncio

MakeQueuePool = Any


async def cycle(pool: Any) -> int:
    conn = await pool.connect()
    got = number(conn)
    await conn.close()
    return got


async def test_max_uses_replaces_a_connection_after_that_many_checkouts(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_uses=3)
    assert [await cycle(pool) for _ in range(7)] == [1, 1, 1, 2, 2, 2, 3]
    assert dbapi.calls_named("close") == [("close", 1), ("close", 2)]


async def test_max_lifetime_is_shortened_by_each_connections_jitter(
    make_queue_pool: MakeQueuePool, clock: FakeClock, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_lifetime=100)
    pool._random = lambda: 1.0  # the most jitter: 95 s
    assert await cycle(pool) == 1
    clock.advance(94.9)
    assert await cycle(pool) == 1
    clock.advance(0.2)
    assert await cycle(pool) == 2
    assert dbapi.calls_named("close") == [("close", 1)]
    pool._random = lambda: 0.0  # no jitter: the full 100 s
    clock.advance(99.9)
    assert await cycle(pool) == 3  # connection 2 drew the most jitter
    clock.advance(99.9)
    assert await cycle(pool) == 3


async def test_ping_interval_skips_the_ping_of_a_connection_used_lately(
    make_queue_pool: MakeQueuePool, clock: FakeClock, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, pre_ping=True, ping_interval=10)
    await cycle(pool)  # new: not pinged
    clock.advance(5)
    await cycle(pool)
    assert dbapi.calls_named("execute") == []
    clock.advance(11)
    await cycle(pool)
    assert dbapi.calls_named("execute") == [("execute", 1, "SELECT 1")]


async def test_suspects_are_pinged_whatever_the_ping_interval(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, pre_ping=True, ping_interval=1000)
    first, second = await pool.connect(), await pool.connect()
    await second.close()
    await pool.handle_error(first, dbapi.OperationalError("lost"))
    assert await cycle(pool) == 2
    assert dbapi.calls_named("execute") == [("execute", 2, "SELECT 1")]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_uses": 0}, ValueError, "max_uses=0 is invalid"),
        ({"max_uses": 2.5}, TypeError, "max_uses must be an int"),
        ({"max_lifetime": 0}, ValueError, "max_lifetime=0 is invalid"),
        ({"max_lifetime": -3}, ValueError, "max_lifetime=-3 is invalid"),
        ({"ping_interval": -1}, ValueError, "ping_interval=-1 is invalid"),
        ({"ping_interval": "1"}, TypeError, "ping_interval must be a number"),
    ],
)
async def test_bad_values_are_refused(
    make_queue_pool: MakeQueuePool, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        make_queue_pool(**kwargs)


async def test_recreate_keeps_the_new_options(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool(max_uses=4, max_lifetime=60, ping_interval=2, pre_ping=True)
    new = pool.recreate()
    assert (new._max_uses, new._max_lifetime, new._ping_interval) == (4, 60, 2)
