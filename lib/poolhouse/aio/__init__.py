"""asyncio pools: the same lifecycle, events and decisions as the thread pools.

``conn = await pool.connect()`` or ``async with pool.connect() as conn:``;
``await conn.close()`` returns it.
"""

from __future__ import annotations

from ._impl import AsyncAssertionPool
from ._impl import AsyncNullPool
from ._impl import AsyncQueuePool
from ._impl import AsyncStaticPool
from .base import AsyncConnectionFairy
from .base import AsyncConnectionRecord
from .base import AsyncPool

__all__ = [
    "AsyncAssertionPool",
    "AsyncConnectionFairy",
    "AsyncConnectionRecord",
    "AsyncNullPool",
    "AsyncPool",
    "AsyncQueuePool",
    "AsyncStaticPool",
]
