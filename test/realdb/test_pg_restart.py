"""A PostgreSQL server of the test's own, stopped and restarted under a pool.

The shared server is never stopped: this module runs ``initdb`` into a
temporary directory and starts that cluster on a free port of 127.0.0.1
(as the ``postgres`` user when the tests run as root).  A finalizer always
stops it and removes the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolhouse import Pool
from poolhouse import QueuePool

from .conftest import PG_DRIVERS
from .conftest import PostgreSQLBackend
from .conftest import hold_all
from .conftest import import_driver
from .conftest import new_tag
from .conftest import run
from .conftest import unavailable

pytestmark = pytest.mark.realdb

#: Seconds for pg_ctl to start or stop the server, and for one checkout attempt
#: to give up while it is down (connect_timeout=2, so this is generous).
PG_CTL_WAIT = 30
CHECKOUT_BOUND = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _find_bindir() -> Path | None:
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates += glob.glob("/usr/pgsql-*/bin/initdb")
    found = shutil.which("initdb")
    if found:
        candidates.append(found)

    def version(path: str) -> tuple[int, ...]:
        digits = [p for p in Path(path).parts if p.replace(".", "").isdigit()]
        return tuple(int(d) for d in digits[0].split(".")) if digits else (0,)

    candidates.sort(key=version, reverse=True)
    return Path(candidates[0]).parent if candidates else None


class ThrowawayPostgres:
    """One initdb'd cluster: start, stop (immediate) and restart on one port."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self._as_user = as_user

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -l sends the server's output to a file, so it holds no pipe of ours.
        return subprocess.run(
            [*self._as_user, *args],
            capture_output=True,
            text=True,
            timeout=PG_CTL_WAIT + 30,
            check=False,
        )

    def _check(self, what: str, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            log = (
                self.log.read_text(errors="replace")[-2000:]
                if self.log.exists()
                else ""
            )
            pytest.fail(
                f"{what} failed ({result.returncode}): {result.stdout}{result.stderr}"
                f"\nserver log:\n{log}"
            )

    def initdb(self) -> None:
        self._check(
            "initdb",
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -h 127.0.0.1 -F"
        self._check(
            "pg_ctl start",
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(PG_CTL_WAIT),
                "start",
            ),
        )

    def stop(self) -> None:
        """Stop the server at once, as a crash would (``-m immediate``)."""
        self._check("pg_ctl stop", self._stop())

    def _stop(self) -> subprocess.CompletedProcess[str]:
        return self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "immediate",
            "-w",
            "-t",
            str(PG_CTL_WAIT),
            "stop",
        )

    def is_running(self) -> bool:
        status = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "status")
        return status.returncode == 0

    def ensure_running(self) -> None:
        if not self.is_running():
            self.start()


@pytest.fixture(scope="module")
def throwaway_pg() -> Iterator[ThrowawayPostgres]:
    bindir = _find_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no postgres user to run initdb")
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("running as root and runuser is not installed")
        as_user = [runuser, "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="poolhouse-pg-"))
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server = ThrowawayPostgres(bindir, root, as_user)
        server.initdb()
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(Exception):
                if server.is_running():
                    server._stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def attempt_checkouts(pool: Pool, attempts: int) -> list[BaseException | None]:
    """Try *attempts* checkouts in a thread; fail the test if they hang."""
    outcomes: list[BaseException | None] = []

    def go() -> None:
        for _ in range(attempts):
            try:
                with pool.connect() as conn:
                    run(conn, "SELECT 1")
            except BaseException as err:
                outcomes.append(err)
            else:
                outcomes.append(None)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(CHECKOUT_BOUND * attempts)
    assert not thread.is_alive(), "checkouts hung while the server was down"
    return outcomes


@pytest.mark.parametrize("pre_ping", [False, True], ids=["no-pre-ping", "pre-ping"])
@pytest.mark.parametrize("driver", PG_DRIVERS)
def test_checkouts_fail_fast_while_server_is_down_then_recover(
    throwaway_pg: ThrowawayPostgres, pools: list[Pool], driver: str, pre_ping: bool
) -> None:
    module = import_driver(driver)
    backend = PostgreSQLBackend(module, throwaway_pg.dsn)
    throwaway_pg.ensure_running()
    pool = QueuePool(
        backend.creator(new_tag(), connect_timeout=2),
        pool_size=2,
        max_overflow=0,
        timeout=5,
        pre_ping=pre_ping,
    )
    pools.append(pool)
    before = hold_all(pool, 2, backend)

    throwaway_pg.stop()
    try:
        if not pre_ping:
            with pytest.raises(module.OperationalError) as info:
                with pool.connect() as conn:
                    run(conn, "SELECT 1")
            assert pool.dialect.is_disconnect(info.value, None)
        # More attempts than slots: a slot leaked by a failed connect would
        # end in poolhouse's TimeoutError instead of the driver's error.
        outcomes = attempt_checkouts(pool, 3)
        assert len(outcomes) == 3
        assert [
            type(o) for o in outcomes if not isinstance(o, module.OperationalError)
        ] == []
        assert pool.checkedout() == 0
    finally:
        throwaway_pg.start()

    after = hold_all(pool, 2, backend)
    assert len(after) == 2 and after.isdisjoint(before)
