"""poolhouse.compat.psycopg2 without a server: arguments, keys and errors.

The behaviour against psycopg2.pool itself is compared in
``test/realdb/test_compat_psycopg2.py``.
"""

from __future__ import annotations

import sqlite3

import pytest

from poolhouse.compat import psycopg2 as compat


def make(minconn: int = 0, maxconn: int = 2, **options: object) -> object:
    return compat.SimpleConnectionPool(
        minconn, maxconn, ":memory:", connect=sqlite3.connect, pool_options=options
    )


@pytest.mark.parametrize("name", ["pool_size", "max_overflow", "creator"])
def test_options_the_facade_sets_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=f"pool_options may not set '{name}'"):
        make(**{name: 1})


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        make(no_such_option=1)


@pytest.mark.parametrize(
    ("minconn", "maxconn", "message"),
    [(0, 0, "maxconn=0 is invalid"), (3, 2, "minconn=3 is invalid with maxconn=2")],
)
def test_bad_limits(minconn: int, maxconn: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(minconn, maxconn)


def test_keys_and_errors_with_any_driver() -> None:
    pool = compat.ThreadedConnectionPool(1, 2, ":memory:", connect=sqlite3.connect)
    first = pool.getconn("k")
    assert isinstance(first, sqlite3.Connection)
    assert pool.getconn("k") is first
    second = pool.getconn()
    with pytest.raises(compat.PoolError, match="^connection pool exhausted$"):
        pool.getconn()
    with pytest.raises(compat.PoolError, match="not the one getconn"):
        pool.putconn(second, key="k")
    pool.putconn(second)
    pool.putconn(first, "k")
    with pytest.raises(compat.PoolError, match="^trying to put unkeyed connection$"):
        pool.putconn(first)
    pool.closeall()
    assert pool.closed
    with pytest.raises(compat.PoolError, match="^connection pool is closed$"):
        pool.getconn()
