"""Helpers of the shared lifecycle tests: event logs and fake connections."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from poolhouse import event
from poolhouse import events
from poolhouse.aio import AsyncConnectionFairy
from poolhouse.aio import AsyncConnectionRecord
from poolhouse.aio import AsyncPool
from poolhouse.aio import AsyncQueuePool

from ..fakedbapi import FakeAsyncConnection
from ..fakedbapi import FakeAsyncDBAPI
from . import _acompat
from ._acompat import Background
from ._acompat import checkpoint
from ._acompat import current_actor

ALL_EVENTS = tuple(events.SIGNATURES)

Seen = list[tuple[str, tuple[Any, ...]]]


def _note(seen: Seen, name: str, *args: Any) -> None:
    seen.append((name, args))


async def _note_later(seen: Seen, name: str, *args: Any) -> None:
    await _acompat.checkpoint()
    seen.append((name, args))


def record(target: Any, *names: str, awaited: bool = False) -> Seen:
    """Listen for *names* (default: every event) on *target*; return the log.

    :param awaited: register ``async def`` listeners that yield to the loop
        before noting the event (plain ones on the thread side).
    """
    seen: Seen = []
    note = _note_later if awaited else _note
    for name in names or ALL_EVENTS:
        event.listen(target, name, functools.partial(note, seen, name))
    return seen


def names_of(seen: Seen) -> list[str]:
    return [name for name, _ in seen]


def checkout_records(pool: AsyncPool) -> list[AsyncConnectionRecord]:
    """Collect the record of every checkout of *pool* from here on."""
    recs: list[AsyncConnectionRecord] = []
    event.listen(pool, "checkout", lambda conn, rec, fairy: recs.append(rec))
    return recs


def raiser(error: BaseException) -> Callable[..., None]:
    """A listener that raises *error*."""

    def listener(*args: Any) -> None:
        raise error

    return listener


def fake(conn: AsyncConnectionFairy) -> FakeAsyncConnection:
    raw = conn.dbapi_connection
    assert conn.driver_connection is raw
    assert isinstance(raw, FakeAsyncConnection)
    return raw


def number(conn: AsyncConnectionFairy) -> int:
    return fake(conn).number


def pooled_numbers(pool: AsyncQueuePool) -> list[int]:
    """The fake connection numbers held by *pool*'s idle records."""
    found = []
    for rec in pool._slots.idle:
        conn = rec.dbapi_connection
        if conn is not None:
            assert isinstance(conn, FakeAsyncConnection)
            found.append(conn.number)
    return sorted(found)


def assert_nothing_leaked(pool: AsyncQueuePool, dbapi: FakeAsyncDBAPI) -> None:
    """Nothing is checked out, waiting or closing, every slot is idle, and every
    open connection is one of the pool's idle ones."""
    slots = pool._slots
    assert pool.checkedout() == 0
    assert not slots.waiters
    assert slots.closing == 0
    assert slots.opened == len(slots.idle)
    assert pooled_numbers(pool) == sorted(c.number for c in dbapi.open_connections())


async def wait_until_queued(pool: AsyncQueuePool, waiting: Background) -> None:
    """Let *waiting* run until it waits in *pool*'s line (it must not end)."""
    while pool.stats().waiting != 1:
        assert waiting.is_running()
        await checkpoint()


class DialLog:
    """A creator on the fake driver that notes who dialled each connection."""

    def __init__(self, dbapi: FakeAsyncDBAPI) -> None:
        self._dbapi = dbapi
        #: What ran each call (a task here, a thread on the other side).
        self.dialled_by: list[object] = []

    async def __call__(self) -> FakeAsyncConnection:
        self.dialled_by.append(current_actor())
        return await self._dbapi.connect()
