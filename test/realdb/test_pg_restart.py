"""A PostgreSQL server of the test's own, stopped and restarted under a pool.

The shared server is never stopped: this module runs ``initdb`` into a
temporary directory and starts that cluster on a free port of 127.0.0.1
(as the ``postgres`` user when the tests run as root).  A finalizer always
stops it and removes the directory.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- an outage under load: 16 threads, with and without the background worker ------

#: The workload: threads looping checkout + SELECT 1 + checkin, against a pool
#: of POOL_SIZE + MAX_OVERFLOW connections whose checkouts wait CHECKOUT_TIMEOUT.
WORKLOAD_THREADS = 16
POOL_SIZE = 4
MAX_OVERFLOW = 4
CHECKOUT_TIMEOUT = 5.0
#: How long the server stays down, from the stop to the restart: real time,
#: since riding out an outage shorter than the checkout timeout is the
#: behaviour under test.
OUTAGE = 3.0
#: Bound on each wait for the threads (a hang fails the test instead).
PHASE_WAIT = 20.0
PHASES = ("up", "down", "back")


class OutageLoad:
    """The workload and what it saw, by phase: ``up`` before the stop,
    ``down`` from the stop until the restart returned, ``back`` after it.

    An op is one checkout, ``SELECT 1`` and checkin; it counts in the phase
    its checkout began in (an op begun just before the stop may count as
    ``up``).  A *checkout failure* is an exception raised by
    ``pool.connect()`` itself; a *query failure* one raised after it, by the
    query or by leaving the with-block, on a connection checked out fine.
    """

    #: The pool under load, set once created with :meth:`creator`.
    pool: Pool

    def __init__(self, backend: PostgreSQLBackend, tag: str) -> None:
        self.backend = backend
        self.tag = tag
        self.lock = threading.Lock()
        self.phase = "up"
        self.stop = threading.Event()
        self.warm = [threading.Event() for _ in range(WORKLOAD_THREADS)]
        self.recovered = [threading.Event() for _ in range(WORKLOAD_THREADS)]
        self.sampled = {phase: threading.Event() for phase in PHASES}
        self.ops = dict.fromkeys(PHASES, 0)
        self.checkout_failures: list[tuple[str, BaseException]] = []
        self.query_failures: list[tuple[str, BaseException]] = []
        self.sessions: list[tuple[str, int]] = []
        #: Connect attempts by the pool, (made by a caller, failed) -> count.
        self.connects: collections.Counter[tuple[bool, bool]] = collections.Counter()
        self.unexpected: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self.loop, args=(i,), daemon=True)
            for i in range(WORKLOAD_THREADS)
        ]
        self.sampler = threading.Thread(target=self.sample_sessions, daemon=True)

    def creator(self) -> Any:
        """The pool's creator: a tagged psycopg connection, counted."""
        by_caller = threading.current_thread() in self.threads
        try:
            conn = self.backend.connect(self.tag, connect_timeout=2)
        except BaseException:
            with self.lock:
                self.connects[by_caller, True] += 1
            raise
        with self.lock:
            self.connects[by_caller, False] += 1
        return conn

    def loop(self, index: int) -> None:
        """One thread's workload, until told to stop."""
        try:
            while not self.stop.is_set():
                phase = self.phase
                with self.lock:
                    self.ops[phase] += 1
                try:
                    conn = self.pool.connect()
                except Exception as err:
                    with self.lock:
                        self.checkout_failures.append((phase, err))
                    continue
                try:
                    with conn:
                        rows = run(conn, "SELECT 1")
                except Exception as err:
                    with self.lock:
                        self.query_failures.append((phase, err))
                    continue
                assert rows == [(1,)], rows
                if phase == "up":
                    self.warm[index].set()
                elif phase == "back":
                    self.recovered[index].set()
        except BaseException as err:  # pragma: no cover - reported by the test
            self.unexpected.append(err)

    def sample_sessions(self) -> None:
        """Count the pool's sessions on the server until told to stop, through
        an admin connection of its own (reopened after the restart)."""
        admin = None
        try:
            while not self.stop.is_set():
                phase = self.phase
                try:
                    if admin is None:
                        admin = self.backend.admin()
                    count = self.backend.sessions(admin, self.tag)
                except self.backend.module.Error:
                    if admin is not None:
                        with contextlib.suppress(Exception):
                            admin.close()
                        admin = None
                    self.stop.wait(0.05)  # the server is down: try again soon
                    continue
                with self.lock:
                    self.sessions.append((phase, count))
                self.sampled[phase].set()
        except BaseException as err:  # pragma: no cover - reported by the test
            self.unexpected.append(err)
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()

    def summary(self) -> dict[str, Any]:
        def by_phase(failures: list[tuple[str, BaseException]]) -> dict[str, int]:
            return {p: sum(1 for q, _ in failures if q == p) for p in PHASES}

        return {
            "ops": dict(self.ops),
            "checkout_failures": by_phase(self.checkout_failures),
            "query_failures": by_phase(self.query_failures),
            "max_sessions": max((n for _, n in self.sessions), default=None),
            "session_samples": len(self.sessions),
            "connects_by_worker": {
                "ok": self.connects[False, False],
                "failed": self.connects[False, True],
            },
            "connects_by_callers": {
                "ok": self.connects[True, False],
                "failed": self.connects[True, True],
            },
        }


def failure_sites(failures: list[tuple[str, BaseException]]) -> list[str]:
    """*failures* grouped by type and by the poolhouse frames that raised them."""
    sites: collections.Counter[str] = collections.Counter()
    for _, err in failures:
        frames = [
            f"{frame.name}:{frame.lineno}"
            for frame in traceback.extract_tb(err.__traceback__)
            if "poolhouse" in frame.filename
        ]
        sites[f"{type(err).__name__} via {' > '.join(frames)}: {err}".strip()] += 1
    return [f"{n} x {site}" for site, n in sites.most_common(3)]


def run_outage(
    server: ThrowawayPostgres,
    pools: list[Pool],
    background: bool,
    record_property: Callable[[str, Any], None],
) -> OutageLoad:
    """Run the workload through an OUTAGE-long stop of *server*; report the
    figures as the test's properties and on its output."""
    server.ensure_running()
    backend = PostgreSQLBackend(import_driver("psycopg"), server.dsn)
    load = OutageLoad(backend, new_tag())
    load.pool = QueuePool(
        load.creator,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        timeout=CHECKOUT_TIMEOUT,
        background=background,
        pre_ping=True,
        reconnect_backoff_max=0.5,
    )
    pools.append(load.pool)
    for thread in [*load.threads, load.sampler]:
        thread.start()
    down_for = None
    try:
        assert all(e.wait(PHASE_WAIT) for e in load.warm), "the workload never ran"
        assert load.sampled["up"].wait(PHASE_WAIT), "no session count before the stop"
        stopped_at = time.monotonic()
        load.phase = "down"
        server.stop()
        time.sleep(max(0.0, stopped_at + OUTAGE - time.monotonic()))
        server.start()
        load.phase = "back"
        down_for = time.monotonic() - stopped_at
        stuck = sum(not e.wait(PHASE_WAIT) for e in load.recovered)
        assert stuck == 0, f"{stuck} threads did no operation after the restart"
        assert load.sampled["back"].wait(PHASE_WAIT), "no session count after it"
    finally:
        load.stop.set()
        for thread in [*load.threads, load.sampler]:
            thread.join(PHASE_WAIT)
        server.ensure_running()
        summary = {**load.summary(), "down_for": down_for and round(down_for, 2)}
        for key, value in summary.items():
            record_property(key, value)
        print(f"background={background}: {summary}")
        for kind in ("checkout", "query"):
            for line in failure_sites(getattr(load, f"{kind}_failures")):
                print(f"  {kind} failures: {line}")
    assert not any(t.is_alive() for t in [*load.threads, load.sampler])
    assert load.unexpected == []
    assert load.ops["down"] > 0, "no checkout was attempted during the outage"
    return load


def test_worker_rides_out_a_restart_shorter_than_the_checkout_timeout(
    throwaway_pg: ThrowawayPostgres,
    pools: list[Pool],
    record_property: Callable[[str, Any], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The pool logs each failed connect, thousands here: the test counts them.
    caplog.set_level(logging.ERROR, logger="poolhouse")
    load = run_outage(throwaway_pg, pools, True, record_property)

    assert max(n for _, n in load.sessions) <= POOL_SIZE + MAX_OVERFLOW, load.sessions
    failures = load.checkout_failures
    assert not failures, (
        f"{len(failures)} checkouts failed with the worker on: "
        f"{failure_sites(failures)}; {load.summary()}"
    )


def test_without_worker_for_comparison(
    throwaway_pg: ThrowawayPostgres,
    pools: list[Pool],
    record_property: Callable[[str, Any], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Today's behaviour, reported only: checkouts fail while the server is
    down (the figures are in the output and the test's properties)."""
    caplog.set_level(logging.ERROR, logger="poolhouse")
    run_outage(throwaway_pg, pools, False, record_property)
