"""Decisions shared by the thread and asyncio pools.

Nothing here blocks, awaits, takes a lock or calls a driver: these are plain
functions and constants that check a pool's arguments and decide what must
happen (is a connection stale, how is it reset, may a checkout be retried,
what does the status line say).  The lifecycle that acts on them is written
once, in :mod:`poolhouse._async`, and generated into :mod:`poolhouse._sync`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from . import exc
from ._typing import ResetStyle
from .events import SIGNATURES
from .stats import PoolStats

_RESET_STYLES: dict[object, ResetStyle] = {
    "rollback": "rollback",
    True: "rollback",
    "commit": "commit",
    None: "none",
    False: "none",
}

#: How many connections one checkout may try when ``checkout`` listeners keep
#: raising :class:`~poolhouse.exc.DisconnectionError`.
CHECKOUT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PoolResetState:
    """What the ``reset`` event is told about the reset about to happen.

    :param transaction_was_reset: the transaction was already ended by the
        caller, so the pool's own rollback is a formality.
    :param terminate_only: the connection will be closed, not reused (a
        detached connection being closed).
    :param asyncio_safe: awaiting I/O in the listener is allowed.
    """

    transaction_was_reset: bool
    terminate_only: bool
    asyncio_safe: bool


#: The reset of a connection going back to its pool.
CHECKIN_RESET = PoolResetState(
    transaction_was_reset=False, terminate_only=False, asyncio_safe=True
)
#: The reset of a detached connection about to be closed.
DETACHED_RESET = PoolResetState(
    transaction_was_reset=False, terminate_only=True, asyncio_safe=True
)


# -- arguments --------------------------------------------------------------


def creator_wants_record(creator: Callable[..., Any]) -> bool:
    """Tell whether *creator* takes the connection record as its argument.

    A creator with exactly one required positional parameter gets the record;
    one with none (or only defaulted ones) is called without arguments.

    :raises TypeError: *creator* requires more than one argument.
    """
    try:
        params = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    if len(required) > 1:
        raise TypeError(
            f"creator {creator!r} requires {len(required)} positional arguments; "
            "a creator takes none, or one (the ConnectionRecord): wrap it, e.g. "
            "creator=lambda: driver.connect(dsn)"
        )
    return len(required) == 1


def check_int(name: str, value: object, minimum: int, rule: str) -> int:
    """Return *value* if it is an int >= *minimum*; *rule* says what to use."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return *value* if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_seconds(name: str, value: object, rule: str) -> float:
    """Return *value* as float seconds if it is a number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name}={value!r} is invalid: {rule}")
    return float(value)


def check_recycle(recycle: object) -> float:
    """Return *recycle* if it is -1 (never) or seconds >= 0."""
    rule = "use -1 (never) or a number of seconds >= 0"
    if isinstance(recycle, bool) or not isinstance(recycle, int | float):
        raise TypeError(f"recycle must be a number, got {recycle!r}")
    if not (recycle == -1 or recycle >= 0):
        raise ValueError(f"recycle={recycle!r} is invalid: {rule}")
    return recycle


def reset_style(reset_on_return: object) -> ResetStyle:
    """Normalise *reset_on_return* to ``"rollback"``, ``"commit"`` or ``"none"``."""
    try:
        if not isinstance(reset_on_return, bool | str | None):
            raise TypeError  # 0 and 1 would otherwise pass as False/True
        return _RESET_STYLES[reset_on_return]
    except (KeyError, TypeError):
        raise ValueError(
            f"reset_on_return={reset_on_return!r} is invalid: use 'rollback' "
            "(or True), 'commit', or None (or False)"
        ) from None


#: The methods a *dialect* must have, whatever the pool's options.
REQUIRED_DIALECT_METHODS = ("do_rollback", "do_commit", "do_close")


def check_dialect(dialect: object, pre_ping: bool) -> None:
    """Raise if *dialect* lacks a method the pool will call.

    ``do_ping`` is needed only with *pre_ping*; ``is_disconnect`` is optional
    (without it, no error counts as a disconnect).
    """
    needed = REQUIRED_DIALECT_METHODS + (("do_ping",) if pre_ping else ())
    missing = [m for m in needed if not callable(getattr(dialect, m, None))]
    if missing:
        raise TypeError(
            f"dialect {dialect!r} lacks {', '.join(missing)}; pass a "
            "poolhouse.dialects.Dialect or an object with do_rollback, do_commit "
            "and do_close (and do_ping for pre_ping=True)"
        )


def disconnect_test(dialect: object) -> Callable[[BaseException, Any], bool]:
    """Return ``f(error, dbapi_connection)`` telling whether *error* is a
    disconnect, from *dialect*'s ``is_disconnect``.

    A dialect without one never reports a disconnect.  SQLAlchemy's
    three-argument form ``is_disconnect(e, connection, cursor)`` is accepted
    and called with ``cursor=None``.
    """
    method = getattr(dialect, "is_disconnect", None)
    if not callable(method):
        return _never_a_disconnect
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return method  # type: ignore[no-any-return]  # a builtin: trust the docs
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
    ]
    if len(positional) == 3:

        def with_cursor(error: BaseException, dbapi_connection: Any) -> bool:
            return bool(method(error, dbapi_connection, None))

        return with_cursor
    return method  # type: ignore[no-any-return]  # the dialect's own method


def _never_a_disconnect(error: BaseException, dbapi_connection: Any) -> bool:
    return False


def publish_signature(cls: type) -> None:
    """Give the pool class *cls* its ``__init__``'s signature (so
    :func:`inspect.signature` and the docs show the real arguments, not
    ``__new__``'s ``*args``), and note the keywords it takes."""
    init = cls.__init__  # type: ignore[misc]  # the class's own, on purpose
    params = list(inspect.signature(init).parameters.values())[1:]
    cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # read by inspect
    named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    # A subclass whose __init__ takes **kwargs passes them on: its base
    # class checks them then.
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    cls._accepted_keywords = (  # type: ignore[attr-defined]  # read by __new__
        None if takes_any else frozenset(p.name for p in params if p.kind in named)
    )


def unknown_keywords(cls: type, given: Iterable[str]) -> TypeError | None:
    """Return the error for keyword arguments the pool class *cls* does not
    take, if any; the message names the class and, for a near miss, the
    option meant."""
    accepted: frozenset[str] | None = getattr(cls, "_accepted_keywords", None)
    if accepted is None:
        return None
    valid = sorted(accepted)
    wrong = [name for name in given if name not in valid]
    if not wrong:
        return None
    hints = []
    for name in wrong:
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        hints.append(f"{name!r}{hint}")
    plural = "s" if len(wrong) > 1 else ""
    return TypeError(
        f"{cls.__name__} got unexpected keyword argument{plural} "
        f"{', '.join(hints)}; {cls.__name__} takes {', '.join(valid)}"
    )


def check_events(
    pairs: object,
) -> list[tuple[Callable[..., Any], str]]:
    """Return the ``events=`` argument as checked ``(fn, event_name)`` pairs."""
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Iterable):
        raise TypeError(
            f"events= must be a list of (fn, event_name) pairs, got {pairs!r}"
        )
    checked = []
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise TypeError(f"events= must hold (fn, event_name) pairs, got {pair!r}")
        fn, identifier = pair
        if identifier not in SIGNATURES:
            raise ValueError(
                f"events=: no pool event named {identifier!r}; the events are "
                f"{', '.join(sorted(SIGNATURES))}"
            )
        if not callable(fn):
            raise TypeError(
                f"events=: the listener for {identifier!r} must be callable, got {fn!r}"
            )
        checked.append((fn, identifier))
    return checked


# -- connections ------------------------------------------------------------


def stale_reason(
    *,
    soft_invalidated: bool,
    generation: int,
    pool_generation: int,
    age: float,
    recycle: float,
    lifetime: float,
    uses: int,
    max_uses: int | None,
) -> str | None:
    """Say why a connection must be replaced before use, if it must.

    :param lifetime: this connection's *max_lifetime*, jitter applied
        (``inf`` when unset).
    :param uses: how many times it was checked out so far.
    """
    if soft_invalidated:
        return "soft-invalidated"
    if generation != pool_generation:
        return "expired"
    if recycle >= 0 and age > recycle:
        return "older than recycle"
    if age > lifetime:
        return "older than max_lifetime"
    if max_uses is not None and uses >= max_uses:
        return f"used {uses} times (max_uses)"
    return None


#: How much shorter than *max_lifetime* a connection's own lifetime may be,
#: so that connections opened together are not all replaced together.
LIFETIME_JITTER = 0.05


def jittered_lifetime(max_lifetime: float | None, draw: Callable[[], float]) -> float:
    """One connection's lifetime: *max_lifetime* less up to 5%, or ``inf``.

    :param draw: returns a float in [0, 1) (``random.random``).
    """
    if max_lifetime is None:
        return float("inf")
    return max_lifetime * (1.0 - LIFETIME_JITTER * draw())


def check_optional_count(name: str, value: object) -> int | None:
    """Return *value* if it is ``None`` or an int >= 1."""
    if value is None:
        return None
    return check_int(name, value, 1, "use None (no limit) or an int >= 1")


def check_optional_seconds(name: str, value: object) -> float | None:
    """Return *value* as float seconds if it is ``None`` or a number > 0."""
    if value is None:
        return None
    seconds = check_seconds(name, value, "use None (never) or seconds > 0")
    if seconds == 0:
        raise ValueError(f"{name}=0 is invalid: use None (never) or seconds > 0")
    return seconds


#: The worker's first retry delay after a failed connect, in seconds.
BACKOFF_START = 0.1


def backoff_delay(
    failures: int, backoff_max: float, draw: Callable[[], float]
) -> float:
    """Seconds before the next connect attempt after *failures* in a row:
    100 ms doubling up to *backoff_max*, each cut by a random half at most
    (so many pools do not retry in step).

    :param draw: returns a float in [0, 1) (``random.random``).
    """
    full: float = min(backoff_max, BACKOFF_START * 2.0 ** min(failures - 1, 32))
    return full * (1.0 - 0.5 * draw())


def check_worker_options(
    *,
    pool_size: int,
    background: object,
    min_idle: object,
    max_idle_time: object,
    reconnect_backoff_max: object,
    reconnect_timeout: object,
) -> None:
    """Check the background worker's options of a queue pool together."""
    check_bool("background", background)
    check_int("min_idle", min_idle, 0, "use an int >= 0")
    check_optional_seconds("max_idle_time", max_idle_time)
    backoff = check_seconds(
        "reconnect_backoff_max", reconnect_backoff_max, "use seconds > 0"
    )
    if backoff == 0:
        raise ValueError("reconnect_backoff_max=0 is invalid: use seconds > 0")
    check_optional_seconds("reconnect_timeout", reconnect_timeout)
    assert isinstance(min_idle, int)  # checked above
    if pool_size and min_idle > pool_size:
        raise ValueError(
            f"min_idle={min_idle} is invalid: it cannot exceed pool_size={pool_size}"
            " (idle connections beyond pool_size are closed)"
        )
    needs_worker = {
        "min_idle": min_idle > 0,
        "max_idle_time": max_idle_time is not None,
        "reconnect_timeout": reconnect_timeout is not None,
    }
    for name, given in needs_worker.items():
        if given and not background:
            raise ValueError(
                f"{name} is kept by the background worker: pass background=True "
                f"with it, or leave {name} unset"
            )
    if max_idle_time is not None and pool_size and min_idle == pool_size:
        raise ValueError(
            f"max_idle_time={max_idle_time!r} can never apply with "
            f"min_idle == pool_size == {pool_size}: lower min_idle, or drop "
            "max_idle_time"
        )


def pool_closed_error(pool: object) -> exc.PoolClosedError:
    """The error for a checkout from (or a wait in) a closed pool."""
    return exc.PoolClosedError(
        f"{pool!r} is closed; create a new pool (or use recreate()) to check "
        "out connections again",
        pool=pool,
    )


def retry_error(pool: object, err: exc.DisconnectionError) -> exc.InvalidRequestError:
    """The error for a checkout whose every attempt listeners rejected."""
    return exc.InvalidRequestError(
        f"{pool!r}: checkout listeners rejected {CHECKOUT_ATTEMPTS} connections "
        f"in a row (last: {err}); check that the database is reachable and "
        "what the checkout listener tests",
        pool=pool,
    )


def creator_returned_none(creator: object) -> TypeError:
    """The error for a creator that returned ``None``."""
    return TypeError(
        f"creator {creator!r} returned None instead of a connection; make it "
        "return the driver's connection, e.g. creator=lambda: "
        "sqlite3.connect(path)"
    )


# -- status -----------------------------------------------------------------


def queue_status(stats: PoolStats) -> str:
    """The status line of a bounded pool: SQLAlchemy's words, then the
    waiting callers and the counters that explain trouble."""
    return (
        f"Pool size: {stats.pool_size or 0}  Connections in pool: {stats.idle} "
        f"Current Overflow: {stats.overflow} Current Checked out connections: "
        f"{stats.in_use} Waiting: {stats.waiting} Connects: {stats.connects} "
        f"Connect errors: {stats.connect_errors} Checkouts: {stats.checkouts} "
        f"Timeouts: {stats.timeouts} Invalidations: {stats.invalidations}"
    )
