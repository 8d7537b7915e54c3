"""The connection fairy: pass-through, returning it, its state, and every use
of it once returned or invalidated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import exc
from poolhouse.aio import AsyncConnectionFairy
from poolhouse.aio import AsyncQueuePool

from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeOperationalError
from .support import checkout_records
from .support import fake
from .support import names_of
from .support import number
from .support import record

pytestmark = pytest.mark.asyncio

MakeQueuePool = Callable[..., AsyncQueuePool]
#: Something done with a fairy; awaited on the asyncio side.
Use = Callable[[AsyncConnectionFairy], Any]


# -- using and returning it ----------------------------------------------------


async def test_fairy_proxies_the_dbapi_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    async with pool.connect() as conn:
        raw = dbapi.connections[0]
        assert conn.dbapi_connection is raw
        assert conn.driver_connection is raw
        assert conn.cursor().connection is raw
        assert conn.number == raw.number  # attribute pass-through
        await conn.commit()  # method pass-through
    assert dbapi.calls == [
        ("connect", 1),
        ("cursor", 1),
        ("commit", 1),
        ("rollback", 1),
    ]


async def test_close_returns_the_connection_for_reuse(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=1)
    conn = await pool.connect()
    assert isinstance(conn, AsyncConnectionFairy)
    assert conn.is_valid
    assert conn.driver_connection is dbapi.connections[0]
    assert conn.dbapi_connection is dbapi.connections[0]
    assert await conn.execute("SELECT 1") == [(1,)]  # passed through to the driver
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 1, -1)

    await conn.close()

    assert not conn.is_valid
    assert conn.is_detached
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (1, 0, -1)
    assert dbapi.calls == [
        ("connect", 1),
        ("execute", 1, "SELECT 1"),
        ("rollback", 1),
    ]
    async with pool.connect() as again:
        assert fake(again) is dbapi.connections[0]
    assert dbapi.calls_named("connect") == [("connect", 1)]


async def test_with_block_returns_the_connection_for_reuse(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    async with pool.connect() as conn:
        assert isinstance(conn, AsyncConnectionFairy)
        assert conn.is_valid
        assert pool.checkedout() == 1
    assert not conn.is_valid
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    async with pool.connect() as again:
        assert fake(again) is dbapi.connections[0]


async def test_fairy_as_context_manager_returns_itself_and_checks_in(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    async with conn as entered:
        assert entered is conn
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1
    assert not conn.is_valid


async def test_close_inside_with_block_is_not_repeated_on_exit(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "checkin")
    async with pool.connect() as conn:
        await conn.close()
        assert pool.checkedout() == 0
    assert names_of(seen) == ["checkin"]
    assert dbapi.calls_named("rollback") == [("rollback", 1)]


# -- once returned -------------------------------------------------------------


async def _use_cursor(conn: AsyncConnectionFairy) -> object:
    return conn.cursor()


async def _use_info(conn: AsyncConnectionFairy) -> object:
    return conn.info


async def _use_record_info(conn: AsyncConnectionFairy) -> object:
    return conn.record_info


async def _use_detach(conn: AsyncConnectionFairy) -> None:
    await conn.detach()


async def _use_passthrough_method(conn: AsyncConnectionFairy) -> object:
    return await conn.commit()


async def _use_passthrough_lookup(conn: AsyncConnectionFairy) -> object:
    return conn.execute


async def _use_passthrough_attribute(conn: AsyncConnectionFairy) -> object:
    return conn.number


USES_AFTER_CLOSE: dict[str, Use] = {
    "cursor": _use_cursor,
    "info": _use_info,
    "record_info": _use_record_info,
    "detach": _use_detach,
    "pass-through method": _use_passthrough_method,
    "pass-through method lookup": _use_passthrough_lookup,
    "pass-through attribute": _use_passthrough_attribute,
}


@pytest.mark.parametrize("use", USES_AFTER_CLOSE.values(), ids=USES_AFTER_CLOSE)
async def test_every_use_of_a_closed_fairy_raises(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    await conn.close()
    seen = record(pool)
    calls = list(dbapi.calls)
    with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
        await use(conn)
    assert dbapi.calls == calls
    assert seen == []
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


async def _use_dbapi_connection(conn: AsyncConnectionFairy) -> object:
    return conn.dbapi_connection


async def _use_driver_connection(conn: AsyncConnectionFairy) -> object:
    return conn.driver_connection


CONNECTIONS_AFTER_CLOSE: dict[str, Use] = {
    "dbapi_connection": _use_dbapi_connection,
    "driver_connection": _use_driver_connection,
}


@pytest.mark.parametrize(
    "use", CONNECTIONS_AFTER_CLOSE.values(), ids=CONNECTIONS_AFTER_CLOSE
)
async def test_connection_of_a_closed_fairy_is_none(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    assert await use(conn) is dbapi.connections[0]
    await conn.close()
    calls = list(dbapi.calls)
    assert await use(conn) is None
    assert dbapi.calls == calls
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


async def _invalidate(conn: AsyncConnectionFairy) -> None:
    await conn.invalidate()


async def _soft_invalidate(conn: AsyncConnectionFairy) -> None:
    await conn.invalidate(soft=True)


INVALIDATES_AFTER_CLOSE: dict[str, Use] = {
    "invalidate": _invalidate,
    "soft invalidate": _soft_invalidate,
}


@pytest.mark.parametrize(
    "use", INVALIDATES_AFTER_CLOSE.values(), ids=INVALIDATES_AFTER_CLOSE
)
async def test_invalidating_a_closed_fairy_warns_and_does_nothing(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    await conn.close()
    seen = record(pool)
    calls = list(dbapi.calls)
    with pytest.warns(
        exc.PoolWarning, match="can't invalidate an already-closed connection"
    ):
        await use(conn)
    assert dbapi.calls == calls
    assert seen == []
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    async with pool.connect() as again:  # the idle connection was left alone
        assert fake(again) is dbapi.connections[0]


async def test_second_close_does_nothing(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "reset", "checkin")
    conn = await pool.connect()
    await conn.close()
    calls = list(dbapi.calls)
    await conn.close()
    assert dbapi.calls == calls
    assert names_of(seen) == ["reset", "checkin"]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


async def test_is_valid_and_is_detached_follow_the_fairy_state(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    assert conn.is_valid and not conn.is_detached
    await conn.close()
    assert not conn.is_valid and conn.is_detached

    conn = await pool.connect()
    await conn.invalidate()  # returned at once, like a closed fairy
    assert not conn.is_valid and conn.is_detached
    await conn.close()
    assert not conn.is_valid and conn.is_detached

    conn = await pool.connect()
    await conn.detach()
    assert conn.is_valid and conn.is_detached
    await conn.close()
    assert not conn.is_valid and conn.is_detached


# -- invalidated ---------------------------------------------------------------


async def test_invalidated_fairy_is_returned_at_once(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=0)
    seen = record(pool, "reset", "checkin")
    recs = checkout_records(pool)
    error = FakeOperationalError("gone")
    async with pool.connect() as conn:
        raw = fake(conn)
        await conn.invalidate(error)
        assert raw is dbapi.connections[0]
        assert raw.closed
        assert not conn.is_valid
        # The slot is back at once, while still in the block, without a reset
        # of the invalidated connection: no connection left to check in.
        assert (pool.checkedout(), pool.checkedin()) == (0, 1)
        assert seen == [("checkin", (None, recs[0]))]
        assert conn.dbapi_connection is None
        assert conn.driver_connection is None
        with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
            conn.cursor()
        calls = list(dbapi.calls)
        await conn.close()  # does nothing
        assert dbapi.calls == calls
        assert seen == [("checkin", (None, recs[0]))]
    # Leaving the block did nothing more.
    assert dbapi.calls == calls
    assert seen == [("checkin", (None, recs[0]))]
    assert dbapi.calls_named("rollback") == []  # nothing left to reset
    assert pool.checkedout() == 0
    async with pool.connect() as again:  # timeout=0: the only slot is free
        assert fake(again) is dbapi.connections[1]
        assert number(again) == 2
    assert [c for c in dbapi.calls if c[1:2] == (1,)] == [("connect", 1), ("close", 1)]


async def test_soft_invalidated_fairy_is_usable_then_replaced(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    seen = record(pool, "soft_invalidate", "invalidate")
    async with pool.connect() as conn:
        await conn.invalidate(soft=True)
        assert conn.is_valid
        await conn.cursor().execute("SELECT 1")
        assert await conn.execute("SELECT 1") == [(1,)]
    assert not dbapi.connections[0].closed
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed
    assert names_of(seen) == ["soft_invalidate"]
