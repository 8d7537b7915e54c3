"""close() under load on the real PostgreSQL: no session is left behind."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from poolhouse import QueuePool
from poolhouse import exc

from .conftest import import_driver
from .conftest import scalar

pytestmark = pytest.mark.realdb


@pytest.mark.parametrize("background", [False, True], ids=["callers", "worker"])
def test_close_under_load_leaves_no_session(
    pg_dsn: str, background: bool, caplog: pytest.LogCaptureFixture
) -> None:
    psycopg = import_driver("psycopg")
    app = f"poolhouse-close-{uuid.uuid4().hex[:8]}"
    pool = QueuePool(
        lambda: psycopg.connect(pg_dsn, application_name=app, autocommit=True),
        pool_size=4,
        max_overflow=4,
        timeout=10,
        background=background,
    )
    start = threading.Barrier(13, timeout=10)
    busy = threading.Event()
    stopped: list[BaseException] = []
    unexpected: list[BaseException] = []

    def work() -> None:
        start.wait()
        try:
            while True:
                with pool.connect() as conn:
                    busy.set()
                    conn.execute("SELECT pg_sleep(0.001)")
        except exc.PoolClosedError as err:
            stopped.append(err)
        except BaseException as err:  # noqa: BLE001  # asserted below
            unexpected.append(err)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    start.wait()
    assert busy.wait(10)
    with caplog.at_level(logging.WARNING, logger="poolhouse"):
        pool.close(timeout=10)
    # close() saw every connection back, rather than giving up after 10 s.
    assert "still checked out" not in caplog.text
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert unexpected == []
    assert len(stopped) == 12  # every worker thread was told, cleanly
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        left = scalar(
            admin,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        )
    assert left == 0
