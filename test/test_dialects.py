"""Dialect selection and the driver dialects' decisions, without a server.

Errors are built from the drivers' own exception classes; a driver that is
not installed skips its cases.  test/realdb/ checks the same dialects against
errors raised by real servers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import types
from types import ModuleType
from typing import Any

import pytest

from poolhouse.dialects import ASYNC_DRIVER_MODULES
from poolhouse.dialects import DRIVER_MODULES
from poolhouse.dialects import AsyncDialect
from poolhouse.dialects import Dialect
from poolhouse.dialects import async_dialect_for
from poolhouse.dialects import dialect_for
from poolhouse.dialects.sqlite3 import SQLite3Dialect

from .fakedbapi import FakeAsyncDBAPI
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeOperationalError

DRIVERS = ("psycopg", "psycopg2", "pymysql", "MySQLdb")


def _driver(name: str) -> ModuleType:
    module: ModuleType = pytest.importorskip(
        name, reason=f"driver {name} is not installed"
    )
    return module


def _dialect_module(driver: str) -> ModuleType:
    _driver(driver)
    module: ModuleType = __import__(
        f"poolhouse.dialects.{DRIVER_MODULES[driver]}", fromlist=["dialect_class"]
    )
    return module


class StubConnection:
    """Only the attributes the dialects read, with no server behind them."""

    def __init__(self, **attrs: Any) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.__dict__.update(attrs)

    def ping(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(("ping",))

    def execute(self, sql: str) -> None:
        self.calls.append(("execute", sql))

    def rollback(self) -> None:
        self.calls.append(("rollback",))


# -- choosing a dialect ---------------------------------------------------------


@pytest.mark.parametrize(
    ("class_module", "driver"),
    [
        ("psycopg.connection", "psycopg"),
        ("psycopg2.extensions", "psycopg2"),
        ("pymysql.connections", "pymysql"),
        ("MySQLdb.connections", "MySQLdb"),
    ],
)
def test_dialect_for_picks_by_module_of_connection_class(
    class_module: str, driver: str
) -> None:
    module = _dialect_module(driver)
    conn_class = type("Connection", (), {"__module__": class_module})

    dialect = dialect_for(conn_class())

    assert type(dialect) is module.dialect_class
    assert dialect.driver == driver


def test_dialect_for_sqlite3() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        assert type(dialect_for(conn)) is SQLite3Dialect
    finally:
        conn.close()


class AppConnection(sqlite3.Connection):
    """A connection subclass defined outside the driver, as factory= allows."""


def test_dialect_for_subclass_defined_elsewhere_uses_driver_base() -> None:
    conn = sqlite3.connect(":memory:", factory=AppConnection)
    try:
        assert type(conn).__module__ == __name__
        assert type(dialect_for(conn)) is SQLite3Dialect
    finally:
        conn.close()


@pytest.mark.parametrize("conn", [object(), StubConnection()])
def test_dialect_for_unknown_driver_is_generic(conn: object) -> None:
    dialect = dialect_for(conn)

    assert type(dialect) is Dialect
    assert repr(dialect) == "<Dialect driver='generic'>"


@pytest.mark.parametrize("driver", DRIVERS)
def test_dialect_class_names_its_driver(driver: str) -> None:
    module = _dialect_module(driver)

    assert issubclass(module.dialect_class, Dialect)
    assert module.dialect_class.driver == driver
    assert DRIVER_MODULES[driver] == module.__name__.rpartition(".")[2]


def test_importing_poolhouse_imports_no_driver() -> None:
    code = textwrap.dedent(
        """
        import sys
        import poolhouse
        import poolhouse.dialects
        drivers = ("psycopg", "psycopg2", "pymysql", "MySQLdb", "asyncpg",
                   "aiosqlite")
        print(sorted(m for m in drivers if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- is_disconnect tables ---------------------------------------------------------


def _psycopg_errors() -> list[tuple[str, BaseException, bool]]:
    psycopg = _driver("psycopg")
    errors = psycopg.errors
    return [
        ("admin shutdown 57P01", errors.AdminShutdown("terminating connection"), True),
        ("crash shutdown 57P02", errors.CrashShutdown("crash"), True),
        ("cannot connect now 57P03", errors.CannotConnectNow("starting"), True),
        ("database dropped 57P04", errors.DatabaseDropped("dropped"), True),
        ("idle session timeout 57P05", errors.lookup("57P05")("idle"), True),
        ("idle in transaction 25P03", errors.lookup("25P03")("idle tx"), True),
        ("connection failure 08006", errors.ConnectionFailure("gone"), True),
        ("protocol violation 08P01", errors.ProtocolViolation("bad"), True),
        (
            "libpq lost link",
            psycopg.OperationalError(
                "consuming input failed: server closed the connection unexpectedly"
            ),
            True,
        ),
        ("psycopg closed", psycopg.OperationalError("the connection is closed"), True),
        ("psycopg lost", psycopg.OperationalError("the connection is lost"), True),
        ("query canceled 57014", errors.QueryCanceled("statement timeout"), False),
        ("unique violation", errors.UniqueViolation("duplicate key"), False),
        (
            "server error quoting a disconnect message",
            errors.RaiseException("server closed the connection unexpectedly"),
            False,
        ),
        (
            "connect refused",
            psycopg.OperationalError("connection failed: Connection refused"),
            False,
        ),
        (
            "programming error with a disconnect message",
            psycopg.ProgrammingError("the connection is closed"),
            False,
        ),
        (
            "not a driver error",
            OSError("server closed the connection unexpectedly"),
            False,
        ),
    ]


def _psycopg2_errors() -> list[tuple[str, BaseException, bool]]:
    psycopg2 = _driver("psycopg2")

    # Server errors carry pgcode, which psycopg2 sets only when it raises
    # them; a class attribute stands in for it.
    def server_error(base: type[Exception], pgcode: str, message: str) -> Exception:
        cls: type[Exception] = type(f"Error{pgcode}", (base,), {"pgcode": pgcode})
        return cls(message)

    operational = psycopg2.OperationalError
    return [
        (
            "admin shutdown 57P01",
            server_error(operational, "57P01", "terminating"),
            True,
        ),
        ("crash shutdown 57P02", server_error(operational, "57P02", "crash"), True),
        ("idle session 57P05", server_error(operational, "57P05", "idle"), True),
        ("connection failure 08006", server_error(operational, "08006", "gone"), True),
        (
            "libpq lost link",
            operational(
                "server closed the connection unexpectedly\n\tThis probably means..."
            ),
            True,
        ),
        (
            "connection already closed",
            psycopg2.InterfaceError("connection already closed"),
            True,
        ),
        ("query canceled 57014", server_error(operational, "57014", "timeout"), False),
        (
            "server error quoting a disconnect message",
            server_error(
                psycopg2.InternalError,
                "P0001",
                "server closed the connection unexpectedly",
            ),
            False,
        ),
        (
            "cursor already closed",
            psycopg2.InterfaceError("cursor already closed"),
            False,
        ),
        ("connect refused", operational("connection refused"), False),
        ("not a driver error", OSError("connection already closed"), False),
    ]


def _mysql_errors(module: ModuleType) -> list[tuple[str, BaseException, bool]]:
    return [
        ("2006 gone away", module.OperationalError(2006, "Server has gone away"), True),
        ("2013 lost", module.OperationalError(2013, "Lost connection"), True),
        (
            "2014 out of sync",
            module.ProgrammingError(2014, "Commands out of sync"),
            True,
        ),
        ("2055 lost extended", module.OperationalError(2055, "Lost connection"), True),
        ("1927 killed", module.OperationalError(1927, "Connection was killed"), True),
        ("1053 shutdown", module.OperationalError(1053, "Server shutdown"), True),
        (
            "4031 MySQL inactivity",
            module.OperationalError(
                4031,
                "The client was disconnected by the server because of inactivity.",
            ),
            True,
        ),
        (
            "4031 MariaDB missing trigger",
            module.OperationalError(4031, "Referenced trigger 't1' does not exist"),
            False,
        ),
        ("closed handle (0, '')", module.InterfaceError(0, ""), True),
        ("interface error, other", module.InterfaceError(0, "something else"), False),
        ("2003 cannot connect", module.OperationalError(2003, "Can't connect"), False),
        ("1317 query interrupted", module.OperationalError(1317, "interrupted"), False),
        ("1062 duplicate", module.IntegrityError(1062, "Duplicate entry"), False),
        ("1205 lock wait timeout", module.OperationalError(1205, "Lock wait"), False),
        ("not a driver error", OSError(2013, "Lost connection"), False),
    ]


def _pymysql_errors() -> list[tuple[str, BaseException, bool]]:
    pymysql = _driver("pymysql")
    return [
        *_mysql_errors(pymysql.err),
        ("already closed", pymysql.err.Error("Already closed"), True),
        ("other plain error", pymysql.err.Error("something"), False),
    ]


def _mysqldb_errors() -> list[tuple[str, BaseException, bool]]:
    return _mysql_errors(_driver("MySQLdb"))


def _sqlite3_errors() -> list[tuple[str, BaseException, bool]]:
    return [
        (
            "closed database",
            sqlite3.ProgrammingError("Cannot operate on a closed database."),
            True,
        ),
        ("locked", sqlite3.OperationalError("database is locked"), False),
        ("syntax", sqlite3.OperationalError('near "x": syntax error'), False),
    ]


ERROR_TABLES = {
    "psycopg": _psycopg_errors,
    "psycopg2": _psycopg2_errors,
    "pymysql": _pymysql_errors,
    "MySQLdb": _mysqldb_errors,
    "sqlite3": _sqlite3_errors,
}


def _dialect(driver: str) -> Any:
    if driver == "sqlite3":
        return SQLite3Dialect()
    return _dialect_module(driver).dialect_class()


@pytest.mark.parametrize("driver", list(ERROR_TABLES))
def test_is_disconnect_table(driver: str) -> None:
    dialect = _dialect(driver)
    table = ERROR_TABLES[driver]()

    got = {name: dialect.is_disconnect(err, None) for name, err, _ in table}

    assert got == {name: expected for name, _, expected in table}


@pytest.mark.parametrize(
    ("driver", "dead", "alive", "error"),
    [
        ("psycopg", {"closed": True, "broken": False}, {}, "ProgrammingError"),
        ("psycopg", {"closed": False, "broken": True}, {}, "DataError"),
        ("psycopg2", {"closed": 2}, {"closed": 0}, "DataError"),
        ("pymysql", {"open": False}, {"open": True}, "ProgrammingError"),
        ("MySQLdb", {"open": 0}, {"open": 1}, "ProgrammingError"),
    ],
)
def test_any_driver_error_on_a_dead_connection_is_a_disconnect(
    driver: str, dead: dict[str, Any], alive: dict[str, Any], error: str
) -> None:
    dialect = _dialect(driver)
    err = getattr(_driver(driver), error)("any message")
    alive = alive or {"closed": False, "broken": False}

    assert dialect.is_disconnect(err, StubConnection(**dead)) is True
    assert dialect.is_disconnect(err, StubConnection(**alive)) is False
    assert dialect.is_disconnect(ValueError("x"), StubConnection(**dead)) is False


# -- pings and resets that need no server -----------------------------------------


@pytest.mark.parametrize(
    ("driver", "state"),
    [
        ("psycopg", {"closed": True, "broken": True}),
        ("psycopg", {"closed": False, "broken": True}),
        ("psycopg2", {"closed": 1}),
    ],
)
def test_ping_of_closed_connection_is_false_without_io(
    driver: str, state: dict[str, Any]
) -> None:
    conn = StubConnection(**state)

    assert _dialect(driver).do_ping(conn) is False
    assert conn.calls == []


@pytest.mark.parametrize("driver", ["pymysql", "MySQLdb"])
def test_mysql_ping_failure_with_lost_code_raises_a_disconnect(driver: str) -> None:
    module = _driver(driver)
    lost = module.OperationalError(2013, "Lost connection")

    class LostConnection(StubConnection):
        def ping(self, *args: Any, **kwargs: Any) -> None:
            self.calls.append(("ping", *map(repr, args), *map(repr, kwargs.items())))
            raise lost

    conn = LostConnection(open=True)
    dialect = _dialect(driver)

    with pytest.raises(module.OperationalError) as info:
        dialect.do_ping(conn)
    assert info.value is lost
    assert dialect.is_disconnect(info.value, conn) is True
    expected = ("ping", "('reconnect', False)") if driver == "pymysql" else ("ping",)
    assert conn.calls == [expected]


@pytest.mark.parametrize("driver", ["pymysql", "MySQLdb"])
def test_mysql_ping_other_error_propagates(driver: str) -> None:
    module = _driver(driver)
    boom = module.OperationalError(1045, "Access denied")

    class Refusing(StubConnection):
        def ping(self, *args: Any, **kwargs: Any) -> None:
            raise boom

    conn = Refusing(open=True)
    dialect = _dialect(driver)

    with pytest.raises(module.OperationalError) as info:
        dialect.do_ping(conn)
    assert info.value is boom
    assert dialect.is_disconnect(info.value, conn) is False


def test_sqlite3_rollback_ends_explicit_begin_under_autocommit() -> None:
    # Python 3.12+'s autocommit=True: rollback() is a no-op, even inside BEGIN.
    conn = StubConnection(autocommit=True, in_transaction=True)

    SQLite3Dialect().do_rollback(conn)

    assert conn.calls == [("rollback",), ("execute", "ROLLBACK")]


@pytest.mark.parametrize(
    "state",
    [
        {"autocommit": False, "in_transaction": True},  # 3.12+: always in one
        {"autocommit": -1, "in_transaction": True},  # LEGACY_TRANSACTION_CONTROL
        {"in_transaction": True},  # before 3.12
        {"autocommit": True, "in_transaction": False},
    ],
)
def test_sqlite3_rollback_leaves_other_modes_to_the_driver(
    state: dict[str, Any],
) -> None:
    conn = StubConnection(**state)

    SQLite3Dialect().do_rollback(conn)

    assert conn.calls == [("rollback",)]


def test_sqlite3_rollback_ends_explicit_begin_in_legacy_autocommit() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")

        SQLite3Dialect().do_rollback(conn)

        assert not conn.in_transaction
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        conn.close()


def test_sqlite3_ping_of_closed_connection_raises_a_disconnect() -> None:
    conn = sqlite3.connect(":memory:")
    dialect = SQLite3Dialect()
    assert dialect.do_ping(conn) is True
    conn.close()

    with pytest.raises(sqlite3.ProgrammingError, match="closed database") as info:
        dialect.do_ping(conn)
    assert dialect.is_disconnect(info.value, conn) is True


def test_pymysql_close_tolerates_already_closed() -> None:
    pymysql = _driver("pymysql")

    class Closed(StubConnection):
        def close(self) -> None:
            self.calls.append(("close",))
            raise pymysql.err.Error("Already closed")

    class Failing(StubConnection):
        def close(self) -> None:
            raise pymysql.err.OperationalError(2013, "Lost connection")

    conn = Closed()
    _dialect("pymysql").do_close(conn)
    assert conn.calls == [("close",)]
    with pytest.raises(pymysql.err.OperationalError):
        _dialect("pymysql").do_close(Failing())


@pytest.mark.parametrize(("is_open", "closes"), [(1, True), (0, False)])
def test_mysqldb_close_skips_closed_connection(is_open: int, closes: bool) -> None:
    class Recording(StubConnection):
        def close(self) -> None:
            self.calls.append(("close",))

    conn = Recording(open=is_open)

    _dialect("MySQLdb").do_close(conn)

    assert conn.calls == ([("close",)] if closes else [])


# -- asyncio dialects ---------------------------------------------------------------

ASYNC_DRIVERS = ("asyncpg", "psycopg", "aiosqlite")


def _async_dialect_module(driver: str) -> ModuleType:
    _driver(driver)
    module: ModuleType = __import__(
        f"poolhouse.dialects.{ASYNC_DRIVER_MODULES[driver]}",
        fromlist=["dialect_class"],
    )
    return module


@pytest.mark.parametrize(
    ("class_module", "driver", "dialect_name"),
    [
        ("asyncpg.connection", "asyncpg", "AsyncpgDialect"),
        ("psycopg", "psycopg", "AsyncPsycopgDialect"),  # AsyncConnection's module
        ("psycopg.connection_async", "psycopg", "AsyncPsycopgDialect"),
        ("aiosqlite.core", "aiosqlite", "AiosqliteDialect"),
    ],
)
def test_async_dialect_for_picks_by_module_of_connection_class(
    class_module: str, driver: str, dialect_name: str
) -> None:
    module = _async_dialect_module(driver)
    conn_class = type("Connection", (), {"__module__": class_module})
    subclass = type("AppConnection", (conn_class,), {"__module__": __name__})

    for conn in (conn_class(), subclass()):
        dialect = async_dialect_for(conn)

        assert type(dialect) is module.dialect_class
        assert type(dialect).__name__ == dialect_name
        assert dialect.driver == driver


@pytest.mark.parametrize("conn", [object(), StubConnection()])
def test_async_dialect_for_unknown_driver_is_generic(conn: object) -> None:
    dialect = async_dialect_for(conn)

    assert type(dialect) is AsyncDialect
    assert repr(dialect) == "<AsyncDialect driver='generic'>"


class _DisconnectAware(AsyncDialect):
    def is_disconnect(self, exception: BaseException, dbapi_connection: Any) -> bool:
        return isinstance(exception, FakeOperationalError)


def test_generic_dialect_ping_raises_the_driver_error() -> None:
    """The generic ping: ``SELECT 1`` on a cursor, closed whatever happens; a
    failure raises the driver's error, which the pool judges."""
    dbapi = FakeDBAPI()
    alive, dead = dbapi.connect(), dbapi.connect()
    assert Dialect().do_ping(alive) is True
    dbapi.fail_execute = FakeOperationalError("server closed")

    with pytest.raises(FakeOperationalError) as info:
        Dialect().do_ping(dead)

    assert info.value is dbapi.fail_execute
    assert Dialect().is_disconnect(info.value, dead) is False  # it cannot tell
    assert dbapi.calls_named("execute") == [
        ("execute", 1, "SELECT 1"),
        ("execute", 2, "SELECT 1"),
    ]


@pytest.mark.asyncio
async def test_generic_async_dialect_pings_with_execute() -> None:
    """The generic ping: ``execute("SELECT 1")`` on the connection; a failure
    raises the driver's error, whichever dialect calls it a disconnect."""
    dbapi = FakeAsyncDBAPI()
    alive, dead = dbapi.connect_now(), dbapi.connect_now()
    dead.kill()
    assert await AsyncDialect().do_ping(alive) is True
    with pytest.raises(FakeOperationalError) as info:
        await _DisconnectAware().do_ping(dead)
    assert _DisconnectAware().is_disconnect(info.value, dead) is True
    with pytest.raises(FakeOperationalError) as info:
        await AsyncDialect().do_ping(dead)
    assert AsyncDialect().is_disconnect(info.value, dead) is False  # cannot tell
    assert dbapi.calls_named("execute") == [
        ("execute", 1, "SELECT 1"),
        ("execute", 2, "SELECT 1"),
        ("execute", 2, "SELECT 1"),
    ]


def test_psycopg_sync_and_async_connections_get_their_own_dialects() -> None:
    psycopg = _driver("psycopg")
    sync_dialect = _dialect_module("psycopg").dialect_class
    async_dialect = _async_dialect_module("psycopg").dialect_class
    # Instances without a connection behind them: only the class is read.
    sync_conn: Any = object.__new__(type("App", (psycopg.Connection,), {}))
    async_conn: Any = object.__new__(type("App", (psycopg.AsyncConnection,), {}))

    assert type(dialect_for(sync_conn)) is sync_dialect
    assert type(async_dialect_for(async_conn)) is async_dialect


@pytest.mark.parametrize("driver", ASYNC_DRIVERS)
def test_async_dialect_class_names_its_driver(driver: str) -> None:
    module = _async_dialect_module(driver)

    assert issubclass(module.dialect_class, AsyncDialect)
    assert module.dialect_class.driver == driver
    assert ASYNC_DRIVER_MODULES[driver] == module.__name__.rpartition(".")[2]


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("poolhouse.aio", ()),
        ("poolhouse.dialects.asyncpg", ("asyncpg",)),
        ("poolhouse.dialects.psycopg_async", ("psycopg",)),
    ],
)
def test_importing_a_module_imports_only_its_driver(
    module: str, allowed: tuple[str, ...]
) -> None:
    for name in allowed:
        _driver(name)
    code = textwrap.dedent(
        f"""
        import sys
        import poolhouse
        import poolhouse.aio
        import poolhouse.dialects
        import {module}
        drivers = ("psycopg", "psycopg2", "pymysql", "MySQLdb", "asyncpg",
                   "aiosqlite")
        print(sorted(m for m in drivers if m in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(allowed))


def _asyncpg_errors() -> list[tuple[str, BaseException, bool]]:
    _driver("asyncpg")
    from asyncpg import exceptions as errors

    return [
        (
            "admin shutdown 57P01",
            errors.AdminShutdownError(
                "terminating connection due to administrator command"
            ),
            True,
        ),
        ("crash shutdown 57P02", errors.CrashShutdownError("crash"), True),
        ("cannot connect now 57P03", errors.CannotConnectNowError("starting"), True),
        ("database dropped 57P04", errors.DatabaseDroppedError("dropped"), True),
        ("idle session timeout 57P05", errors.IdleSessionTimeoutError("idle"), True),
        (
            "idle in transaction 25P03",
            errors.IdleInTransactionSessionTimeoutError("idle tx"),
            True,
        ),
        ("connection exception 08000", errors.PostgresConnectionError("gone"), True),
        ("connection failure 08006", errors.ConnectionFailureError("gone"), True),
        ("protocol violation 08P01", errors.ProtocolViolationError("bad"), True),
        (
            "closed mid-operation 08003",
            errors.ConnectionDoesNotExistError(
                "connection was closed in the middle of operation"
            ),
            True,
        ),
        ("interface: closed", errors.InterfaceError("connection is closed"), True),
        (
            "interface: resource on a closed connection",
            errors.InterfaceError(
                "cannot call Transaction.commit(): the underlying connection is closed"
            ),
            True,
        ),
        (
            "protocol out of step after the server's last words",
            errors.InternalClientError(
                "cannot switch to state 11; another operation (2) is in progress"
            ),
            True,
        ),
        ("reset by peer", ConnectionResetError(104, "Connection reset by peer"), True),
        ("broken pipe", BrokenPipeError(32, "Broken pipe"), True),
        ("query canceled 57014", errors.QueryCanceledError("statement timeout"), False),
        ("unique violation", errors.UniqueViolationError("duplicate key"), False),
        (
            "failed transaction 25P02",
            errors.InFailedSQLTransactionError("current transaction is aborted"),
            False,
        ),
        (
            "server error quoting a disconnect message",
            errors.RaiseError("connection is closed"),
            False,
        ),
        (
            "interface: busy",
            errors.InterfaceError(
                "cannot perform operation: another operation is in progress"
            ),
            False,
        ),
        (
            "interface: released",
            errors.InterfaceError(
                "cannot call Transaction.commit(): the underlying connection has "
                "been released back to the pool"
            ),
            False,
        ),
        (
            "outdated schema cache",
            errors.OutdatedSchemaCacheError("cached statement plan is invalid"),
            False,
        ),
        ("command timeout", TimeoutError(), False),
        ("other OSError", FileNotFoundError(2, "No such file"), False),
        ("not a driver error", ValueError("connection is closed"), False),
        ("cancelled", asyncio.CancelledError(), False),
    ]


ASYNC_ERROR_TABLES = {
    "asyncpg": _asyncpg_errors,
    # The same decisions as the sync dialect, from the same function.
    "psycopg": _psycopg_errors,
}


@pytest.mark.parametrize("driver", list(ASYNC_ERROR_TABLES))
def test_async_is_disconnect_table(driver: str) -> None:
    dialect = _async_dialect_module(driver).dialect_class()
    table = ASYNC_ERROR_TABLES[driver]()

    got = {name: dialect.is_disconnect(err, None) for name, err, _ in table}

    assert got == {name: expected for name, _, expected in table}


# What asyncpg's Connection.get_reset_query() returns for a PostgreSQL server.
ASYNCPG_RESET_QUERY = (
    "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"
)


class AsyncpgStub:
    """What AsyncpgDialect reads and calls on an asyncpg connection."""

    def __init__(
        self,
        *,
        closed: bool = False,
        in_transaction: bool = False,
        cancelling: bool = False,
        fail: dict[str, BaseException] | None = None,
        reset_query: str = ASYNCPG_RESET_QUERY,
    ) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.reset_query = reset_query
        self._listeners = {"channel": {"callback"}}
        self._log_listeners = {"callback"}
        self.closed = closed
        self.in_transaction = in_transaction
        self.fail = fail or {}
        self._top_xact: object | None = None
        self._pool_release_ctr = 0
        self._protocol = types.SimpleNamespace(_is_cancelling=lambda: cancelling)

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    async def _call(self, *call: str) -> None:
        self.calls.append(call)
        if call[0] in self.fail:
            raise self.fail[call[0]]

    async def execute(self, sql: str) -> str:
        await self._call("execute", sql)
        self.in_transaction = False
        return "OK"

    def get_reset_query(self) -> str:
        return self.reset_query

    async def close(self) -> None:
        await self._call("close")
        self.closed = True

    def terminate(self) -> None:
        self.calls.append(("terminate",))
        self.closed = True


def _asyncpg_dialect(**kw: Any) -> Any:
    return _async_dialect_module("asyncpg").dialect_class(**kw)


@pytest.mark.parametrize(
    ("dead", "error", "expected"),
    [
        (True, "InterfaceError", True),
        (True, "UniqueViolationError", True),
        (False, "UniqueViolationError", False),
        (True, "OSError", True),
        (False, "ConnectionResetError", False),  # not this connection's socket
        (True, "ValueError", False),
        (True, "CancelledError", False),
    ],
)
def test_asyncpg_error_on_a_closed_connection_is_a_disconnect(
    dead: bool, error: str, expected: bool
) -> None:
    asyncpg = _driver("asyncpg")
    cls = {
        "OSError": OSError,
        "ConnectionResetError": ConnectionResetError,
        "ValueError": ValueError,
        "CancelledError": asyncio.CancelledError,
    }.get(error) or getattr(asyncpg.exceptions, error)

    got = _asyncpg_dialect().is_disconnect(cls("any message"), AsyncpgStub(closed=dead))

    assert got is expected


def test_asyncpg_dialect_arguments() -> None:
    assert repr(_asyncpg_dialect()) == "<AsyncpgDialect driver='asyncpg'>"
    assert repr(_asyncpg_dialect(reset_session=True)) == (
        "<AsyncpgDialect driver='asyncpg' reset_session=True>"
    )
    with pytest.raises(TypeError, match="reset_session must be True or False"):
        _asyncpg_dialect(reset_session=1)
    with pytest.raises(TypeError):
        _async_dialect_module("asyncpg").dialect_class(True)  # keyword only


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("state", "reset_session", "expected"),
    [
        ({}, False, []),  # idle: no round trip
        ({"in_transaction": True}, False, [("execute", "ROLLBACK")]),
        # A cancelled command's answer is due: the state is not known yet.
        ({"cancelling": True}, False, [("execute", "ROLLBACK")]),
        ({}, True, [("execute", ASYNCPG_RESET_QUERY)]),
        (
            {"in_transaction": True},
            True,
            [("execute", "ROLLBACK"), ("execute", ASYNCPG_RESET_QUERY)],
        ),
        # A Connection subclass whose get_reset_query() returns nothing.
        ({"reset_query": ""}, True, []),
        ({"in_transaction": True, "reset_query": ""}, True, [("execute", "ROLLBACK")]),
    ],
)
async def test_asyncpg_rollback_sends_only_what_is_needed(
    state: dict[str, Any], reset_session: bool, expected: list[tuple[str, ...]]
) -> None:
    conn = AsyncpgStub(**state)
    conn._top_xact = transaction = object()

    await _asyncpg_dialect(reset_session=reset_session).do_rollback(conn)

    assert conn.calls == expected
    # The Transaction object of the checkout is retired, as asyncpg's pool
    # does on release.
    assert conn._top_xact is None and conn._pool_release_ctr == 1
    assert transaction is not None
    # Callbacks go with the session reset, as Connection.reset() drops them.
    callbacks = (conn._listeners, conn._log_listeners)
    assert callbacks == (
        ({}, set()) if reset_session else ({"channel": {"callback"}}, {"callback"})
    )


@pytest.mark.asyncio
async def test_asyncpg_commit_commits_the_open_transaction() -> None:
    conn = AsyncpgStub(in_transaction=True)

    await _asyncpg_dialect().do_commit(conn)

    assert conn.calls == [("execute", "COMMIT")]


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["do_rollback", "do_commit"])
async def test_asyncpg_reset_of_closed_connection_raises_its_interface_error(
    method: str,
) -> None:
    asyncpg = _driver("asyncpg")
    conn = AsyncpgStub(closed=True)
    dialect = _asyncpg_dialect()

    with pytest.raises(asyncpg.InterfaceError, match="connection is closed") as info:
        await getattr(dialect, method)(conn)

    assert dialect.is_disconnect(info.value, None)
    assert conn.calls == []


@pytest.mark.asyncio
async def test_asyncpg_ping() -> None:
    asyncpg = _driver("asyncpg")
    errors = asyncpg.exceptions
    dialect = _asyncpg_dialect()

    closed = AsyncpgStub(closed=True)
    assert await dialect.do_ping(closed) is False
    assert closed.calls == []

    alive = AsyncpgStub()
    assert await dialect.do_ping(alive) is True
    assert alive.calls == [("execute", "SELECT 1")]

    failed_tx = AsyncpgStub(fail={"execute": errors.InFailedSQLTransactionError()})
    assert await dialect.do_ping(failed_tx) is True  # the server answered

    gone = errors.ConnectionDoesNotExistError("gone")
    lost = AsyncpgStub(fail={"execute": gone})
    with pytest.raises(errors.ConnectionDoesNotExistError) as info:
        await dialect.do_ping(lost)
    assert info.value is gone
    assert dialect.is_disconnect(info.value, lost) is True

    boom = errors.QueryCanceledError("statement timeout")
    canceled = AsyncpgStub(fail={"execute": boom})
    with pytest.raises(errors.QueryCanceledError) as info:
        await dialect.do_ping(canceled)
    assert info.value is boom
    assert dialect.is_disconnect(info.value, canceled) is False


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("closed", "error", "raises"),
    [
        (True, None, False),  # already closed: nothing to do
        (False, None, False),
        (False, ConnectionResetError(104, "Connection reset by peer"), False),
        (False, RuntimeError("unexpected"), True),
        (False, asyncio.CancelledError(), True),
    ],
)
async def test_asyncpg_close_terminates_when_close_fails(
    closed: bool, error: BaseException | None, raises: bool
) -> None:
    conn = AsyncpgStub(closed=closed, fail={"close": error} if error else None)
    dialect = _asyncpg_dialect()

    if raises:
        assert error is not None
        with pytest.raises(type(error)):
            await dialect.do_close(conn)
    else:
        await dialect.do_close(conn)

    expected = [] if closed else [("close",)] + ([("terminate",)] if error else [])
    assert conn.calls == expected
    assert conn.closed


@pytest.mark.asyncio
async def test_asyncpg_close_terminates_while_a_cancel_is_pending() -> None:
    """A graceful close would wait for the server to answer the cancelled
    command first."""
    conn = AsyncpgStub(cancelling=True)

    await _asyncpg_dialect().do_close(conn)

    assert conn.calls == [("terminate",)]
    assert conn.closed


class AsyncPsycopgStub(StubConnection):
    """What AsyncPsycopgDialect reads and calls on a psycopg AsyncConnection."""

    def __init__(self, *, status: int = 0, fail: BaseException | None = None, **kw):
        super().__init__(closed=False, broken=False, autocommit=False, **kw)
        self.info = types.SimpleNamespace(transaction_status=status)
        self.fail = fail

    async def set_autocommit(self, value: bool) -> None:
        self.calls.append(("set_autocommit", repr(value)))
        self.autocommit = value

    async def execute(self, sql: str) -> Any:  # type: ignore[override]
        self.calls.append(("execute", sql))
        if self.fail is not None:
            self.closed = True
            raise self.fail
        return self

    async def close(self) -> None:
        self.calls.append(("close",))


@pytest.mark.asyncio
async def test_psycopg_async_ping_switches_autocommit_only_outside_a_transaction() -> (
    None
):
    dialect = _async_dialect_module("psycopg").dialect_class()

    idle = AsyncPsycopgStub(status=0)  # TransactionStatus.IDLE
    assert await dialect.do_ping(idle) is True
    assert idle.calls == [
        ("set_autocommit", "True"),
        ("execute", ""),
        ("close",),
        ("set_autocommit", "False"),
    ]

    in_transaction = AsyncPsycopgStub(status=2)  # INTRANS
    assert await dialect.do_ping(in_transaction) is True
    assert in_transaction.calls == [("execute", ""), ("close",)]


@pytest.mark.asyncio
async def test_psycopg_async_ping_of_dead_connection() -> None:
    """Closed or broken: ``False``, with no round trip; lost during the ping:
    the driver's error, a disconnect."""
    psycopg = _driver("psycopg")
    dialect = _async_dialect_module("psycopg").dialect_class()

    for state in ({"closed": True}, {"broken": True}):
        dead = AsyncPsycopgStub()
        dead.__dict__.update(state)
        assert await dialect.do_ping(dead) is False
        assert dead.calls == []

    error = psycopg.OperationalError("the connection is lost")
    lost = AsyncPsycopgStub(fail=error)
    with pytest.raises(psycopg.OperationalError) as info:
        await dialect.do_ping(lost)
    assert info.value is error
    assert dialect.is_disconnect(info.value, lost) is True
    # Closed by the failure: autocommit is not switched back.
    assert lost.calls == [("set_autocommit", "True"), ("execute", "")]
