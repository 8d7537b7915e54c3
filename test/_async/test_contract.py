"""Behaviour every pool class shares, run on each of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import event
from poolhouse import exc
from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeAsyncDialect
from ..fakedbapi import FakeOperationalError
from . import _acompat
from .support import fake
from .support import names_of
from .support import number
from .support import record

pytestmark = pytest.mark.asyncio

POOL_CLASSES: list[type[AsyncPool]] = [
    AsyncQueuePool,
    AsyncNullPool,
    AsyncStaticPool,
    AsyncAssertionPool,
    *_acompat.ONLY_HERE,
]

#: Class-specific constructor arguments that recreate() must carry over.
CLASS_KWARGS: dict[type[AsyncPool], dict[str, Any]] = {
    AsyncQueuePool: {
        "pool_size": 3,
        "max_overflow": 2,
        "timeout": 7.0,
        "use_lifo": True,
    },
    **_acompat.ONLY_HERE,
}

MakePool = Callable[..., AsyncPool]


@pytest.fixture(params=POOL_CLASSES, ids=lambda cls: cls.__name__)
def pool_class(request: pytest.FixtureRequest) -> type[AsyncPool]:
    cls: type[AsyncPool] = request.param
    return cls


@pytest.fixture
def make_pool(
    pool_class: type[AsyncPool],
    dbapi: FakeAsyncDBAPI,
    dialect: FakeAsyncDialect,
    clock: FakeClock,
) -> MakePool:
    def make(creator: Callable[..., Any] | None = None, **kwargs: Any) -> AsyncPool:
        kwargs.setdefault("dialect", dialect)
        pool = pool_class(creator or dbapi.connect, **kwargs)
        pool._clock = clock
        return pool

    return make


@pytest.fixture
def pool(make_pool: MakePool) -> AsyncPool:
    return make_pool()


def pools_connections(pool_class: type[AsyncPool]) -> bool:
    """Whether a returned connection stays open for the next checkout."""
    return pool_class is not AsyncNullPool


# -- checkout and return -------------------------------------------------------


async def test_round_trip(
    pool: AsyncPool, pool_class: type[AsyncPool], dbapi: FakeAsyncDBAPI
) -> None:
    async with pool.connect() as conn:
        cursor = conn.cursor()
        await cursor.execute("SELECT 1")
        assert await cursor.fetchone() == (1,)
        assert await conn.execute("SELECT 1") == [(1,)]  # passed through
    expected = [
        ("connect", 1),
        ("cursor", 1),
        ("execute", 1, "SELECT 1"),
        ("execute", 1, "SELECT 1"),
        ("rollback", 1),
    ]
    if not pools_connections(pool_class):
        expected.append(("close", 1))
    assert dbapi.calls == expected
    async with pool.connect() as conn:
        reused = fake(conn) is dbapi.connections[0]
        assert reused is pools_connections(pool_class)
        assert conn.is_valid


async def test_context_manager_returns_the_connection(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    conn = await pool.connect()
    async with conn as entered:
        assert entered is conn
        assert conn.is_valid
    assert not conn.is_valid
    assert conn.is_detached
    assert dbapi.calls_named("rollback") == [("rollback", 1)]


@pytest.mark.parametrize(
    ("reset_on_return", "expected"),
    [
        ("rollback", [("rollback", 1)]),
        (True, [("rollback", 1)]),
        ("commit", [("commit", 1)]),
        (None, []),
        (False, []),
    ],
)
async def test_reset_on_return(
    make_pool: MakePool,
    pool_class: type[AsyncPool],
    dbapi: FakeAsyncDBAPI,
    reset_on_return: Any,
    expected: list[tuple[str, int]],
) -> None:
    pool = make_pool(reset_on_return=reset_on_return)
    seen = record(pool, "reset")
    event.listen(pool, "reset", lambda *args: dbapi.calls.append(("reset event",)))
    conn = await pool.connect()
    await conn.close()
    assert names_of(seen) == ["reset"]
    assert dbapi.calls_named("rollback", "commit") == expected
    # The reset event comes first, then the rollback or commit, and nothing
    # else touches the driver (NullPool then closes the connection).
    closed = [] if pools_connections(pool_class) else [("close", 1)]
    assert dbapi.calls == [("connect", 1), ("reset event",), *expected, *closed]


async def test_events_fire_in_lifecycle_order(pool: AsyncPool) -> None:
    seen = record(pool, awaited=True)
    conn = await pool.connect()
    await conn.close()
    await pool.dispose()
    assert names_of(seen) == [
        "first_connect",
        "connect",
        "checkout",
        "reset",
        "checkin",
        "close",
    ]


async def test_closed_connection_refuses_every_use(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    conn = await pool.connect()
    await conn.close()
    await conn.close()
    calls = list(dbapi.calls)
    seen = record(pool, "invalidate", "soft_invalidate", "checkin")
    assert conn.dbapi_connection is None
    assert conn.driver_connection is None
    uses: list[Callable[[], object]] = [
        conn.cursor,
        lambda: conn.info,
        lambda: conn.execute,
        lambda: conn.rollback(),
    ]
    for use in uses:
        with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
            use()
    with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
        await conn.detach()
    with pytest.warns(
        exc.PoolWarning, match="can't invalidate an already-closed connection"
    ):
        await conn.invalidate()
    assert dbapi.calls == calls
    assert seen == []


async def test_second_close_does_nothing(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    seen = record(pool, "checkin")
    conn = await pool.connect()
    await conn.close()
    calls = list(dbapi.calls)
    await conn.close()
    assert dbapi.calls == calls
    assert names_of(seen) == ["checkin"]
    async with pool.connect() as again:
        assert again.is_valid


async def test_invalidate_then_reconnect(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    seen = record(pool, "invalidate")
    error = FakeOperationalError("gone")
    async with pool.connect() as conn:
        raw = fake(conn)
        await conn.invalidate(error)
        assert not conn.is_valid
        assert raw.closed
    assert seen == [("invalidate", (raw, seen[0][1][1], error))]
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
        await conn.cursor().execute("SELECT 1")
        assert await conn.execute("SELECT 1") == [(1,)]


async def test_recycle_replaces_old_connection(
    make_pool: MakePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    pool = make_pool(recycle=10)
    conn = await pool.connect()
    await conn.close()
    clock.advance(11)
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed


async def test_expire_connections(pool: AsyncPool, dbapi: FakeAsyncDBAPI) -> None:
    conn = await pool.connect()
    await conn.close()
    pool.expire_connections()
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed


async def test_pre_ping_replaces_a_dead_connection(
    make_pool: MakePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_pool(pre_ping=True)
    conn = await pool.connect()
    await conn.close()
    dbapi.connections[0].kill()
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
        await conn.cursor().execute("SELECT 1")
    assert dbapi.connections[0].closed


async def test_disconnect_in_with_block_invalidates_the_connection(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    error = FakeOperationalError("server closed")
    with pytest.raises(FakeOperationalError) as raised:
        async with pool.connect():
            raise error
    assert raised.value is error
    assert dbapi.connections[0].closed
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]


async def test_detach(pool: AsyncPool, dbapi: FakeAsyncDBAPI) -> None:
    seen = record(pool, "detach", "close_detached")
    conn = await pool.connect()
    raw = fake(conn)
    await conn.detach()
    assert conn.is_detached
    await conn.cursor().execute("SELECT 1")
    async with pool.connect() as other:
        assert fake(other) is not raw
    assert not raw.closed
    await conn.close()
    assert raw.closed
    assert names_of(seen) == ["detach", "close_detached"]


# -- failures leave the pool usable --------------------------------------------


async def test_refused_connection_leaves_the_pool_usable(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    refused = FakeOperationalError("connection refused")
    dbapi.refuse_connect = refused
    with pytest.raises(FakeOperationalError) as raised:
        async with pool.connect():
            pass
    assert raised.value is refused
    with pytest.raises(FakeOperationalError) as raised:
        await pool.connect()
    assert raised.value is refused
    dbapi.refuse_connect = None
    async with pool.connect() as conn:
        assert number(conn) == 1


@pytest.mark.parametrize("identifier", ["first_connect", "connect", "checkout"])
async def test_failing_listener_leaves_the_pool_usable(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI, identifier: str
) -> None:
    error = RuntimeError(f"{identifier} listener failed")

    async def fail(*args: Any) -> None:
        await _acompat.checkpoint()
        raise error

    event.listen(pool, identifier, fail)
    with pytest.raises(RuntimeError) as raised:
        await pool.connect()
    assert raised.value is error
    event.remove(pool, identifier, fail)
    async with pool.connect() as conn:
        assert conn.is_valid
    assert len(dbapi.open_connections()) <= 1


async def test_checkout_rejecting_every_connection_gives_up_after_three(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    def reject(*args: Any) -> None:
        raise exc.DisconnectionError("stale")

    event.listen(pool, "checkout", reject)
    with pytest.raises(exc.InvalidRequestError, match="rejected 3") as raised:
        await pool.connect()
    assert raised.value.pool is pool
    assert len(dbapi.calls_named("connect")) == 3
    assert dbapi.open_connections() == []
    event.remove(pool, "checkout", reject)
    async with pool.connect() as conn:
        assert number(conn) == 4


# -- recreate, dispose, status -------------------------------------------------


async def test_recreate_keeps_class_arguments_and_listeners(
    make_pool: MakePool,
    pool_class: type[AsyncPool],
    dbapi: FakeAsyncDBAPI,
    clock: FakeClock,
) -> None:
    pool = make_pool(
        recycle=10,
        reset_on_return="commit",
        pre_ping=True,
        logging_name="contract",
        **CLASS_KWARGS.get(pool_class, {}),
    )
    status = pool.status().replace(repr(pool), "<pool>")
    seen = record(pool, "checkout", awaited=True)

    new = pool.recreate()

    assert type(new) is pool_class
    assert new is not pool
    assert new.status().replace(repr(new), "<pool>") == status
    assert new.logger.name == pool.logger.name
    assert new.dialect is pool.dialect
    assert new._clock is clock
    if isinstance(new, AsyncQueuePool):
        assert new.timeout() == 7.0
    conn = await new.connect()
    await conn.close()  # the same creator, listener and reset style
    assert dbapi.calls_named("connect", "commit") == [("connect", 1), ("commit", 1)]
    assert names_of(seen) == ["checkout"]
    dbapi.connections[0].kill()
    async with new.connect() as conn:  # pre_ping replaces the dead connection
        assert fake(conn) is dbapi.connections[1]
    clock.advance(11)
    async with new.connect() as conn:  # recycle
        assert fake(conn) is dbapi.connections[2]
    assert names_of(seen) == ["checkout"] * 3
    conn = await pool.connect()
    await conn.close()  # the old pool still works, listener not doubled
    assert names_of(seen) == ["checkout"] * 4


async def test_dispose_closes_idle_connections(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    seen = record(pool, "close")
    conn = await pool.connect()
    await conn.close()
    await pool.dispose()
    assert dbapi.open_connections() == []
    assert names_of(seen) == ["close"]
    async with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]


async def test_dispose_leaves_checked_out_connection_usable_until_returned(
    pool: AsyncPool, dbapi: FakeAsyncDBAPI
) -> None:
    conn = await pool.connect()
    raw = fake(conn)
    await pool.dispose()
    await conn.cursor().execute("SELECT 1")
    assert await conn.execute("SELECT 1") == [(1,)]
    assert not raw.closed
    await conn.close()
    async with pool.connect() as again:
        assert fake(again) is not raw
    assert raw.closed


async def test_status_is_a_line_naming_the_pool(pool: AsyncPool) -> None:
    idle = pool.status()
    async with pool.connect():
        busy = pool.status()
    for status in (idle, busy):
        assert isinstance(status, str)
        if isinstance(pool, AsyncQueuePool):
            # SQLAlchemy's own line, which names no pool.
            assert status.startswith("Pool size: ")
        else:
            assert repr(pool) in status
        assert "\n" not in status
    assert idle != busy or isinstance(pool, AsyncNullPool)


async def test_logger_is_named_after_the_class(
    pool: AsyncPool, pool_class: type[AsyncPool]
) -> None:
    assert pool.logger.name == f"poolhouse.pool.{pool_class.__name__}"
