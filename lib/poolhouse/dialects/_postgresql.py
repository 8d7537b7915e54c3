"""What the psycopg (3) and psycopg2 dialects share: PostgreSQL's disconnect signs.

Imports no driver, so either dialect can use it alone.
"""

from __future__ import annotations

from collections.abc import Iterable

#: SQLSTATEs of errors after which the server has ended the session, beyond
#: class 08 (connection exception).
DISCONNECT_SQLSTATES = frozenset(
    {
        "25P03",  # idle_in_transaction_session_timeout
        "25P04",  # transaction_timeout (PostgreSQL 17)
        "57P01",  # admin_shutdown: pg_terminate_backend(), fast/smart shutdown
        "57P02",  # crash_shutdown: another backend crashed
        "57P03",  # cannot_connect_now: starting up or shutting down
        "57P04",  # database_dropped
        "57P05",  # idle_session_timeout (PostgreSQL 14)
    }
)

#: libpq's messages for a lost link.  They only come with client-side errors,
#: which carry no SQLSTATE, so a server error quoting them never matches.
LIBPQ_DISCONNECT_MESSAGES = (
    "server closed the connection unexpectedly",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "no connection to the server",
    "connection not open",
    "SSL connection has been closed unexpectedly",
    "SSL SYSCALL error",
    "SSL error: decryption failed or bad record mac",
    "SSL error: unexpected eof while reading",
)


def is_disconnect_error(
    sqlstate: str | None, message: str, client_messages: Iterable[str]
) -> bool:
    """Tell whether a PostgreSQL error means the session is gone.

    :param sqlstate: the error's SQLSTATE, ``None`` for a client-side error.
    :param message: the error's text.
    :param client_messages: the driver's own messages for a closed or lost
        connection, checked along with libpq's when there is no SQLSTATE.
    """
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in DISCONNECT_SQLSTATES
    return any(m in message for m in LIBPQ_DISCONNECT_MESSAGES) or any(
        m in message for m in client_messages
    )
