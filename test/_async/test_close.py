"""Closing a pool: close(), terminate() and the pool as a context manager."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from poolhouse import exc
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool

from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeAsyncDialect
from ._acompat import Background
from ._acompat import checkpoint
from .support import wait_until_queued

pytestmark = pytest.mark.asyncio

MakeQueuePool = Any


async def test_close_closes_idle_connections_and_refuses_checkouts(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    await conn.close()
    assert not pool.closed
    await pool.close()
    assert pool.closed
    assert dbapi.calls_named("close") == [("close", 1)]
    with pytest.raises(exc.PoolClosedError, match="is closed") as info:
        await pool.connect()
    assert info.value.pool is pool
    await pool.close()  # again: nothing more to do
    assert dbapi.calls_named("close") == [("close", 1)]


async def test_connection_out_at_close_is_closed_when_returned(
    make_queue_pool: MakeQueuePool,
    dbapi: FakeAsyncDBAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = make_queue_pool()
    held = await pool.connect()
    with caplog.at_level(logging.WARNING, logger="poolhouse"):
        await pool.close(timeout=0)
    assert "1 connections still checked out" in caplog.text
    assert dbapi.calls_named("close") == []
    await held.close()
    assert dbapi.calls_named("rollback", "close") == [("rollback", 1), ("close", 1)]
    assert pool.checkedout() == 0


async def test_close_waits_for_connections_out(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    held = await pool.connect()
    closing = Background(lambda: pool.close(timeout=None))
    while not pool.closed:
        await checkpoint()
    assert closing.is_running()
    await held.close()
    await closing.result()
    assert dbapi.calls_named("close") == [("close", 1)]


async def test_waiters_fail_when_the_pool_closes(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=None)
    held = await pool.connect()
    waiting = Background(pool.connect)
    await wait_until_queued(pool, waiting)
    await pool.close(timeout=0)
    with pytest.raises(exc.PoolClosedError):
        await waiting.result()
    await held.close()
    assert pool.checkedout() == 0


async def test_terminate_closes_connections_in_use(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    idle = await pool.connect()
    held = await pool.connect()
    await idle.close()
    await pool.terminate()
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [1, 2]
    with pytest.raises(exc.InvalidRequestError, match="closed this connection"):
        held.cursor()
    await held.close()  # still fine, and closes nothing twice
    assert len(dbapi.calls_named("close")) == 2
    assert pool.checkedout() == 0
    await pool.terminate()


@pytest.mark.parametrize("pool_class", [AsyncNullPool, AsyncStaticPool])
async def test_other_pools_close_too(
    pool_class: Any, dbapi: FakeAsyncDBAPI, dialect: FakeAsyncDialect
) -> None:
    pool = pool_class(dbapi.connect, dialect=dialect)
    held = await pool.connect()
    await pool.close(timeout=0)
    with pytest.raises(exc.PoolClosedError):
        await pool.connect()
    await held.close()
    assert dbapi.open_connections() == []


async def test_pool_is_a_context_manager(
    dbapi: FakeAsyncDBAPI, dialect: FakeAsyncDialect
) -> None:
    async with AsyncQueuePool(dbapi.connect, dialect=dialect) as pool:
        conn = await pool.connect()
        await conn.close()
    assert pool.closed
    assert dbapi.open_connections() == []


async def test_close_timeout_is_checked(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool()
    with pytest.raises(ValueError, match="timeout=-1 is invalid"):
        await pool.close(timeout=-1)
    assert not pool.closed
