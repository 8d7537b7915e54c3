"""Register listeners on pool events: ``listen``, ``listens_for``, ``remove``.

This module is the only caller of :meth:`blinker.Signal.connect` and
:meth:`~blinker.Signal.disconnect` in poolhouse.  For each signal it connects
one dispatcher, and only while that signal has listeners, so an event nobody
listens to costs the pool a single truth test.  The dispatcher adds what
blinker alone does not give:

- listeners run in registration order (``insert=True`` puts one first);
- a class target reaches every instance of it and of its subclasses, including
  pools created later (blinker matches senders by identity);
- listeners receive the event's arguments positionally, or by keyword with
  ``named=True``, and stay registered until :func:`remove`.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from blinker import Signal

from . import exc
from .events import SIGNATURES

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.Lock()
# A global sequence: listeners on a pool and on its classes interleave in the
# order they were registered.  insert=True draws from the negative side.
_append_seq = itertools.count(1)
_insert_seq = itertools.count(-1, -1)


class _Listener:
    """One registered ``(target, identifier, fn)``."""

    __slots__ = ("fn", "arg_names", "named", "once", "seq", "_fired")

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

    def __call__(self, kwargs: dict[str, Any]) -> Any:
        if self.once:
            with _lock:
                if self._fired:
                    return None
                self._fired = True
        if self.named:
            return self.fn(**kwargs)
        return self.fn(*[kwargs[name] for name in self.arg_names])


class _Dispatcher:
    """The single blinker receiver of one signal; calls listeners in order."""

    def __init__(self, signal: Signal, identifier: str) -> None:
        self.signal = signal
        self.identifier = identifier
        # target (pool instance or class) -> its listeners, sorted by seq.
        self.by_target: weakref.WeakKeyDictionary[Any, list[_Listener]] = (
            weakref.WeakKeyDictionary()
        )
        #: Whether this dispatcher is connected to its signal (it is while it
        #: has listeners, whatever other blinker receivers the signal has).
        self.connected = False

    def listeners_for(self, sender: Any) -> list[_Listener]:
        """Return the listeners that apply to *sender*, in calling order."""
        found: list[_Listener] = []
        by_target = self.by_target
        own = by_target.get(sender)
        if own:
            found.extend(own)
        for cls in type(sender).__mro__:
            for_class = by_target.get(cls)
            if for_class:
                found.extend(for_class)
        if len(found) > 1:
            found.sort(key=_seq_of)
        return found

    def __call__(self, sender: Any, **kwargs: Any) -> list[Any]:
        return [listener(kwargs) for listener in self.listeners_for(sender)]

    def is_empty(self) -> bool:
        return not any(self.by_target.values())


def _seq_of(listener: _Listener) -> int:
    return listener.seq


_dispatchers: dict[str, _Dispatcher] = {
    name: _Dispatcher(signal, name) for name, (signal, _) in SIGNATURES.items()
}


def _dispatcher(target: Any, identifier: str) -> _Dispatcher:
    if not getattr(target, "_is_event_target", False):
        raise exc.InvalidRequestError(
            f"cannot listen on {target!r}: event targets are pools or pool "
            "classes; pass a Pool instance or a subclass such as QueuePool"
        )
    try:
        return _dispatchers[identifier]
    except KeyError:
        raise exc.InvalidRequestError(
            f"no pool event named {identifier!r}; the events are "
            f"{', '.join(sorted(_dispatchers))}"
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
    :raises TypeError: *fn* is not callable.
    """
    dispatcher = _dispatcher(target, identifier)
    if not callable(fn):
        raise TypeError(f"listener for {identifier!r} must be callable, got {fn!r}")
    listener = _Listener(fn, SIGNATURES[identifier][1], named, once)
    with _lock:
        listener.seq = next(_insert_seq if insert else _append_seq)
        _add(dispatcher, target, listener)


def _add(dispatcher: _Dispatcher, target: Any, listener: _Listener) -> None:
    listeners = dispatcher.by_target.setdefault(target, [])
    listeners.append(listener)
    listeners.sort(key=_seq_of)
    if not dispatcher.connected:
        dispatcher.signal.connect(dispatcher, weak=False)
        dispatcher.connected = True


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
    dispatcher = _dispatcher(target, identifier)
    with _lock:
        listeners = dispatcher.by_target.get(target, [])
        for i, listener in enumerate(listeners):
            if listener.fn is fn:
                del listeners[i]
                break
        else:
            raise exc.InvalidRequestError(
                f"{fn!r} is not listening for {identifier!r} on {target!r}; "
                "check event.contains() before removing"
            )
        if dispatcher.is_empty():
            dispatcher.signal.disconnect(dispatcher)
            dispatcher.connected = False


def contains(target: Any, identifier: str, fn: Callable[..., Any]) -> bool:
    """Tell whether *fn* is registered for *identifier* on *target*.

    :param target: a pool or pool class.
    :param identifier: the event name.
    :param fn: the listener.
    """
    dispatcher = _dispatcher(target, identifier)
    with _lock:
        return any(
            listener.fn is fn for listener in dispatcher.by_target.get(target, ())
        )


async def _send_async(signal: Signal, sender: Any, kwargs: dict[str, Any]) -> None:
    """Send *signal* from an asyncio pool: each receiver in turn, awaited.

    Listeners registered with :func:`listen` run in registration order, an
    ``async def`` one awaited before the next starts; other blinker receivers
    are called (sync) or awaited (async), as :meth:`blinker.Signal.send_async`
    would.
    """
    for receiver in signal.receivers_for(sender):
        if isinstance(receiver, _Dispatcher):
            for listener in receiver.listeners_for(sender):
                result = listener(kwargs)
                if inspect.isawaitable(result):
                    await result
        else:
            result = receiver(sender, **kwargs)
            if inspect.isawaitable(result):
                await result


def _copy_listeners(source: Any, target: Any) -> None:
    """Give *target* the instance-level listeners of *source* (``recreate``)."""
    with _lock:
        for dispatcher in _dispatchers.values():
            for listener in dispatcher.by_target.get(source, ()):
                copy = _Listener(
                    listener.fn, listener.arg_names, listener.named, listener.once
                )
                copy.seq = listener.seq
                copy._fired = listener._fired  # a once-listener stays spent
                _add(dispatcher, target, copy)


def _clear() -> None:
    """Remove every listener (test isolation)."""
    with _lock:
        for dispatcher in _dispatchers.values():
            dispatcher.by_target.clear()
            dispatcher.signal.disconnect(dispatcher)
            dispatcher.connected = False
