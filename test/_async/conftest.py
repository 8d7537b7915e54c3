"""The fake driver of this side, under the names the shared tests use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from poolhouse.aio import AsyncQueuePool

from ..conftest import FakeClock
from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeAsyncDialect


@pytest.fixture
def dbapi() -> FakeAsyncDBAPI:
    return FakeAsyncDBAPI()


@pytest.fixture
def dialect() -> FakeAsyncDialect:
    return FakeAsyncDialect()


@pytest.fixture
def make_queue_pool(
    dbapi: FakeAsyncDBAPI, dialect: FakeAsyncDialect, clock: FakeClock
) -> Callable[..., AsyncQueuePool]:
    """Build a queue pool on the fake driver and clock; *kwargs* as for the
    class (``dialect`` defaults to the fake one)."""

    def make(
        creator: Callable[..., Any] | None = None, **kwargs: Any
    ) -> AsyncQueuePool:
        kwargs.setdefault("dialect", dialect)
        pool = AsyncQueuePool(creator or dbapi.connect, **kwargs)
        pool._clock = clock
        return pool

    return make
