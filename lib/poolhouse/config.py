"""Build a pool from code, or from flat configuration such as an ini section."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from ._sync.pool import AssertionPool
from ._sync.pool import NullPool
from ._sync.pool import Pool
from ._sync.pool import StaticPool
from ._sync.queue_pool import QueuePool
from ._sync.singleton import SingletonThreadPool
from ._typing import Creator

_CLASSES: dict[str, type[Pool[Any]]] = {
    cls.__name__: cls
    for cls in (QueuePool, NullPool, StaticPool, SingletonThreadPool, AssertionPool)
}

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"use one of {', '.join(sorted(_TRUE | _FALSE))}")


def _to_reset(text: str) -> str | bool | None:
    lowered = text.strip().lower()
    if lowered in ("rollback", "commit"):
        return lowered
    if lowered in ("none", ""):
        return None
    if lowered in _TRUE | _FALSE:
        return _to_bool(lowered)
    raise ValueError(
        f"use rollback, commit or none (or one of {', '.join(sorted(_TRUE | _FALSE))})"
    )


def _to_echo(text: str) -> bool | str | None:
    lowered = text.strip().lower()
    if lowered == "debug":
        return "debug"
    if lowered in ("none", ""):
        return None
    if lowered in _TRUE | _FALSE:
        return _to_bool(lowered)
    raise ValueError(f"use debug, none, or one of {', '.join(sorted(_TRUE | _FALSE))}")


def _optional(convert: Callable[[str], Any], text: str) -> Any:
    return None if text.strip().lower() in ("none", "") else convert(text)


def _to_name(text: str) -> str | None:
    return text or None


# Option name -> string converter, per pool class that accepts it.
_POOL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "recycle": float,
    "echo": _to_echo,
    "logging_name": _to_name,
    "reset_on_return": _to_reset,
    "pre_ping": _to_bool,
    "ping_interval": float,
    "max_lifetime": lambda text: _optional(float, text),
    "max_uses": lambda text: _optional(int, text),
    "leak_threshold": lambda text: _optional(float, text),
}
_CLASS_OPTIONS: dict[type[Pool[Any]], dict[str, Callable[[str], Any]]] = {
    QueuePool: {
        "pool_size": int,
        "max_overflow": int,
        "timeout": float,
        "use_lifo": _to_bool,
        "background": _to_bool,
        "min_idle": int,
        "max_idle_time": lambda text: _optional(float, text),
        "reconnect_backoff_max": float,
        "reconnect_timeout": lambda text: _optional(float, text),
    },
    SingletonThreadPool: {"pool_size": int},
}


def create_pool(
    creator: Creator[Any], poolclass: type[Pool[Any]] = QueuePool, **kw: Any
) -> Pool[Any]:
    """Create a pool of *poolclass*.

    :param creator: as for :class:`.Pool`.
    :param poolclass: the pool class; default :class:`.QueuePool`.
    :param kw: the arguments of *poolclass*.
    :raises TypeError: *poolclass* is not a :class:`.Pool` subclass.
    """
    if not (isinstance(poolclass, type) and issubclass(poolclass, Pool)):
        raise TypeError(
            f"poolclass must be a Pool subclass such as QueuePool, got {poolclass!r}"
        )
    return poolclass(creator, **kw)


def _resolve_class(spec: str) -> type[Pool[Any]]:
    if spec in _CLASSES:
        return _CLASSES[spec]
    module_name, _, attr = spec.rpartition(".")
    if not module_name:
        raise ValueError(
            f"unknown pool class {spec!r}: use one of {', '.join(_CLASSES)} "
            "or a dotted path such as 'myapp.pools.MyPool'"
        )
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import pool class {spec!r}: {err}") from err
    if not (isinstance(found, type) and issubclass(found, Pool)):
        raise ValueError(f"{spec!r} is {found!r}, not a Pool subclass")
    return found


def _options_for(poolclass: type[Pool[Any]]) -> dict[str, Callable[[str], Any]]:
    options = dict(_POOL_OPTIONS)
    for cls in poolclass.__mro__:
        options.update(_CLASS_OPTIONS.get(cls, {}))
    return options


def pool_from_config(
    config: Mapping[str, Any], prefix: str = "pool.", *, creator: Creator[Any]
) -> Pool[Any]:
    """Build a pool from a flat mapping such as an ini section or ``os.environ``.

    Keys that start with *prefix* configure the pool; the others are ignored.
    ``<prefix>class`` names the class (``QueuePool`` by default, or a dotted
    path); the other keys are its arguments, given as strings and converted:
    ``{"pool.class": "QueuePool", "pool.pool_size": "5", "pool.pre_ping":
    "true"}``.  Values that are not strings are passed as they are.

    :param config: the mapping.
    :param prefix: the prefix of the pool's keys; default ``"pool."``.
    :param creator: as for :class:`.Pool`.
    :raises ValueError: a key is not an argument of the chosen class, or a
        value cannot be converted.
    """
    ours = {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
    spec = ours.pop("class", "QueuePool")
    try:
        poolclass = spec if isinstance(spec, type) else _resolve_class(str(spec))
        if not issubclass(poolclass, Pool):
            raise ValueError(f"{spec!r} is not a Pool subclass")
        if inspect.isabstract(poolclass):
            raise ValueError(
                f"{poolclass.__name__} is abstract; use one of {', '.join(_CLASSES)}"
            )
    except ValueError as err:
        raise ValueError(f"{prefix}class={spec!r} is invalid: {err}") from None
    options = _options_for(poolclass)
    kwargs: dict[str, Any] = {}
    for name, raw in ours.items():
        convert = options.get(name)
        if convert is None:
            raise ValueError(
                f"unknown option {prefix + name!r} for {poolclass.__name__}; "
                f"valid options: {', '.join(sorted(prefix + o for o in options))}"
            )
        if not isinstance(raw, str):
            kwargs[name] = raw
            continue
        try:
            kwargs[name] = convert(raw)
        except ValueError as err:
            raise ValueError(
                f"{prefix}{name}={raw!r} is invalid for {poolclass.__name__}: {err}"
            ) from None
    try:
        return poolclass(creator, **kwargs)
    except (ValueError, TypeError) as err:
        # The constructor names the argument; name the configuration key too.
        keys = ", ".join(f"{prefix}{name}" for name in kwargs if name in str(err))
        raise type(err)(f"{keys or prefix + '*'}: {err}") from None
