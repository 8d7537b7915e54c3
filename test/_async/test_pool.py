"""What the pool base class and its small classes do beyond the shared
contract: constructor keywords, and AssertionPool's single checkout."""

from __future__ import annotations

import inspect

import pytest

from poolhouse.aio import AsyncAssertionPool
from poolhouse.aio import AsyncConnectionFairy
from poolhouse.aio import AsyncNullPool
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool

from ..fakedbapi import FakeAsyncDBAPI
from ..fakedbapi import FakeAsyncDialect
from .support import number

pytestmark = pytest.mark.asyncio


async def test_unknown_keyword_names_the_class_and_the_option_meant(
    dbapi: FakeAsyncDBAPI,
) -> None:
    with pytest.raises(
        TypeError, match=r"QueuePool .*'pool_sise' \(did you mean pool_size\?\)"
    ):
        AsyncQueuePool(dbapi.connect, pool_sise=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"NullPool .*'pool_size'"):
        AsyncNullPool(dbapi.connect, pool_size=3)  # type: ignore[call-arg]


async def first_checkout_site(pool: AsyncPool) -> AsyncConnectionFairy:
    return await pool.connect()


async def test_assertionpool_allows_one_checkout_and_says_where_it_was(
    dbapi: FakeAsyncDBAPI, dialect: FakeAsyncDialect
) -> None:
    pool = AsyncAssertionPool(dbapi.connect, dialect=dialect)
    first = await first_checkout_site(pool)
    with pytest.raises(AssertionError) as info:
        await pool.connect()
    message = str(info.value)
    assert repr(pool) in message
    assert "already checked out" in message
    assert "return it" in message
    # The traceback of the first checkout, not of the second.
    assert "in first_checkout_site" in message
    site = inspect.getsource(first_checkout_site).splitlines()[-1].strip()
    assert site.startswith("return ") and site.endswith("pool.connect()")
    assert site in message
    assert __file__ in message
    assert pool.status() == f"{pool!r}: one connection, checked out"
    await first.close()
    assert pool.status() == f"{pool!r}: one connection, not checked out"
    async with pool.connect() as again:  # the same connection, reused
        assert number(again) == 1
    assert dbapi.calls_named("connect") == [("connect", 1)]
