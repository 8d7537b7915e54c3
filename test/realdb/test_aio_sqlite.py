"""The asyncio pools over aiosqlite, on a database file.

Like sqlite3, aiosqlite has no server: a connection is "lost" only when it is
closed behind the pool's back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool
from poolhouse.dialects.aiosqlite import AiosqliteDialect
from poolhouse.dialects.base import AsyncDialect

aiosqlite = pytest.importorskip(
    "aiosqlite", reason="aiosqlite is not installed (pip install aiosqlite)"
)

pytestmark = pytest.mark.realdb

ASYNC_CLASSES = (AsyncQueuePool, AsyncNullPool, AsyncStaticPool, AsyncAssertionPool)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A database file holding table ``t`` with the row ``(1, 0)``."""
    db = tmp_path / "poolhouse.sqlite3"
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        conn.execute("INSERT INTO t (id, v) VALUES (1, 0)")
        conn.commit()
    finally:
        conn.close()
    return db


@pytest_asyncio.fixture
async def pools() -> AsyncIterator[list[AsyncPool]]:
    """Pools to dispose of after the test, whatever happened in it."""
    made: list[AsyncPool] = []
    yield made
    for pool in made:
        await pool.dispose()


def creator(path: Path, style: str = "awaitable", **kw: Any) -> Callable[[], Any]:
    """A creator for *path*: a plain function returning aiosqlite's awaitable
    connection, or an ``async def`` awaiting it."""
    if style == "awaitable":
        return lambda: aiosqlite.connect(path, timeout=2, **kw)

    async def connect() -> Any:
        return await aiosqlite.connect(path, timeout=2, **kw)

    return connect


async def fetchall(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    rows: Awaitable[Any] = conn.execute_fetchall(sql)
    return [tuple(row) for row in await rows]


@pytest.mark.asyncio
@pytest.mark.parametrize("style", ["awaitable", "async-def"])
@pytest.mark.parametrize("poolclass", ASYNC_CLASSES, ids=lambda c: c.__name__)
async def test_round_trip_through_each_async_pool_class(
    path: Path, pools: list[AsyncPool], poolclass: type[AsyncPool], style: str
) -> None:
    pool = poolclass(creator(path, style))
    pools.append(pool)
    assert type(pool.dialect) is AsyncDialect  # until the driver is known

    for _ in range(2):
        async with pool.connect() as conn:
            assert isinstance(conn.driver_connection, aiosqlite.Connection)
            assert await fetchall(conn, "SELECT v FROM t WHERE id = 1") == [(0,)]

    assert type(pool.dialect) is AiosqliteDialect


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "explicit_begin", [False, True], ids=["implicit-tx", "begin-in-autocommit"]
)
async def test_reset_on_return_rolls_back_and_releases_the_write_lock(
    path: Path, pools: list[AsyncPool], explicit_begin: bool
) -> None:
    kw: dict[str, Any] = {"isolation_level": None} if explicit_begin else {}
    pool = AsyncQueuePool(creator(path, **kw), pool_size=1, max_overflow=0)
    pools.append(pool)

    async with pool.connect() as conn:
        if explicit_begin:
            await conn.execute("BEGIN")
        await conn.execute("UPDATE t SET v = 1 WHERE id = 1")
        await conn.execute("INSERT INTO t (id, v) VALUES (2, 0)")
        assert conn.in_transaction

    # A second connection: BEGIN IMMEDIATE needs the write lock, which it
    # waits for at most 2 s, then fails with "database is locked" if the
    # reset left it held.
    async with aiosqlite.connect(path, timeout=2, isolation_level=None) as probe:
        await probe.execute("BEGIN IMMEDIATE")
        assert await fetchall(probe, "SELECT id, v FROM t") == [(1, 0)]
        await probe.execute("ROLLBACK")
    async with pool.connect() as conn:
        assert not conn.in_transaction


@pytest.mark.asyncio
async def test_reset_on_return_commit_keeps_the_write(
    path: Path, pools: list[AsyncPool]
) -> None:
    pool = AsyncQueuePool(creator(path), pool_size=1, reset_on_return="commit")
    pools.append(pool)
    async with pool.connect() as conn:
        await conn.execute("UPDATE t SET v = 7 WHERE id = 1")
    async with aiosqlite.connect(path, timeout=2) as probe:
        assert await fetchall(probe, "SELECT v FROM t WHERE id = 1") == [(7,)]


@pytest.mark.asyncio
async def test_closed_connection_is_replaced_at_checkout_with_pre_ping(
    path: Path, pools: list[AsyncPool]
) -> None:
    pool = AsyncQueuePool(creator(path), pool_size=1, max_overflow=0, pre_ping=True)
    pools.append(pool)
    async with pool.connect() as conn:
        first = conn.driver_connection
        assert first is not None
    await first.close()  # behind the pool's back

    async with pool.connect() as conn:
        assert conn.driver_connection is not first
        assert await fetchall(conn, "SELECT 1") == [(1,)]
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1


@pytest.mark.asyncio
async def test_closed_connection_error_propagates_then_pool_recovers(
    path: Path, pools: list[AsyncPool]
) -> None:
    pool = AsyncQueuePool(creator(path), pool_size=1, max_overflow=0)
    pools.append(pool)
    async with pool.connect() as conn:
        first = conn.driver_connection
        assert first is not None
    await first.close()

    with pytest.raises(ValueError) as info:
        async with pool.connect() as conn:
            await conn.execute("SELECT 1")

    assert pool.dialect.is_disconnect(info.value, first)
    async with pool.connect() as conn:
        assert conn.driver_connection is not first
        assert await fetchall(conn, "SELECT 1") == [(1,)]
