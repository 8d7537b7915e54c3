"""What the shared tests do differently on the thread side.

``test/_async/_acompat.py`` has the same names for asyncio; everything else in
``test/_sync/`` is generated from ``test/_async/`` by ``tools/unasync.py``.
"""

from __future__ import annotations

from typing import Any

from poolhouse import Pool
from poolhouse import SingletonThreadPool


def checkpoint() -> None:
    """Nothing to yield to: a listener is a plain call."""


#: Pool classes only this side has, with the class-specific arguments that
#: recreate() must carry over.
ONLY_HERE: dict[type[Pool], dict[str, Any]] = {SingletonThreadPool: {"pool_size": 3}}
