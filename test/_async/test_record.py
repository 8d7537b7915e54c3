"""The connection record: the slot a checkout gets, the connection it opens
and holds, its info dicts, and invalidating it directly."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from poolhouse.aio import AsyncQueuePool

from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeOperationalError
from .support import checkout_records
from .support import fake
from .support import names_of
from .support import record

pytestmark = pytest.mark.asyncio

MakeQueuePool = Callable[..., AsyncQueuePool]


async def test_record_holds_the_dbapi_connection_while_checked_out(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    recs = checkout_records(pool)
    async with pool.connect():
        (rec,) = recs
        assert rec.dbapi_connection is dbapi.connections[0]
        assert rec.driver_connection is dbapi.connections[0]
        assert rec.in_use
    assert not rec.in_use
    assert rec.dbapi_connection is dbapi.connections[0]


async def test_record_last_connect_time_is_wall_clock(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    recs = checkout_records(pool)
    before = time.time()
    conn = await pool.connect()
    await conn.close()
    after = time.time()
    assert before <= recs[0].last_connect_time <= after


async def test_record_info_is_cleared_with_a_new_connection_record_info_is_kept(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    recs = checkout_records(pool)
    async with pool.connect() as conn:
        rec = recs[0]
        assert conn.info is rec.info
        assert conn.record_info is rec.record_info
        rec.info["session"] = "a"
        rec.record_info["slot"] = "kept"
        await conn.invalidate()
    async with pool.connect() as conn:
        assert recs[1] is rec
        assert fake(conn) is dbapi.connections[1]
        assert rec.info == {}
        assert rec.record_info == {"slot": "kept"}
        assert conn.record_info == {"slot": "kept"}


async def test_record_invalidate_closes_connection_and_reconnects_at_checkout(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    recs = checkout_records(pool)
    conn = await pool.connect()
    await conn.close()
    seen = record(pool, "invalidate", "soft_invalidate")
    error = FakeOperationalError("gone")
    await recs[0].invalidate(error)
    first = dbapi.connections[0]
    assert first.closed
    assert recs[0].dbapi_connection is None
    assert seen == [("invalidate", (first, recs[0], error))]
    await recs[0].invalidate()  # nothing left to invalidate
    assert len(seen) == 1
    async with pool.connect() as conn:
        assert recs[1] is recs[0]
        assert fake(conn) is dbapi.connections[1]


async def test_record_soft_invalidate_keeps_connection_until_next_checkout(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    recs = checkout_records(pool)
    seen = record(pool, "invalidate", "soft_invalidate", "close")
    async with pool.connect() as conn:
        first = fake(conn)
        await recs[0].invalidate(soft=True)
        assert conn.is_valid
        await conn.cursor().execute("SELECT 1")
        assert not first.closed
    assert seen == [("soft_invalidate", (first, recs[0], None))]
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert first.closed
    assert names_of(seen) == ["soft_invalidate", "close"]


async def test_creator_returning_none_is_a_type_error_and_frees_the_slot(
    make_queue_pool: MakeQueuePool,
) -> None:
    async def creator() -> None:
        return None

    pool = make_queue_pool(creator, pool_size=1, max_overflow=0)
    with pytest.raises(TypeError, match="creator .*creator.* returned None"):
        await pool.connect()
    assert pool.checkedout() == 0
