"""A real ``os.fork()``: the child gets its own connections, the parent's
stay open and usable."""

from __future__ import annotations

import json
import os
import warnings

import pytest

from poolhouse import QueuePool

from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


def fake(conn: object) -> FakeConnection:
    raw = getattr(conn, "dbapi_connection", None)
    assert isinstance(raw, FakeConnection)
    return raw


def test_forked_child_opens_its_own_and_closes_none_of_the_parents(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=2, dialect=dialect)
    pool.connect().close()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's exit
        try:
            with pool.connect() as conn:
                got = fake(conn).number
            pool.dispose()
            report = {"got": got, "closed": [c[1] for c in dbapi.calls_named("close")]}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert report == {"got": 2, "closed": [2]}
    with pool.connect() as conn:  # the parent's connection is untouched
        assert fake(conn).number == 1
    assert dbapi.calls_named("close") == []
