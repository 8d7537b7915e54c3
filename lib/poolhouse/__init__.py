"""poolhouse: database connection pools with SQLAlchemy's pool API."""

from __future__ import annotations

from . import event
from . import events
from . import exc
from .base import ConnectionFairy
from .base import ConnectionRecord
from .base import Pool
from .base import PoolResetState
from .config import create_pool
from .config import pool_from_config
from .dialects import Dialect
from .impl import AssertionPool
from .impl import NullPool
from .impl import QueuePool
from .impl import SingletonThreadPool
from .impl import StaticPool

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
