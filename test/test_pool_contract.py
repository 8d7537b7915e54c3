"""Behaviour every thread pool class shares that has no asyncio twin.

The rest of the contract is written once, in ``_async/test_contract.py``, and
runs on the thread classes through its generated ``_sync/test_contract.py``.
"""

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

#: The events of a connection's lifecycle (not the worker's reconnect_failed).
ALL_EVENTS = tuple(name for name in events.SIGNATURES if name != "reconnect_failed")

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


# -- thread only: the garbage collector returns a connection at once ------------


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


# -- the pool lock is never held around I/O or listeners -----------------------


def test_no_creator_dialect_or_listener_call_holds_the_pool_lock(
    make_pool: MakePool, dbapi: FakeDBAPI, clock: FakeClock
) -> None:
    probe = LockCheckingDialect()

    def creator() -> FakeConnection:
        probe.note("creator")
        return dbapi.connect()

    def probe_note(name: str, *args: Any) -> None:
        probe.note(name)

    pool = make_pool(creator, dialect=probe, pre_ping=True, leak_threshold=60)
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
    with pool.connect():
        clock.advance(61)
        pool._check_leaks()  # the leak watcher's step: leak
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
