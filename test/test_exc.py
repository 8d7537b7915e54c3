"""poolhouse.exc: the hierarchy, the attributes, and pickling."""

from __future__ import annotations

import builtins
import copy
import pickle

import pytest

from poolhouse import QueuePool
from poolhouse import exc

from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect

ALL_ERRORS: list[type[exc.PoolError]] = [
    exc.PoolError,
    exc.TimeoutError,
    exc.DisconnectionError,
    exc.InvalidatePoolError,
    exc.InvalidRequestError,
    exc.PoolClosedError,
]


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (exc.PoolError, (Exception,)),
        (exc.TimeoutError, (exc.PoolError, builtins.TimeoutError, OSError)),
        (exc.DisconnectionError, (exc.PoolError,)),
        (exc.InvalidatePoolError, (exc.DisconnectionError, exc.PoolError)),
        (exc.InvalidRequestError, (exc.PoolError,)),
        (exc.PoolClosedError, (exc.InvalidRequestError, exc.PoolError)),
    ],
)
def test_hierarchy(cls: type[exc.PoolError], bases: tuple[type, ...]) -> None:
    for base in bases:
        assert issubclass(cls, base)


@pytest.mark.parametrize(
    ("cls", "not_a"),
    [
        (exc.PoolError, builtins.TimeoutError),
        (exc.DisconnectionError, exc.InvalidRequestError),
        (exc.InvalidRequestError, exc.DisconnectionError),
        (exc.DisconnectionError, exc.InvalidatePoolError),
        (exc.InvalidRequestError, exc.PoolClosedError),
    ],
)
def test_hierarchy_is_not_too_broad(cls: type[exc.PoolError], not_a: type) -> None:
    assert not issubclass(cls, not_a)


def test_names_are_public() -> None:
    for name in (
        "PoolError",
        "TimeoutError",
        "DisconnectionError",
        "InvalidatePoolError",
        "InvalidRequestError",
        "PoolClosedError",
    ):
        assert isinstance(getattr(exc, name), type), name


def test_pool_timeout_is_not_the_builtin_itself() -> None:
    assert exc.TimeoutError is not builtins.TimeoutError


def test_timeout_error_is_caught_by_a_builtin_handler() -> None:
    with pytest.raises(builtins.TimeoutError) as info:
        raise exc.TimeoutError("too slow", timeout=2.0)
    assert isinstance(info.value, exc.TimeoutError)
    assert info.value.timeout == 2.0


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_message_and_pool_attribute(cls: type[exc.PoolError]) -> None:
    pool = object()
    err = cls("what happened; what to do", pool=pool)
    assert str(err) == "what happened; what to do"
    assert err.args == ("what happened; what to do",)
    assert err.pool is pool


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_defaults(cls: type[exc.PoolError]) -> None:
    err = cls()
    assert err.pool is None
    assert str(err) == ""


def test_timeout_attribute_defaults_to_none() -> None:
    assert exc.TimeoutError("x").timeout is None


@pytest.mark.parametrize("cls", ALL_ERRORS)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_drops_pool_and_keeps_message(
    cls: type[exc.PoolError], protocol: int, dbapi: FakeDBAPI
) -> None:
    pool = QueuePool(dbapi.connect)  # holds locks: cannot be pickled
    err = cls("the message", pool=pool)
    err.extra = "kept"  # type: ignore[attr-defined]  # any attribute survives
    back = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(back) is cls
    assert str(back) == "the message"
    assert back.args == ("the message",)
    assert back.pool is None
    assert back.extra == "kept"  # type: ignore[attr-defined]  # set above
    assert err.pool is pool  # the original is untouched


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_timeout(protocol: int) -> None:
    err = exc.TimeoutError("slow", pool=object(), timeout=1.25)
    back = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert isinstance(back, exc.TimeoutError)
    assert isinstance(back, builtins.TimeoutError)
    assert back.timeout == 1.25
    assert back.pool is None
    assert str(back) == "slow"


def test_copy_drops_pool_too() -> None:
    err = exc.TimeoutError("slow", pool=object(), timeout=3.0)
    for clone in (copy.copy(err), copy.deepcopy(err)):
        assert isinstance(clone, exc.TimeoutError)
        assert clone.timeout == 3.0
        assert clone.pool is None
        assert str(clone) == "slow"


def test_a_real_timeout_error_round_trips(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=0, dialect=dialect
    )
    with pool.connect():
        with pytest.raises(exc.TimeoutError) as info:
            pool.connect()
    err = info.value
    assert err.pool is pool
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err)
    assert repr(pool) in str(back)  # the message still names the pool
    assert back.timeout == err.timeout == 0.0
    assert back.pool is None
