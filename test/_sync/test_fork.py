# generated from _async/test_fork.py by tools/unasync.py: do not edit
"""After ``fork()``: the child forgets the parent's connections, unclosed.

The fork itself is simulated by calling what ``os.register_at_fork`` calls
in the child; ``test/test_fork.py`` and ``test/realdb/test_fork_pg.py`` fork
for real.
"""

from __future__ import annotations

from typing import Any

import pytest

from poolhouse import exc

from ..fakedbapi import FakeDBAPI
from .support import number

MakeQueuePool = Any


def test_child_never_closes_or_resets_the_parents_connections(
    make_queue_pool: MakeQueuePool, dbapi: FakeDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=0, timeout=0)
    idle = pool.connect()
    held = pool.connect()
    idle.close()
    pool._after_fork()  # what the child runs right after fork()
    assert dbapi.calls_named("close", "rollback") == [("rollback", 1)]
    with pytest.raises(exc.InvalidRequestError, match="closed this connection"):
        held.cursor()
    first, second = pool.connect(), pool.connect()
    assert [number(first), number(second)] == [3, 4]  # both slots are the child's
    held.close()  # the parent's: not reset, not closed, not pooled
    assert dbapi.calls_named("close", "rollback") == [("rollback", 1)]
    first.close()
    second.close()
    assert pool.checkedout() == 0
    pool.dispose()
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [3, 4]
    assert not dbapi.connections[0].closed and not dbapi.connections[1].closed
