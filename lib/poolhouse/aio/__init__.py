"""asyncio pools: the same lifecycle, events and decisions as the thread pools.

``conn = await pool.connect()`` or ``async with pool.connect() as conn:``;
``await conn.close()`` returns it.
"""

from __future__ import annotations

from .._async.fairy import AsyncConnectionFairy
from .._async.pool import AsyncAssertionPool
from .._async.pool import AsyncNullPool
from .._async.pool import AsyncPool
from .._async.pool import AsyncStaticPool
from .._async.queue_pool import AsyncQueuePool
from .._async.record import AsyncConnectionRecord

__all__ = [
    "AsyncAssertionPool",
    "AsyncConnectionFairy",
    "AsyncConnectionRecord",
    "AsyncNullPool",
    "AsyncPool",
    "AsyncQueuePool",
    "AsyncStaticPool",
]
