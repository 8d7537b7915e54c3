# generated from _async/test_fairy.py by tools/unasync.py: do not edit
"""The connection fairy: pass-through, returning it, its state, and every use
of it once returned or invalidated."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import ConnectionFairy
from poolhouse import QueuePool
from poolhouse import exc

from ..fakedbapi import FakeDBAPI
from ..fakedbapi import FakeOperationalError
from .support import checkout_records
from .support import fake
from .support import names_of
from .support import number
from .support import record

MakeQueuePool = Callable[..., QueuePool]
#: Something done with a fairy; awaited on the asyncio side.
Use = Callable[[ConnectionFairy], Any]


# -- using and returning it ----------------------------------------------------


def test_fairy_proxies_the_dbapi_connection(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
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


def test_close_returns_the_connection_for_reuse(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=1)
    conn = pool.connect()
    assert isinstance(conn, ConnectionFairy)
    assert conn.is_valid
    assert conn.driver_connection is dbapi.connections[0]
    assert conn.dbapi_connection is dbapi.connections[0]
    assert conn.execute("SELECT 1") == [(1,)]  # passed through to the driver
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 1, -1)

    conn.close()

    assert not conn.is_valid
    assert conn.is_detached
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (1, 0, -1)
    assert dbapi.calls == [
        ("connect", 1),
        ("execute", 1, "SELECT 1"),
        ("rollback", 1),
    ]
    with pool.connect() as again:
        assert fake(again) is dbapi.connections[0]
    assert dbapi.calls_named("connect") == [("connect", 1)]


def test_with_block_returns_the_connection_for_reuse(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    with pool.connect() as conn:
        assert isinstance(conn, ConnectionFairy)
        assert conn.is_valid
        assert pool.checkedout() == 1
    assert not conn.is_valid
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    with pool.connect() as again:
        assert fake(again) is dbapi.connections[0]


def test_fairy_as_context_manager_returns_itself_and_checks_in(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    conn = pool.connect()
    with conn as entered:
        assert entered is conn
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0
    assert pool.checkedin() == 1
    assert not conn.is_valid


def test_close_inside_with_block_is_not_repeated_on_exit(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "checkin")
    with pool.connect() as conn:
        conn.close()
        assert pool.checkedout() == 0
    assert names_of(seen) == ["checkin"]
    assert dbapi.calls_named("rollback") == [("rollback", 1)]


# -- once returned -------------------------------------------------------------


def _use_cursor(conn: ConnectionFairy) -> object:
    return conn.cursor()


def _use_info(conn: ConnectionFairy) -> object:
    return conn.info


def _use_record_info(conn: ConnectionFairy) -> object:
    return conn.record_info


def _use_detach(conn: ConnectionFairy) -> None:
    conn.detach()


def _use_passthrough_method(conn: ConnectionFairy) -> object:
    return conn.commit()


def _use_passthrough_lookup(conn: ConnectionFairy) -> object:
    return conn.execute


def _use_passthrough_attribute(conn: ConnectionFairy) -> object:
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
def test_every_use_of_a_closed_fairy_raises(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
    conn = pool.connect()
    conn.close()
    seen = record(pool)
    calls = list(dbapi.calls)
    with pytest.raises(exc.InvalidRequestError, match="was returned to its pool"):
        use(conn)
    assert dbapi.calls == calls
    assert seen == []
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


def _use_dbapi_connection(conn: ConnectionFairy) -> object:
    return conn.dbapi_connection


def _use_driver_connection(conn: ConnectionFairy) -> object:
    return conn.driver_connection


CONNECTIONS_AFTER_CLOSE: dict[str, Use] = {
    "dbapi_connection": _use_dbapi_connection,
    "driver_connection": _use_driver_connection,
}


@pytest.mark.parametrize(
    "use", CONNECTIONS_AFTER_CLOSE.values(), ids=CONNECTIONS_AFTER_CLOSE
)
def test_connection_of_a_closed_fairy_is_none(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
    conn = pool.connect()
    assert use(conn) is dbapi.connections[0]
    conn.close()
    calls = list(dbapi.calls)
    assert use(conn) is None
    assert dbapi.calls == calls
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


def _invalidate(conn: ConnectionFairy) -> None:
    conn.invalidate()


def _soft_invalidate(conn: ConnectionFairy) -> None:
    conn.invalidate(soft=True)


INVALIDATES_AFTER_CLOSE: dict[str, Use] = {
    "invalidate": _invalidate,
    "soft invalidate": _soft_invalidate,
}


@pytest.mark.parametrize(
    "use", INVALIDATES_AFTER_CLOSE.values(), ids=INVALIDATES_AFTER_CLOSE
)
def test_invalidating_a_closed_fairy_warns_and_does_nothing(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI, use: Use
) -> None:
    pool = make_queue_pool()
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


def test_second_close_does_nothing(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "reset", "checkin")
    conn = pool.connect()
    conn.close()
    calls = list(dbapi.calls)
    conn.close()
    assert dbapi.calls == calls
    assert names_of(seen) == ["reset", "checkin"]
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)


def test_is_valid_and_is_detached_follow_the_fairy_state(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
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


# -- invalidated ---------------------------------------------------------------


def test_invalidated_fairy_is_returned_at_once(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=0)
    seen = record(pool, "reset", "checkin")
    recs = checkout_records(pool)
    error = FakeOperationalError("gone")
    with pool.connect() as conn:
        raw = fake(conn)
        conn.invalidate(error)
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
        conn.close()  # does nothing
        assert dbapi.calls == calls
        assert seen == [("checkin", (None, recs[0]))]
    # Leaving the block did nothing more.
    assert dbapi.calls == calls
    assert seen == [("checkin", (None, recs[0]))]
    assert dbapi.calls_named("rollback") == []  # nothing left to reset
    assert pool.checkedout() == 0
    with pool.connect() as again:  # timeout=0: the only slot is free
        assert fake(again) is dbapi.connections[1]
        assert number(again) == 2
    assert [c for c in dbapi.calls if c[1:2] == (1,)] == [("connect", 1), ("close", 1)]


def test_soft_invalidated_fairy_is_usable_then_replaced(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    seen = record(pool, "soft_invalidate", "invalidate")
    with pool.connect() as conn:
        conn.invalidate(soft=True)
        assert conn.is_valid
        conn.cursor().execute("SELECT 1")
        assert conn.execute("SELECT 1") == [(1,)]
    assert not dbapi.connections[0].closed
    with pool.connect() as conn:
        assert fake(conn) is dbapi.connections[1]
    assert dbapi.connections[0].closed
    assert names_of(seen) == ["soft_invalidate"]
