"""Behaviours that follow SQLAlchemy 2.x's pool exactly (Core v2 regressions).

Each test here failed on the code before Core v2: the slot kept by a hard
invalidate, churn above pool_size, a pool-wide expiry on one disconnect,
``pool_size=0``, fairy weak references, and the rest of the issue's list.
"""

from __future__ import annotations

import gc
import random
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import NullPool
from poolhouse import PoolResetState
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import event
from poolhouse import exc
from poolhouse.aio import AsyncQueuePool

from .fakedbapi import FakeAsyncDBAPI
from .fakedbapi import FakeAsyncDialect
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError
from .fakedbapi import FakeProgrammingError
from .fakedbapi import FalseOnDisconnectAsyncDialect
from .fakedbapi import FalseOnDisconnectDialect


def number(fairy: Any) -> int:
    return int(fairy.dbapi_connection.number)


def run_together(count: int, work: Callable[[int], None], timeout: float = 60) -> None:
    """Run ``work(i)`` in *count* threads released at once by a barrier;
    every thread must finish within *timeout* and raise nothing."""
    start = threading.Barrier(count, timeout=10)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as err:  # noqa: BLE001  # asserted below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive()
    assert errors == []


def cycle_with_cursor(pool: Any, cycles: int) -> None:
    for _ in range(cycles):
        with pool.connect() as conn:
            conn.cursor()


# -- hard invalidate returns the slot -------------------------------------------------


def test_hard_invalidate_returns_the_slot(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=0, dialect=dialect
    )
    conn = pool.connect()
    conn.invalidate()
    assert pool.checkedout() == 0
    again = pool.connect()  # timed out at once before Core v2
    assert number(again) == 2
    again.close()
    assert dbapi.calls_named("rollback") == [("rollback", 2)]  # none on #1


def test_hard_invalidate_returns_the_slot_when_a_listener_raises(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=0, dialect=dialect
    )

    def fail(dbapi_connection: Any, record: Any, exception: Any) -> None:
        raise RuntimeError("listener failed")

    event.listen(pool, "invalidate", fail)
    conn = pool.connect()
    with pytest.raises(RuntimeError, match="listener failed"):
        conn.invalidate()
    assert pool.checkedout() == 0
    assert dbapi.connections[0].closed
    pool.connect().close()


def test_invalidate_after_close_warns_and_does_nothing(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    conn.close()
    with pytest.warns(exc.PoolWarning, match="can't invalidate an already-closed"):
        conn.invalidate()
    assert pool.checkedin() == 1
    assert not dbapi.connections[0].closed


def test_checkin_event_of_an_invalidated_connection_has_no_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    seen: list[Any] = []
    event.listen(pool, "checkin", lambda conn, rec: seen.append(conn))
    pool.connect().invalidate()
    assert seen == [None]


@pytest.mark.asyncio
async def test_async_hard_invalidate_returns_the_slot() -> None:
    dbapi = FakeAsyncDBAPI()
    pool = AsyncQueuePool(
        dbapi.connect,
        pool_size=1,
        max_overflow=0,
        timeout=0,
        dialect=FakeAsyncDialect(),
    )
    conn = await pool.connect()
    await conn.invalidate()
    assert pool.checkedout() == 0
    again = await pool.connect()
    assert number(again) == 2
    await again.close()


# -- no churn above pool_size ---------------------------------------------------------


def test_returned_connection_is_kept_while_fewer_than_pool_size_are_idle(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """Six steady users on pool_size=3: one connection each, no reconnects."""
    pool = QueuePool(dbapi.connect, pool_size=3, max_overflow=3, dialect=dialect)
    held = [pool.connect() for _ in range(5)]
    for _ in range(100):
        pool.connect().close()  # the sixth user, cycling
    assert len(dbapi.calls_named("connect")) == 6  # 105 before Core v2
    for conn in held:
        conn.close()
    # Only what does not fit in pool_size idle is closed.
    assert pool.checkedin() == 3
    assert dbapi.open_count == 3


def test_connection_returned_when_pool_size_are_idle_is_closed(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=2, max_overflow=2, dialect=dialect)
    conns = [pool.connect() for _ in range(4)]
    for conn in conns:
        conn.close()
    assert [c.closed for c in dbapi.connections] == [False, False, True, True]
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (2, 0, 0)


def test_threads_above_pool_size_reconnect_rarely(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """16 threads on 8+8, 3,200 checkouts.  A connection returned while 8 are
    idle is still closed (as in SQLAlchemy), so a reconnect can happen, but
    not once per checkout as before Core v2."""
    pool = QueuePool(dbapi.connect, pool_size=8, max_overflow=8, dialect=dialect)
    run_together(16, lambda i: cycle_with_cursor(pool, 200))
    assert len(dbapi.calls_named("connect")) <= 32
    assert pool.checkedout() == 0


# -- one lost session does not expire the pool ----------------------------------------


def _idle_pool(dbapi: FakeDBAPI, dialect: Any, size: int = 3, **kw: Any) -> QueuePool:
    pool = QueuePool(dbapi.connect, pool_size=size, dialect=dialect, **kw)
    conns = [pool.connect() for _ in range(size)]
    for conn in conns:
        conn.close()
    return pool


def test_disconnect_marks_idle_connections_suspect_not_expired(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = _idle_pool(dbapi, dialect)  # connections 1, 2, 3 idle, FIFO
    dbapi.connections[2].kill()  # 3 is dead too; 2 is healthy
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:  # 1
            dbapi.connections[0].kill()
            conn.cursor()
    assert dbapi.connections[0].closed
    pings_before = len(dbapi.calls_named("execute"))
    healthy = pool.connect()
    assert number(healthy) == 2  # pinged, kept: not reopened
    assert len(dbapi.calls_named("execute")) == pings_before + 1
    replaced = pool.connect()  # 3 failed its ping: replaced by a new one
    assert number(replaced) == 4
    assert dbapi.connections[2].closed
    healthy.close()
    replaced.close()
    # Suspicion is spent: the next checkout of 2 is not pinged again.
    pings = len(dbapi.calls_named("execute"))
    for _ in range(3):
        pool.connect().close()
    assert len(dbapi.calls_named("execute")) == pings


def test_connection_checked_out_during_a_disconnect_is_not_suspect(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=2, dialect=dialect)
    busy = pool.connect()
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            dbapi.connections[1].kill()
            conn.cursor()
    busy.close()
    executes = len(dbapi.calls_named("execute"))
    pool.connect().close()
    assert len(dbapi.calls_named("execute")) == executes


def test_failed_pre_ping_does_not_expire_healthy_connections(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = _idle_pool(dbapi, dialect, pre_ping=True)
    dbapi.connections[0].kill()
    conns = [pool.connect() for _ in range(3)]
    assert sorted(number(c) for c in conns) == [2, 3, 4]
    assert len(dbapi.calls_named("connect")) == 4  # 6 before Core v2


def test_suspect_without_a_ping_is_replaced() -> None:
    dbapi = FakeDBAPI()

    class NoPing:
        def do_rollback(self, conn: Any) -> None:
            conn.rollback()

        def do_commit(self, conn: Any) -> None:
            conn.commit()

        def do_close(self, conn: Any) -> None:
            conn.close()

        def is_disconnect(self, e: BaseException, conn: Any) -> bool:
            return isinstance(e, FakeOperationalError)

    pool = _idle_pool(dbapi, NoPing(), size=2)
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            dbapi.connections[0].kill()
            conn.cursor()
    assert number(pool.connect()) == 3  # 2 was suspect and cannot be pinged


def test_expire_connections_and_invalidate_pool_error_stay_pool_wide(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = _idle_pool(dbapi, dialect, size=2)
    pool.expire_connections()
    a, b = pool.connect(), pool.connect()
    assert sorted([number(a), number(b)]) == [3, 4]
    a.close()
    b.close()

    calls: list[Any] = []

    def reject_once(conn: Any, rec: Any, proxy: Any) -> None:
        if not calls:
            calls.append(conn)
            raise exc.InvalidatePoolError("server restarted")

    event.listen(pool, "checkout", reject_once)
    c = pool.connect()
    assert number(c) == 5
    c.close()
    assert number(pool.connect()) == 6  # 4 expired by InvalidatePoolError


@pytest.mark.asyncio
async def test_async_disconnect_does_not_expire_healthy_connections() -> None:
    dbapi = FakeAsyncDBAPI()
    pool = AsyncQueuePool(dbapi.connect, pool_size=3, dialect=FakeAsyncDialect())
    conns = [await pool.connect() for _ in range(3)]
    for conn in conns:
        await conn.close()
    with pytest.raises(Exception):  # noqa: B017  # the fake driver's disconnect
        async with pool.connect() as conn:
            dbapi.connections[0].kill()
            await conn.execute("SELECT 1")
    again = [await pool.connect() for _ in range(2)]
    assert sorted(number(c) for c in again) == [2, 3]
    for conn in again:
        await conn.close()


# -- pool_size=0, timeout=None --------------------------------------------------------


def test_pool_size_zero_means_no_limit(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=0, max_overflow=0, timeout=0, dialect=dialect
    )
    conns = [pool.connect() for _ in range(40)]
    assert pool.overflow() == 0
    assert pool.checkedout() == 40
    for conn in conns:
        conn.close()
    assert pool.checkedin() == 40
    assert dbapi.open_count == 40
    assert "Connections in pool: 40 Current Overflow: 0 " in pool.status()
    assert pool.stats().max_size is None


def test_timeout_none_waits_for_a_returned_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=None, dialect=dialect
    )
    held = pool.connect()
    waiting = threading.Event()
    got: list[Any] = []
    event.listen(pool, "checkout", lambda c, r, p: got.append(c))

    def wait() -> None:
        waiting.set()
        pool.connect().close()

    t = threading.Thread(target=wait)
    t.start()
    assert waiting.wait(5)
    while pool.stats().waiting != 1:
        assert t.is_alive()  # still queued, not timed out
    held.close()
    t.join(5)
    assert not t.is_alive()
    assert got == [dbapi.connections[0]]
    assert pool.timeout() is None


def test_max_overflow_below_minus_one_is_rejected(dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError, match="max_overflow=-2 is invalid"):
        QueuePool(dbapi.connect, max_overflow=-2)


# -- the fairy ------------------------------------------------------------------------


def test_fairy_takes_weak_references_and_attributes(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    registry: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
    registry[conn] = "session"
    conn.owner = "test"  # type: ignore[attr-defined]  # fairies take attributes
    assert conn.owner == "test"
    assert registry[conn] == "session"
    conn.close()
    del conn
    gc.collect()
    assert len(registry) == 0


def test_dbapi_connection_is_none_once_returned_or_invalidated(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    returned = pool.connect()
    returned.close()
    invalidated = pool.connect()
    invalidated.invalidate()
    for fairy in (returned, invalidated):
        assert fairy.dbapi_connection is None
        assert fairy.driver_connection is None
        with pytest.raises(exc.InvalidRequestError, match="returned to its pool"):
            fairy.cursor()
        with pytest.raises(exc.InvalidRequestError, match="returned to its pool"):
            fairy.commit()


def test_closing_a_detached_fairy_resets_it_then_closes(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    seen: list[tuple[str, Any]] = []
    event.listen(pool, "reset", lambda c, r, state: seen.append(("reset", (r, state))))
    event.listen(pool, "close_detached", lambda c: seen.append(("close_detached", c)))
    conn = pool.connect()
    raw = conn.dbapi_connection
    conn.detach()
    conn.close()
    assert seen == [
        (
            "reset",
            (
                None,
                PoolResetState(
                    transaction_was_reset=False, terminate_only=True, asyncio_safe=True
                ),
            ),
        ),
        ("close_detached", raw),
    ]
    assert [c[0] for c in dbapi.calls if c[1] == 1] == ["connect", "rollback", "close"]


# -- SingletonThreadPool --------------------------------------------------------------


def test_nested_connect_in_a_thread_returns_the_same_fairy(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = SingletonThreadPool(dbapi.connect, dialect=dialect)
    checkouts: list[Any] = []
    event.listen(pool, "checkout", lambda c, r, p: checkouts.append(p))
    outer = pool.connect()
    inner = pool.connect()
    assert inner is outer
    assert len(checkouts) == 1
    inner.close()
    assert outer.is_valid
    assert dbapi.calls_named("rollback") == []
    outer.close()
    assert not outer.is_valid
    assert dbapi.calls_named("rollback") == [("rollback", 1)]
    again = pool.connect()
    assert again is not outer and number(again) == 1
    again.close()


def test_singleton_threads_never_get_a_closed_connection(dialect: FakeDialect) -> None:
    """4 threads on pool_size=1: a thread's idle connection may be closed by
    another's surplus, but never after it was handed out."""
    dbapi = FakeDBAPI()
    pool = SingletonThreadPool(dbapi.connect, pool_size=1, dialect=dialect)
    closed_at_checkout: list[Any] = []
    event.listen(
        pool,
        "checkout",
        lambda c, r, p: closed_at_checkout.append(c) if c.closed else None,
    )
    run_together(4, lambda i: cycle_with_cursor(pool, 3000))
    assert closed_at_checkout == []


# -- duck-typed dialects --------------------------------------------------------------


class _Minimal:
    def do_rollback(self, conn: Any) -> None:
        conn.rollback()

    def do_commit(self, conn: Any) -> None:
        conn.commit()

    def do_close(self, conn: Any) -> None:
        conn.close()


def test_a_dialect_needs_only_rollback_commit_and_close(dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect, dialect=_Minimal())
    dbapi.fail_execute = FakeOperationalError("lost")
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            # No is_disconnect: not a disconnect, so not invalidated.
            conn.cursor().execute("SELECT 1")
    assert not dbapi.connections[0].closed
    assert pool.checkedin() == 1


def test_pre_ping_needs_a_ping(dbapi: FakeDBAPI) -> None:
    with pytest.raises(TypeError, match="lacks do_ping"):
        QueuePool(dbapi.connect, dialect=_Minimal(), pre_ping=True)


def test_three_argument_is_disconnect_is_accepted(dbapi: FakeDBAPI) -> None:
    seen: list[tuple[Any, ...]] = []

    class SQLAlchemyStyle(_Minimal):
        def is_disconnect(self, e: BaseException, connection: Any, cursor: Any) -> bool:
            seen.append((type(e), connection, cursor))
            return True

    pool = QueuePool(dbapi.connect, dialect=SQLAlchemyStyle())
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            dbapi.connections[0].kill()
            conn.cursor()
    assert seen == [(FakeOperationalError, dbapi.connections[0], None)]
    assert dbapi.connections[0].closed


@pytest.mark.parametrize(
    "dialect_class",
    [FakeDialect, FalseOnDisconnectDialect],
    ids=["ping-raises", "ping-returns-false"],
)
def test_pre_ping_replaces_a_dead_connection_under_either_ping_contract(
    dbapi: FakeDBAPI, dialect_class: type[FakeDialect]
) -> None:
    """A ping raising the driver's disconnect error (SQLAlchemy 2.x's contract)
    and a custom one returning ``False`` both get the connection replaced."""
    pool = _idle_pool(dbapi, dialect_class(), size=2, pre_ping=True)
    dbapi.connections[0].kill()
    conns = [pool.connect() for _ in range(2)]
    assert sorted(number(c) for c in conns) == [2, 3]
    assert dbapi.connections[0].closed
    # The dead connection's ping failed at cursor(); 3, just opened, is not pinged.
    assert dbapi.calls_named("cursor") == [("cursor", 1), ("cursor", 2)]
    for conn in conns:
        conn.close()


def test_ping_error_that_is_not_a_disconnect_propagates(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = _idle_pool(dbapi, dialect, size=1, pre_ping=True)
    dbapi.fail_execute = FakeProgrammingError("permission denied")
    with pytest.raises(FakeProgrammingError) as info:
        pool.connect()
    assert info.value is dbapi.fail_execute
    assert len(dbapi.calls_named("connect")) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "dialect_class",
    [FakeAsyncDialect, FalseOnDisconnectAsyncDialect],
    ids=["ping-raises", "ping-returns-false"],
)
async def test_async_pre_ping_replaces_a_dead_connection_under_either_ping_contract(
    dialect_class: type[FakeAsyncDialect],
) -> None:
    dbapi = FakeAsyncDBAPI()
    pool = AsyncQueuePool(
        dbapi.connect, pool_size=2, dialect=dialect_class(), pre_ping=True
    )
    conns = [await pool.connect() for _ in range(2)]
    for conn in conns:
        await conn.close()
    dbapi.connections[0].kill()
    again = [await pool.connect() for _ in range(2)]
    assert sorted(number(c) for c in again) == [2, 3]
    assert dbapi.connections[0].closed
    for conn in again:
        await conn.close()


# -- bad input ------------------------------------------------------------------------


def test_listener_arity_is_checked_at_registration(dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect)
    with pytest.raises(TypeError, match="cannot take the event's arguments"):
        event.listen(pool, "checkout", lambda conn: None)
    with pytest.raises(TypeError, match="by keyword"):
        event.listen(pool, "connect", lambda conn: None, named=True)
    event.listen(pool, "checkout", lambda *args: None)  # fine
    event.listen(pool, "checkout", lambda **kw: None, named=True)  # fine


# -- dispose(close=False) -------------------------------------------------------------


def test_static_pool_dispose_without_close(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    pool.connect().close()
    pool.dispose(close=False)
    assert dbapi.calls_named("close") == []
    assert number(pool.connect()) == 2


# -- the hammer -----------------------------------------------------------------------


def test_hammer_with_invalidations_keeps_the_limit_and_frees_every_slot(
    dialect: FakeDialect,
) -> None:
    dbapi = FakeDBAPI()
    pool = QueuePool(
        dbapi.connect, pool_size=4, max_overflow=4, timeout=30, dialect=dialect
    )

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(300):
            conn = pool.connect()
            conn.cursor()
            if rnd.random() < 0.2:
                conn.invalidate()  # no close afterwards
            else:
                conn.close()

    run_together(16, work)
    assert dbapi.max_open <= 8
    assert pool.checkedout() == 0
    assert pool._slots.opened == pool.checkedin() <= 4


# -- events and logging ---------------------------------------------------------------


def test_a_pool_without_listeners_has_none_when_another_pool_has(
    dbapi: FakeDBAPI,
) -> None:
    quiet = QueuePool(dbapi.connect)
    busy = QueuePool(dbapi.connect)
    for _ in range(3):
        event.listen(busy, "checkout", lambda c, r, p: None)
    assert quiet._listeners.checkout == ()
    assert len(busy._listeners.checkout) == 3
    event.listen(QueuePool, "checkin", lambda c, r: None)
    assert len(quiet._listeners.checkin) == 1  # class listeners reach it


def test_static_pool_dispose_without_close_while_in_use(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    pool.dispose(close=False)
    conn.close()
    assert dbapi.calls_named("close") == []
    assert number(pool.connect()) == 2


def test_fairy_collected_under_the_pool_lock_reaches_a_waiter(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """The collector runs while a thread holds the pool lock: the record is
    still checked in (by a helper thread once the lock is free), so a
    waiter gets it instead of timing out."""
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=10, dialect=dialect
    )
    conn = pool.connect()
    got: list[int] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        with pool.connect() as again:
            got.append(number(again))

    t = threading.Thread(target=wait)
    t.start()
    assert waiting.wait(5)
    while pool.stats().waiting != 1:
        assert t.is_alive()
    with pool._lock:
        del conn
        gc.collect()
    t.join(10)
    assert not t.is_alive()
    assert got == [1]
    assert pool.checkedout() == 0


def test_recreate_keeps_the_class_and_arguments(dbapi: FakeDBAPI) -> None:
    for pool in (
        NullPool(dbapi.connect, recycle=5),
        StaticPool(dbapi.connect, recycle=5),
        QueuePool(dbapi.connect, pool_size=2, recycle=5),
        SingletonThreadPool(dbapi.connect, pool_size=2, recycle=5),
    ):
        new = pool.recreate()
        assert type(new) is type(pool) and new is not pool
        assert new._recycle == 5


def test_subclass_taking_keyword_arguments_passes_them_on(dbapi: FakeDBAPI) -> None:
    class TaggedPool(QueuePool[Any]):
        def __init__(self, creator: Any, tag: str = "", **kw: Any) -> None:
            super().__init__(creator, **kw)
            self.tag = tag

    pool = TaggedPool(dbapi.connect, tag="reports", max_overflow=2)
    assert (pool.tag, pool._max_overflow) == ("reports", 2)
    with pytest.raises(TypeError, match="pool_sise"):
        TaggedPool(dbapi.connect, pool_sise=2)
