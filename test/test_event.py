"""Listener registration in poolhouse.event, on top of the signals in events."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from poolhouse import ConnectionFairy
from poolhouse import ConnectionRecord
from poolhouse import NullPool
from poolhouse import Pool
from poolhouse import PoolResetState
from poolhouse import QueuePool
from poolhouse import event
from poolhouse import events
from poolhouse import exc

from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeOperationalError

#: The events and their arguments, in positional order, as doc/events.rst lists.
DOCUMENTED: dict[str, tuple[str, ...]] = {
    "first_connect": ("dbapi_connection", "connection_record"),
    "connect": ("dbapi_connection", "connection_record"),
    "checkout": ("dbapi_connection", "connection_record", "connection_proxy"),
    "reset": ("dbapi_connection", "connection_record", "reset_state"),
    "checkin": ("dbapi_connection", "connection_record"),
    "invalidate": ("dbapi_connection", "connection_record", "exception"),
    "soft_invalidate": ("dbapi_connection", "connection_record", "exception"),
    "detach": ("dbapi_connection", "connection_record"),
    "close": ("dbapi_connection", "connection_record"),
    "close_detached": ("dbapi_connection",),
    "reconnect_failed": ("exception", "down_for"),
    "leak": ("dbapi_connection", "connection_record", "checked_out"),
}

#: The events one connection cycle can provoke (reconnect_failed comes from a
#: pool's background worker: test/_async/test_worker.py checks its arguments;
#: leak from the leak watcher: test/_async/test_observability.py does).
LIFECYCLE = [name for name in DOCUMENTED if name not in ("reconnect_failed", "leak")]

#: What each argument must be, whatever the event.
ARGUMENT_TYPES: dict[str, type] = {
    "dbapi_connection": FakeConnection,
    "connection_record": ConnectionRecord,
    "connection_proxy": ConnectionFairy,
    "reset_state": PoolResetState,
    "exception": FakeOperationalError,
}


@pytest.fixture
def pool(dbapi: FakeDBAPI, dialect: FakeDialect) -> QueuePool:
    return QueuePool(dbapi.connect, dialect=dialect)


def provoke(pool: Pool, identifier: str) -> None:
    """Run a connection cycle on *pool* that emits *identifier*."""
    if identifier in ("invalidate", "soft_invalidate"):
        with pool.connect() as conn:
            conn.invalidate(
                FakeOperationalError("gone"), soft=identifier == "soft_invalidate"
            )
    elif identifier in ("detach", "close_detached"):
        conn = pool.connect()
        conn.detach()
        conn.close()
    else:
        pool.connect().close()
        pool.dispose()


def cycle(pool: Pool) -> None:
    pool.connect().close()


def counter() -> tuple[list[tuple[Any, ...]], Callable[..., None]]:
    calls: list[tuple[Any, ...]] = []

    def listener(*args: Any) -> None:
        calls.append(args)

    return calls, listener


def tagger(order: list[str], tag: str) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        order.append(tag)

    return listener


# -- arguments -----------------------------------------------------------------


def test_signatures_are_the_documented_ones() -> None:
    assert {
        name: arg_names for name, (_, arg_names) in events.SIGNATURES.items()
    } == DOCUMENTED


@pytest.mark.parametrize("identifier", list(DOCUMENTED))
def test_each_signal_docstring_lists_its_arguments(identifier: str) -> None:
    signal, arg_names = events.SIGNATURES[identifier]
    assert signal is getattr(events, identifier)
    doc = signal.__doc__ or ""
    for name in arg_names:
        assert f"``{name}``" in doc


@pytest.mark.parametrize("identifier", LIFECYCLE)
def test_listener_gets_arguments_positionally_in_documented_order(
    pool: QueuePool, identifier: str
) -> None:
    positional: list[tuple[Any, ...]] = []
    named: list[dict[str, Any]] = []
    event.listen(pool, identifier, lambda *args: positional.append(args))
    event.listen(pool, identifier, lambda **kw: named.append(kw), named=True)
    provoke(pool, identifier)
    assert len(positional) == 1
    assert len(named) == 1
    assert tuple(named[0]) == DOCUMENTED[identifier]
    assert positional[0] == tuple(named[0][name] for name in DOCUMENTED[identifier])
    for name, value in named[0].items():
        assert isinstance(value, ARGUMENT_TYPES[name]), name


# -- order ---------------------------------------------------------------------


def test_listeners_run_in_registration_order(pool: QueuePool) -> None:
    order: list[str] = []
    for tag in "abcdefgh":
        event.listen(pool, "checkout", tagger(order, tag))
    cycle(pool)
    assert order == list("abcdefgh")


def test_pool_and_class_listeners_interleave_in_registration_order(
    pool: QueuePool,
) -> None:
    order: list[str] = []
    event.listen(pool, "checkout", tagger(order, "pool 1"))
    event.listen(QueuePool, "checkout", tagger(order, "QueuePool"))
    event.listen(pool, "checkout", tagger(order, "pool 2"))
    event.listen(Pool, "checkout", tagger(order, "Pool"))
    event.listen(pool, "checkout", tagger(order, "pool 3"))
    cycle(pool)
    assert order == ["pool 1", "QueuePool", "pool 2", "Pool", "pool 3"]


def test_insert_puts_a_listener_first(pool: QueuePool) -> None:
    order: list[str] = []
    event.listen(pool, "checkout", tagger(order, "a"))
    event.listen(pool, "checkout", tagger(order, "b"))
    event.listen(QueuePool, "checkout", tagger(order, "c"), insert=True)
    event.listen(pool, "checkout", tagger(order, "d"), insert=True)
    event.listen(pool, "checkout", tagger(order, "e"))
    cycle(pool)
    assert order == ["d", "c", "a", "b", "e"]


# -- targets -------------------------------------------------------------------


def test_pool_listener_hears_only_that_pool(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    mine = QueuePool(dbapi.connect, dialect=dialect)
    other = QueuePool(dbapi.connect, dialect=dialect)
    calls, listener = counter()
    event.listen(mine, "checkout", listener)
    cycle(other)
    assert calls == []
    cycle(mine)
    assert len(calls) == 1


def test_class_listener_hears_instances_and_subclasses_old_and_new(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    class MyPool(QueuePool):
        pass

    existing = QueuePool(dbapi.connect, dialect=dialect)
    calls, listener = counter()
    event.listen(Pool, "checkout", listener)
    later_null = NullPool(dbapi.connect, dialect=dialect)
    later_sub = MyPool(dbapi.connect, dialect=dialect)
    for expected, target in enumerate((existing, later_null, later_sub), 1):
        cycle(target)
        assert len(calls) == expected


def test_subclass_listener_does_not_hear_other_classes(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    calls, listener = counter()
    event.listen(QueuePool, "checkout", listener)
    cycle(NullPool(dbapi.connect, dialect=dialect))
    assert calls == []
    cycle(QueuePool(dbapi.connect, dialect=dialect))
    assert len(calls) == 1


def test_not_a_pool_target_is_rejected() -> None:
    calls, listener = counter()
    for target in (object(), FakeDBAPI, "checkout"):
        with pytest.raises(exc.InvalidRequestError, match="cannot listen on"):
            event.listen(target, "checkout", listener)


# -- registration API ----------------------------------------------------------


def _listen(pool: Pool, identifier: str, fn: Callable[..., Any]) -> object:
    event.listen(pool, identifier, fn)
    return None


def _listens_for(pool: Pool, identifier: str, fn: Callable[..., Any]) -> object:
    return event.listens_for(pool, identifier)(fn)


REGISTRATION_CALLS: dict[str, Callable[[Pool, str, Callable[..., Any]], object]] = {
    "listen": _listen,
    "listens_for": _listens_for,
    "remove": event.remove,
    "contains": event.contains,
}


@pytest.mark.parametrize(
    "call", REGISTRATION_CALLS.values(), ids=list(REGISTRATION_CALLS)
)
def test_unknown_event_name_is_rejected_by_name(
    pool: QueuePool, call: Callable[[Pool, str, Callable[..., Any]], object]
) -> None:
    calls, listener = counter()
    with pytest.raises(exc.InvalidRequestError, match="'check_out'"):
        call(pool, "check_out", listener)


def test_listener_must_be_callable(pool: QueuePool) -> None:
    with pytest.raises(TypeError, match="must be callable"):
        event.listen(pool, "checkout", "not a function")  # type: ignore[arg-type]  # under test


def test_named_listener_gets_keyword_arguments(pool: QueuePool) -> None:
    got: list[dict[str, Any]] = []

    def listener(**kw: Any) -> None:
        got.append(kw)

    event.listen(pool, "checkin", listener, named=True)
    cycle(pool)
    assert len(got) == 1
    assert set(got[0]) == {"dbapi_connection", "connection_record"}


def test_once_listener_is_called_for_the_first_event_only(pool: QueuePool) -> None:
    calls, listener = counter()
    event.listen(pool, "checkout", listener, once=True)
    cycle(pool)
    cycle(pool)
    assert len(calls) == 1


def test_listens_for_registers_and_returns_the_function(pool: QueuePool) -> None:
    got: list[dict[str, Any]] = []

    @event.listens_for(pool, "checkout", named=True)
    def on_checkout(**kw: Any) -> None:
        got.append(kw)

    assert event.contains(pool, "checkout", on_checkout)
    on_checkout(direct=True)  # still the plain function
    cycle(pool)
    assert len(got) == 2
    assert set(got[1]) == set(DOCUMENTED["checkout"])


def test_listeners_stay_registered_until_removed(pool: QueuePool) -> None:
    calls: list[int] = []

    def register() -> None:
        # The only reference to the listener is the registry's.
        event.listen(pool, "checkout", lambda *args: calls.append(1))

    register()
    gc.collect()
    cycle(pool)
    assert calls == [1]


def test_listening_does_not_keep_the_pool_alive(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    pool = QueuePool(dbapi.connect, dialect=dialect)
    calls, listener = counter()
    event.listen(pool, "checkout", listener)
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None


def test_remove_stops_a_listener_and_contains_tells(pool: QueuePool) -> None:
    kept_calls, kept = counter()
    gone_calls, gone = counter()
    assert not event.contains(pool, "checkout", gone)
    event.listen(pool, "checkout", kept)
    event.listen(pool, "checkout", gone)
    assert event.contains(pool, "checkout", gone)
    assert not event.contains(pool, "checkin", gone)
    assert not event.contains(QueuePool, "checkout", gone)
    event.remove(pool, "checkout", gone)
    assert not event.contains(pool, "checkout", gone)
    assert event.contains(pool, "checkout", kept)
    cycle(pool)
    assert (len(kept_calls), len(gone_calls)) == (1, 0)


def test_removing_an_unregistered_listener_raises(pool: QueuePool) -> None:
    calls, listener = counter()
    with pytest.raises(exc.InvalidRequestError, match="not listening"):
        event.remove(pool, "checkout", listener)
    event.listen(pool, "checkout", listener)
    event.remove(pool, "checkout", listener)
    with pytest.raises(exc.InvalidRequestError, match="not listening"):
        event.remove(pool, "checkout", listener)
    with pytest.raises(exc.InvalidRequestError, match="not listening"):
        event.remove(QueuePool, "checkout", listener)


def test_remove_class_listener(dbapi: FakeDBAPI, dialect: FakeDialect) -> None:
    calls, listener = counter()
    event.listen(QueuePool, "checkout", listener)
    assert event.contains(QueuePool, "checkout", listener)
    event.remove(QueuePool, "checkout", listener)
    assert not event.contains(QueuePool, "checkout", listener)
    cycle(QueuePool(dbapi.connect, dialect=dialect))
    assert calls == []


def test_listeners_never_connect_to_the_signal(pool: QueuePool) -> None:
    """The pool calls event listeners itself; the blinker signal is left to
    receivers connected to it directly."""
    assert not events.checkout.receivers
    calls, listener = counter()
    event.listen(pool, "checkout", listener)
    event.listen(QueuePool, "checkout", listener)
    assert not events.checkout.receivers
    assert len(pool._listeners.checkout) == 2
    cycle(pool)
    assert len(calls) == 2
    event.remove(pool, "checkout", listener)
    assert not events.checkout.receivers
    assert len(pool._listeners.checkout) == 1
    cycle(pool)
    assert len(calls) == 3
    event.remove(QueuePool, "checkout", listener)
    assert not events.checkout.receivers
    assert pool._listeners.checkout == ()
    cycle(pool)
    assert len(calls) == 3


# -- Pool(events=...) and recreate() -------------------------------------------


def test_pool_events_argument_rejects_unknown_events(
    dbapi: FakeDBAPI, dialect: FakeDialect
) -> None:
    calls, listener = counter()
    # A bad constructor argument is a ValueError, like every other one.
    with pytest.raises(ValueError, match="'on_connect'"):
        QueuePool(dbapi.connect, dialect=dialect, events=[(listener, "on_connect")])


def test_recreate_carries_listeners_over_in_order(
    pool: QueuePool,
) -> None:
    order: list[str] = []
    event.listen(pool, "checkout", tagger(order, "first"))
    event.listen(QueuePool, "checkout", tagger(order, "class"))
    event.listen(pool, "checkout", tagger(order, "second"))
    new = pool.recreate()
    cycle(new)
    assert order == ["first", "class", "second"]
    del order[:]
    cycle(pool)
    assert order == ["first", "class", "second"]


# -- raw blinker receivers -----------------------------------------------------


@pytest.mark.parametrize("identifier", LIFECYCLE)
def test_raw_blinker_receiver_gets_the_pool_and_keyword_arguments(
    pool: QueuePool, identifier: str
) -> None:
    got: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append((sender, kwargs))

    signal = events.SIGNATURES[identifier][0]
    signal.connect(receiver)
    provoke(pool, identifier)
    assert len(got) == 1
    sender, kwargs = got[0]
    assert sender is pool
    assert set(kwargs) == set(DOCUMENTED[identifier])


@pytest.mark.parametrize(
    "receiver_first", [True, False], ids=["receiver-first", "listener-first"]
)
def test_raw_receiver_and_listeners_are_both_called(
    pool: QueuePool, receiver_first: bool
) -> None:
    got: list[str] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append("receiver")

    if receiver_first:
        events.checkout.connect(receiver)
    event.listen(pool, "checkout", tagger(got, "listener"))
    if not receiver_first:
        events.checkout.connect(receiver)
    cycle(pool)
    assert sorted(got) == ["listener", "receiver"]


def test_listener_exception_reaches_the_caller(pool: QueuePool) -> None:
    error = RuntimeError("listener failed")

    def listener(*args: Any) -> None:
        raise error

    event.listen(pool, "checkin", listener)
    conn = pool.connect()
    with pytest.raises(RuntimeError) as raised:
        conn.close()
    assert raised.value is error
