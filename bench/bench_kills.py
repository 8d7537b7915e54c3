"""Connection churn under kills: how many connections a pool opens while the
server keeps terminating its sessions, against the local PostgreSQL.

``WORKERS`` threads (or asyncio tasks) share one pool of ``POOL_SIZE`` +
``MAX_OVERFLOW`` connections and, for ``DURATION`` seconds, check out, run
``QUERY`` (a 1 ms ``pg_sleep``, so connections are held a little) and check in.
Meanwhile a killer thread, on its own connection, calls ``pg_terminate_backend``
on one randomly chosen backend of the workload every ``KILL_INTERVAL`` seconds.
The workload's sessions carry an ``application_name`` unique to the run, and
only those are ever chosen, so other sessions on a shared server are safe.

Workers count a failed operation and carry on.  Each variant records in
``extra_info`` the connections opened (the creator wrapped with a counter),
failed and completed operations, kills issued, the most workload backends seen
at once, and the commonest errors.  The pairs compared:

- poolhouse's :class:`~poolhouse.QueuePool` with psycopg 3 against SQLAlchemy's
  ``QueuePool`` as an Engine drives it (the Engine invalidates on disconnect),
  with pre-ping off and on;
- poolhouse's :class:`~poolhouse.aio.AsyncQueuePool` with asyncpg against
  asyncpg's own pool, with poolhouse's pre-ping off and on (asyncpg's pool has
  none: it runs the same way for both pairs, which also shows its spread).

``conftest.py`` prints each pair's connects ratio with its target (threads
within ``THREADS_TARGET``, asyncio within ``ASYNC_TARGET``).  The targets are
reported, not asserted.  A worker still running ``JOIN_GRACE`` seconds after
the deadline, stuck in a checkout, fails its benchmark after the figures are
recorded.

PostgreSQL is reached through ``POOLHOUSE_TEST_PG_DSN`` (URL or ``key=value``
form), as in ``bench_aio.py``; an unreachable server skips this module, or
fails it under ``CI=true``.  Run with
``python3 -m tox -e bench -- bench/bench_kills.py`` (about 30 s).
"""

from __future__ import annotations

import asyncio
import collections
import random
import secrets
import threading
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy
from pg_server import ASYNCPG_KWARGS
from pg_server import PG_DSN

from poolhouse import QueuePool
from poolhouse.aio import AsyncQueuePool

WORKERS = 64
POOL_SIZE = 8
MAX_OVERFLOW = 8
#: Seconds a checkout may wait for a connection.
POOL_TIMEOUT = 30.0
#: Seconds each variant runs its workload.
DURATION = 3.0
#: Seconds between two kills.
KILL_INTERVAL = 0.05
#: Seconds past the deadline a worker may take to finish its last operation.
JOIN_GRACE = 10.0
#: Seconds to connect before giving up, so a stalled server cannot hang a run.
CONNECT_TIMEOUT = 5
QUERY = "SELECT pg_sleep(0.001)"
#: Seeds the killer's choices, so every variant draws the same sequence.
SEED = 20240607
#: poolhouse's connects may be at most this many times the peer's.
THREADS_TARGET = 1.2
ASYNC_TARGET = 2.0

_SETUP = (
    f"{WORKERS} workers, pool {POOL_SIZE}+{MAX_OVERFLOW}, one kill every "
    f"{KILL_INTERVAL * 1e3:.0f} ms for {DURATION:g} s, PostgreSQL"
)
GROUP_THREADS = f"kills, threads, pre_ping off: {_SETUP}"
GROUP_THREADS_PING = f"kills, threads, pre_ping on: {_SETUP}"
GROUP_ASYNC = f"kills, asyncio, pre_ping off: {_SETUP}"
GROUP_ASYNC_PING = f"kills, asyncio, pre_ping on: {_SETUP}"


class SharedCount:
    """A count shared by threads (creators run in several at once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


@dataclass
class Workload:
    """What one variant's workers did, each worker counting in its own slot."""

    app: str = field(default_factory=lambda: f"poolhouse-kills-{secrets.token_hex(6)}")
    connects: SharedCount = field(default_factory=SharedCount)
    ops: list[int] = field(default_factory=lambda: [0] * WORKERS)
    failures: list[int] = field(default_factory=lambda: [0] * WORKERS)
    errors: list[collections.Counter[str]] = field(
        default_factory=lambda: [collections.Counter() for _ in range(WORKERS)]
    )
    #: The first message of each error type, to tell the errors apart.
    samples: dict[str, str] = field(default_factory=dict)
    #: When the workers stop starting operations (``time.monotonic``).
    deadline: float = 0.0
    stuck: int = 0

    def failed(self, index: int, err: Exception) -> None:
        kind = f"{type(err).__module__}.{type(err).__name__}"
        self.failures[index] += 1
        self.errors[index][kind] += 1
        self.samples.setdefault(kind, str(err).strip()[:160])


class Killer:
    """Terminates one random backend of a workload every ``KILL_INTERVAL``.

    Candidates are the sessions whose ``application_name`` is exactly the
    workload's; the pid is checked against that name again in the statement
    that terminates it, so a pid reused by another session is never hit.
    """

    def __init__(self, app: str) -> None:
        self._app = app
        self._rng = random.Random(SEED)
        self._stop = threading.Event()
        self._conn = psycopg.connect(
            PG_DSN,
            autocommit=True,
            application_name=f"{app}-killer",
            connect_timeout=CONNECT_TIMEOUT,
        )
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)
        self._deadline = 0.0
        self.kills = 0
        self.peak_backends = 0
        self.error: str | None = None

    def start(self, deadline: float) -> None:
        self._deadline = deadline
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(CONNECT_TIMEOUT)

    def _run(self) -> None:
        tick = time.monotonic()
        try:
            while True:
                # Fixed-rate ticks: a slow kill delays the next one, never
                # bunches them up.
                tick = max(tick + KILL_INTERVAL, time.monotonic())
                if tick >= self._deadline or self._stop.wait(tick - time.monotonic()):
                    return
                self._kill_one()
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"

    def _kill_one(self) -> None:
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (self._app,),
        ).fetchall()
        pids = sorted(pid for (pid,) in rows)
        self.peak_backends = max(self.peak_backends, len(pids))
        if not pids:
            return
        row = self._conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid = %s AND application_name = %s",
            (self._rng.choice(pids), self._app),
        ).fetchone()
        if row is not None and row[0]:
            self.kills += 1

    def finish(self) -> int:
        """Terminate the workload's sessions still open once its pool is
        closed, close the killer's connection, and return how many there were.

        A closed connection's backend exits a moment later, so this polls for
        up to a second before counting one as left open.
        """
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        limit = time.monotonic() + 1.0
        try:
            while True:
                row = self._conn.execute(query, (self._app,)).fetchone()
                count = int(row[0]) if row is not None else 0
                if not count or time.monotonic() >= limit:
                    break
                time.sleep(0.02)
            if count:
                self._conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    (self._app,),
                )
        finally:
            self._conn.close()
        return count


def _record(
    benchmark: Any,
    work: Workload,
    killer: Killer,
    left_open: int,
    role: str,
    library: str,
    target: float,
) -> None:
    """Put the figures in ``extra_info``, then fail on a stuck worker or a
    killer that stopped early (the figures stay in the report)."""
    errors: collections.Counter[str] = collections.Counter()
    for counts in work.errors:
        errors.update(counts)
    benchmark.extra_info.update(
        kills_role=role,
        library=library,
        target_ratio=target,
        workers=WORKERS,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        duration_s=DURATION,
        kill_interval_s=KILL_INTERVAL,
        query=QUERY,
        connects=work.connects.value,
        failures=sum(work.failures),
        ops=sum(work.ops),
        kills=killer.kills,
        peak_backends=killer.peak_backends,
        left_open=left_open,
        stuck_workers=work.stuck,
        errors=dict(errors.most_common(5)),
        error_samples={kind: work.samples[kind] for kind, _ in errors.most_common(5)},
    )
    assert killer.error is None, f"the killer stopped: {killer.error}"
    assert not work.stuck, (
        f"{work.stuck} of {WORKERS} workers still running {JOIN_GRACE}s after the "
        f"deadline (pool timeout {POOL_TIMEOUT}s): connections are not coming back"
    )


# -- threads ------------------------------------------------------------------------


def _worker(
    op: Callable[[], None],
    work: Workload,
    index: int,
    go: threading.Event,
) -> None:
    if not go.wait(CONNECT_TIMEOUT):
        return
    clock, deadline = time.monotonic, work.deadline
    while clock() < deadline:
        try:
            op()
        except Exception as err:
            work.failed(index, err)
        else:
            work.ops[index] += 1


def _run_threads(
    benchmark: Any,
    work: Workload,
    op: Callable[[], None],
    close: Callable[[], None],
    role: str,
    library: str,
) -> None:
    """Run *op* in ``WORKERS`` threads under kills, once, timed; then *close*
    the pool and record the figures."""
    killer = Killer(work.app)
    try:

        def run() -> None:
            go = threading.Event()
            threads = [
                threading.Thread(
                    target=_worker,
                    args=(op, work, i, go),
                    name=f"worker-{i}",
                    daemon=True,
                )
                for i in range(WORKERS)
            ]
            for t in threads:
                t.start()
            # Set once every thread exists, so all get the full duration.
            work.deadline = time.monotonic() + DURATION
            killer.start(work.deadline)
            go.set()
            limit = work.deadline + JOIN_GRACE
            for t in threads:
                t.join(max(0.0, limit - time.monotonic()))
            work.stuck = sum(t.is_alive() for t in threads)

        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        killer.stop()
        try:
            close()
        finally:
            left_open = killer.finish()
    _record(benchmark, work, killer, left_open, role, library, THREADS_TARGET)


THREAD_PAIRS = [
    pytest.param(False, marks=pytest.mark.benchmark(group=GROUP_THREADS), id="off"),
    pytest.param(True, marks=pytest.mark.benchmark(group=GROUP_THREADS_PING), id="on"),
]


@pytest.mark.parametrize("pre_ping", THREAD_PAIRS)
def test_poolhouse_queuepool(benchmark: Any, pre_ping: bool) -> None:
    """poolhouse's QueuePool with psycopg 3: leaving the with-block with a
    driver error lets the dialect recognise a disconnect and invalidate."""
    work = Workload()

    def creator() -> Any:
        conn = psycopg.connect(
            PG_DSN, application_name=work.app, connect_timeout=CONNECT_TIMEOUT
        )
        work.connects.add()
        return conn

    pool = QueuePool(
        creator,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        timeout=POOL_TIMEOUT,
        pre_ping=pre_ping,
    )

    def op() -> None:
        with pool.connect() as conn:
            cur = conn.cursor()
            cur.execute(QUERY)
            cur.fetchone()

    _run_threads(benchmark, work, op, pool.dispose, "poolhouse", "poolhouse")


@pytest.mark.parametrize("pre_ping", THREAD_PAIRS)
def test_sqlalchemy_engine(benchmark: Any, pre_ping: bool) -> None:
    """SQLAlchemy's QueuePool as users meet it: through an Engine, which does
    the disconnect handling."""
    work = Workload()

    def creator() -> Any:
        conn = psycopg.connect(
            PG_DSN, application_name=work.app, connect_timeout=CONNECT_TIMEOUT
        )
        work.connects.add()
        return conn

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://",
        creator=creator,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT,
        pool_pre_ping=pre_ping,
    )

    def op() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(QUERY).scalar()

    _run_threads(benchmark, work, op, engine.dispose, "peer", "sqlalchemy")


# -- asyncio ------------------------------------------------------------------------


async def _task(
    op: Callable[[], Awaitable[None]], work: Workload, index: int, deadline: float
) -> None:
    clock = time.monotonic
    while clock() < deadline:
        try:
            await op()
        except Exception as err:
            work.failed(index, err)
            # A failure may not have yielded: let the other tasks run.
            await asyncio.sleep(0)
        else:
            work.ops[index] += 1


async def _tasks_round(
    op: Callable[[], Awaitable[None]], work: Workload, killer: Killer
) -> None:
    deadline = time.monotonic() + DURATION
    killer.start(deadline)
    tasks = [asyncio.create_task(_task(op, work, i, deadline)) for i in range(WORKERS)]
    limit = deadline + JOIN_GRACE - time.monotonic()
    _, pending = await asyncio.wait(tasks, timeout=limit)
    work.stuck = len(pending)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=CONNECT_TIMEOUT)


@dataclass
class AsyncTarget:
    """One asyncio pool under test: a checkout + ``QUERY`` + checkin, and the
    pool's close."""

    op: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]


def _run_tasks(
    benchmark: Any,
    work: Workload,
    setup: Callable[[], Awaitable[AsyncTarget]],
    role: str,
    library: str,
) -> None:
    """Run ``WORKERS`` tasks under kills, once, timed, in a new event loop; then
    close the pool and record the figures."""
    killer = Killer(work.app)
    loop = asyncio.new_event_loop()
    try:
        target = loop.run_until_complete(setup())
        try:
            benchmark.pedantic(
                lambda: loop.run_until_complete(_tasks_round(target.op, work, killer)),
                rounds=1,
                iterations=1,
            )
        finally:
            killer.stop()
            loop.run_until_complete(asyncio.wait_for(target.close(), JOIN_GRACE))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        finally:
            left_open = killer.finish()
    _record(benchmark, work, killer, left_open, role, library, ASYNC_TARGET)


def _asyncpg_connect_kwargs(work: Workload) -> dict[str, Any]:
    return {
        **ASYNCPG_KWARGS,
        "timeout": CONNECT_TIMEOUT,
        "server_settings": {"application_name": work.app},
    }


ASYNC_PAIRS = [
    pytest.param(False, marks=pytest.mark.benchmark(group=GROUP_ASYNC), id="off"),
    pytest.param(True, marks=pytest.mark.benchmark(group=GROUP_ASYNC_PING), id="on"),
]


@pytest.mark.parametrize("pre_ping", ASYNC_PAIRS)
def test_poolhouse_async_queuepool(benchmark: Any, pre_ping: bool) -> None:
    """poolhouse's AsyncQueuePool with asyncpg; the fairy passes ``fetchval``
    through to the asyncpg connection."""
    work = Workload()

    async def setup() -> AsyncTarget:
        async def creator() -> Any:
            conn = await asyncpg.connect(**_asyncpg_connect_kwargs(work))
            work.connects.add()
            return conn

        pool = AsyncQueuePool(
            creator,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            timeout=POOL_TIMEOUT,
            pre_ping=pre_ping,
        )

        async def op() -> None:
            async with pool.connect() as conn:
                await conn.fetchval(QUERY)

        return AsyncTarget(op, pool.dispose)

    _run_tasks(benchmark, work, setup, "poolhouse", "poolhouse")


@pytest.mark.parametrize("pre_ping", ASYNC_PAIRS)
def test_asyncpg_pool(benchmark: Any, pre_ping: bool) -> None:
    """asyncpg's own pool, opening ``POOL_SIZE`` connections up front and up to
    ``POOL_SIZE + MAX_OVERFLOW``; *pre_ping* only picks the pair it joins."""
    work = Workload()

    async def setup() -> AsyncTarget:
        async def connect(*args: Any, **kwargs: Any) -> Any:
            conn = await asyncpg.connect(*args, **kwargs)
            work.connects.add()
            return conn

        apool = await asyncpg.create_pool(
            min_size=POOL_SIZE,
            max_size=POOL_SIZE + MAX_OVERFLOW,
            connect=connect,
            **_asyncpg_connect_kwargs(work),
        )

        async def op() -> None:
            async with apool.acquire(timeout=POOL_TIMEOUT) as conn:
                await conn.fetchval(QUERY)

        return AsyncTarget(op, apool.close)

    _run_tasks(benchmark, work, setup, "peer", "asyncpg")
