"""poolhouse: database connection pools with SQLAlchemy's pool API."""

from __future__ import annotations

from . import event
from . import events
from . import exc
from ._decisions import PoolResetState
from ._sync.fairy import ConnectionFairy
from ._sync.pool import AssertionPool
from ._sync.pool import NullPool
from ._sync.pool import Pool
from ._sync.pool import StaticPool
from ._sync.queue_pool import QueuePool
from ._sync.record import ConnectionRecord
from ._sync.singleton import SingletonThreadPool
from .config import create_pool
from .config import pool_from_config
from .dialects import Dialect

__version__ = "0.1.0"

__all__ = [
    "AssertionPool",
    "ConnectionFairy",
    "ConnectionRecord",
    "Dialect",
    "NullPool",
    "Pool",
    "PoolResetState",
    "QueuePool",
    "SingletonThreadPool",
    "StaticPool",
    "create_pool",
    "event",
    "events",
    "exc",
    "pool_from_config",
]
