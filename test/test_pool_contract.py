"""Behaviour every pool class shares, run on each of them."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import ConnectionFairy
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import event
from poolhouse import events
from poolhouse import exc

from .conftest import FakeClock
from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError
from .fakedbapi import LockCheckingDialect

POOL_CLASSES: list[type[Pool]] = [
    QueuePool,
    NullPool,
    StaticPool,
    SingletonThreadPool,
    AssertionPool,
]

ALL_EVENTS = tuple(events.SIGNATURES)

#: Class-specific constructor arguments that recreate() must carry over.
CLASS_KWARGS: dict[type[Pool], dict[str, Any]] = {
    QueuePool: {"pool_size": 3, "max_overflow": 2, "timeout": 7.0, "use_lifo": True},
    SingletonThreadPool: {"pool_size": 3},
}

MakePool = Callable[..., Pool]


@pytest.fixture(params=POOL_CLASSES, ids=lambda cls: cls.__name__)
def pool_class(request: pytest.FixtureRequest) -> type[Pool]:
    cls: type[Pool] = request.param
    return cls


@pytest.fixture
def make_pool(
    pool_class: type[Pool], dbapi: FakeDBAPI, dialect: FakeDialect, clock: FakeClock
) -> MakePool:
    def make(
        creator: Callable[[], FakeConnection] | None = None, **kwargs: Any
    ) -> Pool:
        kwargs.setdefault("dialect", dialect)
        pool = pool_class(creator or dbapi.connect, **kwargs)
        pool._clock = clock
        return pool

    return make


@pytest.fixture
def pool(make_pool: MakePool) -> Pool:
    return make_pool()


def pools_connections(pool_class: type[Pool]) -> bool:
    """Whether a returned connection stays open for the next checkout."""
    return pool_class is not NullPool


def fake(fairy: ConnectionFairy) -> FakeConnection:
    conn = fairy.dbapi_connection
    assert isinstance(conn, FakeConnection)
    return conn


Seen = list[tuple[str, tuple[Any, ...]]]


def _note(seen: Seen, name: str, *args: Any) -> None:
    seen.append((name, args))


def record(target: Any, *names: str) -> Seen:
    """Listen for *names* (default: every event) on *target*; return the log."""
    seen: Seen = []
    for name in names or ALL_EVENTS:
        event.listen(target, name, functools.partial(_note, seen, name))
    return seen


def names_of(seen: Seen) -> list[str]:
    return [name for name, _ in seen]


# -- checkout and return -------------------------------------------------------


def test_round_trip(pool: Pool, pool_class: type[Pool], dbapi: FakeDBAPI) -> None:
    with pool.connect() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    expected = [
        ("connect", 1),
        ("cursor", 1),
        ("execute", 1, "SELECT 1"),
        ("rollback", 1),
    ]
    if not pools_connections(pool_class):
        expected.append(("close", 1))
    assert dbapi.calls == expected
    with pool.connect() as conn:
        reused = fake(conn) is dbapi.connections[0]
        assert reused is pools_connections(pool_class)
        assert conn.is_valid


def test_context_manager_returns_the_connection(pool: Pool, dbapi: FakeDBAPI) -> None:
    conn = pool.connect()
    with conn as entered:
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
def test_reset_on_return(
    make_pool: MakePool,
    dbapi: FakeDBAPI,
    reset_on_return: Any,
    expected: list[tuple[str, int]],
) -> None:
    pool = make_pool(reset_on_return=reset_on_return)
    seen = record(pool, "reset")
    pool.connect().close()
    assert names_of(seen) == ["reset"]
    assert dbapi.calls_named("rollback", "commit") == expected


def test_events_fire_in_lifecycle_order(pool: Pool) -> None:
    seen = record(pool)
    pool.connect().close()
    pool.dispose()
    assert names_of(seen) == [
        "first_connect",
        "connect",
        "checkout",
        "reset",
        "checkin",
        "close",
    ]


def test_closed_connection_refuses_every_use(pool: Pool, dbapi: FakeDBAPI) -> None:
    conn = pool.connect()
    conn.close()
    calls = list(dbapi.calls)
    seen = record(pool, "invalidate", "soft_invalidate", "checkin")
    assert conn.dbapi_connection is None
    assert conn.driver_connection is None
    uses: list[Callable[[], object]] = [
        conn.cursor,
        lambda: conn.info,
        conn.detach,
        lambda: conn.rollback(),
    ]
    for use in uses:
        with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
            use()
    with pytest.warns(
        exc.PoolWarning, match="can't invalidate an already-closed connection"
    ):
        conn.invalidate()
    assert dbapi.calls == calls
    assert seen == []


def test_second_close_does_nothing(pool: Pool, dbapi: FakeDBAPI) -> None:
    seen = record(pool, "checkin")
    conn = pool.connect()
    conn.close()
    calls = list(dbapi.calls)
    conn.close()
    assert dbapi.calls == calls
    assert names_of(seen) == ["checkin"]
    with pool.connect() as again:
        assert again.is_valid


def test_invalidate_then_reconnect(pool: Pool, dbapi: FakeDBAPI) -> None:
    seen = record(pool, "invalidate")
    error = FakeOperationalError("gone")
    with pool.connect() as conn:
        raw = fake(conn)
        conn.invalidate(error)
        assert not conn.is_valid
        assert raw.closed
    assert seen == [("invalidate", (raw, seen[0][1][1], error))]
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
        conn.cursor().execute("SELECT 1")


def test_recycle_replaces_old_connection(
    make_pool: MakePool, dbapi: FakeDBAPI, clock: FakeClock
) -> None:
    pool = make_pool(recycle=10)
    pool.connect().close()
    clock.advance(11)
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed


def test_expire_connections(pool: Pool, dbapi: FakeDBAPI) -> None:
    pool.connect().close()
    pool.expire_connections()
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed


def test_pre_ping_replaces_a_dead_connection(
    make_pool: MakePool, dbapi: FakeDBAPI
) -> None:
    pool = make_pool(pre_ping=True)
    pool.connect().close()
    dbapi.connections[0].kill()
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
        conn.cursor().execute("SELECT 1")
    assert dbapi.connections[0].closed


def test_disconnect_in_with_block_invalidates_the_connection(
    pool: Pool, dbapi: FakeDBAPI
) -> None:
    error = FakeOperationalError("server closed")
    with pytest.raises(FakeOperationalError) as raised:
        with pool.connect():
            raise error
    assert raised.value is error
    assert dbapi.connections[0].closed
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]


def test_detach(pool: Pool, dbapi: FakeDBAPI) -> None:
    seen = record(pool, "detach", "close_detached")
    conn = pool.connect()
    raw = fake(conn)
    conn.detach()
    assert conn.is_detached
    conn.cursor().execute("SELECT 1")
    with pool.connect() as other:
        assert fake(other) is not raw
    assert not raw.closed
    conn.close()
    assert raw.closed
    assert names_of(seen) == ["detach", "close_detached"]


def test_dropped_connection_is_returned_by_gc(
    pool: Pool,
    pool_class: type[Pool],
    dbapi: FakeDBAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gc.collect()  # garbage left by earlier tests is not this test's business
    caplog.set_level(logging.WARNING, logger=pool.logger.name)
    conn = pool.connect()
    raw = fake(conn)
    del conn
    gc.collect()
    assert dbapi.calls_named("rollback") == [("rollback", raw.number)]
    assert any(
        r.levelno == logging.WARNING and repr(pool) in r.getMessage()
        for r in caplog.records
    )
    with pool.connect() as again:
        assert (fake(again) is raw) is pools_connections(pool_class)


# -- failures leave the pool usable --------------------------------------------


def test_refused_connection_leaves_the_pool_usable(
    pool: Pool, dbapi: FakeDBAPI
) -> None:
    refused = FakeOperationalError("connection refused")
    dbapi.refuse_connect = refused
    with pytest.raises(FakeOperationalError) as raised:
        pool.connect()
    assert raised.value is refused
    dbapi.refuse_connect = None
    with pool.connect() as conn:
        assert fake(conn).number == 1


@pytest.mark.parametrize("identifier", ["first_connect", "connect", "checkout"])
def test_failing_listener_leaves_the_pool_usable(
    pool: Pool, dbapi: FakeDBAPI, identifier: str
) -> None:
    error = RuntimeError(f"{identifier} listener failed")

    def fail(*args: Any) -> None:
        raise error

    event.listen(pool, identifier, fail)
    with pytest.raises(RuntimeError) as raised:
        pool.connect()
    assert raised.value is error
    event.remove(pool, identifier, fail)
    with pool.connect() as conn:
        assert conn.is_valid
    assert len(dbapi.open_connections()) <= 1


def test_checkout_rejecting_every_connection_gives_up_after_three(
    pool: Pool, dbapi: FakeDBAPI
) -> None:
    def reject(*args: Any) -> None:
        raise exc.DisconnectionError("stale")

    event.listen(pool, "checkout", reject)
    with pytest.raises(exc.InvalidRequestError, match="rejected 3") as raised:
        pool.connect()
    assert raised.value.pool is pool
    assert len(dbapi.calls_named("connect")) == 3
    assert dbapi.open_connections() == []
    event.remove(pool, "checkout", reject)
    with pool.connect() as conn:
        assert fake(conn).number == 4


# -- recreate, dispose, status -------------------------------------------------


def test_recreate_keeps_class_arguments_and_listeners(
    make_pool: MakePool,
    pool_class: type[Pool],
    dbapi: FakeDBAPI,
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
    seen = record(pool, "checkout")
    new = pool.recreate()
    new._clock = clock
    assert type(new) is pool_class
    assert new is not pool
    assert new.status().replace(repr(new), "<pool>") == status
    assert new.logger.name == pool.logger.name
    assert new.dialect is pool.dialect
    if isinstance(new, QueuePool):
        assert new.timeout() == 7.0

    new.connect().close()  # the same creator, listener and reset style
    assert dbapi.calls_named("connect", "commit") == [("connect", 1), ("commit", 1)]
    assert names_of(seen) == ["checkout"]
    dbapi.connections[0].kill()
    with new.connect() as conn:  # pre_ping replaces the dead connection
        assert fake(conn) is dbapi.connections[1]
    clock.advance(11)
    with new.connect() as conn:  # recycle
        assert fake(conn) is dbapi.connections[2]
    assert names_of(seen) == ["checkout"] * 3
    pool.connect().close()  # the old pool still works, listener not doubled
    assert names_of(seen) == ["checkout"] * 4


def test_dispose_closes_idle_connections(pool: Pool, dbapi: FakeDBAPI) -> None:
    seen = record(pool, "close")
    pool.connect().close()
    pool.dispose()
    assert dbapi.open_connections() == []
    assert names_of(seen) == ["close"]
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]


def test_dispose_leaves_checked_out_connection_usable_until_returned(
    pool: Pool, dbapi: FakeDBAPI
) -> None:
    conn = pool.connect()
    raw = fake(conn)
    pool.dispose()
    conn.cursor().execute("SELECT 1")
    assert not raw.closed
    conn.close()
    with pool.connect() as again:
        assert fake(again) is not raw
    assert raw.closed


def test_status_is_a_line_naming_the_pool(pool: Pool) -> None:
    idle = pool.status()
    with pool.connect():
        busy = pool.status()
    for status in (idle, busy):
        assert isinstance(status, str)
        assert repr(pool) in status
        assert "\n" not in status


def test_logger_is_named_after_the_class(pool: Pool, pool_class: type[Pool]) -> None:
    assert pool.logger.name == f"poolhouse.pool.{pool_class.__name__}"


# -- the pool lock is never held around I/O or listeners -----------------------


def test_no_creator_dialect_or_listener_call_holds_the_pool_lock(
    make_pool: MakePool, dbapi: FakeDBAPI
) -> None:
    probe = LockCheckingDialect()

    def creator() -> FakeConnection:
        probe.note("creator")
        return dbapi.connect()

    def probe_note(name: str, *args: Any) -> None:
        probe.note(name)

    pool = make_pool(creator, dialect=probe, pre_ping=True)
    commit_pool = make_pool(creator, dialect=probe, reset_on_return="commit")
    probe.locks += [pool._lock, commit_pool._lock]
    for name in ALL_EVENTS:
        event.listen(pool, name, functools.partial(probe_note, name))
    rejected: list[int] = []

    def reject_once(conn: FakeConnection, rec: object, fairy: object) -> None:
        if not rejected:
            rejected.append(conn.number)
            raise exc.DisconnectionError("stale")

    event.listen(pool, "checkout", reject_once)

    pool.connect().close()  # creator, first_connect, connect, checkout, reset...
    dropped = pool.connect()
    raw = fake(dropped)
    del dropped  # returned by the garbage collector
    gc.collect()
    raw.kill()
    with pool.connect() as conn:  # do_ping
        conn.invalidate(soft=True)
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            fake(conn).kill()
            conn.cursor()  # is_disconnect, invalidate, close
    conn = pool.connect()
    conn.detach()
    conn.close()  # close_detached
    commit_pool.connect().close()  # do_commit
    pool.connect().close()
    pool.dispose()

    assert probe.held_at() == []
    # A NullPool connection is always new at checkout, and a connection that
    # was just opened is not pinged.
    pinged = set() if isinstance(pool, NullPool) else {"do_ping"}
    assert probe.noted() == {
        "creator",
        *ALL_EVENTS,
        "do_rollback",
        "do_commit",
        "do_close",
        *pinged,
        "is_disconnect",
    }
