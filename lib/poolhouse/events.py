"""One blinker signal per pool event.

Every signal is sent with the pool as sender and the keyword arguments listed
in its docstring.  Register listeners with :func:`poolhouse.event.listen`,
which calls them positionally in that order (or by keyword with
``named=True``) and keeps them in registration order.
"""

from __future__ import annotations

from blinker import Signal

first_connect = Signal(
    """The pool opened its first connection (once per pool).

    kwargs: ``dbapi_connection``, ``connection_record``.
    """
)
connect = Signal(
    """A new DBAPI connection was opened.

    kwargs: ``dbapi_connection``, ``connection_record``.
    """
)
checkout = Signal(
    """A connection is about to be handed out.  Raising
    :class:`~poolhouse.exc.DisconnectionError` discards it and retries.

    kwargs: ``dbapi_connection``, ``connection_record``, ``connection_proxy``.
    """
)
checkin = Signal(
    """A connection came back to the pool (``dbapi_connection`` is ``None`` if
    it was invalidated).

    kwargs: ``dbapi_connection``, ``connection_record``.
    """
)
reset = Signal(
    """A connection is about to be reset (before the rollback or commit).

    kwargs: ``dbapi_connection``, ``connection_record``, ``reset_state``.
    """
)
invalidate = Signal(
    """A connection was invalidated and is being closed.

    kwargs: ``dbapi_connection``, ``connection_record``, ``exception``.
    """
)
soft_invalidate = Signal(
    """A connection was soft-invalidated: replaced at its next checkout.

    kwargs: ``dbapi_connection``, ``connection_record``, ``exception``.
    """
)
close = Signal(
    """A pooled connection is being closed.

    kwargs: ``dbapi_connection``, ``connection_record``.
    """
)
detach = Signal(
    """A connection was detached from its pool.

    kwargs: ``dbapi_connection``, ``connection_record``.
    """
)
close_detached = Signal(
    """A detached connection is being closed.

    kwargs: ``dbapi_connection``.
    """
)

reconnect_failed = Signal(
    """The database has been unreachable for *reconnect_timeout* seconds: the
    pool's background worker keeps retrying, and callers fail at once until
    a connection opens again (once per outage).

    kwargs: ``exception`` (the last connect error), ``down_for`` (seconds).
    """
)

leak = Signal(
    """A connection has been checked out longer than the pool's
    *leak_threshold* (once per checkout).

    kwargs: ``dbapi_connection``, ``connection_record``, ``checked_out``
    (a :class:`~poolhouse.stats.CheckedOutConnection`: age, holder, stack).
    """
)

#: Event name -> (signal, argument names in positional order).
SIGNATURES: dict[str, tuple[Signal, tuple[str, ...]]] = {
    "first_connect": (first_connect, ("dbapi_connection", "connection_record")),
    "connect": (connect, ("dbapi_connection", "connection_record")),
    "checkout": (
        checkout,
        ("dbapi_connection", "connection_record", "connection_proxy"),
    ),
    "checkin": (checkin, ("dbapi_connection", "connection_record")),
    "reset": (reset, ("dbapi_connection", "connection_record", "reset_state")),
    "invalidate": (
        invalidate,
        ("dbapi_connection", "connection_record", "exception"),
    ),
    "soft_invalidate": (
        soft_invalidate,
        ("dbapi_connection", "connection_record", "exception"),
    ),
    "close": (close, ("dbapi_connection", "connection_record")),
    "detach": (detach, ("dbapi_connection", "connection_record")),
    "close_detached": (close_detached, ("dbapi_connection",)),
    "reconnect_failed": (reconnect_failed, ("exception", "down_for")),
    "leak": (leak, ("dbapi_connection", "connection_record", "checked_out")),
}
