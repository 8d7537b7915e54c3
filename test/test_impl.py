"""The pool classes: QueuePool, NullPool, StaticPool, SingletonThreadPool,
AssertionPool."""

from __future__ import annotations

import itertools
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import AssertionPool
from poolhouse import ConnectionFairy
from poolhouse import ConnectionRecord
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import QueuePool
from poolhouse import SingletonThreadPool
from poolhouse import StaticPool
from poolhouse import exc
from poolhouse._queue import Marker
from poolhouse._queue import SlotQueue
from poolhouse._sync import _acompat as sync_acompat

from .conftest import FakeClock
from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError

ALL_CLASSES: list[type[Pool]] = [
    QueuePool,
    NullPool,
    StaticPool,
    SingletonThreadPool,
    AssertionPool,
]

# -- helpers -------------------------------------------------------------------


def number(fairy: ConnectionFairy) -> int:
    """The fake driver's number of the connection behind *fairy*."""
    conn = fairy.dbapi_connection
    assert isinstance(conn, FakeConnection)
    return conn.number


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll *predicate* until it holds; ``False`` if it did not within *timeout*."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


class Worker(threading.Thread):
    """Run *fn* in a daemon thread, keeping its result or its exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as err:
            self.error = err
        finally:
            self.finished.set()

    def join_or_fail(self, timeout: float = 5.0) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} did not finish in {timeout}s"


class RecordingSlots(SlotQueue[Any, Any]):
    """A SlotQueue that logs, under the pool lock, who queued and who was served."""

    def __init__(self, pool_size: int, max_overflow: int, use_lifo: bool) -> None:
        super().__init__(pool_size, max_overflow, use_lifo)
        self.changed = threading.Condition()
        #: Waiters in the order they queued, with the thread that queued.
        self.arrivals: list[tuple[object, int]] = []
        #: Waiters in the order they were granted a connection or a slot.
        self.grants: list[object] = []

    def enqueue(self, waiter: Any) -> None:
        super().enqueue(waiter)
        with self.changed:
            self.arrivals.append((waiter, threading.get_ident()))
            self.changed.notify_all()

    def give_back(self, item: ConnectionRecord) -> Any:
        heir = super().give_back(item)
        if heir is not None and not isinstance(heir, Marker):
            self.grants.append(heir)
        return heir

    def free_slot(self, closed: bool = False) -> Any:
        heir = super().free_slot(closed)
        if heir is not None:
            self.grants.append(heir)
        return heir

    def wait_for_arrivals(self, n: int, timeout: float = 5.0) -> bool:
        """Block until *n* waiters have queued in total."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.arrivals) >= n, timeout)


def recording(pool: QueuePool) -> RecordingSlots:
    """Swap a new, unused *pool*'s SlotQueue for a RecordingSlots."""
    assert pool._slots.opened == 0
    slots = RecordingSlots(pool._pool_size, pool._max_overflow, pool._use_lifo)
    pool._slots = slots
    return slots


class GatedCloseDialect(FakeDialect):
    """Blocks in do_close() for the connections numbered in ``gated``."""

    def __init__(self) -> None:
        self.gated: set[int] = set()
        self.closing = threading.Event()
        self.gate = threading.Event()

    def do_close(self, dbapi_connection: Any) -> None:
        if dbapi_connection.number in self.gated:
            self.closing.set()
            if not self.gate.wait(5):
                raise RuntimeError("the test never opened the gate")
        super().do_close(dbapi_connection)


def make(cls: type[Pool], dbapi: FakeDBAPI, **kw: Any) -> Pool:
    kw.setdefault("dialect", FakeDialect())
    return cls(dbapi.connect, **kw)


# -- constructor arguments -------------------------------------------------------


def _listener(*args: Any) -> None:
    pass


class _HalfDialect:
    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_close(self, dbapi_connection: Any) -> None:
        pass


class _NoPingDialect(_HalfDialect):
    """Has what every pool needs, but no do_ping (nor is_disconnect)."""

    def do_commit(self, dbapi_connection: Any) -> None:
        pass


# (kwargs, exception, fragments the message must contain)
_Row = tuple[dict[str, Any], type[Exception], list[str]]

BASE_ARGUMENT_ROWS: list[tuple[str, _Row]] = [
    ("creator-int", ({"creator": 42}, TypeError, ["creator", "42", "callable"])),
    (
        "creator-two-args",
        (
            {"creator": lambda a, b: None},
            TypeError,
            ["creator", "requires 2 positional", "none, or one"],
        ),
    ),
    ("recycle-below-minus-1", ({"recycle": -2}, ValueError, ["recycle=-2", "-1"])),
    ("recycle-between", ({"recycle": -0.5}, ValueError, ["recycle=-0.5", ">= 0"])),
    ("recycle-nan", ({"recycle": math.nan}, ValueError, ["recycle=nan", ">= 0"])),
    ("recycle-str", ({"recycle": "60"}, TypeError, ["recycle", "'60'", "number"])),
    ("recycle-bool", ({"recycle": True}, TypeError, ["recycle", "True", "number"])),
    ("echo-str", ({"echo": "loud"}, ValueError, ["echo='loud'", "'debug'"])),
    ("echo-info", ({"echo": "info"}, ValueError, ["echo='info'", "True"])),
    ("echo-int", ({"echo": 2}, ValueError, ["echo=2", "None"])),
    (
        "logging_name-int",
        ({"logging_name": 5}, TypeError, ["logging_name", "5", "str"]),
    ),
    (
        "logging_name-bytes",
        ({"logging_name": b"x"}, TypeError, ["logging_name", "b'x'", "str"]),
    ),
    (
        "reset_on_return-str",
        (
            {"reset_on_return": "flush"},
            ValueError,
            ["reset_on_return='flush'", "'rollback'", "'commit'", "None"],
        ),
    ),
    (
        "reset_on_return-unhashable",
        ({"reset_on_return": []}, ValueError, ["reset_on_return=[]", "'rollback'"]),
    ),
    (
        "events-not-pairs",
        ({"events": [_listener]}, TypeError, ["events", "_listener", "pairs"]),
    ),
    (
        "events-triples",
        (
            {"events": [(_listener, "checkout", 1)]},
            TypeError,
            ["events", "'checkout'", "pairs"],
        ),
    ),
    (
        "events-not-iterable",
        ({"events": 5}, TypeError, ["events", "5", "pairs"]),
    ),
    (
        "events-unknown-name",
        (
            {"events": [(_listener, "chekout")]},
            ValueError,
            ["events", "'chekout'", "checkout"],
        ),
    ),
    (
        "events-fn-not-callable",
        ({"events": [(42, "checkout")]}, TypeError, ["events", "42", "callable"]),
    ),
    (
        "dialect-object",
        (
            {"dialect": object()},
            TypeError,
            ["dialect", "lacks do_rollback, do_commit, do_close;", "Dialect"],
        ),
    ),
    (
        "dialect-half",
        (
            {"dialect": _HalfDialect()},
            TypeError,
            ["dialect", "_HalfDialect", "lacks do_commit;"],
        ),
    ),
    (
        "dialect-no-ping-with-pre_ping",
        (
            {"dialect": _NoPingDialect(), "pre_ping": True},
            TypeError,
            ["dialect", "_NoPingDialect", "lacks do_ping;", "pre_ping=True"],
        ),
    ),
    ("pre_ping-str", ({"pre_ping": "yes"}, TypeError, ["pre_ping", "'yes'", "True"])),
    ("pre_ping-int", ({"pre_ping": 1}, TypeError, ["pre_ping", "1", "True or False"])),
]

QUEUEPOOL_ARGUMENT_ROWS: list[tuple[str, _Row]] = [
    ("pool_size-negative", ({"pool_size": -1}, ValueError, ["pool_size=-1", "0"])),
    ("pool_size-float", ({"pool_size": 2.5}, TypeError, ["pool_size", "2.5", "int"])),
    ("pool_size-bool", ({"pool_size": True}, TypeError, ["pool_size", "True", "int"])),
    ("pool_size-str", ({"pool_size": "5"}, TypeError, ["pool_size", "'5'", "int"])),
    (
        "max_overflow-below-minus-1",
        ({"max_overflow": -2}, ValueError, ["max_overflow=-2", "-1 (no limit)"]),
    ),
    (
        "max_overflow-float",
        ({"max_overflow": 1.5}, TypeError, ["max_overflow", "1.5", "int"]),
    ),
    (
        "max_overflow-bool",
        ({"max_overflow": False}, TypeError, ["max_overflow", "False", "int"]),
    ),
    ("timeout-negative", ({"timeout": -1}, ValueError, ["timeout=-1", ">= 0"])),
    ("timeout-nan", ({"timeout": math.nan}, ValueError, ["timeout=nan", ">= 0"])),
    ("timeout-str", ({"timeout": "30"}, TypeError, ["timeout", "'30'", "seconds"])),
    ("timeout-bool", ({"timeout": True}, TypeError, ["timeout", "True", "seconds"])),
    ("use_lifo-int", ({"use_lifo": 1}, TypeError, ["use_lifo", "1", "True or False"])),
    ("use_lifo-str", ({"use_lifo": "yes"}, TypeError, ["use_lifo", "'yes'", "True"])),
]

SINGLETON_ARGUMENT_ROWS: list[tuple[str, _Row]] = [
    ("pool_size-zero", ({"pool_size": 0}, ValueError, ["pool_size=0", "positive"])),
    (
        "pool_size-negative",
        ({"pool_size": -1}, ValueError, ["pool_size=-1", "positive"]),
    ),
    ("pool_size-float", ({"pool_size": 1.5}, TypeError, ["pool_size", "1.5", "int"])),
    ("pool_size-bool", ({"pool_size": True}, TypeError, ["pool_size", "True", "int"])),
]

BAD_ARGUMENTS = (
    [
        pytest.param(cls, *row, id=f"{cls.__name__}-{name}")
        for cls in ALL_CLASSES
        for name, row in BASE_ARGUMENT_ROWS
    ]
    + [
        pytest.param(QueuePool, *row, id=f"QueuePool-{name}")
        for name, row in QUEUEPOOL_ARGUMENT_ROWS
    ]
    + [
        pytest.param(SingletonThreadPool, *row, id=f"SingletonThreadPool-{name}")
        for name, row in SINGLETON_ARGUMENT_ROWS
    ]
)


@pytest.mark.parametrize(("cls", "kwargs", "error", "fragments"), BAD_ARGUMENTS)
def test_bad_argument_is_rejected_at_construction(
    cls: type[Pool],
    kwargs: dict[str, Any],
    error: type[Exception],
    fragments: list[str],
    dbapi: FakeDBAPI,
) -> None:
    kwargs = dict(kwargs)
    creator = kwargs.pop("creator", dbapi.connect)
    with pytest.raises(error) as info:
        cls(creator, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message
    assert dbapi.calls == []  # nothing was opened


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_dialect_without_ping_or_is_disconnect_is_accepted_without_pre_ping(
    cls: type[Pool], dbapi: FakeDBAPI
) -> None:
    dialect = _NoPingDialect()
    pool = cls(dbapi.connect, dialect=dialect)
    assert pool.dialect is dialect
    with pool.connect() as conn:
        assert conn.is_valid
    assert dbapi.calls == [("connect", 1)]  # the dialect's methods do nothing


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool_size": 0, "max_overflow": 3},
        {"pool_size": 1, "max_overflow": 0},
        {"pool_size": 0, "max_overflow": -1},
        {"pool_size": 0, "max_overflow": 0},
        {"timeout": 0},
        {"timeout": 2},
        {"timeout": None},
        {"use_lifo": True},
        {"recycle": -1},
        {"recycle": 0},
        {"recycle": 3600.5},
        {"echo": None},
        {"echo": False},
        {"logging_name": None},
        {"reset_on_return": "rollback"},
        {"reset_on_return": "commit"},
        {"reset_on_return": None},
        {"reset_on_return": False},
        {"reset_on_return": True},
        {"events": []},
        {"events": [(_listener, "checkout")]},
        {"pre_ping": True},
    ],
)
def test_valid_queuepool_arguments_are_accepted(
    kwargs: dict[str, Any], dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect, **kwargs)
    with pool.connect() as conn:
        assert conn.is_valid
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0


# -- QueuePool: counters -----------------------------------------------------------


def test_queuepool_defaults(dbapi: FakeDBAPI) -> None:
    pool = QueuePool(dbapi.connect)
    assert pool.size() == 5
    assert pool.timeout() == 30.0
    assert pool.checkedin() == 0
    assert pool.checkedout() == 0
    assert pool.overflow() == -5
    assert "Current Overflow: -5 " in pool.status()
    assert pool.stats().max_size == 15


def test_overflow_connections_are_closed_on_return(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=1, max_overflow=2, dialect=dialect)
    held = [pool.connect() for _ in range(3)]
    assert pool.overflow() == 2
    for conn in held:
        conn.close()
    assert pool.overflow() == 0
    assert pool.checkedin() == 1
    assert len(dbapi.open_connections()) == 1
    assert [c[0] for c in dbapi.calls].count("close") == 2
    # Each returned connection was reset before being closed or kept.
    assert len(dbapi.calls_named("rollback")) == 3


def test_max_overflow_minus_one_means_no_limit(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=2, max_overflow=-1, timeout=0, dialect=dialect
    )
    held = [pool.connect() for _ in range(40)]
    assert pool.overflow() == 38
    assert pool.checkedout() == 40
    assert "Current Overflow: 38 " in pool.status()
    assert pool.stats().max_size is None
    for conn in held:
        conn.close()
    assert pool.checkedin() == 2
    assert len(dbapi.open_connections()) == 2


def test_pool_size_zero_ignores_max_overflow_and_keeps_every_idle_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=0, max_overflow=3, timeout=0, dialect=dialect
    )
    held = [pool.connect() for _ in range(3)]
    assert pool.overflow() == 0
    # No limit at all: max_overflow=3 does not bound the total.
    held += [pool.connect() for _ in range(3)]
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, 6, 0)
    assert (
        "Current Overflow: 0 Current Checked out connections: 6 Waiting: 0"
        in pool.status()
    )
    for conn in held:
        conn.close()
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (6, 0, 0)
    assert dbapi.calls_named("close") == []
    assert len(dbapi.open_connections()) == 6


def test_pool_size_zero_and_no_overflow_limit(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=0, max_overflow=-1, dialect=dialect)
    held = [pool.connect() for _ in range(25)]
    for conn in held:
        conn.close()
    assert pool.checkedin() == 25
    assert dbapi.calls_named("close") == []


def test_idle_connection_is_reused(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = QueuePool(dbapi.connect, pool_size=2, dialect=dialect)
    with pool.connect() as conn:
        first = number(conn)
    with pool.connect() as conn:
        assert number(conn) == first
    assert dbapi.calls == [("connect", 1), ("rollback", 1), ("rollback", 1)]


@pytest.mark.parametrize(
    ("use_lifo", "expected"), [(False, [1, 2, 3]), (True, [3, 2, 1])]
)
def test_use_lifo_picks_which_idle_connection_is_reused(
    use_lifo: bool, expected: list[int], dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=3, use_lifo=use_lifo, dialect=dialect)
    held = [pool.connect() for _ in range(3)]
    for conn in held:  # returned in the order 1, 2, 3
        conn.close()
    again = [pool.connect() for _ in range(3)]
    assert [number(c) for c in again] == expected


def test_invalidated_connection_is_replaced_at_next_checkout(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, pool_size=1, max_overflow=0, dialect=dialect)
    conn = pool.connect()
    conn.invalidate()
    conn.close()
    assert dbapi.open_connections() == []
    assert pool.checkedin() == 1  # the slot stays, empty
    assert pool.overflow() == 0
    with pool.connect() as conn:
        assert number(conn) == 2
    assert pool.checkedin() == 1
    assert pool.checkedout() == 0


def test_failed_create_frees_its_overflow_slot(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=1, timeout=0, dialect=dialect
    )
    held = pool.connect()
    dbapi.refuse_connect = FakeOperationalError("server is down")
    for _ in range(3):  # a slot leak would run out of room here
        with pytest.raises(FakeOperationalError):
            pool.connect()
        assert pool.overflow() == 0
        assert pool.checkedout() == 1
    dbapi.refuse_connect = None
    with pool.connect() as extra:
        assert number(extra) == 2
        assert pool.overflow() == 1
    held.close()
    assert pool.checkedout() == 0


def test_failed_create_in_an_empty_pool_frees_its_slot(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=0, dialect=dialect
    )
    dbapi.refuse_connect = FakeOperationalError("server is down")
    with pytest.raises(FakeOperationalError):
        pool.connect()
    assert pool.checkedout() == 0
    assert pool.overflow() == -1
    dbapi.refuse_connect = None
    with pool.connect() as conn:
        assert number(conn) == 1


def test_failed_create_hands_the_slot_to_a_waiting_thread(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    creating, fail_now = threading.Event(), threading.Event()
    attempts = itertools.count()

    def creator() -> FakeConnection:
        if next(attempts) == 1:
            creating.set()
            if not fail_now.wait(5):
                raise RuntimeError("the test never let the creator fail")
            raise FakeOperationalError("refused")
        return dbapi.connect()

    pool = QueuePool(creator, pool_size=1, max_overflow=1, dialect=dialect)
    slots = recording(pool)
    held = pool.connect()

    failing = Worker(pool.connect)
    failing.start()
    assert creating.wait(5)  # `failing` holds the last slot while it creates

    got, release = threading.Event(), threading.Event()

    def wait_then_hold() -> int:
        with pool.connect() as conn:
            got.set()
            release.wait(5)
            return number(conn)

    waiting = Worker(wait_then_hold)
    waiting.start()
    assert slots.wait_for_arrivals(1)  # no room: it queued

    fail_now.set()
    failing.join_or_fail()
    assert isinstance(failing.error, FakeOperationalError)
    assert got.wait(5)  # the waiter was given the freed slot and created
    assert pool.checkedout() == 2
    assert pool.overflow() == 1
    release.set()
    waiting.join_or_fail()
    assert waiting.error is None
    assert waiting.result == 2
    assert slots.grants == [slots.arrivals[0][0]]
    held.close()
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (1, 0, 0)


def test_dispose_of_an_empty_pool(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    pool.dispose()
    assert pool.checkedin() == 0
    with pool.connect() as conn:
        assert number(conn) == 1


def test_recreate_gives_an_empty_pool_with_the_same_arguments(
    dbapi: FakeDBAPI, dialect: FakeDialect, clock: FakeClock
) -> None:
    pool = QueuePool(
        dbapi.connect,
        pool_size=3,
        max_overflow=7,
        timeout=4.5,
        use_lifo=True,
        dialect=dialect,
        logging_name="again",
    )
    pool._clock = clock
    held = pool.connect()
    new = pool.recreate()
    assert type(new) is QueuePool
    assert new is not pool
    assert (new.size(), new.timeout(), new._max_overflow, new._use_lifo) == (
        3,
        4.5,
        7,
        True,
    )
    assert new.dialect is dialect
    assert new._clock is clock
    assert "'again'" in repr(new)
    assert (new.checkedin(), new.checkedout()) == (0, 0)
    with new.connect() as conn:
        assert number(conn) == 2
    held.close()


# -- QueuePool: timeout ------------------------------------------------------------


def test_infinite_timeout_waits_without_limit(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """timeout=inf passes the ``>= 0`` rule, so it must mean "wait forever"."""
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=math.inf, dialect=dialect
    )
    slots = recording(pool)
    held = pool.connect()

    def take() -> int:
        with pool.connect() as conn:
            return number(conn)

    waiting = Worker(take)
    waiting.start()
    parked = wait_until(lambda: bool(slots.arrivals) or waiting.finished.is_set())
    held.close()
    waiting.join_or_fail()
    assert parked
    assert waiting.error is None
    assert waiting.result == 1
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)


def test_interrupted_wait_leaves_the_line(
    dbapi: FakeDBAPI, dialect: FakeDialect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C while waiting must not leave a ghost waiter that swallows the
    next returned connection."""
    pool = QueuePool(dbapi.connect, pool_size=1, max_overflow=0, dialect=dialect)
    held = pool.connect()

    def interrupted(self: Any, timeout: float) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(sync_acompat.Waiter, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pool.connect()
    monkeypatch.undo()
    assert not pool._slots.waiters
    held.close()
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    with pool.connect() as conn:
        assert number(conn) == 1


# -- QueuePool: fairness -----------------------------------------------------------


@pytest.mark.parametrize("use_lifo", [False, True])
@pytest.mark.parametrize(("pool_size", "max_overflow"), [(1, 0), (2, 1)])
def test_waiters_are_served_first_come_first_served(
    use_lifo: bool,
    pool_size: int,
    max_overflow: int,
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
) -> None:
    pool = QueuePool(
        dbapi.connect,
        pool_size=pool_size,
        max_overflow=max_overflow,
        use_lifo=use_lifo,
        dialect=dialect,
    )
    slots = recording(pool)
    capacity = pool_size + max_overflow
    held = [pool.connect() for _ in range(capacity)]
    n = 6
    served: list[int] = []
    served_lock = threading.Lock()
    got = [threading.Event() for _ in range(n)]
    release = [threading.Event() for _ in range(n)]

    def make_worker(i: int) -> Callable[[], None]:
        def work() -> None:
            with pool.connect():
                with served_lock:
                    served.append(i)
                got[i].set()
                if not release[i].wait(5):
                    raise RuntimeError(f"worker {i} was never released")

        return work

    workers = []
    for i in range(n):
        worker = Worker(make_worker(i))
        worker.start()
        workers.append(worker)
        assert slots.wait_for_arrivals(i + 1)  # i is parked behind 0..i-1
    assert pool.checkedout() == capacity
    assert served == []

    # Free the held connections one at a time, then each worker's in turn.
    for i in range(n):
        if i < capacity:
            held[i].close()
        else:
            release[i - capacity].set()
        assert got[i].wait(5)
        with served_lock:
            assert served == list(range(i + 1))
    for i in range(max(0, n - capacity), n):
        release[i].set()
    for worker in workers:
        worker.join_or_fail()
        assert worker.error is None
    assert served == list(range(n))
    assert slots.grants == [waiter for waiter, _ in slots.arrivals]
    assert pool.checkedout() == 0
    assert len(dbapi.connections) == capacity  # no connection beyond the limit


@pytest.mark.parametrize("use_lifo", [False, True])
def test_pool_size_zero_never_makes_a_caller_wait(
    use_lifo: bool, dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """pool_size=0 means no limit at all: max_overflow is ignored."""
    pool = QueuePool(
        dbapi.connect,
        pool_size=0,
        max_overflow=2,
        timeout=0,  # any checkout that had to wait would fail at once
        use_lifo=use_lifo,
        dialect=dialect,
    )
    slots = recording(pool)
    n = 8
    # The workers and this thread: all n connections are held at once.
    started = threading.Barrier(n + 1, timeout=5)
    release = threading.Event()

    def work() -> int:
        with pool.connect() as conn:
            started.wait()
            if not release.wait(5):
                raise RuntimeError("never released")
            return number(conn)

    workers = [Worker(work) for _ in range(n)]
    for worker in workers:
        worker.start()
    started.wait()
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (0, n, 0)
    assert (
        f"Current Overflow: 0 Current Checked out connections: {n} Waiting: 0"
        in pool.status()
    )
    release.set()
    for worker in workers:
        worker.join_or_fail()
        assert worker.error is None
    assert slots.arrivals == []  # nobody queued
    assert sorted(w.result for w in workers) == list(range(1, n + 1))
    # Every returned connection is kept, none closed.
    assert (pool.checkedin(), pool.checkedout(), pool.overflow()) == (n, 0, 0)
    assert dbapi.calls_named("close") == []
    assert pool._slots.opened == n


def test_no_waiter_starves(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    n_threads, iterations, pool_size = 16, 25, 2
    pool = QueuePool(
        dbapi.connect, pool_size=pool_size, max_overflow=0, timeout=10, dialect=dialect
    )
    slots = recording(pool)
    barrier = threading.Barrier(n_threads)
    completed = [0] * n_threads

    def make_worker(i: int) -> Callable[[], None]:
        def work() -> None:
            barrier.wait(5)
            for iteration in range(iterations):
                with pool.connect():
                    if iteration == 0:
                        # Hold the first connection until everyone else has
                        # had to queue, so the line is long at least once.
                        if not slots.wait_for_arrivals(n_threads - pool_size):
                            raise RuntimeError("the other threads never queued")
                    completed[i] += 1

        return work

    workers = [Worker(make_worker(i)) for i in range(n_threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join_or_fail(20)
    assert [w.error for w in workers] == [None] * n_threads
    assert completed == [iterations] * n_threads
    assert len(slots.arrivals) >= n_threads - pool_size
    # Every thread that queued was served, in the order it queued.
    assert slots.grants == [waiter for waiter, _ in slots.arrivals]
    assert {ident for _, ident in slots.arrivals} <= {w.ident for w in workers}
    assert pool.checkedout() == 0
    assert pool.checkedin() == pool_size
    assert dbapi.max_open == pool_size


def test_thread_hammer(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool_size, max_overflow = 4, 4
    limit = pool_size + max_overflow
    n_threads, iterations = 20, 150
    pool = QueuePool(
        dbapi.connect,
        pool_size=pool_size,
        max_overflow=max_overflow,
        timeout=10,
        dialect=dialect,
    )
    slots = recording(pool)
    owners: dict[int, int] = {}
    lock = threading.Lock()
    problems: list[str] = []
    completed = [0] * n_threads
    invalidated = [0] * n_threads
    barrier = threading.Barrier(n_threads + 1)

    def make_worker(i: int) -> Callable[[], None]:
        rng = random.Random(i)

        def work() -> None:
            barrier.wait(5)
            for _ in range(iterations):
                fairy = pool.connect()
                try:
                    conn = fairy.dbapi_connection
                    assert isinstance(conn, FakeConnection)
                    with lock:
                        if conn.closed:
                            problems.append(f"closed {conn!r} handed to {i}")
                        if conn.number in owners:
                            problems.append(
                                f"{conn!r} handed to {i} while {owners[conn.number]}"
                                " held it"
                            )
                        owners[conn.number] = i
                    fairy.cursor().execute("SELECT 1")
                    with lock:
                        del owners[conn.number]
                    if rng.random() < 0.1:
                        fairy.invalidate()
                        invalidated[i] += 1
                finally:
                    fairy.close()
                completed[i] += 1

        return work

    workers = [Worker(make_worker(i)) for i in range(n_threads)]
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads as much as possible
    try:
        for worker in workers:
            worker.start()
        # Start at full capacity, overflow included, with everyone queued.
        held = [pool.connect() for _ in range(limit)]
        assert pool.overflow() == max_overflow
        barrier.wait(5)
        for conn in held:
            conn.close()
        for worker in workers:
            worker.join_or_fail(30)
    finally:
        sys.setswitchinterval(switch_interval)

    assert [w.error for w in workers] == [None] * n_threads
    assert problems == []
    assert completed == [iterations] * n_threads
    assert sum(invalidated) > 0
    assert dbapi.max_open <= limit
    assert pool.checkedout() == 0
    assert not slots.waiters
    assert slots.grants == [waiter for waiter, _ in slots.arrivals]
    assert 0 < pool.checkedin() <= pool_size
    # Records emptied by an invalidation reconnect lazily: only the others
    # hold an open connection now.
    idle_open = sorted(
        rec.dbapi_connection.number
        for rec in slots.idle
        if rec.dbapi_connection is not None
    )
    assert sorted(c.number for c in dbapi.open_connections()) == idle_open
    # Once each idle record has been checked out again, counts match exactly.
    n_idle = pool.checkedin()
    again = [pool.connect() for _ in range(n_idle)]
    for conn in again:
        conn.close()
    assert pool.checkedout() == 0
    assert len(dbapi.open_connections()) == pool.checkedin() == n_idle


def test_returned_overflow_is_closed_before_its_slot_is_reused(
    dbapi: FakeDBAPI,
) -> None:
    """Never more than pool_size + max_overflow open, even for an instant."""
    dialect = GatedCloseDialect()
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=1, timeout=5, dialect=dialect
    )
    slots = recording(pool)
    first = pool.connect()
    overflow = pool.connect()
    first.close()  # idle: pool_size are idle now
    dialect.gated.add(number(overflow))

    returning = Worker(overflow.close)
    returning.start()
    assert dialect.closing.wait(5)  # the surplus connection is being closed
    held = pool.connect()  # takes the idle one
    assert number(held) == 1

    def take() -> int:
        with pool.connect() as conn:
            return number(conn)

    newcomer = Worker(take)
    newcomer.start()
    # Either it queued for the slot (right) or it opened a third connection.
    assert wait_until(lambda: bool(slots.arrivals) or newcomer.finished.is_set())
    dialect.gate.set()
    returning.join_or_fail()
    newcomer.join_or_fail()
    assert returning.error is None
    assert newcomer.error is None
    assert newcomer.result == 3  # opened in the slot of the closed one
    assert dbapi.max_open <= 2
    held.close()


def test_dispose_closes_before_freeing_slots(dbapi: FakeDBAPI) -> None:
    """A checkout racing dispose() must not open beyond the limit either."""
    dialect = GatedCloseDialect()
    pool = QueuePool(
        dbapi.connect, pool_size=1, max_overflow=0, timeout=5, dialect=dialect
    )
    slots = recording(pool)
    pool.connect().close()
    dialect.gated.add(1)

    disposing = Worker(pool.dispose)
    disposing.start()
    assert dialect.closing.wait(5)

    def take() -> int:
        with pool.connect() as conn:
            return number(conn)

    newcomer = Worker(take)
    newcomer.start()
    assert wait_until(lambda: bool(slots.arrivals) or newcomer.finished.is_set())
    dialect.gate.set()
    disposing.join_or_fail()
    newcomer.join_or_fail()
    assert disposing.error is None
    assert newcomer.error is None
    assert newcomer.result == 2
    assert dbapi.max_open <= 1


# -- NullPool ----------------------------------------------------------------------


def test_nullpool_opens_per_checkout_and_closes_per_checkin(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = NullPool(dbapi.connect, dialect=dialect)
    a = pool.connect()
    b = pool.connect()
    assert (number(a), number(b)) == (1, 2)
    a.close()
    b.close()
    assert dbapi.calls == [
        ("connect", 1),
        ("connect", 2),
        ("rollback", 1),
        ("close", 1),
        ("rollback", 2),
        ("close", 2),
    ]
    assert dbapi.open_connections() == []
    with pool.connect() as c:
        assert number(c) == 3


def test_nullpool_invalidated_connection_is_closed_once(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = NullPool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    conn.invalidate()
    conn.close()
    assert dbapi.calls == [("connect", 1), ("close", 1)]


def test_nullpool_dispose_leaves_checked_out_connections_alone(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = NullPool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    pool.dispose()
    assert [c.number for c in dbapi.open_connections()] == [1]
    conn.close()
    assert dbapi.open_connections() == []


def test_nullpool_recreate(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = NullPool(dbapi.connect, dialect=dialect, reset_on_return="commit")
    new = pool.recreate()
    assert type(new) is NullPool
    new.connect().close()
    assert dbapi.calls == [("connect", 1), ("commit", 1), ("close", 1)]


# -- StaticPool --------------------------------------------------------------------


def test_staticpool_shares_one_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    a = pool.connect()
    b = pool.connect()
    assert a.dbapi_connection is b.dbapi_connection
    assert a is not b
    a.close()
    assert dbapi.calls_named("rollback") == []  # b still uses it
    b.close()
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]
    assert [c.number for c in dbapi.open_connections()] == [1]
    with pool.connect() as c:
        assert number(c) == 1


def test_staticpool_shares_across_threads(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    got, done = threading.Event(), threading.Event()

    def hold() -> int:
        with pool.connect() as conn:
            got.set()
            done.wait(5)
            return number(conn)

    other = Worker(hold)
    other.start()
    assert got.wait(5)
    with pool.connect() as mine:
        assert number(mine) == 1
        assert "2 users" in pool.status()
    assert dbapi.calls_named("rollback") == []
    done.set()
    other.join_or_fail()
    assert other.result == 1
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]


def test_staticpool_invalidate_reopens(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    conn.invalidate()
    conn.close()
    assert dbapi.open_connections() == []
    with pool.connect() as conn:
        assert number(conn) == 2


def test_staticpool_dispose_closes_the_shared_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    pool.connect().close()
    pool.dispose()
    assert dbapi.open_connections() == []
    assert "not open" in pool.status()
    with pool.connect() as conn:
        assert number(conn) == 2


def test_staticpool_recreate(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    pool.connect().close()
    new = pool.recreate()
    assert type(new) is StaticPool
    with new.connect() as conn:
        assert number(conn) == 2


# -- SingletonThreadPool -------------------------------------------------------------


def test_singletonthreadpool_same_thread_same_connection(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = SingletonThreadPool(dbapi.connect, dialect=dialect)
    assert pool.size() == 5
    with pool.connect() as conn:
        assert number(conn) == 1
    with pool.connect() as conn:
        assert number(conn) == 1
    assert dbapi.calls == [("connect", 1), ("rollback", 1), ("rollback", 1)]


def test_singletonthreadpool_nested_checkout_shares_and_resets_last(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = SingletonThreadPool(dbapi.connect, dialect=dialect)
    outer = pool.connect()
    inner = pool.connect()
    assert outer.dbapi_connection is inner.dbapi_connection
    inner.close()
    assert dbapi.calls_named("rollback") == []
    outer.close()
    assert dbapi.calls == [("connect", 1), ("rollback", 1)]


def test_singletonthreadpool_one_connection_per_thread(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = SingletonThreadPool(dbapi.connect, pool_size=3, dialect=dialect)
    go = threading.Barrier(3)

    def twice() -> tuple[int, int]:
        with pool.connect() as conn:
            first = number(conn)
        go.wait(5)  # all three threads are alive at once
        with pool.connect() as conn:
            return first, number(conn)

    workers = [Worker(twice) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join_or_fail()
    results = [w.result for w in workers]
    assert [w.error for w in workers] == [None] * 3
    assert all(first == second for first, second in results)
    assert sorted(first for first, _ in results) == [1, 2, 3]
    assert len(dbapi.open_connections()) == 3


def test_singletonthreadpool_closes_the_oldest_idle_beyond_pool_size(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = SingletonThreadPool(dbapi.connect, pool_size=2, dialect=dialect)

    def use() -> int:
        with pool.connect() as conn:
            return number(conn)

    for expected in (1, 2, 3):
        worker = Worker(use)
        worker.start()
        worker.join_or_fail()
        assert worker.result == expected
    assert dbapi.calls_named("close") == [("close", 1)]
    assert [c.number for c in dbapi.open_connections()] == [2, 3]
    assert "thread connections=2" in pool.status()


def test_singletonthreadpool_new_thread_connection_survives_when_others_are_busy(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    """With every kept connection checked out, a new thread's connection must
    not be closed under it, and must not leak once returned."""
    pool = SingletonThreadPool(dbapi.connect, pool_size=1, dialect=dialect)
    got, done = threading.Event(), threading.Event()

    def hold() -> int:
        with pool.connect() as conn:
            got.set()
            done.wait(5)
            return number(conn)

    other = Worker(hold)
    other.start()
    assert got.wait(5)
    with pool.connect() as mine:
        assert number(mine) == 2
        # Opened once, and not closed while this thread was handed it.
        assert dbapi.calls == [("connect", 1), ("connect", 2)]
    done.set()
    other.join_or_fail()
    assert other.result == 1
    with pool.connect() as mine:
        pass
    assert len(dbapi.open_connections()) <= 1  # pool_size


def test_singletonthreadpool_dispose(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = SingletonThreadPool(dbapi.connect, dialect=dialect)
    got, done = threading.Event(), threading.Event()

    def hold() -> int:
        with pool.connect() as conn:
            got.set()
            done.wait(5)
        with pool.connect() as conn:  # expired by dispose(): replaced
            return number(conn)

    pool.connect().close()  # this thread's connection: idle
    other = Worker(hold)
    other.start()
    assert got.wait(5)
    pool.dispose()
    assert [c.number for c in dbapi.open_connections()] == [2]
    done.set()
    other.join_or_fail()
    assert other.error is None
    assert other.result == 3
    assert [c.number for c in dbapi.open_connections()] == [3]


def test_singletonthreadpool_recreate(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = SingletonThreadPool(dbapi.connect, pool_size=3, dialect=dialect)
    new = pool.recreate()
    assert type(new) is SingletonThreadPool
    assert new.size() == 3


# -- AssertionPool -------------------------------------------------------------------


def test_assertionpool_second_checkout_from_another_thread(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = AssertionPool(dbapi.connect, dialect=dialect)
    with pool.connect():
        other = Worker(pool.connect)
        other.start()
        other.join_or_fail()
    assert isinstance(other.error, AssertionError)
    with pool.connect() as conn:
        assert number(conn) == 1


def test_assertionpool_failed_connect_does_not_stay_checked_out(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = AssertionPool(dbapi.connect, dialect=dialect)
    dbapi.refuse_connect = FakeOperationalError("down")
    with pytest.raises(FakeOperationalError):
        pool.connect()
    dbapi.refuse_connect = None
    with pool.connect() as conn:
        assert number(conn) == 1


def test_assertionpool_dispose(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = AssertionPool(dbapi.connect, dialect=dialect)
    conn = pool.connect()
    pool.dispose()  # checked out: left alone
    assert [c.number for c in dbapi.open_connections()] == [1]
    conn.close()
    pool.dispose()
    assert dbapi.open_connections() == []
    with pool.connect() as conn:
        assert number(conn) == 2


def test_assertionpool_recreate(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = AssertionPool(dbapi.connect, dialect=dialect)
    held = pool.connect()
    new = pool.recreate()
    assert type(new) is AssertionPool
    with new.connect() as conn:  # the new pool has its own single checkout
        assert number(conn) == 2
    held.close()


# -- status() ------------------------------------------------------------------------


def test_queuepool_status(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = QueuePool(dbapi.connect, pool_size=2, max_overflow=3, dialect=dialect)
    held = [pool.connect() for _ in range(3)]
    held[0].close()  # kept: fewer than pool_size are idle
    # SQLAlchemy's words first, then the waiting callers and the counters.
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 1 Current Overflow: 1 Current Checked "
        "out connections: 2 Waiting: 0 Connects: 3 Connect errors: 0 Checkouts: 3 "
        "Timeouts: 0 Invalidations: 0"
    )
    held[1].close()
    assert pool.status().startswith(
        "Pool size: 2  Connections in pool: 2 Current Overflow: 1 Current Checked "
        "out connections: 1 Waiting: 0"
    )
    held[2].close()  # closed: pool_size are idle already
    assert pool.status().startswith(
        "Pool size: 2  Connections in pool: 2 Current Overflow: 0 Current Checked "
        "out connections: 0 Waiting: 0"
    )


def test_nullpool_status(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = NullPool(dbapi.connect, dialect=dialect, logging_name="np")
    assert pool.status().startswith(repr(pool))
    assert "'np'" in pool.status()


def test_staticpool_status(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = StaticPool(dbapi.connect, dialect=dialect)
    assert pool.status() == f"{pool!r}: one shared connection, not open, 0 users"
    with pool.connect():
        assert pool.status() == f"{pool!r}: one shared connection, open, 1 users"
    assert pool.status() == f"{pool!r}: one shared connection, open, 0 users"


def test_singletonthreadpool_status(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = SingletonThreadPool(dbapi.connect, pool_size=4, dialect=dialect)
    with pool.connect():
        assert pool.status() == (
            f"{pool!r}: pool_size=4, thread connections=1, checked out=1"
        )
    assert pool.status() == (
        f"{pool!r}: pool_size=4, thread connections=1, checked out=0"
    )


def test_assertionpool_status(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    pool = AssertionPool(dbapi.connect, dialect=dialect)
    assert pool.status() == f"{pool!r}: one connection, not checked out"
    with pool.connect():
        assert pool.status() == f"{pool!r}: one connection, checked out"


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_every_status_names_the_pool(cls: type[Pool], dbapi: FakeDBAPI) -> None:
    pool = make(cls, dbapi, logging_name="named")
    with pool.connect():
        status = pool.status()
    if cls is QueuePool:
        # SQLAlchemy's own line, which names no pool.
        assert status.startswith("Pool size: 5  Connections in pool: 0 ")
    else:
        assert status.startswith(repr(pool))
        assert "'named'" in status
    assert "\n" not in status


def test_timeout_while_connects_fail_chains_the_last_connect_error(
    dialect: FakeDialect,
) -> None:
    """No worker: callers dial.  One connect failed and another is still
    dialling in the only slot: a caller that times out meanwhile learns why."""
    dbapi = FakeDBAPI()
    dialling, release = threading.Event(), threading.Event()
    error = FakeOperationalError("server down")
    calls: list[int] = []

    def creator() -> FakeConnection:
        calls.append(1)
        if len(calls) == 1:
            raise error
        dialling.set()
        assert release.wait(10)
        return dbapi.connect()

    pool = QueuePool(creator, pool_size=1, max_overflow=0, timeout=0, dialect=dialect)
    with pytest.raises(FakeOperationalError):
        pool.connect()
    holder = threading.Thread(target=lambda: pool.connect().close())
    holder.start()
    assert dialling.wait(10)
    with pytest.raises(exc.TimeoutError, match="unreachable for") as info:
        pool.connect()
    assert info.value.__cause__ is error
    release.set()
    holder.join(10)
    assert not holder.is_alive()
    assert pool.checkedout() == 0
