# generated from _async/test_replacement.py by tools/unasync.py: do not edit
"""Replacing connections by age and use: max_lifetime, max_uses, ping_interval."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import FakeClock
from ..fakedbapi import FakeDBAPI
from .support import number

MakeQueuePool = Any


def cycle(pool: Any) -> int:
    conn = pool.connect()
    got = number(conn)
    conn.close()
    return got


def test_max_uses_replaces_a_connection_after_that_many_checkouts(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_uses=3)
    assert [cycle(pool) for _ in range(7)] == [1, 1, 1, 2, 2, 2, 3]
    assert dbapi.calls_named("close") == [("close", 1), ("close", 2)]


def test_max_lifetime_is_shortened_by_each_connections_jitter(
    make_queue_pool: MakeQueuePool, clock: FakeClock, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_lifetime=100)
    pool._random = lambda: 1.0  # the most jitter: 95 s
    assert cycle(pool) == 1
    clock.advance(94.9)
    assert cycle(pool) == 1
    clock.advance(0.2)
    assert cycle(pool) == 2
    assert dbapi.calls_named("close") == [("close", 1)]
    pool._random = lambda: 0.0  # no jitter: the full 100 s
    clock.advance(99.9)
    assert cycle(pool) == 3  # connection 2 drew the most jitter
    clock.advance(99.9)
    assert cycle(pool) == 3


def test_ping_interval_skips_the_ping_of_a_connection_used_lately(
    make_queue_pool: MakeQueuePool, clock: FakeClock, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, pre_ping=True, ping_interval=10)
    cycle(pool)  # new: not pinged
    clock.advance(5)
    cycle(pool)
    assert dbapi.calls_named("execute") == []
    clock.advance(11)
    cycle(pool)
    assert dbapi.calls_named("execute") == [("execute", 1, "SELECT 1")]


def test_suspects_are_pinged_whatever_the_ping_interval(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, pre_ping=True, ping_interval=1000)
    first, second = pool.connect(), pool.connect()
    second.close()
    pool.handle_error(first, dbapi.OperationalError("lost"))
    assert cycle(pool) == 2
    assert dbapi.calls_named("execute") == [("execute", 2, "SELECT 1")]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_uses": 0}, ValueError, "max_uses=0 is invalid"),
        ({"max_uses": 2.5}, TypeError, "max_uses must be an int"),
        ({"max_lifetime": 0}, ValueError, "max_lifetime=0 is invalid"),
        ({"max_lifetime": -3}, ValueError, "max_lifetime=-3 is invalid"),
        ({"ping_interval": -1}, ValueError, "ping_interval=-1 is invalid"),
        ({"ping_interval": "1"}, TypeError, "ping_interval must be a number"),
    ],
)
def test_bad_values_are_refused(
    make_queue_pool: MakeQueuePool, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        make_queue_pool(**kwargs)


def test_recreate_keeps_the_new_options(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool(max_uses=4, max_lifetime=60, ping_interval=2, pre_ping=True)
    new = pool.recreate()
    assert (new._max_uses, new._max_lifetime, new._ping_interval) == (4, 60, 2)
