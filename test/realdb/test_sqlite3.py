"""Pools over the standard library's sqlite3, on a database file.

sqlite3 has no server: there are no sessions to count or kill, and a
connection is "lost" only when its handle is closed behind the pool's back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import exc
from poolhouse.dialects.sqlite3 import SQLite3Dialect

from .conftest import run

pytestmark = pytest.mark.realdb

POOL_CLASSES = (QueuePool, NullPool, StaticPool, SingletonThreadPool, AssertionPool)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A database file holding table ``t`` with the row ``(1, 0)``."""
    db = tmp_path / "poolhouse.sqlite3"
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        conn.execute("INSERT INTO t (id, v) VALUES (1, 0)")
        conn.commit()
    finally:
        conn.close()
    return db


def creator(path: Path, **kw: Any) -> Callable[[], sqlite3.Connection]:
    return lambda: sqlite3.connect(path, timeout=2, **kw)


@pytest.mark.parametrize("poolclass", POOL_CLASSES, ids=lambda c: c.__name__)
def test_round_trip_through_each_pool_class(
    path: Path, pools: list[Pool], poolclass: type[Pool]
) -> None:
    pool = poolclass(creator(path))
    pools.append(pool)

    for _ in range(2):
        with pool.connect() as conn:
            assert run(conn, "SELECT v FROM t WHERE id = 1") == [(0,)]

    assert type(pool.dialect) is SQLite3Dialect


@pytest.mark.parametrize(
    "explicit_begin", [False, True], ids=["implicit-tx", "begin-in-autocommit"]
)
def test_reset_on_return_rolls_back_and_releases_the_write_lock(
    path: Path, pools: list[Pool], explicit_begin: bool
) -> None:
    kw: dict[str, Any] = {"isolation_level": None} if explicit_begin else {}
    pool = QueuePool(creator(path, **kw), pool_size=1, max_overflow=0)
    pools.append(pool)

    with pool.connect() as conn:
        if explicit_begin:
            run(conn, "BEGIN")
        run(conn, "UPDATE t SET v = 1 WHERE id = 1")
        run(conn, "INSERT INTO t (id, v) VALUES (2, 0)")
        assert conn.in_transaction

    # BEGIN IMMEDIATE needs the write lock: it waits at most 2 s for it, then
    # fails with "database is locked" if the reset left it held.
    probe = sqlite3.connect(path, timeout=2, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        assert run(probe, "SELECT id, v FROM t") == [(1, 0)]
        probe.execute("ROLLBACK")
    finally:
        probe.close()
    with pool.connect() as conn:
        assert not conn.in_transaction


def test_closed_handle_is_replaced_at_checkout_with_pre_ping(
    path: Path, pools: list[Pool]
) -> None:
    pool = QueuePool(creator(path), pool_size=1, max_overflow=0, pre_ping=True)
    pools.append(pool)
    with pool.connect() as conn:
        first = conn.dbapi_connection
        assert first is not None
    first.close()

    with pool.connect() as conn:
        assert conn.dbapi_connection is not first
        assert run(conn, "SELECT 1") == [(1,)]


def test_closed_handle_error_propagates_then_pool_recovers(
    path: Path, pools: list[Pool]
) -> None:
    pool = QueuePool(creator(path), pool_size=1, max_overflow=0)
    pools.append(pool)
    with pool.connect() as conn:
        first = conn.dbapi_connection
        assert first is not None
    first.close()

    with pytest.raises(sqlite3.ProgrammingError) as info:
        with pool.connect() as conn:
            run(conn, "SELECT 1")

    assert not isinstance(info.value, exc.PoolError)
    assert pool.dialect.is_disconnect(info.value, first)
    with pool.connect() as conn:
        assert conn.dbapi_connection is not first
        assert run(conn, "SELECT 1") == [(1,)]
