"""Pool loggers: ``echo`` prints each line once, and secrets are masked."""

from __future__ import annotations

import collections
import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from poolhouse import QueuePool
from poolhouse.log import redact_secrets

from .fakedbapi import FakeConnection
from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect
from .fakedbapi import FakeProgrammingError

FORMAT = "%(levelname)s %(name)s %(message)s"


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """``echo`` and the redaction filter configure loggers for the whole
    process: put every logger but the root (pytest's) back as it was."""
    manager = logging.Logger.manager
    before = {
        name: (logger.level, logger.handlers[:], logger.filters[:], logger.propagate)
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for name, logger in list(manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        level, handlers, filters, propagate = before.get(
            name, (logging.NOTSET, [], [], True)
        )
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.propagate = propagate


@pytest.fixture
def logging_name(request: pytest.FixtureRequest) -> str:
    return f"log{id(request)}"


@contextlib.contextmanager
def bare_root() -> Iterator[None]:
    """A root logger without handlers, as in a program that configured no
    logging; pytest's capturing handlers come back at the end."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def configure_root(level: int = logging.NOTSET) -> io.StringIO:
    """What an application's ``logging.basicConfig()`` does; return its output."""
    out = io.StringIO()
    logging.basicConfig(stream=out, format=FORMAT)
    logging.getLogger().handlers[0].setLevel(level)
    return out


def lifecycle(pool: QueuePool[Any]) -> None:
    """Connect, check out, invalidate, close: DEBUG and INFO lines."""
    with pool.connect() as conn:
        conn.invalidate()


class Recorder(logging.Filter):
    """Notes each record a logger handles, as ``"<logger> <message>"``.

    A filter, not a handler, so that echo does not count it as one."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.lines.append(f"{record.name} {record.getMessage()}")
        return True


def recorded(pool: QueuePool[Any]) -> Recorder:
    recorder = Recorder()
    pool.logger.addFilter(recorder)
    return recorder


def pool_lines(text: str, pool: QueuePool[Any]) -> list[str]:
    """The lines of *text* logged by *pool*, from the logger's name on (the
    echo handler starts its lines with the time)."""
    return [
        line[line.index(pool.logger.name) :]
        for line in text.splitlines()
        if f"{pool.logger.name} " in line
    ]


def assert_each_once(lines: list[str], recorder: Recorder) -> None:
    """*lines* are what was logged, each line once."""
    assert any("invalidated connection" in line for line in recorder.lines)
    assert collections.Counter(lines) == collections.Counter(recorder.lines)


# -- echo: each line once ------------------------------------------------------


@pytest.mark.parametrize("echo", [True, "debug"])
def test_echo_with_root_configured_first_logs_each_line_once(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
    echo: Any,
) -> None:
    with bare_root():
        root_out = configure_root()
        pool = QueuePool(
            dbapi.connect, dialect=dialect, echo=echo, logging_name=logging_name
        )
        recorder = recorded(pool)
        lifecycle(pool)
    assert pool_lines(capsys.readouterr().out, pool) == []
    assert_each_once(pool_lines(root_out.getvalue(), pool), recorder)
    if echo == "debug":
        assert any("checked out" in line for line in recorder.lines)


def test_echo_with_root_configured_afterwards_logs_each_line_once(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bare_root():
        pool = QueuePool(
            dbapi.connect, dialect=dialect, echo=True, logging_name=logging_name
        )
        before = recorded(pool)
        lifecycle(pool)
        pool.logger.removeFilter(before)
        root_out = configure_root()
        after = recorded(pool)
        lifecycle(pool)
    assert_each_once(pool_lines(capsys.readouterr().out, pool), before)
    assert_each_once(pool_lines(root_out.getvalue(), pool), after)


def test_echo_with_nothing_configured_prints_each_line_once(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bare_root():
        pool = QueuePool(
            dbapi.connect, dialect=dialect, echo=True, logging_name=logging_name
        )
        recorder = recorded(pool)
        lifecycle(pool)
    stdout = capsys.readouterr().out
    assert_each_once(pool_lines(stdout, pool), recorder)
    assert " INFO poolhouse.pool.QueuePool." in stdout
    assert " DEBUG " not in stdout


def test_echo_with_a_handler_on_the_poolhouse_logger_logs_once(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app_out = io.StringIO()
    app_handler = logging.StreamHandler(app_out)
    app_handler.setFormatter(logging.Formatter(FORMAT))
    logging.getLogger("poolhouse").addHandler(app_handler)
    with bare_root():
        pool = QueuePool(
            dbapi.connect, dialect=dialect, echo=True, logging_name=logging_name
        )
        recorder = recorded(pool)
        lifecycle(pool)
    assert pool_lines(capsys.readouterr().out, pool) == []
    assert_each_once(pool_lines(app_out.getvalue(), pool), recorder)


def test_echo_prints_what_the_configured_handlers_leave_out(
    dbapi: FakeDBAPI, logging_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A root handler at WARNING takes the warnings; echo prints the rest.
    A NullHandler (libraries put one on their top logger) takes nothing."""
    logging.getLogger("poolhouse").addHandler(logging.NullHandler())
    with bare_root():
        root_out = configure_root(logging.WARNING)
        pool = QueuePool(dbapi.connect, echo="debug", logging_name=logging_name)
        pool.logger.debug("a debug line")
        pool.logger.warning("a warning line")
    stdout = capsys.readouterr().out
    assert stdout.count("a debug line") == 1
    assert "a warning line" not in stdout
    assert root_out.getvalue().count("a warning line") == 1
    assert "a debug line" not in root_out.getvalue()


def test_echo_on_a_parent_and_a_child_pool_logger_prints_once(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pools named ``QueuePool`` and ``QueuePool.<name>`` both echo: the
    child's lines also reach the parent's handler, which stays silent."""
    with bare_root():
        parent = QueuePool(dbapi.connect, dialect=dialect, echo=True)
        child = QueuePool(
            dbapi.connect, dialect=dialect, echo=True, logging_name=logging_name
        )
        recorder = recorded(child)
        lifecycle(child)
    assert_each_once(pool_lines(capsys.readouterr().out, child), recorder)
    assert len(parent.logger.handlers) == len(child.logger.handlers) == 1


def test_pools_sharing_a_logger_add_one_handler_and_one_filter(
    dbapi: FakeDBAPI, logging_name: str
) -> None:
    first = QueuePool(dbapi.connect, echo=True, logging_name=logging_name)
    second = QueuePool(dbapi.connect, echo="debug", logging_name=logging_name)
    third = QueuePool(dbapi.connect, logging_name=logging_name)
    assert first.logger is second.logger is third.logger
    assert len(first.logger.handlers) == 1
    assert len(first.logger.filters) == 1


def test_echo_none_adds_the_filter_only(dbapi: FakeDBAPI, logging_name: str) -> None:
    pool = QueuePool(dbapi.connect, logging_name=logging_name)
    assert pool.logger.level == logging.NOTSET
    assert pool.logger.handlers == []
    assert len(pool.logger.filters) == 1


# -- secrets -------------------------------------------------------------------

SECRET_REPR = "<SecretConnection postgresql://u:s3cret@h/db host=h password=s3cret>"


class SecretConnection(FakeConnection):
    """A connection whose repr shows its DSN, as some drivers' do."""

    def __repr__(self) -> str:
        return SECRET_REPR


class CloseFailsDialect(FakeDialect):
    """Its close fails with an error quoting the conninfo."""

    def do_close(self, dbapi_connection: Any) -> None:
        raise FakeProgrammingError("cannot close 'host=h password=s3cret'")


def secret_creator(dbapi: FakeDBAPI) -> Any:
    def creator() -> SecretConnection:
        conn = SecretConnection(dbapi, len(dbapi.connections) + 1)
        dbapi.connections.append(conn)
        return conn

    return creator


def test_connection_reprs_are_logged_without_passwords(
    dbapi: FakeDBAPI,
    dialect: FakeDialect,
    logging_name: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bare_root():
        pool = QueuePool(
            secret_creator(dbapi),
            dialect=dialect,
            echo="debug",
            logging_name=logging_name,
        )
        recorder = recorded(pool)
        lifecycle(pool)
    lines = pool_lines(capsys.readouterr().out, pool)
    assert_each_once(lines, recorder)
    assert any("checked out" in line for line in lines)
    assert not any("s3cret" in line for line in lines)
    assert any("postgresql://u:***@h/db host=h password=***" in line for line in lines)


def test_a_swallowed_exception_is_logged_without_passwords(
    dbapi: FakeDBAPI, logging_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with bare_root():
        root_out = configure_root()
        pool = QueuePool(
            secret_creator(dbapi),
            dialect=CloseFailsDialect(),
            echo=True,
            logging_name=logging_name,
        )
        with pool.connect():
            pass
        pool.dispose()  # the close fails, is logged with its traceback
    logged = root_out.getvalue() + capsys.readouterr().out
    assert "FakeProgrammingError: cannot close 'host=h password=***'" in logged
    assert "s3cret" not in logged


def test_exception_text_is_redacted(
    dbapi: FakeDBAPI, logging_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = QueuePool(dbapi.connect, logging_name=logging_name)
    caplog.set_level(logging.ERROR, logger=pool.logger.name)
    try:
        raise FakeProgrammingError("connect to postgresql://app:s3cret@db/orders")
    except FakeProgrammingError:
        pool.logger.exception("giving up on %s", "password=s3cret")
    (record,) = caplog.records
    assert record.getMessage() == "giving up on password=***"
    assert record.exc_info is not None  # still there for error trackers
    assert record.exc_text is not None
    assert "postgresql://app:***@db/orders" in record.exc_text
    assert "s3cret" not in caplog.text


def test_redaction_costs_nothing_while_the_level_is_off(
    dbapi: FakeDBAPI, logging_name: str
) -> None:
    formatted = []

    class Spy:
        def __repr__(self) -> str:
            formatted.append(1)
            return "spy"

    pool = QueuePool(dbapi.connect, logging_name=logging_name)
    pool.logger.setLevel(logging.INFO)
    pool.logger.debug("checked out %r", Spy())
    assert formatted == []


def test_a_broken_format_still_gives_a_line(
    dbapi: FakeDBAPI, logging_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = QueuePool(dbapi.connect, logging_name=logging_name)
    caplog.set_level(logging.INFO, logger=pool.logger.name)
    pool.logger.info("%d connections, password=%s", "many", "s3cret")
    (record,) = caplog.records
    assert "unformattable" in record.getMessage()
    assert "s3cret" not in record.getMessage()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # libpq conninfo, unquoted, quoted (with an escaped quote), spaced
        ("host=h password=s3cret dbname=d", "host=h password=*** dbname=d"),
        ("password='s3 cr\\'et' user=u", "password='***' user=u"),
        ("password = s3cret user=u", "password = *** user=u"),
        ("passwd=s3cret", "passwd=***"),
        ("sslpassword=s3cret PGPASSWORD=s3cret", "sslpassword=*** PGPASSWORD=***"),
        # a bytes repr; an unquoted value that merely starts like one
        ("connect(password=b's3cret')", "connect(password=b'***')"),
        ("password=b{s3cret host=h", "password=*** host=h"),
        # a truncated repr: the unterminated value goes to the end
        ("dsn: 'user=u password='s3cr", "dsn: 'user=u password='***'"),
        # a libpq password may hold ';' and '&': all of it goes
        ("password=s3;cr&et host=h", "password=*** host=h"),
        # ODBC, with and without braces
        ("Server=h;PWD={s3;cr}}et};UID=sa", "Server=h;PWD={***};UID=sa"),
        ("Server=h;pwd=s3cret", "Server=h;pwd=***"),
        # psycopg2's connection repr (already masked by the driver)
        (
            "<connection object; dsn: 'user=u password=xxx host=h', closed: 0>",
            "<connection object; dsn: 'user=u password=*** host=h', closed: 0>",
        ),
        # keyword arguments and mappings
        ("connect(host='h', password='s3cret')", "connect(host='h', password='***')"),
        (
            "{'user': 'u', 'password': 's3cret', 'port': 5432}",
            "{'user': 'u', 'password': '***', 'port': 5432}",
        ),
        ('{"db_password": "s3cret"}', '{"db_password": "***"}'),
        ("{'password': b's3cret'}", "{'password': b'***'}"),
        # URLs: user info, an '@' in the password, no user, a query
        ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://app:pa/ss#1@db/orders", "postgresql://app:***@db/orders"),
        (
            "password=\nTraceback (most recent call last):",
            "password=\nTraceback (most recent call last):",
        ),
        ("mysql+pymysql://u:s3@cret@h:3306/db", "mysql+pymysql://u:***@h:3306/db"),
        ("redis://:s3cret@h", "redis://:***@h"),
        (
            "postgresql://h/db?user=u&password=s3cret",
            "postgresql://h/db?user=u&password=***",
        ),
        # unchanged
        (
            'FATAL: password authentication failed for user "app"',
            'FATAL: password authentication failed for user "app"',
        ),
        ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("http://h:8080/path", "http://h:8080/path"),
        (
            "passfile=/home/u/.pgpass password_file=x",
            "passfile=/home/u/.pgpass password_file=x",
        ),
        ("checked out <FakeConnection 1>", "checked out <FakeConnection 1>"),
        ("", ""),
    ],
)
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected
    assert redact_secrets(expected) == expected
