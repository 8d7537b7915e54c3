# generated from _async/test_resize.py by tools/unasync.py: do not edit
"""Changing a running pool: resize() and drain()."""

from __future__ import annotations

from typing import Any

import pytest

from ..fakedbapi import FakeDBAPI
from ._acompat import Background
from .support import number
from .support import wait_until_queued

MakeQueuePool = Any


def test_shrinking_closes_surplus_idle_connections(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=4, max_overflow=0)
    conns = [pool.connect() for _ in range(4)]
    for conn in conns:
        conn.close()
    pool.resize(1)
    assert pool.size() == 1 and pool.checkedin() == 1
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [1, 2, 3]
    assert pool.overflow() == 0


def test_connections_in_use_beyond_a_smaller_size_close_on_return(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=0)
    first, second = pool.connect(), pool.connect()
    pool.resize(1)
    first.close()
    second.close()
    assert dbapi.calls_named("close") == [("close", 2)]
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)


def test_growing_lets_a_waiter_in(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=None)
    held = pool.connect()
    waiting = Background(pool.connect)
    wait_until_queued(pool, waiting)
    pool.resize(2, max_overflow=0)
    got = waiting.result()
    assert number(got) == 2
    got.close()
    held.close()
    assert (pool.checkedin(), pool.checkedout()) == (2, 0)


def test_resize_refuses_bad_values(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool(pool_size=3)
    with pytest.raises(ValueError, match="pool_size=-1 is invalid"):
        pool.resize(-1)
    with pytest.raises(ValueError, match="max_overflow=-2 is invalid"):
        pool.resize(2, max_overflow=-2)
    assert pool.size() == 3


def test_drain_replaces_idle_now_and_in_use_on_return(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    passwords = iter(["old", "old", "new", "new"])
    opened: list[str] = []

    def creator() -> Any:
        opened.append(next(passwords))
        return dbapi.connect()

    pool = make_queue_pool(creator, pool_size=2)
    idle, held = pool.connect(), pool.connect()
    idle.close()
    pool.drain()
    assert dbapi.calls_named("close") == [("close", 1)]
    held.close()  # closed on return, not kept
    assert dbapi.calls_named("close") == [("close", 1), ("close", 2)]
    again = [pool.connect(), pool.connect()]
    assert sorted(number(c) for c in again) == [3, 4]
    assert opened == ["old", "old", "new", "new"]
    for conn in again:
        conn.close()
    assert dbapi.calls_named("close") == [("close", 1), ("close", 2)]
