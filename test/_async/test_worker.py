"""The background worker of a queue pool: growth, min_idle, idle retirement,
reconnect backoff and DB-down behaviour.

The logic is driven step by step through ``_maintain()`` on the fake clock
where it can be; a few tests let the real worker (a thread, or a task) run,
synchronised on pool events.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from poolhouse import event
from poolhouse import exc

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeOperationalError
from ._acompat import Background
from ._acompat import Flag
from ._acompat import checkpoint
from ._acompat import current_actor
from ._acompat import ended
from .support import DialLog
from .support import number
from .support import wait_until_queued

pytestmark = pytest.mark.asyncio

MakeQueuePool = Any


async def test_no_worker_exists_until_the_first_checkout(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool(background=True)
    assert pool._worker is None
    conn = await pool.connect()
    assert pool._worker is not None
    await conn.close()
    await pool.close()


async def test_callers_wait_for_the_worker_instead_of_dialling(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    creator = DialLog(dbapi)
    pool = make_queue_pool(creator, pool_size=2, max_overflow=0, background=True)
    first = await pool.connect()
    second = await pool.connect()
    assert [number(first), number(second)] == [1, 2]
    assert current_actor() not in creator.dialled_by
    await first.close()
    await second.close()
    await pool.close()
    assert dbapi.open_connections() == []


async def test_worker_keeps_min_idle_one_connection_at_a_time(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=5, background=True, min_idle=3)
    assert await pool._maintain() == 0  # opened one; more work at once
    assert (len(dbapi.connections), pool.checkedin()) == (1, 1)
    assert await pool._maintain() == 0
    assert await pool._maintain() == 0
    assert (len(dbapi.connections), pool.checkedin()) == (3, 3)
    assert await pool._maintain() is None  # nothing until woken
    assert len(dbapi.connections) == 3


async def test_worker_retires_idle_connections_above_min_idle(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(pool_size=5, background=True, min_idle=3, max_idle_time=60)
    for _ in range(3):
        await pool._maintain()
    pool._min_idle = 1  # as if lowered: two are now spare
    assert await pool._maintain() == pytest.approx(60)
    clock.advance(61)
    assert await pool._maintain() == 0
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [1, 2]
    assert pool.checkedin() == 1
    assert await pool._maintain() is None  # min_idle is kept
    assert pool._slots.opened == 1


async def test_worker_replaces_a_connection_before_its_lifetime_ends(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    pool = make_queue_pool(pool_size=2, background=True, min_idle=1, max_lifetime=100)
    pool._random = lambda: 0.0
    await pool._maintain()
    assert await pool._maintain() == pytest.approx(100)
    clock.advance(101)
    assert await pool._maintain() == 0  # retired, idle, before anyone asked
    assert await pool._maintain() == 0  # and replaced, to keep min_idle
    assert dbapi.calls_named("connect", "close") == [
        ("connect", 1),
        ("close", 1),
        ("connect", 2),
    ]


async def test_worker_backs_off_while_connects_fail(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, background=True, min_idle=1)
    pool._random = lambda: 0.0  # no jitter: the full delays
    dbapi.refuse_connect = FakeOperationalError("server down")
    delays = [await pool._maintain() for _ in range(4)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert pool._slots.opened == 0  # no slot kept by a failed attempt
    dbapi.refuse_connect = None
    assert await pool._maintain() == 0
    assert pool._down_since is None and pool._connect_failures == 0


async def test_worker_backing_off_without_room_looks_again(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    """While the database is down, callers do not wake the worker: with no
    room to probe, it must still come back after its backoff, or a slot
    freed later would never be filled."""
    pool = make_queue_pool(pool_size=2, max_overflow=0, background=True, min_idle=2)
    pool._random = lambda: 0.0
    assert await pool._maintain() == 0  # opened one
    dbapi.refuse_connect = FakeOperationalError("server down")
    assert await pool._maintain() == pytest.approx(0.1)  # the second failed
    await pool.resize(1)  # the one open fills it: no room left to probe
    assert await pool._maintain() == pytest.approx(0.1)  # not None: looks again
    assert pool._down_since is not None
    await pool.close()


async def test_waiters_outlast_a_short_outage(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    failures = [FakeOperationalError("down")] * 3

    async def creator() -> Any:
        if failures:
            raise failures.pop()
        return await dbapi.connect()

    pool = make_queue_pool(
        creator, pool_size=1, timeout=10, background=True, reconnect_backoff_max=0.01
    )
    conn = await pool.connect()  # the worker retried three times meanwhile
    assert number(conn) == 1 and failures == []
    await conn.close()
    await pool.close()


async def test_timeout_during_an_outage_says_so_and_chains_the_error(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    dbapi.refuse_connect = FakeOperationalError("server down")
    pool = make_queue_pool(
        pool_size=1, timeout=0.05, background=True, reconnect_backoff_max=0.01
    )
    with pytest.raises(exc.TimeoutError, match="unreachable for") as info:
        await pool.connect()
    assert info.value.__cause__ is dbapi.refuse_connect
    await pool.close()


async def test_reconnect_timeout_fails_callers_at_once_until_a_connect_works(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI, clock: FakeClock
) -> None:
    error = FakeOperationalError("server down")
    dbapi.refuse_connect = error
    pool = make_queue_pool(pool_size=1, background=True, reconnect_timeout=30)
    seen: list[tuple[Any, float]] = []
    event.listen(
        pool, "reconnect_failed", lambda e, down_for: seen.append((e, down_for))
    )
    await pool._maintain()  # not called for: nothing waits, no min_idle
    assert dbapi.calls_named("connect-refused") == []
    pool._min_idle = 1  # make the worker try
    await pool._maintain()
    clock.advance(31)
    await pool._maintain()
    assert [e for e, _ in seen] == [error]
    assert seen[0][1] == pytest.approx(31)
    with pytest.raises(exc.TimeoutError, match="beyond reconnect_timeout=30") as info:
        await pool.connect()
    assert info.value.__cause__ is error
    await pool._maintain()
    assert len(seen) == 1  # once per outage
    dbapi.refuse_connect = None
    await pool._maintain()
    conn = await pool.connect()
    assert number(conn) == 1
    await conn.close()
    await pool.close()


async def test_close_stops_the_worker(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, background=True, min_idle=2)
    opened = Flag()
    event.listen(
        pool, "connect", lambda conn, rec: opened.set() if conn.number == 2 else None
    )
    conn = await pool.connect()
    assert await opened.wait()
    await conn.close()
    await pool.close()
    assert dbapi.open_connections() == []
    assert pool._wakeup.is_set()  # the worker was told


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_idle": 2}, "min_idle is kept by the background worker"),
        ({"max_idle_time": 5}, "max_idle_time is kept by the background worker"),
        ({"reconnect_timeout": 5}, "reconnect_timeout is kept by the background"),
        ({"background": True, "min_idle": 9}, "min_idle=9 is invalid"),
        ({"background": True, "min_idle": -1}, "min_idle=-1 is invalid"),
        ({"background": True, "max_idle_time": 0}, "max_idle_time=0 is invalid"),
        ({"background": True, "reconnect_backoff_max": 0}, "reconnect_backoff_max=0"),
        (
            {"background": True, "min_idle": 5, "max_idle_time": 10},
            "can never apply with min_idle == pool_size",
        ),
    ],
)
async def test_bad_worker_options_are_refused(
    make_queue_pool: MakeQueuePool, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_queue_pool(pool_size=5, **kwargs)


async def test_callers_leave_replacing_a_dead_connection_to_the_worker(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    creator = DialLog(dbapi)
    pool = make_queue_pool(creator, pool_size=1, max_overflow=0, background=True)
    conn = await pool.connect()
    await conn.invalidate()  # the slot comes back empty
    again = await pool.connect()
    assert number(again) == 2
    assert len(creator.dialled_by) == 2
    assert current_actor() not in creator.dialled_by
    await again.close()
    await pool.close()


# -- regressions found in review ---------------------------------------------------


async def test_worker_keeps_probing_while_down_even_with_nobody_waiting(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, background=True, min_idle=1)
    dbapi.refuse_connect = FakeOperationalError("down")
    await pool._maintain()
    pool._min_idle = 0  # nobody needs a connection now
    assert await pool._maintain() is not None  # a backoff, not "until woken"
    assert len(dbapi.calls_named("connect-refused")) == 2
    dbapi.refuse_connect = None
    assert await pool._maintain() == 0  # the probe worked: the outage is over
    assert pool._down_since is None and pool.checkedin() == 1
    assert await pool._maintain() is None


async def test_resize_below_min_idle_does_not_churn(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=5, background=True, min_idle=3)
    for _ in range(3):
        await pool._maintain()
    await pool.resize(2)
    assert await pool._maintain() is None
    assert len(dbapi.calls_named("connect")) == 3 and pool.checkedin() == 2


async def test_an_empty_record_is_not_pooled_and_min_idle_is_refilled(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=3, background=True, min_idle=2)
    refilled = Flag()
    event.listen(
        pool, "connect", lambda c, r: refilled.set() if c.number == 3 else None
    )
    conn = await pool.connect()  # the worker opens 1, then 2 for min_idle
    await conn.invalidate()  # 1's slot comes back empty: freed, not pooled
    assert await refilled.wait()  # the worker opened 3 to keep min_idle
    for _ in range(100_000):  # until 3 is in the pool (the worker's next step)
        if pool.checkedin() == 2:
            break
        await checkpoint()
    assert pool.checkedin() == 2
    assert pool._slots.opened == 2  # both idle ones are real connections
    assert all(rec.dbapi_connection is not None for rec in pool._slots.idle)
    await pool.close()


async def test_resize_lets_the_worker_serve_a_waiter(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=10, background=True)
    held = await pool.connect()
    waiting = Background(pool.connect)
    await wait_until_queued(pool, waiting)
    await pool.resize(2, max_overflow=0)
    got = await waiting.result()
    assert number(got) == 2
    await got.close()
    await held.close()
    await pool.close()


async def test_close_returns_once_a_detached_connection_leaves(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    conn = await pool.connect()
    closing = Background(lambda: pool.close(timeout=None))
    while not pool.closed:
        await checkpoint()
    await conn.detach()
    await closing.result()
    await conn.close()


async def test_a_dropped_pool_ends_its_worker(make_queue_pool: MakeQueuePool) -> None:
    pool = make_queue_pool(background=True)
    conn = await pool.connect()
    await conn.close()
    worker = pool._worker
    del pool, conn
    gc.collect()
    assert await ended(worker)
