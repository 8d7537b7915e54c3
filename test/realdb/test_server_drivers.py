"""Pools over psycopg, psycopg2, PyMySQL and mysqlclient against real servers.

Each test runs once per driver (the ``backend`` fixture): psycopg and psycopg2
against PostgreSQL, PyMySQL and mysqlclient against MariaDB.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import event
from poolhouse import exc

from .conftest import PG_DRIVERS
from .conftest import Backend
from .conftest import hold_all
from .conftest import run

pytestmark = pytest.mark.realdb

POOL_CLASSES = (QueuePool, NullPool, StaticPool, SingletonThreadPool, AssertionPool)


def wait_for_waiters(pool: QueuePool, expected: int, timeout: float = 10.0) -> None:
    """Wait until *expected* threads are queued in *pool*'s checkout line.

    Nothing signals "a thread is now waiting in connect()", so this polls the
    pool's own count, with a deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if pool.stats().waiting == expected:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"expected {expected} waiting threads after {timeout}s: {pool.status()}"
            )


# -- round trip -----------------------------------------------------------------------


@pytest.mark.parametrize("poolclass", POOL_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_each_pool_class(
    backend: Backend, admin: Any, tag: str, pools: list[Pool], poolclass: type[Pool]
) -> None:
    pool = poolclass(backend.creator(tag))
    pools.append(pool)

    for _ in range(2):
        with pool.connect() as conn:
            assert run(conn, "SELECT 1") == [(1,)]

    assert type(pool.dialect) is backend.dialect_class
    backend.wait_for_sessions(admin, tag, 0 if poolclass is NullPool else 1)
    pool.dispose()
    backend.wait_for_sessions(admin, tag, 0)


# -- ping ----------------------------------------------------------------------------


def _ping_keeps_transaction_state(
    backend: Backend, conn: Any, table: str, autocommit: bool, state: str
) -> None:
    if state != "idle":
        if autocommit:
            run(conn, backend.begin_sql)
        run(conn, f"UPDATE {table} SET v = v + 1 WHERE id = 1")
    if state == "failed-transaction":
        with pytest.raises(backend.module.Error):
            run(conn, "SELECT 1/0")
    in_transaction = state != "idle"
    assert backend.in_transaction(conn) is in_transaction

    assert backend.dialect_class().do_ping(conn) is True

    assert backend.in_transaction(conn) is in_transaction


@pytest.mark.parametrize("autocommit", [False, True], ids=["tx", "autocommit"])
@pytest.mark.parametrize("state", ["idle", "in-transaction"])
def test_ping_keeps_the_transaction_state(
    backend: Backend, tag: str, table: str, autocommit: bool, state: str
) -> None:
    conn = backend.connect(tag, autocommit=autocommit)
    try:
        _ping_keeps_transaction_state(backend, conn, table, autocommit, state)
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("autocommit", [False, True], ids=["tx", "autocommit"])
@pytest.mark.parametrize("backend", PG_DRIVERS, indirect=True)
def test_ping_in_failed_transaction_is_true_and_changes_nothing(
    backend: Backend, tag: str, table: str, autocommit: bool
) -> None:
    # Only PostgreSQL keeps a transaction open, and refusing, after an error.
    conn = backend.connect(tag, autocommit=autocommit)
    try:
        _ping_keeps_transaction_state(
            backend, conn, table, autocommit, "failed-transaction"
        )
    finally:
        conn.rollback()
        conn.close()


def test_ping_of_killed_connection_raises_a_disconnect(
    backend: Backend, admin: Any, tag: str
) -> None:
    conn = backend.connect(tag)
    dialect = backend.dialect_class()
    try:
        assert backend.kill(admin, tag) == 1
        backend.wait_for_sessions(admin, tag, 0)

        with pytest.raises(backend.module.OperationalError) as info:
            dialect.do_ping(conn)

        assert dialect.is_disconnect(info.value, conn) is True
    finally:
        conn.close()


# -- reset on return -----------------------------------------------------------------


@pytest.mark.parametrize(
    "explicit_begin", [False, True], ids=["implicit-tx", "begin-in-autocommit"]
)
def test_reset_on_return_rolls_back_and_releases_locks(
    backend: Backend,
    admin: Any,
    tag: str,
    table: str,
    pools: list[Pool],
    explicit_begin: bool,
) -> None:
    pool = QueuePool(
        backend.creator(tag, autocommit=explicit_begin), pool_size=1, max_overflow=0
    )
    pools.append(pool)

    with pool.connect() as conn:
        session = backend.session_id(conn)
        if explicit_begin:
            run(conn, backend.begin_sql)
        run(conn, f"UPDATE {table} SET v = 1 WHERE id = 1")
        run(conn, f"INSERT INTO {table} (id, v) VALUES (2, 0)")
        assert backend.in_transaction(conn)

    # A second session waits at most 2 s for the row lock: a lock the reset
    # left behind fails the test with the driver's lock-timeout error.
    probe = backend.connect(f"{tag}-probe")
    try:
        run(probe, backend.lock_timeout_sql)
        assert run(probe, f"SELECT v FROM {table} WHERE id = 1 FOR UPDATE") == [(0,)]
        assert run(probe, f"SELECT count(*) FROM {table}") == [(1,)]
    finally:
        probe.rollback()
        probe.close()
    with pool.connect() as conn:
        assert not backend.in_transaction(conn)
        assert backend.session_id(conn) == session  # reset, not replaced


# -- sessions killed server-side ------------------------------------------------------


def test_killed_sessions_are_replaced_at_checkout_with_pre_ping(
    backend: Backend, admin: Any, tag: str, pools: list[Pool]
) -> None:
    pool = QueuePool(
        backend.creator(tag), pool_size=3, max_overflow=0, timeout=10, pre_ping=True
    )
    pools.append(pool)
    before = hold_all(pool, 3, backend)
    assert backend.kill(admin, tag) == 3
    backend.wait_for_sessions(admin, tag, 0)

    after = hold_all(pool, 3, backend)

    assert len(after) == 3 and after.isdisjoint(before)
    backend.wait_for_sessions(admin, tag, 3)


def test_killed_session_error_propagates_then_pool_recovers(
    backend: Backend, admin: Any, tag: str, pools: list[Pool]
) -> None:
    pool = QueuePool(backend.creator(tag), pool_size=3, max_overflow=0, timeout=10)
    pools.append(pool)
    invalidated: list[BaseException | None] = []
    event.listen(pool, "invalidate", lambda conn, rec, err: invalidated.append(err))
    before = hold_all(pool, 3, backend)
    assert backend.kill(admin, tag) == 3
    backend.wait_for_sessions(admin, tag, 0)

    raised: list[BaseException] = []
    with pytest.raises(backend.module.Error) as info:
        with pool.connect() as conn:
            dbapi_connection = conn.dbapi_connection
            try:
                run(conn, "SELECT 1")
            except BaseException as err:
                raised.append(err)
                raise

    error = info.value
    assert raised == [error]  # the driver's own exception, unchanged
    assert not isinstance(error, exc.PoolError)
    assert pool.dialect.is_disconnect(error, None)  # recognisable from the error
    assert pool.dialect.is_disconnect(error, dbapi_connection)
    assert invalidated == [error]
    assert pool.checkedout() == 0

    after = hold_all(pool, 3, backend)

    assert len(after) == 3 and after.isdisjoint(before)
    backend.wait_for_sessions(admin, tag, 3)


@pytest.mark.parametrize("pre_ping", [False, True], ids=["no-pre-ping", "pre-ping"])
def test_connection_closed_behind_the_pools_back_is_replaced_quietly(
    backend: Backend,
    tag: str,
    pools: list[Pool],
    caplog: pytest.LogCaptureFixture,
    pre_ping: bool,
) -> None:
    pool = QueuePool(
        backend.creator(tag), pool_size=1, max_overflow=0, pre_ping=pre_ping
    )
    pools.append(pool)
    with pool.connect() as conn:
        first = conn.dbapi_connection
        assert first is not None
    first.close()

    with caplog.at_level(logging.WARNING, logger="poolhouse"):
        if not pre_ping:
            with pytest.raises(backend.module.Error) as info:
                with pool.connect() as conn:
                    run(conn, "SELECT 1")
            assert pool.dialect.is_disconnect(info.value, first)
        with pool.connect() as conn:
            assert conn.dbapi_connection is not first
            assert run(conn, "SELECT 1") == [(1,)]

    # Closing the already-closed connection again is no failure worth a log.
    assert [r.getMessage() for r in caplog.records] == []


# -- concurrency ----------------------------------------------------------------------


def test_sessions_never_exceed_pool_size_plus_overflow(
    backend: Backend, admin: Any, tag: str, pools: list[Pool]
) -> None:
    pool_size, max_overflow, n_threads = 3, 2, 12
    limit = pool_size + max_overflow
    pool = QueuePool(
        backend.creator(tag), pool_size=pool_size, max_overflow=max_overflow, timeout=30
    )
    pools.append(pool)
    opened: list[Any] = []
    event.listen(pool, "connect", lambda conn, rec: opened.append(conn))
    start = threading.Barrier(n_threads)
    full, release = threading.Event(), threading.Event()
    lock = threading.Lock()
    holders = 0
    seen: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal holders
        try:
            start.wait(10)
            with pool.connect() as conn:
                sessions = backend.sessions(conn, tag)
                with lock:
                    seen.append(sessions)
                    holders += 1
                    if holders == limit:
                        full.set()
                # The first `limit` holders keep their connection until the
                # rest are queued; the later ones find `release` set.
                assert release.wait(10)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    try:
        assert full.wait(10), errors
        assert pool.checkedout() == limit
        assert backend.sessions(admin, tag) == limit
        # Every other thread is queued before any connection comes back, so
        # each return is handed over and no session closes while another opens.
        wait_for_waiters(pool, n_threads - limit)
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)

    assert errors == []
    assert len(seen) == n_threads and max(seen) <= limit
    assert len(opened) == limit
    assert pool.checkedout() == 0 and pool.checkedin() == pool_size
    backend.wait_for_sessions(admin, tag, pool_size)
    pool.dispose()
    backend.wait_for_sessions(admin, tag, 0)


# -- secrets --------------------------------------------------------------------------


def test_password_never_in_repr_status_or_logs(
    backend: Backend,
    admin: Any,
    tag: str,
    pools: list[Pool],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    texts: list[str] = []
    with backend.login_with_password(admin, secret) as login:
        with caplog.at_level(logging.DEBUG):
            pool = QueuePool(
                backend.creator(tag, **login),
                pool_size=1,
                max_overflow=1,
                echo="debug",
                logging_name=tag,
            )
            pools.append(pool)
            try:
                texts += [repr(pool), pool.status()]
                with pool.connect() as first, pool.connect() as second:
                    texts += [repr(first), repr(second), pool.status()]
                    texts += [repr(first.dbapi_connection), str(first.dbapi_connection)]
                    assert run(first, "SELECT 1") == [(1,)]
                    first.invalidate()
                texts.append(pool.status())
                pool.dispose()
                again = pool.recreate()
                pools.append(again)
                with again.connect() as conn:
                    texts.append(repr(conn))
                texts += [repr(again), again.status()]
                again.dispose()
            finally:
                # echo added a handler that writes to this test's captured stdout.
                for handler in list(pool.logger.handlers):
                    pool.logger.removeHandler(handler)
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text, capsys.readouterr().out]

    assert any("created connection" in r.getMessage() for r in caplog.records)
    assert [t for t in texts if secret in t] == []
