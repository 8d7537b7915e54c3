# generated from _async/conftest.py by tools/unasync.py: do not edit
"""The fake driver of this side, under the names the shared tests use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import QueuePool

from ..conftest import FakeClock
from ..fakedbapi import FakeDBAPI
from ..fakedbapi import FakeDialect


@pytest.fixture
def dbapi() -> FakeDBAPI:
    return FakeDBAPI()


@pytest.fixture
def dialect() -> FakeDialect:
    return FakeDialect()


@pytest.fixture
def make_queue_pool(
    dbapi: FakeDBAPI, dialect: FakeDialect, clock: FakeClock
) -> Callable[..., QueuePool]:
    """Build a queue pool on the fake driver and clock; *kwargs* as for the
    class (``dialect`` defaults to the fake one)."""

    def make(creator: Callable[..., Any] | None = None, **kwargs: Any) -> QueuePool:
        kwargs.setdefault("dialect", dialect)
        pool = QueuePool(creator or dbapi.connect, **kwargs)
        pool._clock = clock
        return pool

    return make
