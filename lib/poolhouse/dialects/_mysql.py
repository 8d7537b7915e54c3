"""What the PyMySQL and mysqlclient dialects share: MySQL's disconnect codes.

Imports no driver, so either dialect can use it alone.
"""

from __future__ import annotations

#: Server and client error codes after which the connection cannot be used.
DISCONNECT_CODES = frozenset(
    {
        1053,  # ER_SERVER_SHUTDOWN: the server ends the session as it stops
        1927,  # ER_CONNECTION_KILLED (MariaDB): KILL CONNECTION
        2006,  # CR_SERVER_GONE_ERROR: lost between queries; also a closed handle
        2013,  # CR_SERVER_LOST: lost during a query
        # CR_COMMANDS_OUT_OF_SYNC: the protocol state is lost (PyMySQL has
        # already closed the socket); the connection cannot be reset.
        2014,
        2055,  # CR_SERVER_LOST_EXTENDED
    }
)

#: MySQL 8.0.24+ sends ER_CLIENT_INTERACTION_TIMEOUT before it closes an idle
#: session; in MariaDB the same number is ER_REFERENCED_TRG_DOES_NOT_EXIST,
#: so the message tells them apart.
INTERACTION_TIMEOUT_CODE = 4031
INTERACTION_TIMEOUT_MESSAGE = "The client was disconnected"


def error_code(exception: BaseException) -> int | None:
    """Return the MySQL error number of a driver error, ``None`` if it has none.

    :param exception: a PyMySQL or mysqlclient error, whose ``args`` are
        ``(code, message)``.
    """
    args = exception.args
    code = args[0] if args else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def is_disconnect_code(exception: BaseException) -> bool:
    """Tell whether a driver error's code means the connection is lost.

    :param exception: a PyMySQL or mysqlclient error.
    """
    code = error_code(exception)
    if code in DISCONNECT_CODES:
        return True
    if code == INTERACTION_TIMEOUT_CODE:
        args = exception.args
        message = str(args[1]) if len(args) > 1 else ""
        return message.startswith(INTERACTION_TIMEOUT_MESSAGE)
    return False


def is_closed_handle_error(exception: BaseException) -> bool:
    """Tell whether *exception* is ``(0, '')``: the error for a closed handle.

    :param exception: a driver ``InterfaceError``.
    """
    return tuple(exception.args) == (0, "")
