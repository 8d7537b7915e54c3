"""poolhouse.compat.psycopg2 against psycopg2.pool, on the real PostgreSQL.

The parity tests run the same scenario on psycopg2's own
``ThreadedConnectionPool`` and on the facade, and expect the same results.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from poolhouse import exc
from poolhouse.compat import psycopg2 as compat

from .conftest import import_driver
from .conftest import scalar
from .conftest import wait_until

pytestmark = pytest.mark.realdb

psycopg2 = import_driver("psycopg2")
extensions = importlib.import_module("psycopg2.extensions")
extras = importlib.import_module("psycopg2.extras")
pg_pool = importlib.import_module("psycopg2.pool")

Make = Callable[..., Any]


@pytest.fixture
def admin(pg_dsn: str) -> Iterator[Any]:
    conn = psycopg2.connect(pg_dsn, application_name="poolhouse-admin")
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def tag() -> str:
    return f"poolhouse-compat-{uuid.uuid4().hex[:12]}"


def sessions(admin: Any, tag: str) -> int:
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    return int(scalar(admin, sql, (tag,)))


@pytest.fixture
def made() -> Iterator[list[Any]]:
    pools: list[Any] = []
    yield pools
    for pool in pools:
        if not pool.closed:
            pool.closeall()


@pytest.fixture(
    params=[pg_pool.ThreadedConnectionPool, compat.ThreadedConnectionPool],
    ids=["psycopg2.pool", "poolhouse.compat"],
)
def make(
    request: pytest.FixtureRequest, pg_dsn: str, tag: str, made: list[Any]
) -> Make:
    """Make a pool of the class under test, its sessions tagged *tag*."""
    cls = request.param

    def factory(minconn: int, maxconn: int) -> Any:
        pool = cls(minconn, maxconn, pg_dsn, application_name=tag)
        made.append(pool)
        return pool

    return factory


@pytest.fixture
def facade(pg_dsn: str, tag: str, made: list[Any]) -> Make:
    def factory(minconn: int, maxconn: int, **pool_options: Any) -> Any:
        pool = compat.ThreadedConnectionPool(
            minconn, maxconn, pg_dsn, application_name=tag, pool_options=pool_options
        )
        made.append(pool)
        return pool

    return factory


# -- the same behaviour as psycopg2.pool ----------------------------------------------


def test_getconn_returns_the_driver_connection(make: Make) -> None:
    pool = make(0, 2)
    conn = pool.getconn()
    assert type(conn) is extensions.connection
    extras.register_uuid(conn_or_curs=conn)
    value = uuid.uuid4()
    assert scalar(conn, "SELECT %s::uuid", (value,)) == value
    pool.putconn(conn)


def test_same_key_same_connection(make: Make) -> None:
    pool = make(0, 3)
    first = pool.getconn("a")
    assert pool.getconn("a") is first
    other = pool.getconn("b")
    assert other is not first
    pool.putconn(first)  # the key is found from the connection
    pool.putconn(other, key="b")
    again = pool.getconn("a")
    pool.putconn(again, "a")


def test_putting_an_unknown_connection(make: Make, pg_dsn: str) -> None:
    pool = make(0, 2)
    stranger = psycopg2.connect(pg_dsn)
    try:
        with pytest.raises(pg_pool.PoolError) as info:
            pool.putconn(stranger)
    finally:
        stranger.close()
    assert str(info.value) == "trying to put unkeyed connection"
    conn = pool.getconn()
    pool.putconn(conn)
    with pytest.raises(pg_pool.PoolError, match="^trying to put unkeyed"):
        pool.putconn(conn)


def test_exhausted_at_maxconn(make: Make) -> None:
    pool = make(0, 2)
    held = [pool.getconn(), pool.getconn()]
    with pytest.raises(psycopg2.Error) as info:
        pool.getconn()
    assert isinstance(info.value, pg_pool.PoolError)
    assert str(info.value) == "connection pool exhausted"
    for conn in held:
        pool.putconn(conn)
    pool.putconn(pool.getconn())


def test_closeall_closes_everything(make: Make, admin: Any, tag: str) -> None:
    pool = make(1, 3)
    held = pool.getconn()
    pool.closeall()
    assert pool.closed
    assert held.closed
    wait_until(lambda: sessions(admin, tag), 0, "sessions after closeall()")
    for call in (pool.getconn, lambda: pool.putconn(held), pool.closeall):
        with pytest.raises(pg_pool.PoolError) as info:
            call()
        assert str(info.value) == "connection pool is closed"


def test_minconn_opened_at_construction_and_kept(
    make: Make, admin: Any, tag: str
) -> None:
    pool = make(2, 4)
    wait_until(lambda: sessions(admin, tag), 2, "sessions after construction")
    held = [pool.getconn() for _ in range(4)]
    assert sessions(admin, tag) == 4
    for conn in held:
        pool.putconn(conn)
    # Beyond minconn idle, a returned connection is closed.
    wait_until(lambda: sessions(admin, tag), 2, "sessions after putconn()")


def test_the_kept_connection_is_reused(make: Make, admin: Any, tag: str) -> None:
    """Beyond minconn, returned connections are closed, and the one kept
    serves every later checkout: no new session per cycle."""
    pool = make(1, 3)
    first, second = pool.getconn(), pool.getconn()
    pool.putconn(first)
    pool.putconn(second)
    backends = set()
    for _ in range(5):
        conn = pool.getconn()
        backends.add(conn.get_backend_pid())
        pool.putconn(conn)
    assert len(backends) == 1
    # The closed surplus sessions leave the server's list on its schedule.
    wait_until(lambda: sessions(admin, tag), 1, "sessions after the cycles")


def test_one_key_asked_for_by_two_threads_at_once(
    pg_dsn: str, tag: str, made: list[Any]
) -> None:
    """The second getconn(key) while the first is still connecting gets the
    same connection, as with psycopg2.pool, not a second session."""
    connecting = threading.Event()
    go_on = threading.Event()

    def slow_connect(*args: Any, **kwargs: Any) -> Any:
        connecting.set()
        assert go_on.wait(10)
        return psycopg2.connect(*args, **kwargs)

    pool = compat.ThreadedConnectionPool(
        0, 1, pg_dsn, application_name=tag, connect=slow_connect
    )
    made.append(pool)
    found_pending = threading.Event()

    class NotingDict(dict[Any, Any]):
        """Tells when a caller finds the key being opened by another."""

        def get(self, key: Any, default: Any = None) -> Any:
            value = super().get(key, default)
            if value is not None:
                found_pending.set()
            return value

    pool._pending = NotingDict()
    got: list[Any] = []
    first = threading.Thread(target=lambda: got.append(pool.getconn("k")))
    first.start()
    assert connecting.wait(10)
    second = threading.Thread(target=lambda: got.append(pool.getconn("k")))
    second.start()
    assert found_pending.wait(10)  # the second caller waits for the first
    go_on.set()
    first.join(10)
    second.join(10)
    assert len(got) == 2 and got[0] is got[1]
    pool.putconn(got[0])


def test_automatic_keys_never_meet_the_applications(make: Make) -> None:
    pool = make(0, 2)
    mine = pool.getconn(1)
    other = pool.getconn()
    if isinstance(pool, compat.AbstractConnectionPool):
        assert other is not mine  # psycopg2.pool hands out the same one here
    pool.putconn(mine, key=1)
    if other is not mine:
        pool.putconn(other)


@pytest.mark.parametrize("sql", ["SELECT 1", "SELECT no_such_column"])
def test_put_rolls_back(make: Make, sql: str) -> None:
    pool = make(1, 1)
    conn = pool.getconn()
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.ProgrammingError:
            pass
    assert conn.get_transaction_status() != extensions.TRANSACTION_STATUS_IDLE
    pool.putconn(conn)
    again = pool.getconn()
    assert again is conn
    idle = extensions.TRANSACTION_STATUS_IDLE
    assert again.get_transaction_status() == idle
    assert scalar(again, "SELECT 1") == 1
    pool.putconn(again)


def test_put_with_close(make: Make, admin: Any, tag: str) -> None:
    pool = make(1, 2)
    conn = pool.getconn()
    pool.putconn(conn, close=True)
    assert conn.closed
    wait_until(lambda: sessions(admin, tag), 0, "sessions after putconn(close=True)")
    fresh = pool.getconn()
    assert fresh is not conn and scalar(fresh, "SELECT 1") == 1
    pool.putconn(fresh)


def test_a_closed_connection_is_discarded(make: Make) -> None:
    pool = make(1, 1)
    conn = pool.getconn()
    conn.close()
    pool.putconn(conn)
    fresh = pool.getconn()
    assert fresh is not conn and not fresh.closed
    pool.putconn(fresh)


# -- what the facade adds -------------------------------------------------------------


def test_timeout_waits_for_a_returned_connection(facade: Make) -> None:
    pool = facade(1, 1, timeout=10)
    held = pool.getconn()
    got: list[Any] = []
    failed: list[BaseException] = []

    def wait_for_one() -> None:
        try:
            got.append(pool.getconn())
        except BaseException as err:  # noqa: BLE001  # asserted below
            failed.append(err)

    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    wait_until(lambda: pool._pool.stats().waiting, 1, "callers waiting")
    pool.putconn(held)
    waiter.join(10)
    assert not waiter.is_alive()
    assert failed == []
    assert got == [held]
    pool.putconn(held)


def test_timeout_expired_is_exhausted(facade: Make) -> None:
    pool = facade(0, 1, timeout=0.05)
    held = pool.getconn()
    with pytest.raises(pg_pool.PoolError) as info:
        pool.getconn()
    assert str(info.value) == "connection pool exhausted"
    cause = info.value.__cause__
    assert isinstance(cause, exc.TimeoutError)
    assert cause.timeout == 0.05
    pool.putconn(held)


def test_pre_ping_replaces_a_killed_connection(
    facade: Make, admin: Any, tag: str
) -> None:
    pool = facade(1, 1, pre_ping=True)
    conn = pool.getconn()
    pid = conn.get_backend_pid()
    pool.putconn(conn)
    assert scalar(admin, "SELECT pg_terminate_backend(%s)", (pid,)) is True
    wait_until(lambda: sessions(admin, tag), 0, "sessions after the kill")
    fresh = pool.getconn()
    assert fresh.get_backend_pid() != pid
    assert scalar(fresh, "SELECT 1") == 1
    pool.putconn(fresh)


def test_psycopg3_connections(pg_dsn: str, tag: str, made: list[Any]) -> None:
    psycopg = import_driver("psycopg")
    pool = compat.ThreadedConnectionPool(
        1, 2, pg_dsn, connect=psycopg.connect, application_name=tag
    )
    made.append(pool)
    conn = pool.getconn()
    assert isinstance(conn, psycopg.Connection)
    conn.execute("SELECT 1")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    pool.putconn(conn)
    again = pool.getconn()
    assert again is conn
    assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    pool.putconn(again)
    pool.closeall()
    assert conn.closed


def test_error_is_psycopg2s() -> None:
    assert issubclass(compat.PoolError, pg_pool.PoolError)
