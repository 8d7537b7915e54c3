"""What the shared tests do differently on the asyncio side.

``test/_sync/_acompat.py`` has the same names for threads; everything else in
``test/_async/`` is turned into thread tests by ``tools/unasync.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from poolhouse.aio import AsyncPool


async def checkpoint() -> None:
    """Let the loop run other tasks: an ``async def`` listener that suspends
    before it acts."""
    await asyncio.sleep(0)


#: Pool classes only this side has, with the class-specific arguments that
#: recreate() must carry over: none for asyncio.
ONLY_HERE: dict[type[AsyncPool], dict[str, Any]] = {}
