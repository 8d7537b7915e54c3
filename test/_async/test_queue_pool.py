"""QueuePool's own accounting: counters, dispose, and the checkout timeout.

Waiting callers need concurrency, so they are tested per side: threads in
``test_impl.py``, tasks in ``test_aio.py``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import event
from poolhouse import exc
from poolhouse.aio import AsyncQueuePool

from ..fakedbapi import FakeAsyncDBAPI
from .support import assert_nothing_leaked
from .support import number

pytestmark = pytest.mark.asyncio

MakeQueuePool = Callable[..., AsyncQueuePool]


async def test_queuepool_counters_through_a_cycle(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=2, timeout=7)
    assert (pool.size(), pool.timeout()) == (2, 7.0)
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 0, -2)
    held = []
    expected = [(0, 1, -1), (0, 2, 0), (0, 3, 1), (0, 4, 2)]
    for checkedin, checkedout, overflow in expected:
        held.append(await pool.connect())
        assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (
            checkedin,
            checkedout,
            overflow,
        )
    assert (
        "Current Overflow: 2 Current Checked out connections: 4 Waiting: 0"
        in pool.status()
    )
    # Returned connections are kept while fewer than pool_size are idle; once
    # pool_size are idle, the next ones returned are closed.
    expected_back = [(1, 3, 2), (2, 2, 2), (2, 1, 1), (2, 0, 0)]
    for conn, state in zip(held, expected_back, strict=True):
        await conn.close()
        assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == state
    assert pool.status().startswith(
        "Pool size: 2  Connections in pool: 2 Current Overflow: 0 "
        "Current Checked out connections: 0 Waiting: 0"
    )
    assert [c.number for c in dbapi.open_connections()] == [1, 2]
    assert dbapi.calls_named("close") == [("close", 3), ("close", 4)]
    assert len(dbapi.calls_named("rollback")) == 4
    assert_nothing_leaked(pool, dbapi)


async def test_dispose_closes_idle_and_expires_checked_out(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=3, max_overflow=0)
    c1, c2, c3 = [await pool.connect() for _ in range(3)]
    await c1.close()
    await c2.close()
    await pool.dispose()
    assert pool.checkedin() == 0
    assert pool.checkedout() == 1
    assert [c.number for c in dbapi.open_connections()] == [3]
    assert number(c3) == 3  # still usable by its holder
    assert await c3.execute("SELECT 1") == [(1,)]
    await c3.close()
    assert [c.number for c in dbapi.open_connections()] == [3]
    async with pool.connect() as conn:  # the expired one is replaced, not reused
        assert number(conn) == 4
    assert dbapi.connections[2].closed
    assert [c.number for c in dbapi.open_connections()] == [4]
    assert pool.overflow() == -2
    assert_nothing_leaked(pool, dbapi)


async def test_timeout_error_says_what_happened_and_what_to_do(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=1, timeout=0.05)
    held = [await pool.connect() for _ in range(3)]
    with pytest.raises(exc.TimeoutError) as info:
        await pool.connect()
    err = info.value
    assert isinstance(err, builtins.TimeoutError)
    assert err.pool is pool
    assert err.timeout == 0.05
    assert err.waited is not None  # on the pool's (fake) clock
    assert (err.stats.in_use, err.stats.idle, err.stats.timeouts) == (3, 0, 1)
    message = str(err)
    for fragment in (
        repr(pool),
        "0.05s",
        "pool_size=2",
        "max_overflow=1",
        "waited 0.",
        "3 open of 3, 3 in use, 0 idle, 0 waiting",
        "close()",
        "with-block",
        "pool_size/max_overflow/timeout",
    ):
        assert fragment in message
    # The timed-out checkout left the line and took nothing with it.
    assert not pool._slots.waiters
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 3, 1)
    for conn in held:
        await conn.close()
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (2, 0, 0)
    # The first two returned are kept; the third, with pool_size idle, closed.
    assert dbapi.calls_named("close") == [("close", 3)]
    assert_nothing_leaked(pool, dbapi)
    async with pool.connect() as conn:
        assert number(conn) == 1


async def test_zero_timeout_fails_at_once_when_full(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=0)
    assert pool.timeout() == 0.0
    async with pool.connect():
        with pytest.raises(exc.TimeoutError) as info:
            await pool.connect()
    assert info.value.timeout == 0.0
    assert "0.00s" in str(info.value)
    assert not pool._slots.waiters
    assert_nothing_leaked(pool, dbapi)
    async with pool.connect() as conn:  # nothing leaked
        assert number(conn) == 1


async def test_dispose_without_close_drops_idle_connections_unclosed(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2)
    conns = [await pool.connect() for _ in range(2)]
    for conn in conns:
        await conn.close()
    closes: list[Any] = []
    event.listen(pool, "close", lambda c, r: closes.append(c))
    await pool.dispose(close=False)
    assert dbapi.calls_named("close") == [] and closes == []
    assert pool.checkedin() == 0
    assert number(await pool.connect()) == 3


async def test_dispose_without_close_drops_checked_out_connections_on_return(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    """After fork, a connection the parent had checked out is the parent's:
    the child drops it when it comes back, and never closes it."""
    pool = make_queue_pool(pool_size=2)
    held = await pool.connect()
    await pool.dispose(close=False)
    await held.close()
    again = await pool.connect()  # the old connection is expired: dropped, not closed
    assert number(again) == 2
    assert dbapi.calls_named("close") == []
    await again.close()
    # Connections opened after the dispose are closed as usual.
    pool.expire_connections()
    conn = await pool.connect()
    await conn.close()
    assert dbapi.calls_named("close") == [("close", 2)]
