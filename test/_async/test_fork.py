"""After ``fork()``: the child forgets the parent's connections, unclosed.

The fork itself is simulated by calling what ``os.register_at_fork`` calls
in the child; ``test/test_fork.py`` and ``test/realdb/test_fork_pg.py`` fork
for real.
"""

from __future__ import annotations

from typing import Any

import pytest

from poolhouse import exc

from ..fakedbapi import FakeAsyncDBAPI
from .support import number

pytestmark = pytest.mark.asyncio

MakeQueuePool = Any


async def test_child_never_closes_or_resets_the_parents_connections(
    make_queue_pool: MakeQueuePool, dbapi: FakeAsyncDBAPI
) -> None:
    pool = make_queue_pool(pool_size=2, max_overflow=0, timeout=0)
    idle = await pool.connect()
    held = await pool.connect()
    await idle.close()
    pool._after_fork()  # what the child runs right after fork()
    assert dbapi.calls_named("close", "rollback") == [("rollback", 1)]
    with pytest.raises(exc.InvalidRequestError, match="closed this connection"):
        held.cursor()
    first, second = await pool.connect(), await pool.connect()
    assert [number(first), number(second)] == [3, 4]  # both slots are the child's
    await held.close()  # the parent's: not reset, not closed, not pooled
    assert dbapi.calls_named("close", "rollback") == [("rollback", 1)]
    await first.close()
    await second.close()
    assert pool.checkedout() == 0
    await pool.dispose()
    assert sorted(c[1] for c in dbapi.calls_named("close")) == [3, 4]
    assert not dbapi.connections[0].closed and not dbapi.connections[1].closed
