"""Fork safety on the real PostgreSQL, with ``multiprocessing`` (fork)."""

from __future__ import annotations

import multiprocessing
import os
import warnings
from typing import Any

import pytest

from poolhouse import QueuePool

from .conftest import import_driver
from .conftest import scalar

pytestmark = [
    pytest.mark.realdb,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs the fork start method"),
]

#: The pool the forked child inherits (module level: fork copies it).
_inherited: dict[str, Any] = {}


def _child_query(result: Any) -> None:
    pool = _inherited["pool"]
    with pool.connect() as conn:
        result.put(scalar(conn, "SELECT pg_backend_pid()"))
    pool.dispose()


def test_child_queries_and_the_parents_connections_stay_healthy(pg_dsn: str) -> None:
    psycopg = import_driver("psycopg")
    pool = QueuePool(lambda: psycopg.connect(pg_dsn), pool_size=2)
    _inherited["pool"] = pool
    try:
        with pool.connect() as conn:
            parent_pid = scalar(conn, "SELECT pg_backend_pid()")
        context = multiprocessing.get_context("fork")
        result = context.Queue()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: threads
            child = context.Process(target=_child_query, args=(result,))
            child.start()
        child_pid = result.get(timeout=30)
        child.join(30)
        assert child.exitcode == 0
        assert child_pid != parent_pid  # the child opened its own session
        with pool.connect() as conn:  # the parent's session survived the child
            assert scalar(conn, "SELECT pg_backend_pid()") == parent_pid
            assert scalar(conn, "SELECT 1") == 1
    finally:
        _inherited.clear()
        pool.dispose()
