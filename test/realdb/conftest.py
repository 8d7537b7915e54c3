"""Servers, drivers and helpers for the tests that talk to real databases.

PostgreSQL is reached through ``POOLHOUSE_TEST_PG_DSN`` (a libpq DSN) and
MariaDB/MySQL through ``POOLHOUSE_TEST_MYSQL_URL``
(``mysql://user[:password]@host[:port]/database``).  Each is checked once per
session: an unreachable server skips its tests, or fails them when
``CI=true``.  A missing driver skips only that driver's tests.

Every pool's connections carry a tag (PostgreSQL ``application_name``; the
server thread ids recorded by the creator on MariaDB), so a test counts and
kills only its own sessions.

The asyncio drivers (asyncpg, psycopg's ``AsyncConnection``) have their own
backend, :class:`AsyncPostgreSQLBackend`, and async fixtures, against the same
PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from typing import NoReturn
from urllib.parse import parse_qsl
from urllib.parse import unquote
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from poolhouse import Pool
from poolhouse.aio import AsyncConnectionFairy
from poolhouse.aio import AsyncPool
from poolhouse.dialects import ASYNC_DRIVER_MODULES
from poolhouse.dialects import DRIVER_MODULES

PG_DSN_ENV = "POOLHOUSE_TEST_PG_DSN"
DEFAULT_PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
MYSQL_URL_ENV = "POOLHOUSE_TEST_MYSQL_URL"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/test"

PG_DRIVERS = ("psycopg", "psycopg2")
#: asyncio drivers, by module; psycopg stands for its AsyncConnection.
ASYNC_PG_DRIVERS = ("asyncpg", "psycopg")
MYSQL_DRIVERS = ("pymysql", "MySQLdb")

#: How long a helper waits for the server to show a change (seconds).
SERVER_WAIT = 10.0

_MISSING_DRIVER = {
    "psycopg": "psycopg 3 is not installed (pip install 'psycopg[binary]')",
    "psycopg2": "psycopg2 is not installed (pip install psycopg2-binary)",
    "pymysql": "PyMySQL is not installed (pip install pymysql)",
    "asyncpg": "asyncpg is not installed (pip install asyncpg)",
    "MySQLdb": (
        "mysqlclient (MySQLdb) cannot be imported: pip install mysqlclient "
        "(it builds against libmariadb-dev or libmysqlclient-dev, found with "
        "pkg-config)"
    ),
}


def in_ci() -> bool:
    """Whether this run is CI, where a missing server is a failure."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for *reason*, or fail it under ``CI=true``."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
    pytest.skip(reason)


def import_driver(name: str) -> ModuleType:
    """Import the driver *name*, skipping the test if it is not installed."""
    module: ModuleType = pytest.importorskip(name, reason=_MISSING_DRIVER[name])
    return module


def redact_dsn(dsn: str) -> str:
    """*dsn* (``key=value`` or URL form) with its password hidden, for messages."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


def parse_mysql_url(url: str) -> dict[str, Any]:
    """Turn ``mysql://user:password@host:port/db?opt=value`` into connect kwargs.

    Query options are passed through as strings (e.g. ``unix_socket``).
    """
    parts = urlsplit(url)
    if parts.scheme.partition("+")[0] not in ("mysql", "mariadb"):
        raise ValueError(f"{MYSQL_URL_ENV} must be a mysql:// URL, got {url!r}")
    params: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
    }
    if parts.password is not None:
        params["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if database:
        params["database"] = database
    params.update(parse_qsl(parts.query))
    return params


def describe_mysql(params: dict[str, Any]) -> str:
    """Where the MySQL server is, without the password."""
    return (
        f"{params['user']}@{params['host']}:{params['port']}/"
        f"{params.get('database', '')}"
    )


def run(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Execute *sql* on *conn* (a pool connection or a DBAPI one); return the rows.

    A failure propagates as the driver raised it: closing the cursor after it
    cannot replace it.
    """
    cursor = conn.cursor()
    try:
        if params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
    except BaseException:
        with contextlib.suppress(Exception):
            cursor.close()
        raise
    cursor.close()
    return rows


def scalar(conn: Any, sql: str, params: Any = None) -> Any:
    """The single value *sql* returns."""
    rows = run(conn, sql, params)
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def wait_until(
    observe: Callable[[], Any], expected: Any, what: str, timeout: float = SERVER_WAIT
) -> None:
    """Poll the server until ``observe()`` returns *expected*, within *timeout*.

    Only for state the server changes on its own schedule (a terminated or
    closed session leaving its process list); threads in the test synchronise
    with events and barriers instead.
    """
    deadline = time.monotonic() + timeout
    seen = observe()
    while seen != expected:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}: still {seen!r} after {timeout}s, expected {expected!r}"
            )
        seen = observe()


def hold_all(pool: Pool, n: int, backend: Backend) -> set[int]:
    """Check out *n* connections at once; return their server session ids."""
    fairies = []
    try:
        for _ in range(n):
            fairies.append(pool.connect())
        return {backend.session_id(f) for f in fairies}
    finally:
        for fairy in fairies:
            fairy.close()


def new_tag() -> str:
    """A name unique to one test, short enough for ``application_name``."""
    return f"poolhouse-{uuid.uuid4().hex[:16]}"


class Backend:
    """One driver against one server: connect, inspect and kill sessions.

    :param module: the driver module.
    """

    server = ""
    begin_sql = "BEGIN"
    lock_timeout_sql = ""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.name = module.__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def dialect_class(self) -> type:
        """The poolhouse dialect class for this driver."""
        module = importlib.import_module(
            f"poolhouse.dialects.{DRIVER_MODULES[self.name]}"
        )
        cls: type = module.dialect_class
        return cls

    def connect(self, tag: str, *, autocommit: bool = False, **kw: Any) -> Any:
        """Open a DBAPI connection tagged *tag*."""
        raise NotImplementedError

    def creator(
        self, tag: str, *, autocommit: bool = False, **kw: Any
    ) -> Callable[[], Any]:
        """A pool creator whose connections are tagged *tag*."""
        return lambda: self.connect(tag, autocommit=autocommit, **kw)

    def admin(self) -> Any:
        """An untagged autocommit connection to inspect and kill sessions."""
        return self.connect("poolhouse-admin", autocommit=True)

    def session_id(self, conn: Any) -> int:
        """The server's id for *conn*'s session."""
        raise NotImplementedError

    def sessions(self, conn: Any, tag: str) -> int:
        """How many sessions tagged *tag* the server has, asked through *conn*."""
        raise NotImplementedError

    def kill(self, admin: Any, tag: str) -> int:
        """Terminate every session tagged *tag* server-side; return how many."""
        raise NotImplementedError

    def in_transaction(self, conn: Any) -> bool:
        """Whether *conn*'s session has a transaction open (asking changes nothing)."""
        raise NotImplementedError

    def create_table_sql(self, table: str) -> str:
        return f"CREATE TABLE {table} (id integer PRIMARY KEY, v integer NOT NULL)"

    def login_with_password(
        self, admin: Any, secret: str
    ) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """Connect kwargs that log in with the password *secret*, for a ``with``."""
        raise NotImplementedError

    def wait_for_sessions(self, admin: Any, tag: str, expected: int) -> None:
        """Wait until the server lists *expected* sessions tagged *tag*."""
        wait_until(
            lambda: self.sessions(admin, tag),
            expected,
            f"{self.server} sessions tagged {tag}",
        )


class PostgreSQLBackend(Backend):
    """psycopg (3) or psycopg2 against the PostgreSQL at *dsn*."""

    server = "PostgreSQL"
    lock_timeout_sql = "SET lock_timeout = '2s'"

    def __init__(self, module: ModuleType, dsn: str) -> None:
        super().__init__(module)
        self.dsn = dsn

    def connect(self, tag: str, *, autocommit: bool = False, **kw: Any) -> Any:
        kw.setdefault("connect_timeout", 5)
        if self.name == "psycopg":
            return self.module.connect(
                self.dsn, autocommit=autocommit, application_name=tag, **kw
            )
        conn = self.module.connect(self.dsn, application_name=tag, **kw)
        conn.autocommit = autocommit
        return conn

    def session_id(self, conn: Any) -> int:
        return int(scalar(conn, "SELECT pg_backend_pid()"))

    def sessions(self, conn: Any, tag: str) -> int:
        return int(
            scalar(
                conn,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (tag,),
            )
        )

    def kill(self, admin: Any, tag: str) -> int:
        rows = run(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (tag,),
        )
        return sum(1 for (done,) in rows if done)

    @contextlib.contextmanager
    def login_with_password(self, admin: Any, secret: str) -> Iterator[dict[str, Any]]:
        # trust authentication accepts any password; a server that checks
        # them would need a role created for the test.
        try:
            self.connect("poolhouse-password-probe", password=secret).close()
        except self.module.OperationalError as err:
            pytest.skip(f"{self.server} checks passwords (needs trust auth): {err}")
        yield {"password": secret}

    def in_transaction(self, conn: Any) -> bool:
        # The status libpq keeps from the server's last ReadyForQuery.
        raw = getattr(conn, "dbapi_connection", conn)
        if self.name == "psycopg":
            status = raw.info.transaction_status
        else:
            status = raw.get_transaction_status()
        return int(status) != 0  # TRANSACTION_STATUS_IDLE in both drivers


class MySQLBackend(Backend):
    """PyMySQL or mysqlclient against the MariaDB/MySQL server of *params*.

    MariaDB shows no connection attributes without performance_schema, so
    the creator records each connection's thread id under its tag.
    """

    server = "MariaDB"
    begin_sql = "START TRANSACTION"
    lock_timeout_sql = "SET SESSION innodb_lock_wait_timeout = 2"

    def __init__(self, module: ModuleType, params: dict[str, Any]) -> None:
        super().__init__(module)
        self.params = params
        self._lock = threading.Lock()
        self._threads: dict[str, set[int]] = {}

    def connect(self, tag: str, *, autocommit: bool = False, **kw: Any) -> Any:
        # A None value drops a server parameter (e.g. database=None).
        merged = {**self.params, "connect_timeout": 5, **kw}
        params = {k: v for k, v in merged.items() if v is not None}
        conn = self.module.connect(autocommit=autocommit, **params)
        with self._lock:
            self._threads.setdefault(tag, set()).add(conn.thread_id())
        return conn

    def session_id(self, conn: Any) -> int:
        return int(scalar(conn, "SELECT CONNECTION_ID()"))

    def _thread_ids(self, tag: str) -> list[int]:
        with self._lock:
            return sorted(self._threads.get(tag, ()))

    def _live_ids(self, conn: Any, tag: str) -> list[int]:
        ids = self._thread_ids(tag)
        if not ids:
            return []
        marks = ", ".join(["%s"] * len(ids))
        rows = run(
            conn,
            f"SELECT id FROM information_schema.processlist WHERE id IN ({marks})",
            tuple(ids),
        )
        return [int(r[0]) for r in rows]

    def sessions(self, conn: Any, tag: str) -> int:
        return len(self._live_ids(conn, tag))

    def kill(self, admin: Any, tag: str) -> int:
        killed = 0
        for thread_id in self._live_ids(admin, tag):
            try:
                run(admin, f"KILL {int(thread_id)}")
            except self.module.Error as err:
                if err.args[:1] != (1094,):  # ER_NO_SUCH_THREAD: it ended meanwhile
                    raise
            else:
                killed += 1
        return killed

    def in_transaction(self, conn: Any) -> bool:
        # information_schema.innodb_trx is refreshed at most every 0.1 s, so
        # it can miss a transaction that just began; the session knows.
        return int(scalar(conn, "SELECT @@in_transaction")) != 0

    def create_table_sql(self, table: str) -> str:
        return super().create_table_sql(table) + " ENGINE=InnoDB"

    @contextlib.contextmanager
    def login_with_password(self, admin: Any, secret: str) -> Iterator[dict[str, Any]]:
        # A user of this test only, with no privilege beyond logging in.
        user = f"ph_{uuid.uuid4().hex[:12]}"
        try:
            run(admin, f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (secret,))
        except self.module.Error as err:
            pytest.skip(f"cannot create a {self.server} user for the test: {err}")
        try:
            yield {"user": user, "password": secret, "database": None}
        finally:
            run(admin, f"DROP USER IF EXISTS '{user}'@'%'")


async def wait_until_async(
    observe: Callable[[], Awaitable[Any]],
    expected: Any,
    what: str,
    timeout: float = SERVER_WAIT,
) -> None:
    """:func:`wait_until` for an asynchronous ``observe()``."""
    deadline = time.monotonic() + timeout
    seen = await observe()
    while seen != expected:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{what}: still {seen!r} after {timeout}s, expected {expected!r}"
            )
        seen = await observe()


def _parse_dsn(dsn: str) -> dict[str, str]:
    """*dsn* (``key=value`` or URL form) as a dict, parsed by libpq."""
    try:
        import psycopg.conninfo
    except ImportError:
        import psycopg2.extensions

        return dict(psycopg2.extensions.parse_dsn(dsn))
    return {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(dsn).items()}


def _asyncpg_params(dsn: str) -> dict[str, Any]:
    """asyncpg's connect kwargs for a libpq DSN."""
    names = {"host": "host", "port": "port", "user": "user", "password": "password"}
    names |= {"dbname": "database", "sslmode": "ssl", "connect_timeout": "timeout"}
    params: dict[str, Any] = {}
    for key, value in _parse_dsn(dsn).items():
        if key not in names:
            pytest.fail(
                f"{PG_DSN_ENV}: the asyncpg tests do not know the libpq "
                f"parameter {key!r}; drop it or add it to _asyncpg_params()"
            )
        params[names[key]] = value
    for key in ("port", "timeout"):
        if key in params:
            params[key] = int(params[key])
    return params


class AsyncPostgreSQLBackend:
    """asyncpg, or psycopg's ``AsyncConnection``, against the PostgreSQL at *dsn*.

    SQL passed to :meth:`run` uses ``%s`` placeholders; asyncpg gets them
    as ``$1``, ``$2``...

    :param module: the driver module (:mod:`asyncpg` or :mod:`psycopg`).
    """

    server = "PostgreSQL"

    def __init__(self, module: ModuleType, dsn: str) -> None:
        self.module = module
        self.name = module.__name__
        self.dsn = dsn
        self._asyncpg_params = _asyncpg_params(dsn) if self.name == "asyncpg" else {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @property
    def dialect_class(self) -> type:
        """The poolhouse dialect class for this driver's asyncio connections."""
        module = importlib.import_module(
            f"poolhouse.dialects.{ASYNC_DRIVER_MODULES[self.name]}"
        )
        cls: type = module.dialect_class
        return cls

    @property
    def begin_modes(self) -> tuple[bool, ...]:
        """The ways a transaction begins: ``False`` implicitly (psycopg with
        autocommit off), ``True`` with an explicit ``BEGIN`` in autocommit
        mode, which is asyncpg's only way."""
        return (True,) if self.name == "asyncpg" else (False, True)

    async def connect(self, tag: str, *, autocommit: bool = True) -> Any:
        """Open a connection tagged *tag*; asyncpg ignores *autocommit*."""
        if self.name == "asyncpg":
            params = {"timeout": 5, **self._asyncpg_params}
            return await self.module.connect(
                server_settings={"application_name": tag}, **params
            )
        return await self.module.AsyncConnection.connect(
            self.dsn, autocommit=autocommit, application_name=tag, connect_timeout=5
        )

    def creator(
        self, tag: str, *, autocommit: bool = True
    ) -> Callable[[], Awaitable[Any]]:
        """An async pool creator whose connections are tagged *tag*."""

        async def create() -> Any:
            return await self.connect(tag, autocommit=autocommit)

        return create

    async def admin(self) -> Any:
        """An untagged autocommit connection to inspect and kill sessions."""
        return await self.connect("poolhouse-admin")

    async def run(self, conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Execute *sql* on *conn* (pool or driver connection); return the rows."""
        if self.name == "asyncpg":
            numbered = iter(range(1, len(params) + 1))
            sql = re.sub("%s", lambda _: f"${next(numbered)}", sql)
            return [tuple(r) for r in await conn.fetch(sql, *params)]
        cursor = await conn.execute(sql, params or None)
        try:
            return (
                [tuple(r) for r in await cursor.fetchall()]
                if cursor.description
                else []
            )
        finally:
            await cursor.close()

    async def scalar(self, conn: Any, sql: str, *params: Any) -> Any:
        """The single value *sql* returns."""
        rows = await self.run(conn, sql, *params)
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    async def session_id(self, conn: Any) -> int:
        return int(await self.scalar(conn, "SELECT pg_backend_pid()"))

    def pid(self, conn: Any) -> int:
        """The server process id the driver was told at connect (no I/O)."""
        if self.name == "asyncpg":
            return int(conn.get_server_pid())
        return int(conn.info.backend_pid)

    async def sessions(self, conn: Any, tag: str, state: str | None = None) -> int:
        """How many sessions tagged *tag* (in *state*, if given) the server has."""
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        if state is None:
            return int(await self.scalar(conn, sql, tag))
        return int(await self.scalar(conn, sql + " AND state = %s", tag, state))

    async def kill(self, admin: Any, tag: str) -> int:
        """Terminate every session tagged *tag* server-side; return how many."""
        rows = await self.run(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s",
            tag,
        )
        return sum(1 for (done,) in rows if done)

    def in_transaction(self, conn: Any) -> bool:
        """Whether *conn* has a transaction open, as the driver last heard."""
        raw: Any = (
            conn.driver_connection if isinstance(conn, AsyncConnectionFairy) else conn
        )
        if self.name == "asyncpg":
            return bool(raw.is_in_transaction())
        return int(raw.info.transaction_status) != 0  # TransactionStatus.IDLE

    async def wait_for_sessions(self, admin: Any, tag: str, expected: int) -> None:
        """Wait until the server lists *expected* sessions tagged *tag*."""
        await wait_until_async(
            lambda: self.sessions(admin, tag),
            expected,
            f"{self.server} sessions tagged {tag}",
        )


# -- servers: checked once per session ---------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The PostgreSQL DSN, once the server answered."""
    dsn = os.environ.get(PG_DSN_ENV, DEFAULT_PG_DSN)
    module = None
    for name in PG_DRIVERS:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            break
    if module is None:
        pytest.skip("no PostgreSQL driver installed (psycopg or psycopg2)")
    try:
        module.connect(dsn, connect_timeout=5).close()
    except module.Error as err:
        unavailable(f"PostgreSQL at {redact_dsn(dsn)!r} unreachable: {err}")
    return dsn


@pytest.fixture(scope="session")
def mysql_params() -> dict[str, Any]:
    """Connect kwargs for the MariaDB/MySQL server, once it answered."""
    params = parse_mysql_url(os.environ.get(MYSQL_URL_ENV, DEFAULT_MYSQL_URL))
    module = None
    for name in MYSQL_DRIVERS:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            break
    if module is None:
        pytest.skip("no MySQL driver installed (PyMySQL or mysqlclient)")
    try:
        module.connect(connect_timeout=5, **params).close()
    except module.Error as err:
        unavailable(f"MariaDB at {describe_mysql(params)} unreachable: {err}")
    return params


# -- per test ------------------------------------------------------------------------


@pytest.fixture(params=PG_DRIVERS + MYSQL_DRIVERS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each server driver in turn, against its server."""
    name: str = request.param
    module = import_driver(name)
    if name in PG_DRIVERS:
        return PostgreSQLBackend(module, request.getfixturevalue("pg_dsn"))
    return MySQLBackend(module, request.getfixturevalue("mysql_params"))


@pytest.fixture
def admin(backend: Backend) -> Iterator[Any]:
    """An autocommit connection outside every pool, to inspect the server."""
    conn = backend.admin()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def tag() -> str:
    return new_tag()


@pytest.fixture
def table(backend: Backend, admin: Any) -> Iterator[str]:
    """A table of this test only, holding the row ``(1, 0)``."""
    name = f"poolhouse_{uuid.uuid4().hex[:12]}"
    run(admin, backend.create_table_sql(name))
    try:
        run(admin, f"INSERT INTO {name} (id, v) VALUES (1, 0)")
        yield name
    finally:
        run(admin, f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def pools() -> Iterator[list[Pool]]:
    """Pools to dispose of after the test, whatever happened in it."""
    made: list[Pool] = []
    yield made
    for pool in made:
        pool.dispose()


# -- asyncio drivers ----------------------------------------------------------------


@pytest.fixture(params=ASYNC_PG_DRIVERS, ids=["asyncpg", "psycopg-async"])
def async_backend(request: pytest.FixtureRequest) -> AsyncPostgreSQLBackend:
    """Each asyncio driver in turn, against PostgreSQL."""
    module = import_driver(request.param)
    return AsyncPostgreSQLBackend(module, request.getfixturevalue("pg_dsn"))


@pytest_asyncio.fixture
async def async_admin(async_backend: AsyncPostgreSQLBackend) -> AsyncIterator[Any]:
    """An autocommit connection outside every pool, to inspect the server."""
    conn = await async_backend.admin()
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def async_table(
    async_backend: AsyncPostgreSQLBackend, async_admin: Any
) -> AsyncIterator[str]:
    """A table of this test only, holding the row ``(1, 0)``."""
    name = f"poolhouse_{uuid.uuid4().hex[:12]}"
    await async_backend.run(
        async_admin, f"CREATE TABLE {name} (id integer PRIMARY KEY, v integer NOT NULL)"
    )
    try:
        await async_backend.run(
            async_admin, f"INSERT INTO {name} (id, v) VALUES (1, 0)"
        )
        yield name
    finally:
        # A failed test may leave a session holding a lock on it: fail, not hang.
        await async_backend.run(async_admin, "SET lock_timeout = '10s'")
        await async_backend.run(async_admin, f"DROP TABLE IF EXISTS {name}")


@pytest_asyncio.fixture
async def apools() -> AsyncIterator[list[AsyncPool]]:
    """asyncio pools to dispose of after the test, whatever happened in it."""
    made: list[AsyncPool] = []
    yield made
    for pool in made:
        await pool.dispose()
