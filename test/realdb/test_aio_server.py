"""asyncio pools over asyncpg and psycopg's AsyncConnection against PostgreSQL.

Each test runs once per driver (the ``async_backend`` fixture).  Tasks
synchronise through events and the pool's own waiter count; the only sleep is
``asyncio.sleep(0)``, to let other tasks run, inside loops with a deadline.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from typing import Literal

import pytest

from poolhouse import event
from poolhouse import exc
from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool
from poolhouse.aio import AsyncStaticPool

from .conftest import AsyncPostgreSQLBackend

pytestmark = [pytest.mark.realdb, pytest.mark.asyncio]

POOL_CLASSES = (AsyncQueuePool, AsyncNullPool, AsyncStaticPool, AsyncAssertionPool)

#: Seconds a bounded loop waits for tasks to reach a state.
TASK_WAIT = 10.0


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let other tasks run until *condition* holds, within :data:`TASK_WAIT`."""
    deadline = time.monotonic() + TASK_WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached within {TASK_WAIT}s")
        await asyncio.sleep(0)


async def wait_for_waiters(pool: AsyncQueuePool, expected: int) -> None:
    """Wait until *expected* tasks are queued in *pool*'s checkout line."""
    await until(
        lambda: len(pool._slots.waiters) == expected,
        f"{expected} tasks waiting ({pool.status()})",
    )


async def hold_all(
    pool: AsyncPool, n: int, backend: AsyncPostgreSQLBackend
) -> set[int]:
    """Check out *n* connections at once; return their server session ids."""
    fairies = []
    try:
        for _ in range(n):
            fairies.append(await pool.connect())
        return {await backend.session_id(f) for f in fairies}
    finally:
        for fairy in fairies:
            await fairy.close()


# -- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("poolclass", POOL_CLASSES, ids=lambda c: c.__name__)
async def test_round_trip_through_each_pool_class(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    apools: list[AsyncPool],
    poolclass: type[AsyncPool],
) -> None:
    backend = async_backend
    pool = poolclass(backend.creator(tag))  # dialect=None: picked at first connect
    apools.append(pool)

    async with pool.connect() as conn:
        assert await backend.scalar(conn, "SELECT 1") == 1
        first = await backend.session_id(conn)
    conn = await pool.connect()
    try:
        assert await backend.scalar(conn, "SELECT %s::int + 1", 1) == 2
        second = await backend.session_id(conn)
    finally:
        await conn.close()

    assert type(pool.dialect) is backend.dialect_class
    pooled = poolclass is not AsyncNullPool
    assert (first == second) is pooled
    await backend.wait_for_sessions(async_admin, tag, 1 if pooled else 0)
    await pool.dispose()
    await backend.wait_for_sessions(async_admin, tag, 0)


# -- reset on return ------------------------------------------------------------------


@pytest.mark.parametrize("reset_on_return", ["rollback", "commit"])
async def test_reset_on_return_ends_the_transaction_and_releases_locks(
    async_backend: AsyncPostgreSQLBackend,
    tag: str,
    async_table: str,
    apools: list[AsyncPool],
    reset_on_return: Literal["rollback", "commit"],
) -> None:
    backend, table = async_backend, async_table
    committed = 0
    for explicit_begin in backend.begin_modes:
        pool = AsyncQueuePool(
            backend.creator(tag, autocommit=explicit_begin),
            pool_size=1,
            max_overflow=0,
            reset_on_return=reset_on_return,
        )
        apools.append(pool)

        async with pool.connect() as conn:
            session = await backend.session_id(conn)
            if explicit_begin:
                await backend.run(conn, "BEGIN")
            await backend.run(conn, f"UPDATE {table} SET v = v + 1 WHERE id = 1")
            await backend.run(
                conn, f"INSERT INTO {table} (id, v) VALUES (%s, 0)", 10 + committed
            )
            assert backend.in_transaction(conn)
        if reset_on_return == "commit":
            committed += 1

        # A second session waits at most 2 s for the row lock: a lock the
        # reset left behind fails the test with the driver's lock-timeout error.
        probe = await backend.connect(f"{tag}-probe")
        try:
            await backend.run(probe, "SET lock_timeout = '2s'")
            await backend.run(probe, "BEGIN")
            rows = await backend.run(
                probe, f"SELECT v FROM {table} WHERE id = 1 FOR UPDATE"
            )
            assert rows == [(committed,)]
            assert (
                await backend.scalar(probe, f"SELECT count(*) FROM {table}")
                == 1 + committed
            )
            await backend.run(probe, "ROLLBACK")
        finally:
            await probe.close()
        async with pool.connect() as conn:
            assert not backend.in_transaction(conn)
            assert await backend.session_id(conn) == session  # reset, not replaced


async def test_statement_cancelled_in_flight_leaves_no_transaction_behind(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    apools: list[AsyncPool],
) -> None:
    backend = async_backend
    pool = AsyncQueuePool(backend.creator(tag), pool_size=1, max_overflow=0)
    apools.append(pool)

    async def begin_then_cancelled() -> None:
        async with pool.connect() as conn:
            # Delivered while the server runs it: BEGIN has happened, the sleep
            # is cancelled, and the driver learns so only after the checkin
            # has started (asyncpg) or before it re-raises (psycopg).
            this_task = asyncio.current_task()
            assert this_task is not None
            this_task.cancel()
            await conn.execute("BEGIN; SELECT pg_sleep(5)")

    task = asyncio.create_task(begin_then_cancelled())
    await asyncio.wait([task], timeout=TASK_WAIT)
    assert task.cancelled()
    await until(lambda: pool.checkedout() == 0, f"returned ({pool.status()})")

    async with pool.connect() as conn:
        assert await backend.scalar(conn, "SELECT 1") == 1
        assert not backend.in_transaction(conn)
    assert await backend.sessions(async_admin, tag, state="idle") == 1


@pytest.mark.parametrize("async_backend", ["asyncpg"], indirect=True)
async def test_asyncpg_transaction_object_left_open_is_retired(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    async_table: str,
    apools: list[AsyncPool],
) -> None:
    asyncpg = async_backend.module
    table = async_table
    pool = AsyncQueuePool(async_backend.creator(tag), pool_size=1, max_overflow=0)
    apools.append(pool)
    async with pool.connect() as conn:
        left_open = conn.transaction()
        await left_open.start()
        await conn.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")

    async with pool.connect() as conn:
        assert not conn.is_in_transaction()
        # A real BEGIN, not a SAVEPOINT nested in a transaction that is gone.
        async with conn.transaction():
            await conn.execute(f"UPDATE {table} SET v = 2 WHERE id = 1")
        # The object of the earlier checkout cannot act on this one's session.
        with pytest.raises(asyncpg.InterfaceError, match="released back to the pool"):
            await left_open.commit()

    assert await async_admin.fetchval(f"SELECT v FROM {table} WHERE id = 1") == 2


@pytest.mark.parametrize("async_backend", ["asyncpg"], indirect=True)
@pytest.mark.parametrize("reset_session", [False, True])
async def test_asyncpg_reset_session_clears_session_state(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    apools: list[AsyncPool],
    reset_session: bool,
) -> None:
    dialect = async_backend.dialect_class(reset_session=reset_session)
    pool = AsyncQueuePool(
        async_backend.creator(tag), pool_size=1, max_overflow=0, dialect=dialect
    )
    apools.append(pool)
    async with pool.connect() as conn:
        await conn.execute("SET statement_timeout = '1234s'")
        await conn.execute("SELECT pg_advisory_lock(4242)")
        await conn.add_listener("poolhouse_channel", lambda *args: None)
        await conn.execute(
            "BEGIN; DECLARE poolhouse_held CURSOR WITH HOLD FOR SELECT 1; COMMIT"
        )
        await conn.execute("BEGIN")

    async with pool.connect() as conn:
        state = (
            await conn.fetchval("SHOW statement_timeout"),
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            ),
            await conn.fetchval("SELECT count(*) FROM pg_listening_channels()"),
            await conn.fetchval(
                "SELECT count(*) FROM pg_cursors WHERE name = 'poolhouse_held'"
            ),
            conn.is_in_transaction(),
        )

    assert state == (
        ("0", 0, 0, 0, False) if reset_session else ("1234s", 1, 1, 1, False)
    )
    assert repr(pool.dialect) == (
        "<AsyncpgDialect driver='asyncpg' reset_session=True>"
        if reset_session
        else "<AsyncpgDialect driver='asyncpg'>"
    )
    # RESET ALL keeps the application_name of the startup packet.
    await async_backend.wait_for_sessions(async_admin, tag, 1)


# -- cancellation and invalidation under load ------------------------------------------


def _is_waiting_in_line(task: asyncio.Task[Any]) -> bool:
    """Whether *task* is parked in the pool's checkout line right now.

    Follows the chain of coroutines the task awaits (``Task.get_stack()``
    shows only the outermost one) to ``AsyncQueuePool._wait``.
    """
    coro: Any = task.get_coro()
    while coro is not None:
        if getattr(coro, "cr_code", None) is AsyncQueuePool._wait.__code__:
            return True
        coro = getattr(coro, "cr_await", None)
    return False


async def test_random_cancellations_and_invalidations_leak_nothing(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    async_table: str,
    apools: list[AsyncPool],
) -> None:
    backend, table = async_backend, async_table
    pool_size, max_overflow, n_tasks, n_cancels = 5, 3, 200, 60
    limit = pool_size + max_overflow
    rng = random.Random(20240611)
    pool = AsyncQueuePool(
        backend.creator(tag), pool_size=pool_size, max_overflow=max_overflow, timeout=30
    )
    apools.append(pool)
    # The sampler counts the sessions the pool holds: those it received
    # (``connect``) and has not closed (``close``).  The server may list a
    # closed session a moment longer (libpq's close does not wait for the
    # backend to exit), and a connect() cancelled before the creator returned
    # belongs to the driver, not to the pool, which frees its slot at once.
    pids: dict[Any, int] = {}
    held: set[int] = set()

    def opened(conn: Any, rec: Any) -> None:
        pids[conn] = backend.pid(conn)
        held.add(pids[conn])

    event.listen(pool, "connect", opened)
    event.listen(pool, "close", lambda conn, rec: held.discard(pids.get(conn, 0)))
    await backend.run(
        async_admin, f"INSERT INTO {table} SELECT g, 0 FROM generate_series(2, 4) g"
    )
    # What each task does inside its checkout; nothing is ever committed.
    steps = ("select", "sleep", "update", "invalidate")
    plans = [
        rng.choices(steps, weights=(4, 3, 3, 1), k=rng.randint(1, 3))
        for _ in range(n_tasks)
    ]
    phase: dict[int, str] = {}
    outcome: collections.Counter[str] = collections.Counter()

    async def worker(i: int) -> None:
        phase[i] = "connecting"
        try:
            async with pool.connect() as conn:
                phase[i] = "inside"
                for step in plans[i]:
                    if step == "select":
                        await backend.session_id(conn)
                    elif step == "sleep":
                        await backend.run(conn, "SELECT pg_sleep(0.002)")
                    elif step == "update":
                        if not backend.in_transaction(conn):
                            await backend.run(conn, "BEGIN")
                        await backend.run(
                            conn,
                            f"UPDATE {table} SET v = v + 1 WHERE id = %s",
                            1 + i % 4,
                        )
                    else:
                        await conn.invalidate()
                        outcome["invalidated"] += 1
                        break
                phase[i] = "leaving"
        except asyncio.CancelledError:
            # Recorded, not re-raised: a finished task would keep the
            # traceback, and psycopg closes the half-open connection of a
            # cancelled connect() only once the frames holding it are freed.
            outcome["cancelled"] += 1
        else:
            outcome["completed"] += 1
        phase[i] = "done"

    tasks = [asyncio.create_task(worker(i)) for i in range(n_tasks)]
    finished = asyncio.Event()
    peak = {"sessions": 0, "slots": 0, "samples": 0}
    cancelled_in: collections.Counter[str] = collections.Counter()

    async def sample() -> None:
        while not finished.is_set():
            peak["slots"] = max(peak["slots"], pool.checkedin() + pool.checkedout())
            listed = await backend.run(
                async_admin,
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                tag,
            )
            sessions = sum(1 for (pid,) in listed if pid in held)
            peak["sessions"] = max(peak["sessions"], sessions)
            peak["samples"] += 1

    async def cancel_some() -> None:
        # Any task may be hit more than once, as in real code.
        budget = n_cancels
        while budget and not finished.is_set():
            await asyncio.sleep(0)
            if rng.random() < 0.5:
                continue
            wanted = rng.choice(("waiting", "inside", "any"))
            candidates = []
            for i, task in enumerate(tasks):
                if task.done():
                    continue
                where = "waiting" if _is_waiting_in_line(task) else phase[i]
                if wanted in ("any", where):
                    candidates.append((task, where))
            if candidates:
                task, where = rng.choice(candidates)
                if task.cancel():
                    cancelled_in[where] += 1
                    budget -= 1

    sampler = asyncio.create_task(sample())
    canceller = asyncio.create_task(cancel_some())
    try:
        _, pending = await asyncio.wait(tasks, timeout=20)
        assert not pending, f"{len(pending)} tasks still running: {pool.status()}"
    finally:
        finished.set()
        for task in tasks:
            task.cancel()  # only a failed run has any left
        await asyncio.wait([*tasks, sampler, canceller], timeout=TASK_WAIT)
    sampler.result(), canceller.result()  # their errors, if any

    assert [t.exception() for t in tasks] == [None] * n_tasks
    assert outcome["completed"] + outcome["cancelled"] == n_tasks, outcome
    assert cancelled_in["waiting"] > 0 and cancelled_in["inside"] > 0, cancelled_in
    assert outcome["invalidated"] > 0 and peak["samples"] > 0, outcome
    # A cancelled task's return runs on in its own task, and may be under way.
    await until(lambda: pool.checkedout() == 0, f"all returned ({pool.status()})")
    assert pool.checkedin() == pool.size() + pool.overflow() <= pool_size
    assert peak["slots"] <= limit and peak["sessions"] <= limit, peak
    # Every write was rolled back, and no session is left in a transaction.
    assert await backend.run(async_admin, f"SELECT sum(v) FROM {table}") == [(0,)]
    assert await backend.sessions(async_admin, tag, state="idle in transaction") == 0
    async with pool.connect() as conn:
        assert await backend.scalar(conn, "SELECT 1") == 1
    await pool.dispose()
    await backend.wait_for_sessions(async_admin, tag, 0)


async def test_task_cancelled_as_connection_is_handed_over_stays_cancelled(
    async_backend: AsyncPostgreSQLBackend, tag: str, apools: list[AsyncPool]
) -> None:
    pool = AsyncQueuePool(async_backend.creator(tag), pool_size=1, max_overflow=0)
    apools.append(pool)
    entered = asyncio.Event()

    async def wait_for_connection() -> None:
        async with pool.connect():
            entered.set()

    held = await pool.connect()
    task = asyncio.create_task(wait_for_connection())
    await wait_for_waiters(pool, 1)
    # Cancel in the same loop step in which the returned connection goes to it.
    event.listen(pool, "checkin", lambda *args: task.cancel())
    await held.close()
    await asyncio.wait([task], timeout=TASK_WAIT)

    assert task.cancelled() and not entered.is_set()
    await until(lambda: pool.checkedout() == 0, "the connection returned")


# -- sessions killed server-side ------------------------------------------------------


async def test_killed_sessions_are_replaced_at_checkout_with_pre_ping(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    apools: list[AsyncPool],
) -> None:
    backend = async_backend
    pool = AsyncQueuePool(
        backend.creator(tag), pool_size=3, max_overflow=0, timeout=10, pre_ping=True
    )
    apools.append(pool)
    before = await hold_all(pool, 3, backend)
    assert await backend.kill(async_admin, tag) == 3
    await backend.wait_for_sessions(async_admin, tag, 0)

    after = await hold_all(pool, 3, backend)

    assert len(after) == 3 and after.isdisjoint(before)
    await backend.wait_for_sessions(async_admin, tag, 3)


async def test_killed_session_error_propagates_then_pool_recovers(
    async_backend: AsyncPostgreSQLBackend,
    async_admin: Any,
    tag: str,
    apools: list[AsyncPool],
) -> None:
    backend = async_backend
    pool = AsyncQueuePool(backend.creator(tag), pool_size=3, max_overflow=0, timeout=10)
    apools.append(pool)
    invalidated: list[BaseException | None] = []
    event.listen(pool, "invalidate", lambda conn, rec, err: invalidated.append(err))
    before = await hold_all(pool, 3, backend)
    assert await backend.kill(async_admin, tag) == 3
    await backend.wait_for_sessions(async_admin, tag, 0)

    raised: list[BaseException] = []
    with pytest.raises(Exception) as info:
        async with pool.connect() as conn:
            driver_connection = conn.driver_connection
            try:
                await backend.run(conn, "SELECT 1")
            except BaseException as err:
                raised.append(err)
                raise

    error = info.value
    assert raised == [error]  # the driver's own exception, unchanged
    assert type(error).__module__.partition(".")[0] == backend.name
    assert pool.dialect.is_disconnect(error, None)  # recognisable from the error
    assert pool.dialect.is_disconnect(error, driver_connection)
    assert invalidated == [error]
    assert pool.checkedout() == 0

    after = await hold_all(pool, 3, backend)

    assert len(after) == 3 and after.isdisjoint(before)
    await backend.wait_for_sessions(async_admin, tag, 3)


@pytest.mark.parametrize("pre_ping", [False, True], ids=["no-pre-ping", "pre-ping"])
async def test_connection_closed_behind_the_pools_back_is_replaced_quietly(
    async_backend: AsyncPostgreSQLBackend,
    tag: str,
    apools: list[AsyncPool],
    caplog: pytest.LogCaptureFixture,
    pre_ping: bool,
) -> None:
    backend = async_backend
    pool = AsyncQueuePool(
        backend.creator(tag), pool_size=1, max_overflow=0, pre_ping=pre_ping
    )
    apools.append(pool)
    async with pool.connect() as conn:
        first = conn.driver_connection
        assert first is not None
    await first.close()

    with caplog.at_level(logging.WARNING, logger="poolhouse"):
        if not pre_ping:
            with pytest.raises(Exception) as info:
                async with pool.connect() as conn:
                    await backend.run(conn, "SELECT 1")
            assert pool.dialect.is_disconnect(info.value, first)
        async with pool.connect() as conn:
            assert conn.driver_connection is not first
            assert await backend.scalar(conn, "SELECT 1") == 1

    # Closing the already-closed connection again is no failure worth a log.
    assert [r.getMessage() for r in caplog.records] == []


# -- waiting --------------------------------------------------------------------------


async def test_timeout_names_the_pool_and_its_limits(
    async_backend: AsyncPostgreSQLBackend, tag: str, apools: list[AsyncPool]
) -> None:
    pool = AsyncQueuePool(
        async_backend.creator(tag), pool_size=1, max_overflow=0, timeout=0.05
    )
    apools.append(pool)

    async with pool.connect():
        with pytest.raises(exc.TimeoutError) as info:
            await pool.connect()

    err = info.value
    assert err.pool is pool and err.timeout == 0.05
    message = str(err)
    assert message.startswith(f"{pool!r}: no connection freed within 0.05s")
    for part in ("pool_size=1", "max_overflow=0", "1 in use", "0 waiting"):
        assert part in message
    assert "return connections with close() or a with-block" in message
    assert len(pool._slots.waiters) == 0 and pool.checkedout() == 0
    async with pool.connect() as conn:
        assert await async_backend.scalar(conn, "SELECT 1") == 1


async def test_waiting_tasks_are_served_in_arrival_order(
    async_backend: AsyncPostgreSQLBackend, tag: str, apools: list[AsyncPool]
) -> None:
    backend = async_backend
    pool = AsyncQueuePool(backend.creator(tag), pool_size=1, max_overflow=0, timeout=10)
    apools.append(pool)
    n = 6
    arrival = random.Random(7).sample(range(n), n)  # not creation order
    entered = {i: asyncio.Event() for i in range(n)}
    leave = {i: asyncio.Event() for i in range(n)}
    served: list[int] = []

    async def wait_in_line(i: int) -> None:
        async with pool.connect() as conn:
            served.append(i)
            await backend.session_id(conn)
            entered[i].set()
            await leave[i].wait()

    held = await pool.connect()
    tasks = {}
    for position, i in enumerate(arrival):
        tasks[i] = asyncio.create_task(wait_in_line(i))
        await wait_for_waiters(pool, position + 1)
    await held.close()

    for position, i in enumerate(arrival):
        await asyncio.wait_for(entered[i].wait(), TASK_WAIT)
        assert served == arrival[: position + 1]
        assert len(pool._slots.waiters) == n - position - 1
        leave[i].set()
    done, pending = await asyncio.wait(tasks.values(), timeout=TASK_WAIT)
    assert not pending and all(t.result() is None for t in done)
    assert pool.checkedout() == 0 and pool.checkedin() == 1
