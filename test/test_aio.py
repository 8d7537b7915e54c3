"""The asyncio pools: poolhouse.aio (AsyncPool and its four classes).

The same lifecycle as the thread pools, so these tests check parity with them,
plus what asyncio adds: awaitable and async-with checkout, ``async def``
creators and listeners, one event loop per pool, cancellation, and the return
of a garbage-collected connection on the pool's loop.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import PoolResetState
from poolhouse import QueuePool
from poolhouse import StaticPool
from poolhouse import event
from poolhouse import events
from poolhouse import exc
from poolhouse._async._acompat import Deadlines as _Deadlines
from poolhouse._async._acompat import Waiter as _AsyncWaiter
from poolhouse._queue import CREATE
from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncConnectionFairy
from poolhouse.aio import AsyncConnectionRecord
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool
from poolhouse.dialects.base import AsyncDialect

from .conftest import FakeClock
from .fakedbapi import FakeAsyncConnection
from .fakedbapi import FakeAsyncDBAPI
from .fakedbapi import FakeAsyncDialect
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeGate

ROOT = Path(__file__).resolve().parent.parent

ASYNC_CLASSES: list[type[AsyncPool]] = [
    AsyncQueuePool,
    AsyncNullPool,
    AsyncStaticPool,
    AsyncAssertionPool,
]

#: Each asyncio pool class and its thread twin.
TWINS: list[tuple[type[AsyncPool], type[Pool]]] = [
    (AsyncQueuePool, QueuePool),
    (AsyncNullPool, NullPool),
    (AsyncStaticPool, StaticPool),
    (AsyncAssertionPool, AssertionPool),
]

#: The events of a connection's lifecycle (not the worker's reconnect_failed).
ALL_EVENTS = tuple(name for name in events.SIGNATURES if name != "reconnect_failed")

#: How long any wait of a test may take before it fails (seconds).
WAIT = 5.0

#: How many times a test lets the loop run before giving up on a condition.
YIELDS = 200

MakePool = Callable[..., AsyncPool]
MakeQueuePool = Callable[..., AsyncQueuePool]


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def adbapi() -> FakeAsyncDBAPI:
    return FakeAsyncDBAPI()


@pytest.fixture
def adialect() -> FakeAsyncDialect:
    return FakeAsyncDialect()


@pytest.fixture
def make_queue_pool(
    adbapi: FakeAsyncDBAPI, adialect: FakeAsyncDialect, clock: FakeClock
) -> MakeQueuePool:
    def make(
        creator: Callable[..., Any] | None = None, **kwargs: Any
    ) -> AsyncQueuePool:
        kwargs.setdefault("dialect", adialect)
        chosen: Callable[..., Any] = creator or adbapi.connect
        pool = AsyncQueuePool(chosen, **kwargs)
        pool._clock = clock
        return pool

    return make


def fake(conn: AsyncConnectionFairy) -> FakeAsyncConnection:
    raw = conn.driver_connection
    assert isinstance(raw, FakeAsyncConnection)
    return raw


def number(conn: AsyncConnectionFairy) -> int:
    return fake(conn).number


async def yield_until(predicate: Callable[[], bool], limit: int = YIELDS) -> bool:
    """Let the loop run until *predicate* holds; ``False`` if it never did."""
    for _ in range(limit):
        if predicate():
            return True
        await asyncio.sleep(0)
    return predicate()


async def wait_until_parked(pool: AsyncQueuePool, n: int) -> None:
    """Let the loop run until *n* tasks wait in *pool*'s line."""
    parked = await yield_until(lambda: len(pool._slots.waiters) == n)
    assert parked, f"{len(pool._slots.waiters)} tasks waiting, expected {n}"


async def finish(task: asyncio.Task[Any]) -> None:
    """Wait, bounded, for *task* to end, whatever its outcome."""
    done, _ = await asyncio.wait({task}, timeout=WAIT)
    assert task in done, f"{task!r} did not finish within {WAIT}s"


def pooled_numbers(pool: AsyncQueuePool) -> list[int]:
    """The fake connection numbers held by *pool*'s idle records."""
    found = []
    for rec in pool._slots.idle:
        conn = rec.dbapi_connection
        if conn is not None:
            assert isinstance(conn, FakeAsyncConnection)
            found.append(conn.number)
    return sorted(found)


def assert_nothing_leaked(pool: AsyncQueuePool, adbapi: FakeAsyncDBAPI) -> None:
    """Nothing is checked out, waiting or closing, every slot is idle, and every
    open connection is one of the pool's idle ones."""
    slots = pool._slots
    assert pool.checkedout() == 0
    assert not slots.waiters
    assert slots.closing == 0
    assert slots.opened == len(slots.idle)
    assert pooled_numbers(pool) == sorted(c.number for c in adbapi.open_connections())


Seen = list[tuple[str, tuple[Any, ...]]]


def _note(seen: Seen, name: str, *args: Any) -> None:
    seen.append((name, args))


async def _note_later(seen: Seen, name: str, *args: Any) -> None:
    await asyncio.sleep(0)
    seen.append((name, args))


def record(target: Any, *names: str, awaited: bool = False) -> Seen:
    """Listen for *names* (default: every event) on *target*; return the log.

    :param awaited: register ``async def`` listeners that yield to the loop
        before noting the event.
    """
    seen: Seen = []
    note = _note_later if awaited else _note
    for name in names or ALL_EVENTS:
        event.listen(target, name, functools.partial(note, seen, name))
    return seen


def names_of(seen: Seen) -> list[str]:
    return [name for name, _ in seen]


# -- checkout and return -------------------------------------------------------


@pytest.mark.asyncio
async def test_creator_may_be_sync_or_async_with_or_without_the_record(
    adbapi: FakeAsyncDBAPI, adialect: FakeAsyncDialect
) -> None:
    given: list[object] = []

    def sync_plain() -> FakeAsyncConnection:
        given.append("sync_plain")
        return adbapi.connect_now()

    def sync_with_record(rec: AsyncConnectionRecord) -> FakeAsyncConnection:
        given.append(rec)
        return adbapi.connect_now()

    async def async_plain() -> FakeAsyncConnection:
        given.append("async_plain")
        return await adbapi.connect()

    async def async_with_record(rec: AsyncConnectionRecord) -> FakeAsyncConnection:
        await asyncio.sleep(0)
        given.append(rec)
        return await adbapi.connect()

    # The async creators are what an asyncio pool is for: the annotations of
    # the pool classes must accept them as written here.  Plain functions
    # work at run time, but are typed as async only (mypy cannot infer the
    # connection type from a union of plain and awaitable callables).
    pools: list[AsyncPool] = [
        AsyncQueuePool(sync_plain, dialect=adialect),  # type: ignore[arg-type]
        AsyncQueuePool(sync_with_record, dialect=adialect),  # type: ignore[arg-type]
        AsyncQueuePool(async_plain, dialect=adialect),
        AsyncQueuePool(async_with_record, dialect=adialect),
        AsyncStaticPool(async_plain, dialect=adialect),
        AsyncAssertionPool(async_with_record, dialect=adialect),
        AsyncNullPool(async_plain, dialect=adialect),
        # A plain function returning an awaitable (like aiosqlite.connect).
        AsyncQueuePool(lambda: adbapi.connect(), dialect=adialect),
    ]
    for i, pool in enumerate(pools, start=1):
        async with pool.connect() as conn:
            assert number(conn) == i
            assert await conn.execute("SELECT 1") == [(1,)]
    records = [g for g in given if not isinstance(g, str)]
    assert [g for g in given if isinstance(g, str)] == [
        "sync_plain",
        "async_plain",
        "async_plain",
        "async_plain",
    ]
    assert len(records) == 3
    assert all(isinstance(rec, AsyncConnectionRecord) for rec in records)
    for pool in pools:
        await pool.dispose()


# -- events --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sync_and_async_listeners_run_in_registration_order(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    order: list[str] = []

    def sync_a(conn: Any, rec: Any, proxy: Any) -> None:
        order.append("a")

    async def async_b(conn: Any, rec: Any, proxy: Any) -> None:
        order.append("b-start")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order.append("b-end")

    def class_c(conn: Any, rec: Any, proxy: Any) -> None:
        order.append("c")

    async def async_d(conn: Any, rec: Any, proxy: Any) -> None:
        await asyncio.sleep(0)
        order.append("d")

    def sync_e(conn: Any, rec: Any, proxy: Any) -> None:
        order.append("e")

    event.listen(pool, "checkout", sync_a)
    event.listen(pool, "checkout", async_b)
    event.listen(AsyncQueuePool, "checkout", class_c)
    event.listen(pool, "checkout", async_d)
    event.listen(pool, "checkout", sync_e)

    async with pool.connect():
        assert order == ["a", "b-start", "b-end", "c", "d", "e"]


@pytest.mark.asyncio
async def test_listeners_get_the_documented_arguments(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "checkout", "reset", awaited=True)
    async with pool.connect() as conn:
        raw = fake(conn)
    (_, (c_conn, c_rec, c_proxy)), (_, (r_conn, r_rec, state)) = seen
    assert (c_conn, c_proxy, r_conn) == (raw, conn, raw)
    assert isinstance(c_rec, AsyncConnectionRecord)
    assert r_rec is c_rec
    assert isinstance(state, PoolResetState)
    assert state.asyncio_safe


@pytest.mark.asyncio
async def test_named_and_once_work_for_async_listeners(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    named: list[dict[str, Any]] = []
    once: list[Any] = []

    async def by_name(**kw: Any) -> None:
        named.append(kw)

    async def first_only(conn: Any, rec: Any, proxy: Any) -> None:
        once.append(conn)

    event.listen(pool, "checkout", by_name, named=True)
    event.listen(pool, "checkout", first_only, once=True)
    for _ in range(2):
        async with pool.connect():
            pass
    assert [sorted(kw) for kw in named] == [
        ["connection_proxy", "connection_record", "dbapi_connection"]
    ] * 2
    assert len(once) == 1


@pytest.mark.asyncio
async def test_raw_blinker_receivers_are_called_and_awaited(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    got: list[tuple[str, Any, Any]] = []

    def sync_receiver(sender: Any, **kw: Any) -> None:
        got.append(("sync", sender, kw["dbapi_connection"]))

    async def async_receiver(sender: Any, **kw: Any) -> None:
        await asyncio.sleep(0)
        got.append(("async", sender, kw["dbapi_connection"]))

    events.checkout.connect(sync_receiver, weak=False)
    events.checkout.connect(async_receiver, sender=pool, weak=False)

    async with pool.connect() as conn:
        assert sorted(kind for kind, _, _ in got) == ["async", "sync"]
        assert all(sender is pool and raw is fake(conn) for _, sender, raw in got)


@pytest.mark.asyncio
async def test_class_level_listeners_reach_every_async_pool_of_the_class(
    make_queue_pool: MakeQueuePool,
    adbapi: FakeAsyncDBAPI,
    adialect: FakeAsyncDialect,
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
) -> None:
    queue_seen = record(AsyncQueuePool, "checkout")
    any_async_seen = record(AsyncPool, "checkout", awaited=True)
    pool = make_queue_pool()  # created after the listeners: still reached
    null_pool = AsyncNullPool(adbapi.connect, dialect=adialect)
    sync_twin = QueuePool(dbapi.connect, dialect=dialect)

    async with pool.connect() as conn:
        raw = fake(conn)
    async with null_pool.connect():
        pass
    sync_twin.connect().close()  # the thread twin is not an AsyncQueuePool

    assert [args[0] for _, args in queue_seen] == [raw]
    assert [args[0].number for _, args in any_async_seen] == [1, 2]
    sync_twin.dispose()


@pytest.mark.asyncio
async def test_racing_first_connections_wait_for_first_connect_listeners(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=0)
    order: list[tuple[Any, ...]] = []
    started, finished = asyncio.Event(), asyncio.Event()

    async def first(conn: FakeAsyncConnection, rec: Any) -> None:
        order.append(("first_connect", conn.number))
        started.set()
        await asyncio.wait_for(finished.wait(), WAIT)
        order.append(("first_connect done",))

    def on_connect(conn: FakeAsyncConnection, rec: Any) -> None:
        order.append(("connect", conn.number))

    event.listen(pool, "first_connect", first)
    event.listen(pool, "connect", on_connect)

    async def take() -> int:
        async with pool.connect() as conn:
            return number(conn)

    one = asyncio.create_task(take())
    await asyncio.wait_for(started.wait(), WAIT)
    two = asyncio.create_task(take())
    assert await yield_until(lambda: len(adbapi.connections) == 2)
    for _ in range(5):
        await asyncio.sleep(0)  # give the second one every chance to overtake
    assert order == [("first_connect", 1)]
    assert not two.done()

    finished.set()
    assert list(await asyncio.wait_for(asyncio.gather(one, two), WAIT)) == [1, 2]
    assert order == [
        ("first_connect", 1),
        ("first_connect done",),
        ("connect", 1),
        ("connect", 2),
    ]


# -- the same semantics as the thread pools ---------------------------------


@pytest.mark.asyncio
async def test_default_dialect_is_the_generic_async_one(
    adbapi: FakeAsyncDBAPI,
) -> None:
    pool = AsyncNullPool(adbapi.connect)
    assert type(pool.dialect) is AsyncDialect
    async with pool.connect():
        pass
    # The fake driver is not one poolhouse knows.
    assert type(pool.dialect) is AsyncDialect
    assert adbapi.calls == [("connect", 1), ("rollback", 1), ("close", 1)]


# -- waiting for a connection --------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("use_lifo", [False, True])
@pytest.mark.parametrize(("pool_size", "max_overflow"), [(1, 0), (2, 1)])
async def test_waiters_are_served_first_come_first_served(
    make_queue_pool: MakeQueuePool,
    adbapi: FakeAsyncDBAPI,
    use_lifo: bool,
    pool_size: int,
    max_overflow: int,
) -> None:
    pool = make_queue_pool(
        pool_size=pool_size, max_overflow=max_overflow, use_lifo=use_lifo
    )
    capacity = pool_size + max_overflow
    held = [await pool.connect() for _ in range(capacity)]
    n = 6
    served: list[int] = []
    got = [asyncio.Event() for _ in range(n)]
    release = [asyncio.Event() for _ in range(n)]

    async def work(i: int) -> None:
        async with pool.connect():
            served.append(i)
            got[i].set()
            await asyncio.wait_for(release[i].wait(), WAIT)

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(work(i)))
        # Task i is parked behind 0..i-1 before the next one starts.
        await wait_until_parked(pool, i + 1)
    assert served == []

    # Free the held connections one at a time, then each worker's in turn.
    for i in range(n):
        if i < capacity:
            await held[i].close()
        else:
            release[i - capacity].set()
        await asyncio.wait_for(got[i].wait(), WAIT)
        assert served == list(range(i + 1))
    for i in range(max(0, n - capacity), n):
        release[i].set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
    assert served == list(range(n))
    assert len(adbapi.connections) == capacity  # none beyond the limit
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
@pytest.mark.parametrize("use_lifo", [False, True])
async def test_pool_size_zero_never_makes_a_task_wait(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI, use_lifo: bool
) -> None:
    """pool_size=0 means no limit at all: max_overflow is ignored."""
    pool = make_queue_pool(pool_size=0, max_overflow=2, timeout=0, use_lifo=use_lifo)
    held = [await pool.connect() for _ in range(2)]
    n = 6
    # timeout=0: any of these that had to wait would fail at once.
    more = await asyncio.wait_for(
        asyncio.gather(*(pool.connect() for _ in range(n))), WAIT
    )
    assert not pool._slots.waiters
    numbers = [number(conn) for conn in held + more]
    assert sorted(numbers) == list(range(1, n + 3))
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, n + 2, 0)
    assert (
        f"Current Overflow: 0 Current Checked out connections: {n + 2} Waiting: 0"
        in pool.status()
    )
    for conn in held + more:
        await conn.close()
    # Every returned connection is kept, none closed.
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (n + 2, 0, 0)
    assert adbapi.calls_named("close") == []
    async with pool.connect() as conn:
        # The most recently returned one first with use_lifo, else the oldest.
        assert number(conn) == (numbers[-1] if use_lifo else numbers[0])
    assert_nothing_leaked(pool, adbapi)


class ManualTimers:
    """The part of an event loop that :class:`_Deadlines` uses, with a clock
    the test moves and timers that fire only in :meth:`advance`."""

    def __init__(self) -> None:
        self.now = 0.0
        #: Every timer set: (when, callback); fired ones are removed.
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.made = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        self.timers.append((when, callback))
        self.made += 1
        return asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())

    def create_future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def pending(self) -> list[float]:
        return [when for when, _ in self.timers]

    async def advance(self, to: float) -> None:
        """Move the clock to *to*, fire the timers due, let woken tasks run."""
        self.now = to
        due = [timer for timer in self.timers if timer[0] <= to]
        for timer in due:
            self.timers.remove(timer)
            timer[1]()
        for _ in range(5):
            await asyncio.sleep(0)


def _deadlines(timers: ManualTimers) -> _Deadlines:
    return _Deadlines(timers)  # type: ignore[arg-type]  # a stand-in for the loop


async def _two_waiting(
    timers: ManualTimers,
) -> tuple[list[_AsyncWaiter], list[asyncio.Task[bool]]]:
    """Two waiters with a 10 s timeout, parked at times 0 and 3."""
    deadlines = _deadlines(timers)
    waiters, waits = [], []
    for now in (0.0, 3.0):
        timers.now = now
        waiters.append(_AsyncWaiter(deadlines))
        waits.append(asyncio.create_task(waiters[-1].wait(10.0)))
        await asyncio.sleep(0)
    return waiters, waits


@pytest.mark.asyncio
async def test_waiters_time_out_at_their_own_deadline_oldest_first() -> None:
    timers = ManualTimers()
    _, waits = await _two_waiting(timers)
    assert timers.pending() == [10.0]  # one timer for both

    await timers.advance(10.0)
    assert waits[0].done() and waits[0].result() is False
    assert not waits[1].done()
    assert timers.pending() == [13.0]  # re-armed for the next one

    await timers.advance(13.0)
    assert waits[1].done() and waits[1].result() is False
    assert timers.pending() == []


@pytest.mark.asyncio
async def test_a_waiter_served_in_time_does_not_time_out() -> None:
    timers = ManualTimers()
    (first, second), waits = await _two_waiting(timers)

    first.grant(CREATE)
    await timers.advance(9.0)
    assert waits[0].result() is True
    # The timer still aims at the served waiter's deadline; when it fires it
    # finds that waiter gone and waits on for the next one.
    await timers.advance(10.0)
    assert not waits[1].done()
    assert timers.pending() == [13.0]
    second.grant(CREATE)
    await timers.advance(13.0)
    assert waits[1].result() is True
    assert timers.pending() == []


@pytest.mark.asyncio
async def test_waiters_that_give_up_leave_the_line_at_once() -> None:
    """Callers that stop waiting behind one that waits on do not pile up."""
    timers = ManualTimers()
    (first, second), waits = await _two_waiting(timers)
    deadlines = first._deadlines
    waits[1].cancel()
    await finish(waits[1])

    assert list(deadlines._line) == [first]
    first.grant(CREATE)
    await finish(waits[0])
    assert not deadlines._line
    assert second.is_waiting() is False


@pytest.mark.asyncio
async def test_served_waiters_do_not_pile_up_behind_the_timer() -> None:
    timers = ManualTimers()
    deadlines = _deadlines(timers)
    for n in range(100):
        waiter = _AsyncWaiter(deadlines)
        wait = asyncio.create_task(waiter.wait(30.0))
        await asyncio.sleep(0)
        waiter.grant(CREATE)
        await finish(wait)
        assert wait.result() is True
        timers.now = n * 0.01
    assert not deadlines._line
    assert timers.made == 1  # armed once, not once per wait


@pytest.mark.asyncio
async def test_returned_connection_goes_to_the_waiter_not_a_newcomer(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    held = await pool.connect()

    async def take() -> AsyncConnectionFairy:
        return await pool.connect()

    waiter = asyncio.create_task(take())
    await wait_until_parked(pool, 1)
    await held.close()  # handed to the waiter before it even runs
    newcomer = asyncio.create_task(take())
    await wait_until_parked(pool, 1)  # the newcomer waits in its turn
    await finish(waiter)
    first = waiter.result()
    assert number(first) == 1
    assert not newcomer.done()
    await first.close()
    await finish(newcomer)
    second = newcomer.result()
    assert number(second) == 1
    await second.close()
    assert len(adbapi.connections) == 1
    assert_nothing_leaked(pool, adbapi)


# -- cancellation never leaks --------------------------------------------------


async def _hold_then_park(
    pool: AsyncQueuePool, names: list[str], served: list[tuple[str, int]]
) -> tuple[AsyncConnectionFairy, dict[str, asyncio.Task[None]]]:
    """Check out the pool's one connection, then park a task per name behind
    it, in that order."""
    held = await pool.connect()

    async def take(name: str) -> None:
        async with pool.connect() as conn:
            served.append((name, number(conn)))

    tasks = {}
    for i, name in enumerate(names):
        tasks[name] = asyncio.create_task(take(name))
        await wait_until_parked(pool, i + 1)
    return held, tasks


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [30.0, math.inf, None])
async def test_task_cancelled_while_waiting_gives_up_its_place(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI, timeout: float | None
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=timeout)
    served: list[tuple[str, int]] = []
    held, tasks = await _hold_then_park(pool, ["a", "b"], served)

    tasks["a"].cancel()
    await finish(tasks["a"])

    assert tasks["a"].cancelled()
    assert len(pool._slots.waiters) == 1
    await held.close()
    await finish(tasks["b"])
    assert tasks["b"].exception() is None
    assert served == [("b", 1)]
    assert len(adbapi.connections) == 1
    assert_nothing_leaked(pool, adbapi)


def _cancel_on_grant(
    monkeypatch: pytest.MonkeyPatch, victim: list[asyncio.Task[None]]
) -> None:
    """Cancel ``victim[0]`` right after the first grant to a waiter, before
    the waiter runs."""
    original = _AsyncWaiter.grant
    done: list[bool] = []

    def grant_then_cancel(self: _AsyncWaiter, what: Any) -> None:
        original(self, what)
        if not done:
            done.append(True)
            victim[0].cancel()

    monkeypatch.setattr(_AsyncWaiter, "grant", grant_then_cancel)


def _cancel_before_grant(
    pool: AsyncQueuePool, victim: list[asyncio.Task[None]]
) -> None:
    """Cancel ``victim[0]`` while the connection is being returned, just
    before it is handed to the oldest waiter."""

    def cancel(conn: Any, rec: Any) -> None:
        victim[0].cancel()

    event.listen(pool, "checkin", cancel, once=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [30.0, math.inf])
@pytest.mark.parametrize("when", ["before-grant", "after-grant"])
async def test_cancel_racing_a_grant_loses_no_connection(
    make_queue_pool: MakeQueuePool,
    adbapi: FakeAsyncDBAPI,
    monkeypatch: pytest.MonkeyPatch,
    timeout: float,
    when: str,
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=timeout)
    served: list[tuple[str, int]] = []
    held, tasks = await _hold_then_park(pool, ["a", "b"], served)
    victim = [tasks["a"]]
    if when == "after-grant":
        _cancel_on_grant(monkeypatch, victim)
    else:
        _cancel_before_grant(pool, victim)

    await held.close()
    await finish(tasks["a"])
    await finish(tasks["b"])

    # Whoever ended up with it, the connection came back and b was served.
    assert tasks["b"].exception() is None
    assert ("b", 1) in served
    assert tasks["a"].cancelled() or served == [("a", 1), ("b", 1)]
    assert len(adbapi.connections) == 1
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [30.0, math.inf])
@pytest.mark.parametrize("when", ["before-grant", "after-grant"])
async def test_cancelled_checkout_ends_cancelled_even_if_granted_meanwhile(
    make_queue_pool: MakeQueuePool,
    adbapi: FakeAsyncDBAPI,
    monkeypatch: pytest.MonkeyPatch,
    timeout: float,
    when: str,
) -> None:
    """A cancelled task must not carry on with a connection: the grant is
    passed on to the next waiter and the task ends cancelled."""
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=timeout)
    served: list[tuple[str, int]] = []
    held, tasks = await _hold_then_park(pool, ["a", "b"], served)
    victim = [tasks["a"]]
    if when == "after-grant":
        _cancel_on_grant(monkeypatch, victim)
    else:
        _cancel_before_grant(pool, victim)

    await held.close()
    await finish(tasks["a"])
    await finish(tasks["b"])

    assert tasks["a"].cancelled()
    assert served == [("b", 1)]
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
async def test_task_cancelled_inside_async_with_returns_its_connection(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    inside, never = asyncio.Event(), asyncio.Event()

    async def use() -> None:
        async with pool.connect():
            inside.set()
            await asyncio.wait_for(never.wait(), WAIT)

    task = asyncio.create_task(use())
    await asyncio.wait_for(inside.wait(), WAIT)
    task.cancel()
    await finish(task)

    assert task.cancelled()
    assert adbapi.calls == [("connect", 1), ("rollback", 1)]  # reset done
    assert not adbapi.connections[0].closed
    assert_nothing_leaked(pool, adbapi)
    async with pool.connect() as conn:
        assert number(conn) == 1


async def _cancel_during_return(
    pool: AsyncQueuePool, gate: FakeGate
) -> asyncio.Task[None]:
    """Leave an ``async with`` block, cancel the task once the return reaches
    *gate*, and wait for the task to end."""

    async def use() -> None:
        async with pool.connect():
            pass

    task = asyncio.create_task(use())
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    task.cancel()
    await finish(task)
    return task


@pytest.mark.asyncio
async def test_cancel_while_the_reset_hangs_invalidates_and_frees_the_slot(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    """A reset that cannot finish leaves the connection in an unknown state:
    the cancelled return discards it and gives its slot back, without waiting
    for the stuck rollback."""
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    gate = adbapi.hold("rollback")

    task = await _cancel_during_return(pool, gate)
    try:
        assert task.cancelled()
        returned = await yield_until(lambda: pool.checkedout() == 0)
        assert returned, "the slot stays taken while the rollback hangs"
        assert adbapi.connections[0].closed  # invalidated
        assert not gate.is_released
        assert_nothing_leaked(pool, adbapi)
    finally:
        gate.release()  # whatever happened, let a stuck rollback end
        await yield_until(lambda: pool.checkedout() == 0)
    del adbapi.gates["rollback"]
    async with pool.connect() as conn:
        assert number(conn) == 2


@pytest.mark.asyncio
async def test_cancel_while_the_reset_runs_still_returns_the_connection(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    """Whatever the pool decides about a reset interrupted by a cancel, the
    slot comes back once the rollback call ends."""
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    gate = adbapi.hold("rollback")

    task = await _cancel_during_return(pool, gate)
    gate.release()
    assert await yield_until(lambda: pool.checkedout() == 0)
    assert task.cancelled()
    assert_nothing_leaked(pool, adbapi)
    del adbapi.gates["rollback"]
    async with pool.connect() as conn:
        assert number(conn) in (1, 2)


@pytest.mark.asyncio
async def test_a_listener_error_in_a_cancelled_return_reaches_the_caller(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    """The cancel cuts the reset short and the connection is invalidated; a
    ``close`` listener failing then is reported to the caller like any
    listener error, and the slot still comes back."""
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    gate = adbapi.hold("rollback")

    def failing_close(conn: Any, rec: Any) -> None:
        raise RuntimeError("close listener failed")

    event.listen(pool, "close", failing_close)

    task = await _cancel_during_return(pool, gate)

    with pytest.raises(RuntimeError, match="close listener failed"):
        task.result()
    assert adbapi.connections[0].closed
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
async def test_a_timeout_taken_during_the_return_does_not_cancel_the_caller(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    """asyncio.timeout() binds to the current task (asyncpg takes one to wait
    for a cancelled command's answer): when it expires during the return, it
    must end as a TimeoutError where it was taken, not as a cancel of the
    task that returns the connection."""
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    never = asyncio.Event()
    outcomes: list[str] = []

    async def bounded_check(conn: Any, rec: Any) -> None:
        try:
            async with asyncio.timeout(0):
                await never.wait()
        except TimeoutError:
            outcomes.append("timed out")

    event.listen(pool, "checkin", bounded_check)

    async def use() -> str:
        async with pool.connect():
            pass
        return "returned"

    task = asyncio.create_task(use())
    await finish(task)

    assert not task.cancelled()
    assert task.result() == "returned"
    assert outcomes == ["timed out"]
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
async def test_cancel_while_the_creator_runs_frees_the_slot(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    gate = adbapi.hold("connect")

    async def take() -> None:
        await pool.connect()

    task = asyncio.create_task(take())
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    assert pool.checkedout() == 1  # the slot is reserved while connecting
    task.cancel()
    await finish(task)

    assert task.cancelled()
    assert pool._slots.opened == 0
    assert_nothing_leaked(pool, adbapi)
    del adbapi.gates["connect"]
    async with pool.connect() as conn:
        assert number(conn) == 1


@pytest.mark.asyncio
async def test_cancel_during_an_async_checkout_listener_returns_the_connection(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0)
    entered, never = asyncio.Event(), asyncio.Event()

    async def slow_check(conn: Any, rec: Any, proxy: Any) -> None:
        entered.set()
        await asyncio.wait_for(never.wait(), WAIT)

    event.listen(pool, "checkout", slow_check)

    async def take() -> None:
        await pool.connect()

    task = asyncio.create_task(take())
    await asyncio.wait_for(entered.wait(), WAIT)
    task.cancel()
    await finish(task)

    assert task.cancelled()
    assert adbapi.calls == [("connect", 1), ("rollback", 1)]
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
async def test_cancel_during_pre_ping_returns_the_slot(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, pre_ping=True)
    await (await pool.connect()).close()
    gate = adbapi.hold("execute")

    async def take() -> None:
        await pool.connect()

    task = asyncio.create_task(take())
    await asyncio.wait_for(gate.entered.wait(), WAIT)
    task.cancel()
    await finish(task)

    assert task.cancelled()
    assert_nothing_leaked(pool, adbapi)
    del adbapi.gates["execute"]
    async with pool.connect() as conn:
        assert await conn.execute("SELECT 1") == [(1,)]


# -- one event loop per pool ---------------------------------------------------


def _use_in_a_new_loop(pool: AsyncPool) -> exc.InvalidRequestError:
    """Check out from *pool* in a fresh event loop; return the refusal."""

    async def use() -> None:
        async with pool.connect():
            pass

    with pytest.raises(exc.InvalidRequestError) as info:
        asyncio.run(use())
    return info.value


@pytest.mark.asyncio
async def test_pool_used_from_a_second_event_loop_says_so(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool()
    async with pool.connect():
        pass

    err = await asyncio.wait_for(asyncio.to_thread(_use_in_a_new_loop, pool), WAIT)

    message = str(err)
    assert repr(pool) in message
    assert repr(asyncio.get_running_loop()) in message
    assert "event loop" in message
    assert "recreate()" in message
    assert err.pool is pool
    assert adbapi.calls == [("connect", 1), ("rollback", 1)]  # nothing touched
    assert_nothing_leaked(pool, adbapi)
    async with pool.connect() as conn:  # still fine in its own loop
        assert number(conn) == 1


def test_pool_whose_loop_ended_is_refused_and_recreate_gives_a_usable_one(
    make_queue_pool: MakeQueuePool,
) -> None:
    pool = make_queue_pool()
    seen = record(pool, "checkout")

    async def round_trip(p: AsyncPool) -> int:
        async with p.connect() as conn:
            return number(conn)

    assert asyncio.run(round_trip(pool)) == 1
    err = _use_in_a_new_loop(pool)
    assert "recreate()" in str(err)

    new = pool.recreate()
    assert asyncio.run(round_trip(new)) == 2
    assert names_of(seen) == ["checkout", "checkout"]


# -- a connection dropped without close() --------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("pool_class", ASYNC_CLASSES, ids=lambda c: c.__name__)
async def test_dropped_connection_is_reclaimed_on_the_loop_with_a_warning(
    pool_class: type[AsyncPool],
    adbapi: FakeAsyncDBAPI,
    adialect: FakeAsyncDialect,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gc.collect()  # garbage left by earlier tests is not this test's business
    pool = pool_class(adbapi.connect, dialect=adialect)
    caplog.set_level(logging.WARNING, logger=pool.logger.name)
    conn = await pool.connect()
    raw = fake(conn)
    del conn
    gc.collect()

    assert await yield_until(
        lambda: bool(adbapi.calls_named("rollback")) and not pool._background
    )
    assert adbapi.calls_named("rollback") == [("rollback", raw.number)]
    assert any(
        r.levelno == logging.WARNING
        and repr(pool) in r.getMessage()
        and "garbage-collected" in r.getMessage()
        for r in caplog.records
    )
    if isinstance(pool, AsyncQueuePool):
        assert_nothing_leaked(pool, adbapi)
    async with pool.connect() as again:  # AssertionPool: not still checked out
        assert (fake(again) is raw) is (pool_class is not AsyncNullPool)
    await pool.dispose()


# -- constructor arguments: the same rules as the thread twins -----------------


def _two_arguments(a: Any, b: Any) -> Any:
    raise AssertionError("never called")


def _listener(*args: Any) -> None:
    pass


BAD_BASE_ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("creator-not-callable", {"creator": "sqlite://"}),
    ("creator-two-arguments", {"creator": _two_arguments}),
    ("recycle-below-minus-1", {"recycle": -2}),
    ("recycle-str", {"recycle": "60"}),
    ("echo", {"echo": "loud"}),
    ("logging_name", {"logging_name": 3}),
    ("reset_on_return", {"reset_on_return": "bogus"}),
    ("reset_on_return-int", {"reset_on_return": 1}),
    ("pre_ping", {"pre_ping": 1}),
    ("events-unknown", {"events": [(_listener, "nope")]}),
    ("events-not-pairs", {"events": "checkout"}),
    ("dialect", {"dialect": object()}),
]

BAD_QUEUE_ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("pool_size-negative", {"pool_size": -1}),
    ("pool_size-float", {"pool_size": 1.5}),
    ("max_overflow-below-minus-1", {"max_overflow": -2}),
    ("timeout-negative", {"timeout": -1}),
    ("timeout-nan", {"timeout": math.nan}),
    ("timeout-str", {"timeout": "30"}),
    ("use_lifo-int", {"use_lifo": 1}),
]

BAD_ARGUMENTS = [
    pytest.param(aio_cls, sync_cls, kwargs, id=f"{aio_cls.__name__}-{name}")
    for aio_cls, sync_cls in TWINS
    for name, kwargs in BAD_BASE_ARGUMENTS
] + [
    pytest.param(AsyncQueuePool, QueuePool, kwargs, id=f"AsyncQueuePool-{name}")
    for name, kwargs in BAD_QUEUE_ARGUMENTS
]


@pytest.mark.parametrize(("aio_cls", "sync_cls", "kwargs"), BAD_ARGUMENTS)
def test_bad_argument_is_rejected_like_the_thread_twin(
    aio_cls: type[AsyncPool],
    sync_cls: type[Pool],
    kwargs: dict[str, Any],
    adbapi: FakeAsyncDBAPI,
) -> None:
    kwargs = dict(kwargs)
    creator = kwargs.pop("creator", adbapi.connect)
    with pytest.raises((TypeError, ValueError)) as sync_info:
        sync_cls(creator, **kwargs)
    with pytest.raises((TypeError, ValueError)) as aio_info:
        aio_cls(creator, **kwargs)
    assert type(aio_info.value) is type(sync_info.value)
    # Only the class names may differ ("use AsyncNullPool" / "use NullPool").
    assert str(aio_info.value).replace("Async", "") == str(sync_info.value)
    assert adbapi.calls == []  # nothing was opened


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(
            {"pool_size": 0, "max_overflow": 0}, id="pool_size-and-max_overflow-zero"
        ),
        pytest.param({"timeout": None}, id="timeout-none"),
    ],
)
async def test_argument_accepted_like_the_thread_twin(
    kwargs: dict[str, Any], adbapi: FakeAsyncDBAPI, adialect: FakeAsyncDialect
) -> None:
    """``pool_size=0, max_overflow=0`` (no limit) and ``timeout=None`` (wait
    forever) are valid for both twins and mean the same."""
    sync_pool = QueuePool(FakeDBAPI().connect, dialect=FakeDialect(), **kwargs)
    pool = AsyncQueuePool(adbapi.connect, dialect=adialect, **kwargs)
    assert pool.timeout() == sync_pool.timeout()
    assert pool.size() == sync_pool.size()
    assert pool.status().replace(repr(pool), "<pool>") == sync_pool.status().replace(
        repr(sync_pool), "<pool>"
    )
    async with pool.connect() as conn:
        assert conn.is_valid
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0


# -- the contract every asyncio pool class keeps -------------------------------
# The rest of it is shared with the thread pools: _async/test_contract.py.


@pytest.fixture(params=ASYNC_CLASSES, ids=lambda cls: cls.__name__)
def pool_class(request: pytest.FixtureRequest) -> type[AsyncPool]:
    cls: type[AsyncPool] = request.param
    return cls


@pytest.fixture
def make_pool(
    pool_class: type[AsyncPool],
    adbapi: FakeAsyncDBAPI,
    adialect: FakeAsyncDialect,
    clock: FakeClock,
) -> MakePool:
    def make(creator: Callable[..., Any] | None = None, **kwargs: Any) -> AsyncPool:
        kwargs.setdefault("dialect", adialect)
        pool = pool_class(creator or adbapi.connect, **kwargs)
        pool._clock = clock
        return pool

    return make


@pytest.fixture
def pool(make_pool: MakePool) -> AsyncPool:
    return make_pool()


def pools_connections(pool_class: type[AsyncPool]) -> bool:
    """Whether a returned connection stays open for the next checkout."""
    return pool_class is not AsyncNullPool


@pytest.mark.asyncio
async def test_contract_task_cancelled_inside_async_with_returns_its_connection(
    pool: AsyncPool, pool_class: type[AsyncPool], adbapi: FakeAsyncDBAPI
) -> None:
    inside, never = asyncio.Event(), asyncio.Event()

    async def use() -> None:
        async with pool.connect():
            inside.set()
            await asyncio.wait_for(never.wait(), WAIT)

    task = asyncio.create_task(use())
    await asyncio.wait_for(inside.wait(), WAIT)
    task.cancel()
    await finish(task)

    assert task.cancelled()
    assert adbapi.calls_named("rollback") == [("rollback", 1)]
    assert adbapi.connections[0].closed is not pools_connections(pool_class)
    async with pool.connect() as conn:  # AssertionPool: not still checked out
        assert (number(conn) == 1) is pools_connections(pool_class)


# -- one hand-written copy -----------------------------------------------------


def test_generated_thread_modules_are_up_to_date() -> None:
    """The thread lifecycle and pool classes are generated from the asyncio
    source (tools/unasync.py); a hand edit of either side shows up here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "unasync.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- found in review: slots kept under listener failures and shared reconnects ----


@pytest.mark.asyncio
async def test_checkout_cancelled_during_retry_invalidation_keeps_the_slot(
    make_queue_pool: MakeQueuePool, adbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=1, max_overflow=0, timeout=WAIT)
    started, never = asyncio.Event(), asyncio.Event()

    def reject(conn: Any, rec: Any, proxy: Any) -> None:
        raise exc.DisconnectionError("stale")

    async def hang(conn: Any, rec: Any, error: Any) -> None:
        started.set()
        await asyncio.wait_for(never.wait(), WAIT)

    event.listen(pool, "checkout", reject)
    event.listen(pool, "invalidate", hang)
    task = asyncio.create_task(pool._checkout())
    await asyncio.wait_for(started.wait(), WAIT)
    task.cancel()
    await finish(task)
    assert task.cancelled()
    event.remove(pool, "checkout", reject)
    event.remove(pool, "invalidate", hang)
    async with pool.connect():
        pass
    assert_nothing_leaked(pool, adbapi)


@pytest.mark.asyncio
async def test_static_pool_users_racing_a_stale_connection_share_one_replacement(
    adbapi: FakeAsyncDBAPI, adialect: FakeAsyncDialect
) -> None:
    gate = asyncio.Event()

    async def slow_connect() -> FakeAsyncConnection:
        if adbapi.connections:  # the replacement: let both users arrive first
            await asyncio.wait_for(gate.wait(), WAIT)
        return await adbapi.connect()

    pool = AsyncStaticPool(slow_connect, dialect=adialect)
    first = await pool.connect()
    await first.close()
    pool.expire_connections()
    a = asyncio.create_task(pool._checkout())
    b = asyncio.create_task(pool._checkout())
    for _ in range(10):  # let both reach the reconnect
        await asyncio.sleep(0)
    gate.set()
    conn_a, conn_b = await asyncio.wait_for(asyncio.gather(a, b), WAIT)
    assert conn_a.driver_connection is conn_b.driver_connection
    assert len(adbapi.connections) == 2  # the first, and one replacement
    await conn_a.close()
    await conn_b.close()
    await pool.dispose()
    assert adbapi.open_connections() == []


# -- the background worker on a loop ------------------------------------------


@pytest.mark.asyncio
async def test_worker_task_outlives_cancelled_callers_and_ends_on_close() -> None:
    dbapi = FakeAsyncDBAPI()
    gate = FakeGate()

    async def creator() -> FakeAsyncConnection:
        await gate.pass_through()
        return await dbapi.connect()

    pool = AsyncQueuePool(
        creator,
        pool_size=1,
        max_overflow=0,
        background=True,
        dialect=FakeAsyncDialect(),
    )
    caller = asyncio.ensure_future(pool.connect())
    await asyncio.wait_for(gate.entered.wait(), WAIT)  # the worker is dialling
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    worker = pool._worker
    assert not worker.done()  # a caller's cancel is not the worker's
    gate.release()
    conn = await asyncio.wait_for(pool.connect(), WAIT)  # the one it opened
    assert conn.dbapi_connection is dbapi.connections[0]
    await conn.close()
    await pool.close()
    await asyncio.wait_for(worker, WAIT)
    assert not worker.cancelled()  # it ended by itself
    assert dbapi.open_connections() == []


@pytest.mark.asyncio
async def test_a_slot_granted_just_before_close_is_given_back() -> None:
    """A waiter granted room (here by resize()) whose task has not run yet
    when the pool closes fails with PoolClosedError and dials nothing."""
    dbapi = FakeAsyncDBAPI()
    pool = AsyncQueuePool(
        dbapi.connect,
        pool_size=1,
        max_overflow=0,
        timeout=None,
        dialect=FakeAsyncDialect(),
    )
    held = await pool.connect()
    waiter = asyncio.ensure_future(pool.connect())
    while pool.stats().waiting != 1:
        await asyncio.sleep(0)
    await pool.resize(2)  # grants the waiter a slot; it has not run yet
    await pool.close(timeout=0)
    with pytest.raises(exc.PoolClosedError):
        await waiter
    assert len(dbapi.connections) == 1
    assert pool.stats().size == 1  # only the connection still held
    await held.close()
    assert dbapi.open_connections() == []
