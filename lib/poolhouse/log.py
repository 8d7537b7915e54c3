"""Per-pool loggers, the ``echo`` switch, and the redaction of secrets."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import TextIO

from ._typing import Echo

if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # not subscriptable at run time before Python 3.11
    _StreamHandler = logging.StreamHandler

_ECHO_LEVELS = {True: logging.INFO, "debug": logging.DEBUG}
_ECHO_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: Serialises pool_logger(): two pools made at once on one logger must not
#: both add a handler or a filter.
_setup_lock = threading.Lock()

# One scan finds all three kinds of secret; each alternative keeps its
# prefix (key, separator, user) and masks only the value.
_SECRETS = re.compile(
    r"""
    # key=value, as in a libpq or ODBC conninfo, a URL query, keyword
    # arguments in a repr or an environment dump: password=s3cret,
    # password = 'it\'s', password=b'x', PWD={a;b}, sslpassword=...,
    # PGPASSWORD=...  An unquoted value runs to the next blank or quote, as
    # libpq reads it (';' and '&' may be part of a libpq password, a quote
    # is escaped): it may take some text after it, but never leaves part of
    # the secret behind.  A quoted value may lack its closing quote (a
    # truncated repr): then the rest of the text goes.
    (?P<kv>\b\w*(?:password|passwd|pwd)[ \t]*=[ \t]*)
    (?P<kv_value>
        b?'(?:[^'\\]|\\.)*'?
      | b?"(?:[^"\\]|\\.)*"?
      | \{(?:[^}]|\}\})*\}?
      | (?:\\.?|[^\s'"\\])+
    )
    |
    # A mapping's repr or JSON: {'password': 's3cret'}, "db_pwd": "x".
    (?P<key>(?P<q>['"])\w*(?:password|passwd|pwd)(?P=q)\s*:\s*)
    (?P<key_value>
        b?'(?:[^'\\]|\\.)*'?
      | b?"(?:[^"\\]|\\.)*"?
      | [^\s,}]+
    )
    |
    # The user info of a URL: postgresql://user:s3cret@host/db.  The value
    # runs to the last '@' before a blank: a password may hold '@', '/', '#'
    # or '?' (SQLAlchemy's URL parser accepts them), and masking too much is
    # safer than leaving part of one.
    (?P<url>\b[a-z][a-z0-9+.\-]*://[^\s:/?#@]*:)
    (?P<url_value>\S+)(?=@)
    """,
    re.IGNORECASE | re.VERBOSE,
)
_MASK = "***"
#: How a quoted value of _SECRETS starts (an unquoted one never does).
_OPENING = re.compile(r"b?(['\"])|\{", re.IGNORECASE)


def _mask(match: re.Match[str]) -> str:
    prefix = next(p for p in ("kv", "key", "url") if match.group(p) is not None)
    head: str = match.group(prefix)
    value: str = match.group(f"{prefix}_value")
    opening = _OPENING.match(value) if prefix != "url" else None
    if opening is None:
        return f"{head}{_MASK}"
    # Keep the quotes, so the text still reads as the repr or conninfo it was.
    closing = opening.group(1) or "}"
    return f"{head}{opening.group()}{_MASK}{closing}"


def redact_secrets(text: str) -> str:
    """Return *text* with passwords replaced by ``***``.

    Masks the values of ``password=``/``passwd=``/``pwd=`` (quoted or not,
    as in a conninfo string or a URL query), of ``'password': ...`` in a
    mapping's repr, and the password of a ``scheme://user:password@host``
    URL.  Text without such a pattern, e.g. ``password authentication
    failed for user "app"``, is returned unchanged.

    :param text: a log message, an exception's text, a DSN.
    """
    # Most lines hold none of the keys: a substring test is ~20 times faster
    # than the scan (casefold(), as re.IGNORECASE matches "ſ" to "s").
    folded = text.casefold()
    if "pass" not in folded and "pwd" not in folded and "://" not in text:
        return text
    return _SECRETS.sub(_mask, text)


#: Formats exception text as every handler's default formatter would.
_FORMATTER = logging.Formatter()


class _RedactSecrets(logging.Filter):
    """Masks secrets in a record's message and exception text.

    A logger's filters see only records at an enabled level, so redaction
    costs nothing while the level is off.  The message is formatted here,
    once, and stored back (``args`` emptied), so every handler gets the
    masked text; ``exc_info`` stays for handlers that want the exception
    object, and ``exc_text``, which the standard :class:`logging.Formatter`
    prints instead of formatting ``exc_info`` again, is the masked traceback.
    Never raises: a message whose format fails still goes out, without the
    values of its arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_secrets(_message(record))
        record.args = ()
        try:
            if record.exc_info and not record.exc_text:
                record.exc_text = _FORMATTER.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact_secrets(record.exc_text)
            if record.stack_info:
                record.stack_info = redact_secrets(record.stack_info)
        except Exception:
            pass  # a broken exc_info: the handler's formatter reports it
        return True


def _message(record: logging.LogRecord) -> str:
    """The record's message; a format that fails still gives a line."""
    try:
        return record.getMessage()
    except Exception as err:
        # The arguments' values are left out: which of them is a secret is
        # unknowable once the format that names them has failed.
        args = record.args
        try:
            if isinstance(args, Mapping):
                shown = ", ".join(f"{k}=<{type(v).__name__}>" for k, v in args.items())
            else:
                shown = ", ".join(f"<{type(arg).__name__}>" for arg in args or ())
            return f"{record.msg!r} % ({shown}) is unformattable: {err!r}"
        except Exception:
            return f"unformattable log message ({type(err).__name__})"


class _EchoHandler(_StreamHandler):
    """The stdout handler of ``echo``; silent while another handler gets the line.

    Whether the application configures logging before or after the pool is
    made, each line goes out exactly once: here only while no other handler
    (``logging.lastResort`` and :class:`logging.NullHandler` aside) on the
    record's logger or its ancestors, following ``propagate``, would take it.
    Of several echo handlers on one path (``echo`` on the pools named
    ``QueuePool`` and ``QueuePool.orders``), the nearest one prints.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(logging.Formatter(_ECHO_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if self._is_handled_elsewhere(record):
            return
        # Looked up at each line, not kept: stdout may have been replaced
        # (contextlib.redirect_stdout, a test runner) since the pool was made.
        self.stream = sys.stdout
        super().emit(record)

    def _is_handled_elsewhere(self, record: logging.LogRecord) -> bool:
        # Only records that passed the level check and reached this handler
        # get here: the walk costs nothing while the pool is quiet.
        logger = logging.Logger.manager.loggerDict.get(record.name)
        if not isinstance(logger, logging.Logger):
            return False  # handed to us directly: print it
        nearest_echo: logging.Handler | None = None
        current: logging.Logger | None = logger
        while current is not None:
            for handler in current.handlers:
                if isinstance(handler, _EchoHandler):
                    nearest_echo = nearest_echo or handler
                elif (
                    handler is not logging.lastResort
                    and not isinstance(handler, logging.NullHandler)
                    and record.levelno >= handler.level
                ):
                    return True
            current = current.parent if current.propagate else None
        return nearest_echo is not None and nearest_echo is not self


def pool_logger(cls: type, logging_name: str | None, echo: Echo) -> logging.Logger:
    """Return the logger for one pool: ``poolhouse.pool.<Class>[.<name>]``.

    The logger always masks passwords in its records (see
    :func:`redact_secrets`).

    :param cls: the pool's class.
    :param logging_name: the pool's *logging_name*, or ``None``.
    :param echo: ``None``/``False`` leaves the level alone; ``True`` sets INFO
        and ``"debug"`` sets DEBUG on this logger only, adding one stdout
        handler if it has none, which prints only the lines no handler of
        the application's logging configuration takes.
    """
    name = f"poolhouse.pool.{cls.__name__}"
    if logging_name:
        name = f"{name}.{logging_name}"
    logger = logging.getLogger(name)
    level = _ECHO_LEVELS.get(echo) if echo else None
    with _setup_lock:
        # Pools sharing a logging_name share the logger: one filter, one
        # handler.
        if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
            logger.addFilter(_RedactSecrets())
        if level is not None:
            logger.setLevel(level)
            if not any(isinstance(h, _EchoHandler) for h in logger.handlers):
                logger.addHandler(_EchoHandler())
    return logger
