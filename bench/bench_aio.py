"""Many tasks sharing a small asyncio pool, against the local PostgreSQL.

Each round runs ``TASKS`` tasks at once, each doing ``CYCLES`` acquire +
``SELECT 1`` + release cycles on a pool of ``POOL_SIZE`` connections, and
compares poolhouse's :class:`~poolhouse.aio.AsyncQueuePool` with asyncpg's own
pool (the reference, which runs ``Connection.reset()`` on every release) and
psycopg_pool's ``AsyncConnectionPool``.  A bare first-come, first-served
hand-off with the same reset query (a deque and futures, nothing else) shows
the floor any fair pool with that reset can reach.  Pools are created, and their
connections opened by one untimed round, before timing starts; each benchmark
has its own event loop.

Besides the mean, ``extra_info`` records each round's per-task completion
counts and longest acquire wait, and over all timed rounds the median, p99 and
maximum wait and the share of acquires served at once (under ``NO_WAIT``).
That share matters for asyncpg's pool: a task that releases and re-acquires
takes its connection back ahead of the waiting tasks (``asyncio.Queue`` lets a
woken getter that finds the queue empty again rejoin at the back), so about
half its acquires do not wait, its median is either near zero or a few ms
from one run to the next, and its tail is long.  The FIFO pools hand a
returned connection to the oldest waiter instead.

A task that did not finish its cycles fails the benchmark: that is
starvation, a correctness problem, whatever the timing.

PostgreSQL is reached through ``POOLHOUSE_TEST_PG_DSN`` (URL or ``key=value``
form), as in ``test/realdb``; an unreachable server skips this module, or fails
it under ``CI=true``.  Run with ``python3 -m tox -e bench``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import asyncpg
import psycopg
import psycopg_pool
import pytest
from pg_server import ASYNCPG_KWARGS
from pg_server import PG_DSN

from poolhouse.aio import AsyncQueuePool
from poolhouse.dialects.asyncpg import AsyncpgDialect

TASKS = 100
CYCLES = 20
POOL_SIZE = 4
ROUNDS = 40
#: A round still running after this many seconds has starved someone: its
#: unfinished tasks are cancelled and the benchmark fails.
ROUND_LIMIT = 60.0
#: An acquire that took less than this (seconds) found a connection at once.
NO_WAIT = 50e-6

GROUP = (
    f"{TASKS} tasks x {CYCLES} acquire+SELECT 1+release, "
    f"pool of {POOL_SIZE}, PostgreSQL"
)


@dataclass
class Target:
    """One pool under test, reduced to what a round needs."""

    #: Returns an async context manager yielding a connection.
    acquire: Callable[[], Any]
    #: Runs ``SELECT 1`` on a connection from *acquire*, returns the value.
    select_one: Callable[[Any], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]
    pool: Any


@dataclass
class RoundResult:
    completed: list[int] = field(default_factory=lambda: [0] * TASKS)
    #: Seconds from asking for a connection to holding it, every acquire.
    waits: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _asyncpg_select_one(conn: Any) -> Any:
    return await conn.fetchval("SELECT 1")


async def _psycopg_select_one(conn: Any) -> Any:
    cursor = await conn.execute("SELECT 1")
    row = await cursor.fetchone()
    return row[0]


async def _worker(target: Target, index: int, result: RoundResult) -> None:
    acquire, select_one = target.acquire, target.select_one
    waits, completed = result.waits, result.completed
    clock = time.perf_counter
    for _ in range(CYCLES):
        start = clock()
        async with acquire() as conn:
            waits.append(clock() - start)
            if await select_one(conn) != 1:
                raise AssertionError(f"SELECT 1 on {conn!r} did not return 1")
        completed[index] += 1


async def _round(target: Target) -> RoundResult:
    result = RoundResult()
    tasks = [asyncio.create_task(_worker(target, i, result)) for i in range(TASKS)]
    done, pending = await asyncio.wait(tasks, timeout=ROUND_LIMIT)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        result.errors.append(
            f"{len(pending)} tasks still running after {ROUND_LIMIT}s, cancelled"
        )
    for task in done:
        err = task.exception()
        if err is not None:
            result.errors.append(f"{type(err).__name__}: {err}")
    return result


def _run(benchmark: Any, setup: Callable[[], Awaitable[Target]]) -> Target:
    """Time ``ROUNDS`` rounds against the pool *setup* makes, in a new loop,
    record the waits, and fail if any task was starved or failed."""
    benchmark.extra_info.update(tasks=TASKS, cycles=CYCLES, pool_size=POOL_SIZE)
    results: list[RoundResult] = []
    loop = asyncio.new_event_loop()
    try:
        target = loop.run_until_complete(setup())
        try:
            # Untimed: opens the connections, fills statement caches.
            warmup = loop.run_until_complete(_round(target))
            assert not warmup.errors, f"warm-up round failed: {warmup.errors[:3]}"

            def run_round() -> None:
                results.append(loop.run_until_complete(_round(target)))

            benchmark.pedantic(run_round, rounds=ROUNDS, iterations=1)
        finally:
            loop.run_until_complete(target.close())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    _record_and_check(benchmark, results)
    return target


def _record_and_check(benchmark: Any, results: list[RoundResult]) -> None:
    info = benchmark.extra_info
    info["rounds"] = [
        {
            "completed": r.completed,
            "max_wait_ms": max(r.waits, default=0.0) * 1e3,
            "errors": sorted(set(r.errors))[:5],
        }
        for r in results
    ]
    waits = [w for r in results for w in r.waits]
    if waits:
        median = statistics.median(waits)
        info["wait_median_ms"] = median * 1e3
        info["wait_p99_ms"] = statistics.quantiles(waits, n=100)[-1] * 1e3
        info["wait_max_ms"] = max(waits) * 1e3
        info["no_wait_share"] = sum(w < NO_WAIT for w in waits) / len(waits)
        info["wait_max_over_median"] = max(waits) / median if median else float("inf")
    errors = sorted({e for r in results for e in r.errors})
    starved = [
        f"round {n} task {i}: {count}/{CYCLES}"
        for n, r in enumerate(results)
        for i, count in enumerate(r.completed)
        if count != CYCLES
    ]
    assert not errors, f"tasks failed: {errors[:5]}"
    assert not starved, f"{len(starved)} tasks did not finish: {starved[:10]}"


async def _asyncpg_pool() -> Target:
    pool = await asyncpg.create_pool(
        min_size=POOL_SIZE, max_size=POOL_SIZE, **ASYNCPG_KWARGS
    )
    return Target(pool.acquire, _asyncpg_select_one, pool.close, pool)


async def _poolhouse_asyncpg(dialect: AsyncpgDialect | None) -> Target:
    async def creator() -> Any:
        return await asyncpg.connect(**ASYNCPG_KWARGS)

    pool = AsyncQueuePool(creator, pool_size=POOL_SIZE, max_overflow=0, dialect=dialect)
    return Target(pool.connect, _asyncpg_select_one, pool.dispose, pool)


class _BareFifo:
    """The least any fair pool can do: idle connections in a deque, waiting
    tasks served in arrival order, and the reset of
    ``AsyncpgDialect(reset_session=True)`` on release.  No timeout, events,
    cancellation safety or error handling: a floor for the equally safe
    variants, not a pool to use."""

    def __init__(self, connections: list[Any]) -> None:
        self.idle = collections.deque(connections)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        if self.idle:
            conn = self.idle.popleft()
        else:
            waiter = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            conn = await waiter
        try:
            yield conn
        finally:
            await conn.execute(conn.get_reset_query())
            if self.waiting:
                self.waiting.popleft().set_result(conn)
            else:
                self.idle.append(conn)

    async def close(self) -> None:
        for conn in self.idle:
            await conn.close()


async def _bare_fifo() -> Target:
    pool = _BareFifo(
        [await asyncpg.connect(**ASYNCPG_KWARGS) for _ in range(POOL_SIZE)]
    )
    return Target(pool.acquire, _asyncpg_select_one, pool.close, pool)


async def _psycopg_pool() -> Target:
    pool = psycopg_pool.AsyncConnectionPool(
        PG_DSN,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        kwargs={"autocommit": True},
        open=False,
    )
    await pool.open(wait=True)
    return Target(pool.connection, _psycopg_select_one, pool.close, pool)


async def _poolhouse_psycopg() -> Target:
    async def creator() -> Any:
        return await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True)

    pool = AsyncQueuePool(creator, pool_size=POOL_SIZE, max_overflow=0)
    return Target(pool.connect, _psycopg_select_one, pool.dispose, pool)


@pytest.mark.benchmark(group=GROUP)
def test_asyncpg_pool(benchmark: Any) -> None:
    """The reference: asyncpg's pool, whose release runs ``Connection.reset()``
    (rollback if needed, then advisory unlocks, CLOSE ALL, UNLISTEN, RESET ALL)."""
    benchmark.extra_info["reference"] = True
    _run(benchmark, _asyncpg_pool)


@pytest.mark.benchmark(group=GROUP)
def test_poolhouse_asyncpg_reset_session(benchmark: Any) -> None:
    """Equally safe: the reset also runs the reset query of asyncpg's
    ``Connection.reset()``."""
    target = _run(
        benchmark, lambda: _poolhouse_asyncpg(AsyncpgDialect(reset_session=True))
    )
    benchmark.extra_info["dialect"] = repr(target.pool.dialect)
    assert target.pool.checkedout() == 0


@pytest.mark.benchmark(group=GROUP)
def test_poolhouse_asyncpg(benchmark: Any) -> None:
    """The default dialect: rolls back only when a transaction is open."""
    target = _run(benchmark, lambda: _poolhouse_asyncpg(None))
    benchmark.extra_info["dialect"] = repr(target.pool.dialect)
    assert isinstance(target.pool.dialect, AsyncpgDialect)
    assert target.pool.checkedout() == 0


@pytest.mark.benchmark(group=GROUP)
def test_bare_fifo_reset_session(benchmark: Any) -> None:
    """A floor, not a pool: the fastest any fair pool with that reset can be."""
    _run(benchmark, _bare_fifo)


@pytest.mark.benchmark(group=GROUP)
def test_psycopg_pool(benchmark: Any) -> None:
    """psycopg_pool with autocommit connections: no round trip on release."""
    _run(benchmark, _psycopg_pool)


@pytest.mark.benchmark(group=GROUP)
def test_poolhouse_psycopg(benchmark: Any) -> None:
    target = _run(benchmark, _poolhouse_psycopg)
    benchmark.extra_info["dialect"] = repr(target.pool.dialect)
    assert target.pool.checkedout() == 0
