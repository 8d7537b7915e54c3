"""What only the thread QueuePool is tested for: constructor checks, racing
threads, garbage-collected fairies, the pool lock, and logging.

The lifecycle shared with the asyncio pools is written once, in ``_async/``.
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from poolhouse import ConnectionFairy
from poolhouse import ConnectionRecord
from poolhouse import NullPool
from poolhouse import QueuePool
from poolhouse import event
from poolhouse import events
from poolhouse import exc

from .conftest import FakeClock
from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError
from .fakedbapi import LockCheckingDialect

#: The events of a connection's lifecycle (not the worker's reconnect_failed).
ALL_EVENTS = tuple(name for name in events.SIGNATURES if name != "reconnect_failed")

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


# -- first_connect -------------------------------------------------------------


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

    pool = QueuePool(
        creator,
        dialect=probe,
        pool_size=1,
        max_overflow=1,
        pre_ping=True,
        leak_threshold=60,
    )
    clock = FakeClock()
    pool._clock = clock
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
    with pool.connect():
        clock.advance(61)
        pool._check_leaks()  # the leak watcher's step: leak
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
