# generated from _async/test_close.py by tools/unasync.py: do not edit
"""Closing a pool: close(), terminate() and the pool as a context manager."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from poolhouse import NullPool
from poolhouse import QueuePool
from poolhouse import StaticPool
from poolhouse import exc

from ..fakedbapi import FakeDBAPI
from ..fakedbapi import FakeDialect
from ._acompat import Background
from ._acompat import checkpoint
from .support import wait_until_queued

MakeQueuePool = Any


def test_close_closes_idle_connections_and_refuses_checkouts(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    conn = pool.connect()
    conn.close()
    assert not pool.closed
    pool.close()
    assert pool.closed
    assert dbapi.calls_named("close") == [("close", 1)]
    with pytest.raises(exc.PoolClosedError, match="is closed") as info:
        pool.connect()
    assert info.value.pool is pool
    pool.close()  # again: nothing more to do
    assert dbapi.calls_named("close") == [("close", 1)]


def test_connection_out_at_close_is_closed_when_returned(
    make_queue_pool: MakeQueuePool,
    dbapi: FakeDBAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = make_queue_pool()
    held = pool.connect()
    with caplog.at_level(logging.WARNING, logger="poolhouse"):
        pool.close(timeout=0)
    assert "1 connections still checked out" in caplog.text
    assert dbapi.calls_named("close") == []
    held.close()
    assert dbapi.calls_named("rollback", "close") == [("rollback", 1), ("close", 1)]
    assert pool.checkedout() == 0


def test_close_waits_for_connections_out(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    held = pool.connect()
    closing = Background(lambda: pool.close(timeout=None))
    while not pool.closed:
        checkpoint()
    assert closing.is_running()
    held.close()
    closing.result()
    assert dbapi.calls_named("close") == [("close", 1)]


def test_waiters_fail_when_the_pool_closes(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=None)
    held = pool.connect()
    waiting = Background(pool.connect)
    wait_until_queued(pool, waiting)
    pool.close(timeout=0)
    with pytest.raises(exc.PoolClosedError):
        waiting.result()
    held.close()
    assert pool.checkedout() == 0


def test_terminate_closes_connections_in_use(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool()
    idle = pool.connect()
    held = pool.connect()
    idle.close()
    pool.terminate()
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [1, 2]
    with pytest.raises(exc.InvalidRequestError, match="closed this connection"):
        held.cursor()
    held.close()  # still fine, and closes nothing twice
    assert len(dbapi.calls_named("close")) == 2
    assert pool.checkedout() == 0
    pool.terminate()


@pytest.mark.parametrize("pool_class", [NullPool, StaticPool])
def test_other_pools_close_too(
    pool_class: Any, dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = pool_class(dbapi.connect, dialect=dialect)
    held = pool.connect()
    pool.close(timeout=0)
    with pytest.raises(exc.PoolClosedError):
        pool.connect()
    held.close()
    assert dbapi.open_connections() == []


def test_pool_is_a_context_manager(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    with QueuePool(dbapi.connect, dialect=dialect) as pool:
        conn = pool.connect()
        conn.close()
    assert pool.closed
    assert dbapi.open_connections() == []


def test_close_timeout_is_checked(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool()
    with pytest.raises(ValueError, match="timeout=-1 is invalid"):
        pool.close(timeout=-1)
    assert not pool.closed
