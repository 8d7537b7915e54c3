"""A fake PEP 249 driver that records every call and fails on demand."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from poolhouse.dialects.base import AsyncDialect


class FakeDBAPIError(Exception):
    """Base of the fake driver's errors."""


class FakeOperationalError(FakeDBAPIError):
    """What the fake driver raises for a lost connection."""


class FakeProgrammingError(FakeDBAPIError):
    """An ordinary, non-disconnect error."""


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.closed = False
        self._row: tuple[Any, ...] | None = None

    def execute(self, operation: str, *args: Any) -> None:
        conn = self.connection
        conn._record("execute", operation)
        conn._check_alive()
        if conn.dbapi.fail_execute is not None:
            raise conn.dbapi.fail_execute
        self._row = (1,)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._row

    def close(self) -> None:
        self.closed = True


class FakeConnection:
    """A connection whose calls go into its driver's ordered call log."""

    def __init__(self, dbapi: FakeDBAPI, number: int) -> None:
        self.dbapi = dbapi
        self.number = number
        self.closed = False
        #: Set by kill() or dbapi.kill_all(): the server side went away.
        self.dead = False

    def _record(self, what: str, *extra: Any) -> None:
        with self.dbapi._lock:
            self.dbapi.calls.append((what, self.number, *extra))

    def _check_alive(self) -> None:
        if self.closed:
            raise FakeProgrammingError(f"connection {self.number} is closed")
        if self.dead:
            raise FakeOperationalError(f"connection {self.number}: server closed")

    def cursor(self) -> FakeCursor:
        self._record("cursor")
        self._check_alive()
        return FakeCursor(self)

    def execute(self, operation: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run *operation* without a cursor (like sqlite3's shortcut); the
        asyncio fake has the same method."""
        self._record("execute", operation)
        self._check_alive()
        if self.dbapi.fail_execute is not None:
            raise self.dbapi.fail_execute
        return [(1,)]

    def rollback(self) -> None:
        self._record("rollback")
        self._check_alive()
        if self.dbapi.fail_rollback is not None:
            raise self.dbapi.fail_rollback

    def commit(self) -> None:
        self._record("commit")
        self._check_alive()

    def close(self) -> None:
        self._record("close")
        self.dbapi._note_closed(self)
        self.closed = True

    def kill(self) -> None:
        """Simulate the server dropping this connection."""
        self.dead = True

    def __repr__(self) -> str:
        return f"<FakeConnection {self.number}>"


class FakeDBAPI:
    """The fake driver module: ``connect()`` plus failure switches.

    Switches: ``refuse_connect`` (an exception raised by the next connects),
    ``fail_rollback`` (raised by rollback), ``fail_execute`` (raised by
    cursor.execute, e.g. by a ping).
    """

    OperationalError = FakeOperationalError
    ProgrammingError = FakeProgrammingError

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self.calls: list[tuple[Any, ...]] = []
        self.connections: list[FakeConnection] = []
        self.refuse_connect: BaseException | None = None
        self.fail_rollback: BaseException | None = None
        self.fail_execute: BaseException | None = None
        #: Connections open right now, and the most ever open at once.
        self.open_count = 0
        self.max_open = 0

    def connect(self) -> FakeConnection:
        if self.refuse_connect is not None:
            with self._lock:
                self.calls.append(("connect-refused",))
            raise self.refuse_connect
        conn = FakeConnection(self, next(self._numbers))
        with self._lock:
            self.connections.append(conn)
            self.calls.append(("connect", conn.number))
            self.open_count += 1
            self.max_open = max(self.max_open, self.open_count)
        return conn

    def _note_closed(self, conn: FakeConnection) -> None:
        """Count *conn* as closed (its first close only) for ``open_count``."""
        with self._lock:
            if not conn.closed:
                conn.closed = True
                self.open_count -= 1

    def open_connections(self) -> list[FakeConnection]:
        """Connections opened and not yet closed."""
        with self._lock:
            return [c for c in self.connections if not c.closed]

    def kill_all(self) -> None:
        for conn in self.open_connections():
            conn.kill()

    def calls_named(self, *names: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [c for c in self.calls if c[0] in names]


class FakeDialect:
    """A dialect for the fake driver: its OperationalError is a disconnect.

    Its ping follows the dialects' contract (SQLAlchemy 2.x's): a failed round
    trip raises the driver's error, which the pool hands to ``is_disconnect``.
    """

    def do_rollback(self, dbapi_connection: Any) -> None:
        dbapi_connection.rollback()

    def do_commit(self, dbapi_connection: Any) -> None:
        dbapi_connection.commit()

    def do_close(self, dbapi_connection: Any) -> None:
        dbapi_connection.close()

    def do_ping(self, dbapi_connection: Any) -> bool:
        cur = dbapi_connection.cursor()
        cur.execute("SELECT 1")
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        return isinstance(exception, FakeOperationalError)


class FalseOnDisconnectDialect(FakeDialect):
    """A custom dialect written to the older contract: its ping catches the
    disconnect itself and returns ``False``, which pools still accept."""

    def do_ping(self, dbapi_connection: Any) -> bool:
        try:
            return super().do_ping(dbapi_connection)
        except FakeOperationalError:
            return False


class LockCheckingDialect(FakeDialect):
    """A FakeDialect that notes, at each call, whether a watched lock was held.

    Add the pool's ``_lock`` to ``locks`` once the pool exists; every dialect
    call, and every ``note()`` made by a test's creator or listeners, appends
    ``(where, any watched lock held)`` to ``notes``.
    """

    def __init__(self) -> None:
        self.locks: list[threading.Lock] = []
        self.notes: list[tuple[str, bool]] = []

    def note(self, where: str) -> None:
        held = any(lock.locked() for lock in self.locks)
        self.notes.append((where, held))

    def held_at(self) -> list[str]:
        """Where a watched lock was held: empty when all went well."""
        return [where for where, held in self.notes if held]

    def noted(self) -> set[str]:
        return {where for where, _ in self.notes}

    def do_rollback(self, dbapi_connection: Any) -> None:
        self.note("do_rollback")
        super().do_rollback(dbapi_connection)

    def do_commit(self, dbapi_connection: Any) -> None:
        self.note("do_commit")
        super().do_commit(dbapi_connection)

    def do_close(self, dbapi_connection: Any) -> None:
        self.note("do_close")
        super().do_close(dbapi_connection)

    def do_ping(self, dbapi_connection: Any) -> bool:
        self.note("do_ping")
        return super().do_ping(dbapi_connection)

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        self.note("is_disconnect")
        return super().is_disconnect(exception, dbapi_connection)


# -- asyncio -------------------------------------------------------------------

#: How long a gated call waits for its release before failing (seconds): a
#: test that forgets to release a gate fails instead of hanging.
GATE_TIMEOUT = 5.0


class FakeGate:
    """Holds every call of one name mid-flight until :meth:`release`."""

    def __init__(self) -> None:
        #: Set once a call has reached the gate.
        self.entered = asyncio.Event()
        self._open = asyncio.Event()
        #: How many calls reached the gate.
        self.arrivals = 0

    def release(self) -> None:
        self._open.set()

    @property
    def is_released(self) -> bool:
        return self._open.is_set()

    async def pass_through(self) -> None:
        self.arrivals += 1
        self.entered.set()
        await asyncio.wait_for(self._open.wait(), GATE_TIMEOUT)


class FakeAsyncCursor:
    """:class:`FakeCursor` with ``execute`` and ``fetchone`` as coroutines."""

    def __init__(self, connection: FakeAsyncConnection) -> None:
        self.connection = connection
        self.closed = False
        self._row: tuple[Any, ...] | None = None

    async def execute(self, operation: str, *args: Any) -> None:
        await self.connection.execute(operation, *args)
        self._row = (1,)

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self._row

    def close(self) -> None:
        self.closed = True


class FakeAsyncConnection:
    """An asyncio driver connection: ``rollback``/``commit``/``close``/``execute``
    are coroutines, and every call goes into its driver's ordered call log."""

    def __init__(self, dbapi: FakeAsyncDBAPI, number: int) -> None:
        self.dbapi = dbapi
        self.number = number
        self.closed = False
        #: Set by kill() or dbapi.kill_all(): the server side went away.
        self.dead = False

    async def _enter(self, what: str, *extra: Any) -> None:
        """Log the call, then wait at its gate if one is set."""
        self.dbapi.calls.append((what, self.number, *extra))
        gate = self.dbapi.gates.get(what)
        if gate is not None:
            await gate.pass_through()

    def _check_alive(self) -> None:
        if self.closed:
            raise FakeProgrammingError(f"connection {self.number} is closed")
        if self.dead:
            raise FakeOperationalError(f"connection {self.number}: server closed")

    def cursor(self) -> FakeAsyncCursor:
        """A cursor whose ``execute``/``fetchone`` are coroutines; like
        :meth:`FakeConnection.cursor`, it logs ``("cursor", n)``."""
        self.dbapi.calls.append(("cursor", self.number))
        self._check_alive()
        return FakeAsyncCursor(self)

    async def execute(self, operation: str, *args: Any) -> list[tuple[Any, ...]]:
        await self._enter("execute", operation)
        self._check_alive()
        if self.dbapi.fail_execute is not None:
            raise self.dbapi.fail_execute
        return [(1,)]

    async def rollback(self) -> None:
        await self._enter("rollback")
        self._check_alive()
        if self.dbapi.fail_rollback is not None:
            raise self.dbapi.fail_rollback

    async def commit(self) -> None:
        await self._enter("commit")
        self._check_alive()

    async def close(self) -> None:
        await self._enter("close")
        self.dbapi._note_closed(self)

    def kill(self) -> None:
        """Simulate the server dropping this connection."""
        self.dead = True

    def __repr__(self) -> str:
        return f"<FakeAsyncConnection {self.number}>"


class FakeAsyncDBAPI:
    """The fake asyncio driver: ``await connect()`` plus failure switches.

    Switches: ``refuse_connect`` (raised by the next connects),
    ``fail_rollback`` (raised by rollback), ``fail_execute`` (raised by
    execute, e.g. by a ping).  :meth:`hold` gates a call by name (``connect``,
    ``execute``, ``rollback``, ``commit``, ``close``) until released.
    """

    OperationalError = FakeOperationalError
    ProgrammingError = FakeProgrammingError

    def __init__(self) -> None:
        self._numbers = itertools.count(1)
        self.calls: list[tuple[Any, ...]] = []
        self.connections: list[FakeAsyncConnection] = []
        self.refuse_connect: BaseException | None = None
        self.fail_rollback: BaseException | None = None
        self.fail_execute: BaseException | None = None
        self.gates: dict[str, FakeGate] = {}

    def hold(self, what: str) -> FakeGate:
        """Make every *what* call wait mid-flight until the gate is released."""
        gate = self.gates[what] = FakeGate()
        return gate

    async def connect(self) -> FakeAsyncConnection:
        gate = self.gates.get("connect")
        if gate is not None:
            await gate.pass_through()
        return self.connect_now()

    def connect_now(self) -> FakeAsyncConnection:
        """Open a connection without awaiting: for synchronous creators."""
        if self.refuse_connect is not None:
            self.calls.append(("connect-refused",))
            raise self.refuse_connect
        conn = FakeAsyncConnection(self, next(self._numbers))
        self.connections.append(conn)
        self.calls.append(("connect", conn.number))
        return conn

    def _note_closed(self, conn: FakeAsyncConnection) -> None:
        conn.closed = True

    def open_connections(self) -> list[FakeAsyncConnection]:
        """Connections opened and not yet closed."""
        return [c for c in self.connections if not c.closed]

    def kill_all(self) -> None:
        for conn in self.open_connections():
            conn.kill()

    def calls_named(self, *names: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in names]


class FakeAsyncDialect(AsyncDialect):
    """The asyncio dialect for the fake driver: its OperationalError is a
    disconnect, and it pings like :class:`FakeDialect` (``cursor()``, then
    ``execute``; a failure raises the driver's error), so both sides log the
    same calls; the rest is :class:`AsyncDialect`'s."""

    driver = "fakeasync"

    async def do_ping(self, dbapi_connection: Any) -> bool:
        cur = dbapi_connection.cursor()
        await cur.execute("SELECT 1")
        return True

    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        return isinstance(exception, FakeOperationalError)


class FalseOnDisconnectAsyncDialect(FakeAsyncDialect):
    """:class:`FalseOnDisconnectDialect` for the asyncio pools."""

    async def do_ping(self, dbapi_connection: Any) -> bool:
        try:
            return await super().do_ping(dbapi_connection)
        except FakeOperationalError:
            return False
