"""Command line: ``python -m poolhouse demo``.

The demo runs a threaded workload against a sqlite3 database through a
:class:`.QueuePool`, with an audit listener that prints every pool event, then
prints the pool's status.
"""

from __future__ import annotations

import argparse
import itertools
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import TextIO

from . import event
from ._sync.queue_pool import QueuePool
from ._sync.record import ConnectionRecord

_AUDITED = (
    "first_connect",
    "connect",
    "checkout",
    "reset",
    "checkin",
    "invalidate",
    "close",
)


class _Audit:
    """Prints one line per pool event, naming the connection and the thread."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(_AUDITED, 0)
        self._numbers = itertools.count(1)

    def listener(self, name: str) -> Any:
        def audit(
            dbapi_connection: Any, connection_record: ConnectionRecord[Any]
        ) -> None:
            thread = threading.current_thread().name
            with self._lock:
                self.counts[name] += 1
                # record.info lives as long as one DBAPI connection.
                number = connection_record.info.setdefault("demo#", 0) or next(
                    self._numbers
                )
                connection_record.info["demo#"] = number
                print(f"  {name:<14} conn#{number} thread={thread}", file=self._out)

        # Listeners get the event's arguments positionally; the extra ones
        # (checkout's proxy, reset's state, invalidate's exception) are
        # dropped here.
        def adapter(*args: Any) -> None:
            audit(args[0], args[1])

        return adapter


def run_demo(
    threads: int, iterations: int, pool_size: int, max_overflow: int, out: TextIO
) -> int:
    """Run the demo workload; return the process exit status."""
    with tempfile.TemporaryDirectory(prefix="poolhouse-demo-") as tmp:
        path = Path(tmp) / "demo.db"

        def creator() -> sqlite3.Connection:
            # The pool hands connections between threads, one at a time.
            return sqlite3.connect(path, check_same_thread=False, timeout=10)

        pool = QueuePool(creator, pool_size=pool_size, max_overflow=max_overflow)
        print(
            f"poolhouse demo: {threads} threads x {iterations} checkouts on "
            f"sqlite3 ({path.name}), pool_size={pool_size}, "
            f"max_overflow={max_overflow}",
            file=out,
        )
        print("event stream:", file=out)
        audit = _Audit(out)
        for name in _AUDITED:
            event.listen(pool, name, audit.listener(name))

        with pool.connect() as conn:
            conn.execute("CREATE TABLE visits (worker TEXT, n INTEGER)")
            conn.commit()

        start = threading.Barrier(threads)
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                start.wait(10)
                for n in range(iterations):
                    with pool.connect() as conn:
                        conn.execute(
                            "INSERT INTO visits VALUES (?, ?)", (f"w{worker}", n)
                        )
                        conn.commit()
            except BaseException as err:  # reported below, after the join
                errors.append(err)

        workers = [
            threading.Thread(target=work, args=(i,), name=f"worker-{i}")
            for i in range(threads)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        stuck = [t.name for t in workers if t.is_alive()]

        with pool.connect() as conn:
            (rows,) = conn.execute("SELECT count(*) FROM visits").fetchone()
        print(f"status: {pool.status()}", file=out)
        pool.dispose()
        print(f"after dispose: {pool.status()}", file=out)
        summary = ", ".join(f"{k}={v}" for k, v in audit.counts.items())
        print(f"events: {summary}", file=out)
        print(f"rows written: {rows} (expected {threads * iterations})", file=out)
        if errors or stuck or rows != threads * iterations:
            print(f"FAILED: errors={errors!r} stuck={stuck}", file=out)
            return 1
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m poolhouse`` and the ``poolhouse`` script."""
    parser = argparse.ArgumentParser(prog="poolhouse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run a threaded sqlite3 workload and print the pool's events"
    )
    demo.add_argument("--threads", type=int, default=4, help="worker threads (4)")
    demo.add_argument(
        "--iterations", type=int, default=3, help="checkouts per thread (3)"
    )
    demo.add_argument("--pool-size", type=int, default=2, help="pool_size (2)")
    demo.add_argument("--max-overflow", type=int, default=1, help="max_overflow (1)")
    args = parser.parse_args(argv)
    for name in ("threads", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    try:
        return run_demo(
            args.threads, args.iterations, args.pool_size, args.max_overflow, sys.stdout
        )
    except (ValueError, TypeError) as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
