"""create_pool() and pool_from_config(): classes, coercion, and error messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import ConnectionFairy
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import create_pool
from poolhouse import pool_from_config

from .conftest import FakeClock
from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect


def number(fairy: ConnectionFairy) -> int:
    """The fake driver's number of the connection behind *fairy*."""
    conn = fairy.dbapi_connection
    assert isinstance(conn, FakeConnection)
    return conn.number


class CustomPool(NullPool):
    """A user's pool class, found by dotted path."""


class NotAPool:
    """Something importable that is not a pool."""


@pytest.fixture(autouse=True)
def _restore_pool_loggers() -> Iterator[None]:
    """``echo`` configures a pool logger for the whole process: undo it."""
    manager = logging.Logger.manager
    before = {
        name: (logger.level, list(logger.handlers))
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for name, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        level, handlers = before.get(name, (logging.NOTSET, []))
        logger.setLevel(level)
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)


# -- create_pool ---------------------------------------------------------------


def test_create_pool_defaults_to_queuepool(dbapi: FakeDBAPI) -> None:
    pool = create_pool(dbapi.connect)
    assert type(pool) is QueuePool
    assert pool.size() == 5
    assert pool.timeout() == 30.0


@pytest.mark.parametrize(
    "cls", [QueuePool, NullPool, StaticPool, SingletonThreadPool, AssertionPool]
)
def test_create_pool_makes_the_requested_class(
    cls: type[Pool], dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = create_pool(dbapi.connect, poolclass=cls, dialect=dialect)
    assert type(pool) is cls
    with pool.connect() as conn:
        assert conn.dbapi_connection is dbapi.connections[0]


def test_create_pool_passes_arguments(dbapi: FakeDBAPI) -> None:
    pool = create_pool(dbapi.connect, QueuePool, pool_size=2, max_overflow=0, timeout=4)
    assert isinstance(pool, QueuePool)
    assert pool.size() == 2
    assert pool.timeout() == 4.0
    assert pool.status().startswith(
        "Pool size: 2  Connections in pool: 0 Current Overflow: -2 "
    )
    assert (pool.stats().pool_size, pool.stats().max_size) == (2, 2)


@pytest.mark.parametrize("bad", [dict, "QueuePool", object(), None])
def test_create_pool_rejects_a_non_pool_class(bad: Any, dbapi: FakeDBAPI) -> None:
    with pytest.raises(TypeError) as info:
        create_pool(dbapi.connect, poolclass=bad)
    message = str(info.value)
    assert "poolclass" in message
    assert repr(bad) in message
    assert "Pool subclass" in message


def test_create_pool_validates_through_the_class(dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError, match=r"pool_size=-3"):
        create_pool(dbapi.connect, pool_size=-3)


# -- pool_from_config: classes -------------------------------------------------


def test_empty_config_gives_a_default_queuepool(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({}, creator=dbapi.connect)
    assert type(pool) is QueuePool
    assert pool.size() == 5


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("QueuePool", QueuePool),
        ("NullPool", NullPool),
        ("StaticPool", StaticPool),
        ("SingletonThreadPool", SingletonThreadPool),
        ("AssertionPool", AssertionPool),
        ("poolhouse.NullPool", NullPool),
        ("poolhouse.QueuePool", QueuePool),
        (f"{__name__}.CustomPool", CustomPool),
    ],
)
def test_class_by_name_or_dotted_path(
    spec: str, cls: type[Pool], dbapi: FakeDBAPI
) -> None:
    pool = pool_from_config({"pool.class": spec}, creator=dbapi.connect)
    assert type(pool) is cls


def test_class_given_as_a_class(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({"pool.class": StaticPool}, creator=dbapi.connect)
    assert type(pool) is StaticPool


def test_the_creator_is_used(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({"pool.class": "NullPool"}, creator=dbapi.connect)
    with pool.connect() as conn:
        assert conn.dbapi_connection is dbapi.connections[0]


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("Bogus", ["'Bogus'", "QueuePool", "NullPool", "dotted path"]),
        ("queuepool", ["'queuepool'", "QueuePool"]),
        ("no_such_module.Pool", ["'no_such_module.Pool'", "no_such_module"]),
        ("poolhouse.NoSuchPool", ["'poolhouse.NoSuchPool'", "NoSuchPool"]),
        ("os.path", ["'os.path'", "Pool subclass"]),
        (f"{__name__}.NotAPool", [f"'{__name__}.NotAPool'", "Pool subclass"]),
        ("poolhouse.exc.PoolError", ["'poolhouse.exc.PoolError'", "Pool subclass"]),
    ],
)
def test_bad_class_is_a_value_error(
    spec: str, fragments: list[str], dbapi: FakeDBAPI
) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"pool.class": spec}, creator=dbapi.connect)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    "spec",
    ["Bogus", "no_such_module.Pool", "os.path", f"{__name__}.NotAPool"],
)
def test_bad_class_message_names_the_key(spec: str, dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"db.pool.class": spec}, "db.pool.", creator=dbapi.connect)
    assert "db.pool.class" in str(info.value)


def test_class_given_as_a_non_pool_class(dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"pool.class": dict}, creator=dbapi.connect)
    message = str(info.value)
    assert "pool.class" in message
    assert "dict" in message
    assert "Pool subclass" in message


def test_abstract_pool_class_is_a_value_error(dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"pool.class": "poolhouse.Pool"}, creator=dbapi.connect)
    message = str(info.value)
    assert "pool.class" in message
    assert "'poolhouse.Pool'" in message


# -- pool_from_config: keys ----------------------------------------------------


def test_keys_without_the_prefix_are_ignored(dbapi: FakeDBAPI) -> None:
    config = {
        "pool_size": "not even a number",
        "other.pool_size": "1",
        "poolsize": "x",
        "Pool.pool_size": "1",
        "pool.pool_size": "3",
        "sqlalchemy.url": "sqlite://",
    }
    pool = pool_from_config(config, creator=dbapi.connect)
    assert isinstance(pool, QueuePool)
    assert pool.size() == 3


def test_custom_prefix(dbapi: FakeDBAPI) -> None:
    config = {
        "db.pool.class": "SingletonThreadPool",
        "db.pool.pool_size": "2",
        "pool.pool_size": "nonsense, but not ours",
    }
    pool = pool_from_config(config, "db.pool.", creator=dbapi.connect)
    assert isinstance(pool, SingletonThreadPool)
    assert pool.size() == 2


def test_empty_prefix_takes_every_key(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {"class": "QueuePool", "pool_size": "4"}, "", creator=dbapi.connect
    )
    assert isinstance(pool, QueuePool)
    assert pool.size() == 4


@pytest.mark.parametrize(
    ("cls_name", "key"),
    [
        ("QueuePool", "pool.bogus"),
        ("QueuePool", "pool.poolsize"),
        ("QueuePool", "pool.creator"),
        ("QueuePool", "pool.events"),
        ("QueuePool", "pool.dialect"),
        ("NullPool", "pool.pool_size"),
        ("StaticPool", "pool.max_overflow"),
        ("SingletonThreadPool", "pool.timeout"),
        ("AssertionPool", "pool.use_lifo"),
    ],
)
def test_unknown_key_is_a_value_error(
    cls_name: str, key: str, dbapi: FakeDBAPI
) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"pool.class": cls_name, key: "1"}, creator=dbapi.connect)
    message = str(info.value)
    assert key in message  # the full key, as written in the config
    assert cls_name in message
    assert "pool.recycle" in message  # what is valid
    assert "pool.pre_ping" in message


def test_unknown_key_lists_the_class_options(dbapi: FakeDBAPI) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({"pool.bogus": "1"}, creator=dbapi.connect)
    message = str(info.value)
    for option in ("pool.pool_size", "pool.max_overflow", "pool.timeout"):
        assert option in message


def test_subclass_accepts_its_base_class_options(dbapi: FakeDBAPI) -> None:
    class BigQueuePool(QueuePool):
        pass

    pool = pool_from_config(
        {"pool.class": BigQueuePool, "pool.pool_size": "9", "pool.timeout": "1"},
        creator=dbapi.connect,
    )
    assert isinstance(pool, BigQueuePool)
    assert pool.size() == 9
    assert pool.timeout() == 1.0


# -- pool_from_config: coercion ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("pool.pool_size", "7", 7),
        ("pool.pool_size", " 7 ", 7),
        ("pool.pool_size", "0", 0),
    ],
)
def test_pool_size_is_coerced(
    key: str, raw: str, expected: int, dbapi: FakeDBAPI
) -> None:
    pool = pool_from_config({key: raw}, creator=dbapi.connect)
    assert isinstance(pool, QueuePool)
    assert pool.size() == expected


@pytest.mark.parametrize(("raw", "expected"), [("2.5", 2.5), ("0", 0.0), ("3", 3.0)])
def test_timeout_is_coerced(raw: str, expected: float, dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({"pool.timeout": raw}, creator=dbapi.connect)
    assert isinstance(pool, QueuePool)
    assert pool.timeout() == expected
    assert isinstance(pool.timeout(), float)


def test_max_overflow_is_coerced(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = pool_from_config(
        {"pool.pool_size": "1", "pool.max_overflow": "-1", "pool.timeout": "0"},
        creator=dbapi.connect,
    )
    assert isinstance(pool, QueuePool)
    held = [pool.connect() for _ in range(20)]  # no limit
    assert pool.overflow() == 19
    for conn in held:
        conn.close()


@pytest.mark.parametrize(
    ("raw", "expected_order"),
    [("true", [3, 2, 1]), ("YES", [3, 2, 1]), ("off", [1, 2, 3]), ("0", [1, 2, 3])],
)
def test_use_lifo_is_coerced(
    raw: str, expected_order: list[int], dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = pool_from_config(
        {"pool.pool_size": "3", "pool.use_lifo": raw}, creator=dbapi.connect
    )
    held = [pool.connect() for _ in range(3)]
    for conn in held:
        conn.close()
    again = [pool.connect() for _ in range(3)]
    assert [number(c) for c in again] == expected_order


@pytest.mark.parametrize(
    ("raw", "expected_call"),
    [
        ("commit", "commit"),
        (" Commit ", "commit"),
        ("rollback", "rollback"),
        ("true", "rollback"),
        ("none", None),
        ("false", None),
        ("", None),
    ],
)
def test_reset_on_return_is_coerced(
    raw: str, expected_call: str | None, dbapi: FakeDBAPI
) -> None:
    pool = pool_from_config(
        {"pool.class": "NullPool", "pool.reset_on_return": raw},
        creator=dbapi.connect,
    )
    pool.connect().close()
    resets = dbapi.calls_named("commit", "rollback")
    assert resets == ([(expected_call, 1)] if expected_call else [])


@pytest.mark.parametrize(("raw", "pings"), [("true", 1), ("on", 1), ("false", 0)])
def test_pre_ping_is_coerced(raw: str, pings: int, dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {"pool.pre_ping": raw, "pool.class": "StaticPool"}, creator=dbapi.connect
    )
    pool.connect().close()
    before = len(dbapi.calls_named("execute"))
    pool.connect().close()  # reuses the connection: pinged if pre_ping
    assert len(dbapi.calls_named("execute")) - before == pings


def test_recycle_is_coerced(dbapi: FakeDBAPI, clock: FakeClock) -> None:
    pool = pool_from_config(
        {"pool.recycle": "60", "pool.pool_size": "1"}, creator=dbapi.connect
    )
    pool._clock = clock
    pool.connect().close()
    clock.advance(59)
    with pool.connect() as conn:
        assert number(conn) == 1
    clock.advance(2)
    with pool.connect() as conn:
        assert number(conn) == 2


@pytest.mark.parametrize(
    ("raw", "level"),
    [("debug", logging.DEBUG), ("DEBUG", logging.DEBUG), ("true", logging.INFO)],
)
def test_echo_is_coerced(raw: str, level: int, dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {"pool.echo": raw, "pool.logging_name": "cfgecho"}, creator=dbapi.connect
    )
    assert pool.logger.name == "poolhouse.pool.QueuePool.cfgecho"
    assert pool.logger.level == level


@pytest.mark.parametrize("raw", ["none", "false", ""])
def test_echo_off_leaves_logging_alone(raw: str, dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {"pool.echo": raw, "pool.logging_name": "cfgquiet"}, creator=dbapi.connect
    )
    assert pool.logger.level == logging.NOTSET
    assert pool.logger.handlers == []


def test_logging_name_is_passed(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({"pool.logging_name": "orders"}, creator=dbapi.connect)
    assert "'orders'" in repr(pool)
    assert pool.logger.name == "poolhouse.pool.QueuePool.orders"


def test_empty_logging_name_means_none(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config({"pool.logging_name": ""}, creator=dbapi.connect)
    assert pool.logger.name == "poolhouse.pool.QueuePool"


def test_non_string_values_are_passed_as_they_are(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {"pool.pool_size": 4, "pool.timeout": 1.5, "pool.use_lifo": True},
        creator=dbapi.connect,
    )
    assert isinstance(pool, QueuePool)
    assert pool.size() == 4
    assert pool.timeout() == 1.5


def test_non_string_bad_value_is_rejected_by_the_class(dbapi: FakeDBAPI) -> None:
    with pytest.raises(TypeError, match=r"pool_size must be an int, got True"):
        pool_from_config({"pool.pool_size": True}, creator=dbapi.connect)


# -- pool_from_config: bad values ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "valid"),
    [
        ("pool.pool_size", "five", "int"),
        ("pool.pool_size", "5.0", "int"),
        ("pool.max_overflow", "many", "int"),
        ("pool.timeout", "soon", "float"),
        ("pool.recycle", "hourly", "float"),
        ("pool.use_lifo", "maybe", "true"),
        ("pool.pre_ping", "2", "false"),
        ("pool.reset_on_return", "flush", "rollback"),
        ("pool.reset_on_return", "flush", "commit"),
        ("pool.echo", "loud", "debug"),
        ("pool.echo", "info", "debug"),
    ],
)
def test_bad_value_names_key_value_and_what_is_valid(
    key: str, raw: str, valid: str, dbapi: FakeDBAPI
) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({key: raw}, creator=dbapi.connect)
    message = str(info.value)
    assert key in message
    assert repr(raw) in message
    assert valid in message
    assert "QueuePool" in message


@pytest.mark.parametrize(
    ("key", "raw", "rule"),
    [
        ("pool.pool_size", "-1", "positive int"),
        ("pool.max_overflow", "-2", "-1"),
        ("pool.timeout", "-1", ">= 0"),
        ("pool.timeout", "nan", ">= 0"),
        ("pool.recycle", "-5", "-1"),
    ],
)
def test_out_of_range_value_names_the_key(
    key: str, raw: str, rule: str, dbapi: FakeDBAPI
) -> None:
    with pytest.raises(ValueError) as info:
        pool_from_config({key: raw}, creator=dbapi.connect)
    message = str(info.value)
    assert key in message  # the config key, not only the argument name
    assert raw in message
    assert rule in message


def test_pool_size_zero_with_max_overflow_zero_means_no_limit(
    dbapi: FakeDBAPI,
) -> None:
    pool = pool_from_config(
        {"pool.pool_size": "0", "pool.max_overflow": "0", "pool.timeout": "0"},
        creator=dbapi.connect,
    )
    assert isinstance(pool, QueuePool)
    assert pool.size() == 0
    held = [pool.connect() for _ in range(20)]  # timeout=0: none waited
    assert (pool.checkedout(), pool.overflow()) == (20, 0)
    assert "Current Overflow: 0 " in pool.status()
    assert pool.stats().max_size is None
    for conn in held:
        conn.close()
    assert pool.checkedin() == 20  # all kept
    assert len(dbapi.open_connections()) == 20


def test_resilience_options_are_read_from_strings(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {
            "pool.max_uses": "100",
            "pool.max_lifetime": "1800",
            "pool.ping_interval": "0.5",
        },
        creator=dbapi.connect,
    )
    assert (pool._max_uses, pool._max_lifetime, pool._ping_interval) == (100, 1800, 0.5)
    pool = pool_from_config(
        {"pool.max_uses": "none", "pool.max_lifetime": ""}, creator=dbapi.connect
    )
    assert (pool._max_uses, pool._max_lifetime) == (None, None)


def test_worker_and_leak_options_are_read_from_strings(dbapi: FakeDBAPI) -> None:
    pool = pool_from_config(
        {
            "pool.background": "true",
            "pool.min_idle": "2",
            "pool.max_idle_time": "300",
            "pool.reconnect_backoff_max": "5",
            "pool.reconnect_timeout": "60",
            "pool.leak_threshold": "30",
        },
        creator=dbapi.connect,
    )
    assert isinstance(pool, QueuePool)
    assert pool._background_worker is True
    assert (pool._min_idle, pool._max_idle_time) == (2, 300.0)
    assert (pool._reconnect_backoff_max, pool._reconnect_timeout) == (5.0, 60.0)
    assert pool._leak_threshold == 30.0
    pool = pool_from_config(
        {"pool.reconnect_timeout": "none", "pool.leak_threshold": ""},
        creator=dbapi.connect,
    )
    assert isinstance(pool, QueuePool)
    assert (pool._reconnect_timeout, pool._leak_threshold) == (None, None)
