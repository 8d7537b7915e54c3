"""Register listeners on pool events: ``listen``, ``listens_for``, ``remove``.

This module is the only caller of :meth:`blinker.Signal.connect` and
:meth:`~blinker.Signal.disconnect` in poolhouse.  It keeps, for every live
pool and every event, the tuple of listeners that apply to that pool (its own
and its classes', in registration order), rebuilt whenever a listener is added
or removed.  A pool guards each event on its own tuple, so an event nobody
listens to *on that pool* costs one truth test, whatever other pools have.

What this adds to blinker:

- listeners run in registration order (``insert=True`` puts one first);
- a class target reaches every instance of it and of its subclasses, including
  pools created later (blinker matches senders by identity);
- listeners receive the event's arguments positionally, or by keyword with
  ``named=True``, and stay registered until :func:`remove`;
- a listener whose signature cannot take the event's arguments is refused
  when it is registered, not on every event.

Receivers connected to the signals in :mod:`poolhouse.events` directly
(``events.checkout.connect(fn, sender=pool)``) still receive every event: the
pools send the signal whenever it has receivers.
"""

from __future__ import annotations

import inspect
import itertools
import operator
import threading
import weakref
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from blinker import Signal

from . import exc
from .events import SIGNATURES

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.RLock()
# A global sequence: listeners on a pool and on its classes interleave in the
# order they were registered.  insert=True draws from the negative side.
_append_seq = itertools.count(1)
_insert_seq = itertools.count(-1, -1)

#: identifier -> target (pool instance or class) -> its listeners, by seq.
_by_target: dict[str, weakref.WeakKeyDictionary[Any, list[_Listener]]] = {
    name: weakref.WeakKeyDictionary() for name in SIGNATURES
}
#: Every pool built so far and still alive, whose tuples must follow changes.
_pools: weakref.WeakSet[Any] = weakref.WeakSet()


class _Listener:
    """One registered ``(target, identifier, fn)``; called with the kwargs."""

    __slots__ = ("fn", "arg_names", "named", "once", "seq", "_fired", "_args")

    def __init__(
        self,
        fn: Callable[..., Any],
        arg_names: tuple[str, ...],
        named: bool,
        once: bool,
    ) -> None:
        self.fn = fn
        self.arg_names = arg_names
        self.named = named
        self.once = once
        self.seq = 0
        self._fired = False
        # A C-level getter: building the positional arguments is most of what
        # a listener call costs the pool.
        self._args: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            operator.itemgetter(*arg_names)
            if len(arg_names) > 1
            else _single_arg(arg_names[0])
        )

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        if self.once:
            with _lock:
                if self._fired:
                    return None
                self._fired = True
        if self.named:
            return self.fn(**kwargs)
        return self.fn(*self._args(kwargs))


def _single_arg(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    def get(kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return (kwargs[name],)

    return get


class _Forward:
    """Sends the blinker signal itself, for receivers connected to it directly.

    :param signal: the event's signal.
    :param pool: the sending pool (held weakly: the pool holds this).
    :param is_asyncio: await the receivers that return awaitables.
    """

    __slots__ = ("signal", "_pool", "_is_asyncio")

    def __init__(self, signal: Signal, pool: Any, is_asyncio: bool) -> None:
        self.signal = signal
        self._pool = weakref.ref(pool)
        self._is_asyncio = is_asyncio

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        pool = self._pool()
        if pool is None or not self.signal.receivers:
            return None
        if self._is_asyncio:
            return self._send_async(pool, kwargs)
        self.signal.send(pool, **kwargs)
        return None

    async def _send_async(self, pool: Any, kwargs: dict[str, Any]) -> None:
        for receiver in self.signal.receivers_for(pool):
            result = receiver(pool, **kwargs)
            if inspect.isawaitable(result):
                await result


_Calls = tuple[Callable[[dict[str, Any]], Any], ...]


class PoolListeners:
    """The listeners of one pool, one tuple per event, in calling order.

    Kept by this module; a pool reads ``pool._listeners.checkout`` before
    building an event's arguments and passes the tuple to its emit primitive.
    """

    __slots__ = tuple(SIGNATURES)

    first_connect: _Calls
    connect: _Calls
    checkout: _Calls
    checkin: _Calls
    reset: _Calls
    invalidate: _Calls
    soft_invalidate: _Calls
    close: _Calls
    detach: _Calls
    close_detached: _Calls
    reconnect_failed: _Calls
    leak: _Calls

    def __init__(self) -> None:
        for name in SIGNATURES:
            setattr(self, name, ())


def _resolve(pool: Any, identifier: str) -> _Calls:
    """The listeners that apply to *pool* for *identifier*, in order."""
    by_target = _by_target[identifier]
    found: list[_Listener] = list(by_target.get(pool, ()))
    for cls in type(pool).__mro__:
        found.extend(by_target.get(cls, ()))
    found.sort(key=_seq_of)
    calls: list[Callable[[dict[str, Any]], Any]] = list(found)
    signal = SIGNATURES[identifier][0]
    if signal.receivers:
        calls.append(_Forward(signal, pool, pool._is_asyncio))
    return tuple(calls)


def _refresh(identifier: str, target: Any) -> None:
    """Rebuild *identifier*'s tuple on every live pool *target* concerns."""
    pools: list[Any]
    if isinstance(target, type):
        pools = [p for p in list(_pools) if isinstance(p, target)]
    else:
        pools = [target] if target in _pools else []
    for pool in pools:
        setattr(pool._listeners, identifier, _resolve(pool, identifier))


def _register_pool(pool: Any) -> PoolListeners:
    """Start following *pool*: return its listeners, class listeners included.

    Called by the pool's constructor, before ``events=`` are registered.
    """
    listeners = PoolListeners()
    with _lock:
        for identifier in SIGNATURES:
            setattr(listeners, identifier, _resolve(pool, identifier))
        # Set before the pool is followed, and under the lock: a listen() on
        # another thread refreshes it only once it has its tuples.
        pool._listeners = listeners
        _pools.add(pool)
    return listeners


def _on_receivers_changed(signal: Signal, **_: Any) -> None:
    """A receiver was connected to or disconnected from one of our signals."""
    with _lock:
        for identifier, (sig, _names) in SIGNATURES.items():
            if sig is signal:
                for pool in list(_pools):
                    setattr(pool._listeners, identifier, _resolve(pool, identifier))


for _signal, _names in SIGNATURES.values():
    _signal.receiver_connected.connect(_on_receivers_changed, weak=False)
    _signal.receiver_disconnected.connect(_on_receivers_changed, weak=False)


def _seq_of(listener: _Listener) -> int:
    return listener.seq


def _check_target(target: Any, identifier: str) -> tuple[str, ...]:
    if not getattr(target, "_is_event_target", False):
        raise exc.InvalidRequestError(
            f"cannot listen on {target!r}: event targets are pools or pool "
            "classes; pass a Pool instance or a subclass such as QueuePool"
        )
    try:
        return SIGNATURES[identifier][1]
    except KeyError:
        raise exc.InvalidRequestError(
            f"no pool event named {identifier!r}; the events are "
            f"{', '.join(sorted(SIGNATURES))}"
        ) from None


def _check_arity(
    fn: Callable[..., Any], identifier: str, arg_names: tuple[str, ...], named: bool
) -> None:
    """Refuse *fn* now if it cannot be called with the event's arguments."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: it will tell when called
    try:
        if named:
            signature.bind(**dict.fromkeys(arg_names))
        else:
            signature.bind(*arg_names)
    except TypeError as err:
        how = "by keyword (named=True)" if named else "positionally"
        raise TypeError(
            f"listener {fn!r} for {identifier!r} cannot take the event's "
            f"arguments {how}: {', '.join(arg_names)} ({err}); give it those "
            "parameters, or *args/**kwargs"
        ) from None


def listen(
    target: Any,
    identifier: str,
    fn: Callable[..., Any],
    *,
    once: bool = False,
    named: bool = False,
    insert: bool = False,
) -> None:
    """Call *fn* whenever *target* emits the event *identifier*.

    :param target: a pool, or a pool class (then every instance of it and of its
        subclasses, including pools created later).
    :param identifier: the event name, e.g. ``"checkout"``; see
        :mod:`poolhouse.events`.
    :param fn: the listener.  It gets the event's arguments positionally in the
        documented order.
    :param once: call *fn* for the first event only, then never again.
    :param named: pass the arguments by keyword instead.
    :param insert: run *fn* before the listeners already registered.
    :raises poolhouse.exc.InvalidRequestError: *identifier* is not an event, or
        *target* is not a pool or pool class.
    :raises TypeError: *fn* is not callable, or cannot take the event's
        arguments.
    """
    arg_names = _check_target(target, identifier)
    if not callable(fn):
        raise TypeError(f"listener for {identifier!r} must be callable, got {fn!r}")
    _check_arity(fn, identifier, arg_names, named)
    listener = _Listener(fn, arg_names, named, once)
    with _lock:
        listener.seq = next(_insert_seq if insert else _append_seq)
        _add(identifier, target, listener)


def _add(identifier: str, target: Any, listener: _Listener) -> None:
    listeners = _by_target[identifier].setdefault(target, [])
    listeners.append(listener)
    listeners.sort(key=_seq_of)
    _refresh(identifier, target)


def listens_for(target: Any, identifier: str, **kw: Any) -> Callable[[_F], _F]:
    """Decorate a function to register it with :func:`listen`.

    :param target: as for :func:`listen`.
    :param identifier: as for :func:`listen`.
    :param kw: *once*, *named* or *insert*, as for :func:`listen`.
    """

    def decorate(fn: _F) -> _F:
        listen(target, identifier, fn, **kw)
        return fn

    return decorate


def remove(target: Any, identifier: str, fn: Callable[..., Any]) -> None:
    """Unregister a listener added with :func:`listen`.

    :param target: the target it was registered on.
    :param identifier: the event name.
    :param fn: the listener.
    :raises poolhouse.exc.InvalidRequestError: *fn* is not registered there.
    """
    _check_target(target, identifier)
    with _lock:
        listeners = _by_target[identifier].get(target, [])
        for i, listener in enumerate(listeners):
            if listener.fn == fn:  # == : a bound method is new each access
                del listeners[i]
                break
        else:
            raise exc.InvalidRequestError(
                f"{fn!r} is not listening for {identifier!r} on {target!r}; "
                "check event.contains() before removing"
            )
        _refresh(identifier, target)


def contains(target: Any, identifier: str, fn: Callable[..., Any]) -> bool:
    """Tell whether *fn* is registered for *identifier* on *target*.

    :param target: a pool or pool class.
    :param identifier: the event name.
    :param fn: the listener.
    """
    _check_target(target, identifier)
    with _lock:
        return any(
            listener.fn == fn for listener in _by_target[identifier].get(target, ())
        )


def _copy_listeners(source: Any, target: Any) -> None:
    """Give *target* the instance-level listeners of *source* (``recreate``)."""
    with _lock:
        for identifier, by_target in _by_target.items():
            for listener in by_target.get(source, ()):
                copy = _Listener(
                    listener.fn, listener.arg_names, listener.named, listener.once
                )
                copy.seq = listener.seq
                copy._fired = listener._fired  # a once-listener stays spent
                _add(identifier, target, copy)


def _clear() -> None:
    """Remove every listener (test isolation)."""
    with _lock:
        for identifier, by_target in _by_target.items():
            by_target.clear()
            for pool in list(_pools):
                setattr(pool._listeners, identifier, _resolve(pool, identifier))
