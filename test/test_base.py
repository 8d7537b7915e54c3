"""The pool lifecycle, exercised through QueuePool."""

from __future__ import annotations

import functools
import gc
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from poolhouse import ConnectionFairy
from poolhouse import ConnectionRecord
from poolhouse import NullPool
from poolhouse import PoolResetState
from poolhouse import QueuePool
from poolhouse import event
from poolhouse import events
from poolhouse import exc

from .conftest import FakeClock
from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError
from .fakedbapi import FakeProgrammingError
from .fakedbapi import LockCheckingDialect

ALL_EVENTS = tuple(events.SIGNATURES)

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


def fake(fairy: ConnectionFairy) -> FakeConnection:
    conn = fairy.dbapi_connection
    assert isinstance(conn, FakeConnection)
    return conn


def checkout_records(pool: QueuePool) -> list[ConnectionRecord]:
    """Collect the record of every checkout of *pool* from here on."""
    recs: list[ConnectionRecord] = []
    event.listen(pool, "checkout", lambda conn, rec, fairy: recs.append(rec))
    return recs


def raiser(error: BaseException) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        raise error

    return listener


@pytest.fixture
def pool(dbapi: FakeDBAPI, dialect: FakeDialect, clock: FakeClock) -> QueuePool:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    pool._clock = clock
    return pool


# -- constructor ---------------------------------------------------------------


def test_creator_must_be_callable(dialect: FakeDialect) -> None:
    with pytest.raises(TypeError, match="creator must be a callable"):
        QueuePool("dsn", dialect=dialect)  # type: ignore[arg-type]  # under test


def test_creator_without_parameters_is_called_without_arguments(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    calls: list[str] = []

    def creator() -> FakeConnection:
        calls.append("called")
        return dbapi.connect()

    pool = QueuePool(creator, dialect=dialect)
    pool.connect().close()
    assert calls == ["called"]


def test_creator_with_one_parameter_gets_the_record(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    given: list[ConnectionRecord] = []

    def creator(rec: ConnectionRecord) -> FakeConnection:
        given.append(rec)
        return dbapi.connect()

    pool = QueuePool(creator, dialect=dialect)
    recs = checkout_records(pool)
    pool.connect().close()
    assert len(given) == 1
    assert given == recs


def test_creator_with_only_defaulted_parameters_is_called_without_arguments(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    seen: list[float] = []

    def creator(timeout: float = 5.0) -> FakeConnection:
        seen.append(timeout)
        return dbapi.connect()

    QueuePool(creator, dialect=dialect).connect().close()
    assert seen == [5.0]


def test_creator_with_two_required_parameters_is_rejected(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    def creator(dsn: str, rec: ConnectionRecord) -> FakeConnection:
        return dbapi.connect()

    with pytest.raises(TypeError, match="requires 2 positional arguments"):
        QueuePool(creator, dialect=dialect)  # type: ignore[arg-type]  # under test


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"recycle": -2}, ValueError, "recycle"),
        ({"recycle": "60"}, TypeError, "recycle"),
        ({"reset_on_return": "sometimes"}, ValueError, "reset_on_return"),
        ({"echo": "loud"}, ValueError, "echo"),
        ({"logging_name": 7}, TypeError, "logging_name"),
        ({"pre_ping": 1}, TypeError, "pre_ping"),
        ({"dialect": object()}, TypeError, "do_rollback"),
        ({"events": [print]}, TypeError, "events="),
    ],
)
def test_bad_pool_arguments_are_rejected_at_construction(
    dbapi: FakeDBAPI, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        QueuePool(dbapi.connect, **kwargs)
    assert dbapi.calls == []


# -- ConnectionRecord ----------------------------------------------------------


def test_record_holds_the_dbapi_connection_while_checked_out(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    recs = checkout_records(pool)
    with pool.connect():
        (rec,) = recs
        assert rec.dbapi_connection is dbapi.connections[0]
        assert rec.driver_connection is dbapi.connections[0]
        assert rec.in_use
    assert not rec.in_use
    assert rec.dbapi_connection is dbapi.connections[0]


def test_record_last_connect_time_is_wall_clock(pool: QueuePool) -> None:
    recs = checkout_records(pool)
    before = time.time()
    pool.connect().close()
    after = time.time()
    assert before <= recs[0].last_connect_time <= after


def test_record_info_is_cleared_with_a_new_connection_record_info_is_kept(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    recs = checkout_records(pool)
    with pool.connect() as conn:
        rec = recs[0]
        assert conn.info is rec.info
        assert conn.record_info is rec.record_info
        rec.info["session"] = "a"
        rec.record_info["slot"] = "kept"
        conn.invalidate()
    with pool.connect() as conn:
        assert recs[1] is rec
        assert fake(conn) is dbapi.connections[1]
        assert rec.info == {}
        assert rec.record_info == {"slot": "kept"}
        assert conn.record_info == {"slot": "kept"}


def test_record_invalidate_closes_connection_and_reconnects_at_checkout(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    recs = checkout_records(pool)
    pool.connect().close()
    seen = record(pool, "invalidate", "soft_invalidate")
    error = FakeOperationalError("gone")
    recs[0].invalidate(error)
    first = dbapi.connections[0]
    assert first.closed
    assert recs[0].dbapi_connection is None
    assert seen == [("invalidate", (first, recs[0], error))]
    recs[0].invalidate()  # nothing left to invalidate
    assert len(seen) == 1
    with pool.connect() as conn:
        assert recs[1] is recs[0]
        assert fake(conn) is dbapi.connections[1]


def test_record_soft_invalidate_keeps_connection_until_next_checkout(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    recs = checkout_records(pool)
    seen = record(pool, "invalidate", "soft_invalidate", "close")
    with pool.connect() as conn:
        first = fake(conn)
        recs[0].invalidate(soft=True)
        assert conn.is_valid
        conn.cursor().execute("SELECT 1")
        assert not first.closed
    assert seen == [("soft_invalidate", (first, recs[0], None))]
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert first.closed
    assert names_of(seen) == ["soft_invalidate", "close"]


# -- ConnectionFairy -----------------------------------------------------------


def test_fairy_proxies_the_dbapi_connection(pool: QueuePool, dbapi: FakeDBAPI) -> None:
    with pool.connect() as conn:
        raw = dbapi.connections[0]
        assert conn.dbapi_connection is raw
        assert conn.driver_connection is raw
        assert conn.cursor().connection is raw
        assert conn.number == raw.number  # attribute pass-through
        conn.commit()  # method pass-through
    assert dbapi.calls == [
        ("connect", 1),
        ("cursor", 1),
        ("commit", 1),
        ("rollback", 1),
    ]


def test_fairy_as_context_manager_returns_itself_and_checks_in(pool: QueuePool) -> None:
    conn = pool.connect()
    with conn as entered:
        assert entered is conn
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1
    assert not conn.is_valid


def test_close_returns_the_connection_for_reuse(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    conn = pool.connect()
    conn.close()
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    with pool.connect() as again:
        assert fake(again) is dbapi.connections[0]
    assert dbapi.calls_named("connect") == [("connect", 1)]


def _use_info(conn: ConnectionFairy) -> object:
    return conn.info


def _use_record_info(conn: ConnectionFairy) -> object:
    return conn.record_info


def _use_dbapi_connection(conn: ConnectionFairy) -> object:
    return conn.dbapi_connection


def _use_driver_connection(conn: ConnectionFairy) -> object:
    return conn.driver_connection


def _use_passthrough_attribute(conn: ConnectionFairy) -> object:
    return conn.number


USES_AFTER_CLOSE: dict[str, Callable[[ConnectionFairy], object]] = {
    "cursor": lambda conn: conn.cursor(),
    "info": _use_info,
    "record_info": _use_record_info,
    "detach": lambda conn: conn.detach(),
    "pass-through method": lambda conn: conn.commit(),
    "pass-through attribute": _use_passthrough_attribute,
}


@pytest.mark.parametrize("use", USES_AFTER_CLOSE.values(), ids=USES_AFTER_CLOSE)
def test_every_use_of_a_closed_fairy_raises(
    pool: QueuePool, dbapi: FakeDBAPI, use: Callable[[ConnectionFairy], object]
) -> None:
    conn = pool.connect()
    conn.close()
    calls = list(dbapi.calls)
    with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
        use(conn)
    assert dbapi.calls == calls
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


CONNECTIONS_AFTER_CLOSE: dict[str, Callable[[ConnectionFairy], object]] = {
    "dbapi_connection": _use_dbapi_connection,
    "driver_connection": _use_driver_connection,
}


@pytest.mark.parametrize(
    "use", CONNECTIONS_AFTER_CLOSE.values(), ids=CONNECTIONS_AFTER_CLOSE
)
def test_connection_of_a_closed_fairy_is_none(
    pool: QueuePool, dbapi: FakeDBAPI, use: Callable[[ConnectionFairy], object]
) -> None:
    conn = pool.connect()
    assert use(conn) is dbapi.connections[0]
    conn.close()
    calls = list(dbapi.calls)
    assert use(conn) is None
    assert dbapi.calls == calls
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


INVALIDATES_AFTER_CLOSE: dict[str, Callable[[ConnectionFairy], object]] = {
    "invalidate": lambda conn: conn.invalidate(),
    "soft invalidate": lambda conn: conn.invalidate(soft=True),
}


@pytest.mark.parametrize(
    "use", INVALIDATES_AFTER_CLOSE.values(), ids=INVALIDATES_AFTER_CLOSE
)
def test_invalidating_a_closed_fairy_warns_and_does_nothing(
    pool: QueuePool, dbapi: FakeDBAPI, use: Callable[[ConnectionFairy], object]
) -> None:
    conn = pool.connect()
    conn.close()
    seen = record(pool)
    calls = list(dbapi.calls)
    with pytest.warns(
        exc.PoolWarning, match="can't invalidate an already-closed connection"
    ):
        use(conn)
    assert dbapi.calls == calls
    assert seen == []
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    with pool.connect() as again:  # the idle connection was left alone
        assert fake(again) is dbapi.connections[0]


def test_second_close_does_nothing(pool: QueuePool, dbapi: FakeDBAPI) -> None:
    seen = record(pool, "reset", "checkin")
    conn = pool.connect()
    conn.close()
    calls = list(dbapi.calls)
    conn.close()
    assert dbapi.calls == calls
    assert names_of(seen) == ["reset", "checkin"]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


def test_is_valid_and_is_detached_follow_the_fairy_state(pool: QueuePool) -> None:
    conn = pool.connect()
    assert conn.is_valid and not conn.is_detached
    conn.close()
    assert not conn.is_valid and conn.is_detached

    conn = pool.connect()
    conn.invalidate()  # returned at once, like a closed fairy
    assert not conn.is_valid and conn.is_detached
    conn.close()
    assert not conn.is_valid and conn.is_detached

    conn = pool.connect()
    conn.detach()
    assert conn.is_valid and conn.is_detached
    conn.close()
    assert not conn.is_valid and conn.is_detached


def test_invalidated_fairy_is_returned_at_once(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=0, dialect=dialect
    )
    seen = record(pool, "reset", "checkin")
    recs = checkout_records(pool)
    conn = pool.connect()
    error = FakeOperationalError("gone")
    conn.invalidate(error)
    assert dbapi.connections[0].closed
    # The slot is back at once, without a reset of the invalidated connection.
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert seen == [("checkin", (None, recs[0]))]
    assert conn.dbapi_connection is None
    assert conn.driver_connection is None
    with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
        conn.cursor()
    calls = list(dbapi.calls)
    conn.close()  # does nothing
    assert dbapi.calls == calls
    assert seen == [("checkin", (None, recs[0]))]
    with pool.connect() as again:  # timeout=0: the only slot is free
        assert fake(again) is dbapi.connections[1]
    assert [c for c in dbapi.calls if c[1:2] == (1,)] == [("connect", 1), ("close", 1)]


def test_soft_invalidated_fairy_is_usable_then_replaced(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    with pool.connect() as conn:
        conn.invalidate(soft=True)
        assert conn.is_valid
        conn.cursor().execute("SELECT 1")
    assert not dbapi.connections[0].closed
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed


# -- events --------------------------------------------------------------------


def test_invalidate_events_carry_the_exception(pool: QueuePool) -> None:
    seen = record(pool, "invalidate", "soft_invalidate", "close", "checkin")
    error = FakeOperationalError("gone")
    with pool.connect() as conn:
        raw = fake(conn)
        conn.invalidate(error)
    rec = seen[0][1][1]
    assert seen == [
        ("invalidate", (raw, rec, error)),
        ("close", (raw, rec)),
        ("checkin", (None, rec)),
    ]
    del seen[:]
    with pool.connect() as conn:
        raw = fake(conn)
        conn.invalidate(error, soft=True)
    assert seen == [
        ("soft_invalidate", (raw, rec, error)),
        ("checkin", (raw, rec)),
    ]


def test_detach_and_close_detached_events(pool: QueuePool) -> None:
    seen = record(pool, "detach", "close_detached", "close", "reset", "checkin")
    conn = pool.connect()
    raw = fake(conn)
    conn.detach()
    rec = seen[0][1][1]
    assert seen == [("detach", (raw, rec))]
    conn.close()
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


# -- reset on return -----------------------------------------------------------


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
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    reset_on_return: Any,
    expected: list[tuple[str, int]],
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect, reset_on_return=reset_on_return)
    event.listen(pool, "reset", lambda *args: dbapi.calls.append(("reset event",)))
    pool.connect().close()
    assert dbapi.calls == [("connect", 1), ("reset event",), *expected]


def test_interrupted_rollback_discards_the_connection_and_reraises(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    conn = pool.connect()
    dbapi.fail_rollback = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        conn.close()
    dbapi.fail_rollback = None
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


def test_failing_reset_listener_propagates_but_the_record_is_returned(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    error = RuntimeError("reset listener failed")
    event.listen(pool, "reset", raiser(error))
    conn = pool.connect()
    with pytest.raises(RuntimeError) as raised:
        conn.close()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert not conn.is_valid
    conn.close()  # already returned: nothing happens
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


# -- recycle, expiry, pre-ping -------------------------------------------------


def test_without_recycle_connections_never_age(
    pool: QueuePool, clock: FakeClock
) -> None:
    pool.connect().close()
    clock.advance(10**9)
    with pool.connect() as conn:
        assert fake(conn).number == 1


def test_expire_connections_replaces_idle_and_checked_out_at_next_checkout(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    idle = pool.connect()
    busy = pool.connect()
    idle.close()
    pool.expire_connections()
    busy.cursor().execute("SELECT 1")  # still usable until returned
    assert not dbapi.connections[1].closed
    busy.close()
    first, second = pool.connect(), pool.connect()
    assert [fake(first).number, fake(second).number] == [3, 4]
    assert dbapi.connections[0].closed and dbapi.connections[1].closed
    first.close()
    second.close()
    with pool.connect() as conn:  # opened after the expiry: kept
        assert fake(conn).number == 3


def test_without_pre_ping_nothing_is_pinged(pool: QueuePool, dbapi: FakeDBAPI) -> None:
    pool.connect().close()
    pool.connect().close()
    assert dbapi.calls_named("cursor", "execute") == []


def test_pre_ping_replaces_a_dead_connection_and_only_the_dead_others(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect, pre_ping=True)
    held = [pool.connect() for _ in range(3)]
    for conn in held:
        conn.close()  # idle, oldest first: 1, 2, 3
    dbapi.connections[0].kill()
    dbapi.connections[2].kill()  # 3 went down too; 2 did not
    with pool.connect() as conn:
        assert fake(conn).number == 4  # no error for the caller
        conn.cursor().execute("SELECT 1")
        assert dbapi.connections[0].closed
        # Not expired: the idle ones are suspect, to be pinged.
        assert not dbapi.connections[1].closed
        assert not dbapi.connections[2].closed
        assert [rec._suspect for rec in pool._slots.idle] == [True, True]
        mark = len(dbapi.calls)
        second = pool.connect()
        third = pool.connect()
        # The live one is kept, the dead one replaced.
        assert [fake(second).number, fake(third).number] == [2, 5]
        assert dbapi.calls[mark:] == [
            ("cursor", 2),  # the ping of 2 succeeds
            ("execute", 2, "SELECT 1"),
            ("cursor", 3),  # the ping of 3 fails
            ("close", 3),
            ("connect", 5),
        ]
        assert not dbapi.connections[1].closed and dbapi.connections[2].closed
        second.close()
        third.close()


# -- checkout listeners raising DisconnectionError -----------------------------


def test_checkout_invalidate_pool_error_expires_every_connection(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    first, second = pool.connect(), pool.connect()
    first.close()
    second.close()
    rejected: list[int] = []

    def reject_once(conn: FakeConnection, rec: object, fairy: object) -> None:
        if not rejected:
            rejected.append(conn.number)
            raise exc.InvalidatePoolError("server restarted")

    event.listen(pool, "checkout", reject_once)
    with pool.connect() as conn:
        assert fake(conn).number == 3
        with pool.connect() as other:
            assert fake(other).number == 4
    assert rejected == [1]
    assert dbapi.connections[0].closed and dbapi.connections[1].closed


# -- other listener errors -----------------------------------------------------


def test_failing_connect_listener_closes_the_new_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect, pool_size=1, max_overflow=0)
    error = RuntimeError("connect listener failed")
    fail = raiser(error)
    event.listen(pool, "connect", fail)
    with pytest.raises(RuntimeError) as raised:
        pool.connect()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 0)
    event.remove(pool, "connect", fail)
    with pool.connect() as conn:
        assert fake(conn).number == 2


def test_failing_checkout_listener_returns_the_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect, pool_size=1, max_overflow=0)
    error = RuntimeError("checkout listener failed")
    fail = raiser(error)
    event.listen(pool, "checkout", fail)
    with pytest.raises(RuntimeError) as raised:
        pool.connect()
    assert raised.value is error
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    event.remove(pool, "checkout", fail)
    with pool.connect() as conn:
        assert fake(conn).number == 1


def test_failing_checkin_listener_propagates_after_the_connection_is_back(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    error = RuntimeError("checkin listener failed")
    event.listen(pool, "checkin", raiser(error))
    conn = pool.connect()
    with pytest.raises(RuntimeError) as raised:
        conn.close()
    assert raised.value is error
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    assert not conn.is_valid


def test_failing_invalidate_listener_still_discards_the_connection(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    error = RuntimeError("invalidate listener failed")
    fail = raiser(error)
    event.listen(pool, "invalidate", fail)
    conn = pool.connect()
    with pytest.raises(RuntimeError) as raised:
        conn.invalidate()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert not conn.is_valid
    conn.close()
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    event.remove(pool, "invalidate", fail)
    with pool.connect() as again:
        assert fake(again).number == 2


def test_failing_close_listener_at_dispose_still_closes_every_connection(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    first, second = pool.connect(), pool.connect()
    first.close()
    second.close()
    error = RuntimeError("close listener failed")
    event.listen(pool, "close", raiser(error))
    with pytest.raises(RuntimeError) as raised:
        pool.dispose()
    assert raised.value is error
    assert dbapi.open_connections() == []


def test_failing_close_detached_listener_still_closes_the_connection(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    error = RuntimeError("close_detached listener failed")
    event.listen(pool, "close_detached", raiser(error))
    conn = pool.connect()
    conn.detach()
    with pytest.raises(RuntimeError) as raised:
        conn.close()
    assert raised.value is error
    assert dbapi.connections[0].closed


def test_failing_detach_listener_propagates_after_the_record_is_back(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    error = RuntimeError("detach listener failed")
    event.listen(pool, "detach", raiser(error))
    conn = pool.connect()
    with pytest.raises(RuntimeError) as raised:
        conn.detach()
    assert raised.value is error
    assert conn.is_detached
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    conn.close()
    assert dbapi.connections[0].closed


# -- first_connect -------------------------------------------------------------


def test_first_connect_fires_once_per_pool(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pools = [QueuePool(dbapi.connect, dialect=dialect) for _ in range(2)]
    seen = [record(p, "first_connect", "connect") for p in pools]
    for p in pools:
        held = [p.connect() for _ in range(3)]
        for conn in held:
            conn.close()
    for log in seen:
        assert names_of(log) == ["first_connect", "connect", "connect", "connect"]


def test_first_connect_fires_once_with_racing_threads(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    threads_count = 4
    all_in_creator = threading.Barrier(threads_count)

    def creator() -> FakeConnection:
        all_in_creator.wait(5)  # every thread is opening a connection at once
        return dbapi.connect()

    pool = QueuePool(creator, dialect=dialect, pool_size=threads_count)
    order: list[str] = []
    order_lock = threading.Lock()

    def note(name: str, *args: Any) -> None:
        with order_lock:
            order.append(name)

    event.listen(pool, "first_connect", functools.partial(note, "first_connect"))
    event.listen(pool, "connect", functools.partial(note, "connect"))
    got: list[ConnectionFairy] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            conn = pool.connect()
        except BaseException as err:
            errors.append(err)
        else:
            got.append(conn)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert errors == []
    assert len(got) == threads_count
    assert len({fake(conn).number for conn in got}) == threads_count
    assert order == ["first_connect"] + ["connect"] * threads_count
    for conn in got:
        conn.close()
    assert pool.checkedin() == threads_count


def test_failing_first_connect_listener_fires_again_on_next_connect(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    calls: list[int] = []
    error = RuntimeError("first_connect listener failed")

    def on_first_connect(conn: FakeConnection, rec: ConnectionRecord) -> None:
        calls.append(conn.number)
        if len(calls) == 1:
            raise error

    event.listen(pool, "first_connect", on_first_connect)
    with pytest.raises(RuntimeError) as raised:
        pool.connect()
    assert raised.value is error
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 0)
    first = pool.connect()
    second = pool.connect()
    assert calls == [1, 2]
    assert [fake(first).number, fake(second).number] == [2, 3]
    first.close()
    second.close()


# -- garbage-collected fairies -------------------------------------------------


def test_dropped_fairy_is_returned_by_gc_with_a_warning(
    pool: QueuePool, dbapi: FakeDBAPI, caplog: pytest.LogCaptureFixture
) -> None:
    gc.collect()  # garbage left by earlier tests is not this test's business
    caplog.set_level(logging.WARNING, logger=pool.logger.name)
    seen = record(pool, "reset", "checkin")
    conn = pool.connect()
    raw = fake(conn)
    del conn
    gc.collect()
    assert names_of(seen) == ["reset", "checkin"]
    assert dbapi.calls_named("rollback") == [("rollback", raw.number)]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)
    warnings = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and repr(pool) in r.getMessage()
    ]
    assert len(warnings) == 1
    assert warnings[0].name == pool.logger.name
    assert "garbage-collected" in warnings[0].getMessage()
    first, second = pool.connect(), pool.connect()  # handed out once, not twice
    assert fake(first) is raw
    assert fake(second) is not raw
    first.close()
    second.close()


def test_fairy_collected_while_the_pool_lock_is_held_is_returned_by_a_thread(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    """Checking in right there could deadlock on the held lock: a short-lived
    thread checks the record in once the lock is free."""
    conn = pool.connect()
    raw = fake(conn)
    with pool._lock:
        del conn
        gc.collect()
        helpers = [t for t in threading.enumerate() if t.name == "poolhouse-reclaim"]
        assert len(helpers) == 1
        assert pool.checkedin() == 0
    helpers[0].join(5)
    assert not helpers[0].is_alive()
    assert pool.checkedin() == 1
    with pool.connect() as again:
        assert fake(again) is raw
        assert pool.checkedout() == 1
    assert dbapi.calls_named("connect") == [("connect", 1)]
    assert dbapi.calls_named("rollback") == [("rollback", 1), ("rollback", 1)]


# -- the pool lock is never held around I/O or listeners -----------------------


def test_no_creator_dialect_or_listener_call_holds_the_pool_lock(
    dbapi: FakeDBAPI,
) -> None:
    probe = LockCheckingDialect()

    def creator() -> FakeConnection:
        probe.note("creator")
        return dbapi.connect()

    pool = QueuePool(creator, dialect=probe, pool_size=1, max_overflow=1, pre_ping=True)
    commit_pool = QueuePool(creator, dialect=probe, reset_on_return="commit")
    probe.locks += [pool._lock, commit_pool._lock]
    for name in ALL_EVENTS:
        event.listen(pool, name, functools.partial(_probe_note, probe, name))
    rejected: list[int] = []

    def reject_once(conn: FakeConnection, rec: object, fairy: object) -> None:
        if not rejected:
            rejected.append(conn.number)
            raise exc.DisconnectionError("stale")

    event.listen(pool, "checkout", reject_once)

    first = pool.connect()  # creator, first_connect, connect, checkout, retry
    second = pool.connect()  # overflow
    first.close()  # reset, do_rollback, checkin; beyond pool_size: close
    second.close()
    dropped = pool.connect()
    raw = fake(dropped)
    del dropped  # returned by the garbage collector
    gc.collect()
    raw.kill()
    with pool.connect() as conn:  # do_ping fails: invalidate, reconnect
        conn.invalidate(soft=True)
    with pytest.raises(FakeOperationalError):
        with pool.connect() as conn:
            fake(conn).kill()
            conn.cursor()  # is_disconnect
    conn = pool.connect()
    conn.detach()
    conn.close()  # close_detached
    commit_pool.connect().close()  # do_commit
    pool.dispose()

    assert probe.held_at() == []
    assert probe.noted() == {
        "creator",
        *ALL_EVENTS,
        "do_rollback",
        "do_commit",
        "do_close",
        "do_ping",
        "is_disconnect",
    }


def _probe_note(probe: LockCheckingDialect, name: str, *args: Any) -> None:
    probe.note(name)


# -- disconnects while in use --------------------------------------------------


def test_disconnect_in_with_block_invalidates_and_makes_the_idle_others_suspect(
    pool: QueuePool, dbapi: FakeDBAPI
) -> None:
    seen = record(pool, "invalidate")
    idle = [pool.connect() for _ in range(3)]
    busy = pool.connect()  # 4: checked out during the disconnect
    for conn in idle:
        conn.close()  # idle, oldest first: 1, 2, 3
    dbapi.connections[2].kill()  # 3 went down with the server; 2 did not
    recs = checkout_records(pool)
    caught: list[FakeOperationalError] = []
    with pytest.raises(FakeOperationalError) as raised:
        with pool.connect() as conn:
            raw = fake(conn)
            raw.kill()
            try:
                conn.cursor()
            except FakeOperationalError as err:
                caught.append(err)
                raise
    assert caught == [raised.value]
    assert raw.number == 1 and raw.closed
    assert seen == [("invalidate", (raw, recs[0], raised.value))]
    # Not expired: the idle ones are suspect, pinged at their next checkout.
    assert not dbapi.connections[1].closed and not dbapi.connections[2].closed
    busy.cursor().execute("SELECT 1")  # checked out: usable until returned
    mark = len(dbapi.calls)
    first, second = pool.connect(), pool.connect()
    # pre_ping is off, yet each suspect is pinged: kept if alive, else replaced.
    assert [fake(first).number, fake(second).number] == [2, 5]
    assert dbapi.calls[mark:] == [
        ("cursor", 2),  # the ping of 2 succeeds
        ("execute", 2, "SELECT 1"),
        ("cursor", 3),  # the ping of 3 fails
        ("close", 3),
        ("connect", 5),
    ]
    busy.close()
    first.close()
    second.close()
    mark = len(dbapi.calls)
    # The invalidated record reconnects; 4, checked out during the disconnect,
    # was never suspect: reused without a ping.
    third, fourth = pool.connect(), pool.connect()
    assert [fake(third).number, fake(fourth).number] == [6, 4]
    assert dbapi.calls[mark:] == [("connect", 6)]
    assert [c.number for c in dbapi.open_connections()] == [2, 4, 5, 6]
    third.close()
    fourth.close()


def test_error_in_with_block_propagates_unchanged(pool: QueuePool) -> None:
    error = FakeOperationalError("server closed")
    with pytest.raises(FakeOperationalError) as raised:
        with pool.connect():
            raise error
    assert raised.value is error


def test_handle_error_without_with_block(pool: QueuePool, dbapi: FakeDBAPI) -> None:
    conn = pool.connect()
    other = pool.connect()
    other.close()  # idle, opened before the error
    assert pool.handle_error(conn, FakeProgrammingError("syntax")) is False
    assert conn.is_valid
    assert pool.handle_error(conn, FakeOperationalError("gone")) is True
    assert not conn.is_valid
    assert dbapi.connections[0].closed
    assert (pool.checkedout(), pool.checkedin()) == (0, 2)  # returned at once
    calls = list(dbapi.calls)
    conn.close()  # does nothing
    assert dbapi.calls == calls
    with pool.connect() as suspect:
        assert fake(suspect).number == 2  # pinged and kept, not replaced
        assert dbapi.calls[len(calls) :] == [
            ("cursor", 2),
            ("execute", 2, "SELECT 1"),
        ]
        with pool.connect() as invalidated:
            assert fake(invalidated).number == 3  # the empty record reconnects
    assert not dbapi.connections[1].closed


# -- logging -------------------------------------------------------------------


@pytest.fixture
def logging_name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A logging_name unique to the test; its logger is reset afterwards."""
    name = f"test{id(request)}"
    yield name
    for cls in ("QueuePool", "NullPool"):
        logger = logging.getLogger(f"poolhouse.pool.{cls}.{name}")
        logger.setLevel(logging.NOTSET)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


def test_logger_name_is_the_class_and_logging_name(
    dbapi: FakeDBAPI, logging_name: str
) -> None:
    assert QueuePool(dbapi.connect).logger.name == "poolhouse.pool.QueuePool"
    assert NullPool(dbapi.connect).logger.name == "poolhouse.pool.NullPool"
    named = QueuePool(dbapi.connect, logging_name=logging_name)
    assert named.logger.name == f"poolhouse.pool.QueuePool.{logging_name}"
    assert logging_name in repr(named)


@pytest.mark.parametrize(
    ("echo", "level"), [(True, logging.INFO), ("debug", logging.DEBUG)]
)
def test_echo_sets_the_level_of_that_pool_logger_only(
    dbapi: FakeDBAPI, logging_name: str, echo: Any, level: int
) -> None:
    pool = QueuePool(dbapi.connect, echo=echo, logging_name=logging_name)
    assert pool.logger.level == level
    assert len(pool.logger.handlers) == 1
    assert logging.getLogger("poolhouse.pool.QueuePool").level == logging.NOTSET
    again = QueuePool(dbapi.connect, echo=echo, logging_name=logging_name)
    assert again.logger is pool.logger
    assert len(pool.logger.handlers) == 1


def test_echo_none_leaves_logging_alone(dbapi: FakeDBAPI, logging_name: str) -> None:
    pool = QueuePool(dbapi.connect, echo=None, logging_name=logging_name)
    assert pool.logger.level == logging.NOTSET
    assert pool.logger.handlers == []


def test_echo_debug_logs_the_lifecycle(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = QueuePool(
        dbapi.connect, dialect=dialect, echo="debug", logging_name=logging_name
    )
    with pool.connect() as conn:
        conn.invalidate()
    mine = [r for r in caplog.records if r.name == pool.logger.name]
    levels = {r.levelno for r in mine}
    assert logging.DEBUG in levels
    assert any(
        r.levelno == logging.INFO and "invalidated" in r.getMessage() for r in mine
    )


def test_close_listener_still_sees_the_connection_info(
    pool: QueuePool,
) -> None:
    seen: list[object] = []
    event.listen(pool, "close", lambda conn, rec: seen.append(rec.info.get("tag")))
    with pool.connect() as conn:
        conn.info["tag"] = "mine"
    pool.dispose()
    assert seen == ["mine"]
