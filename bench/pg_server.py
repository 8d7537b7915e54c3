"""The local PostgreSQL the benchmarks in this folder talk to.

``POOLHOUSE_TEST_PG_DSN`` (URL or ``key=value`` form) overrides the default,
as in ``test/realdb``.  Importing this module checks the server: an
unreachable one skips the importing benchmark module, or fails it under
``CI=true``.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.conninfo import make_conninfo

PG_DSN = os.environ.get(
    "POOLHOUSE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def asyncpg_kwargs(dsn: str) -> dict[str, Any]:
    """asyncpg's connect arguments for a libpq DSN of either form (asyncpg
    parses only URLs)."""
    params = conninfo_to_dict(dsn)
    names = {"host": "host", "port": "port", "user": "user", "password": "password"}
    kwargs: dict[str, Any] = {
        ours: params[libpq] for libpq, ours in names.items() if libpq in params
    }
    if "dbname" in params:
        kwargs["database"] = params["dbname"]
    if "port" in kwargs:
        kwargs["port"] = int(kwargs["port"])
    return kwargs


def redacted(dsn: str) -> str:
    """*dsn* with its password masked, for messages."""
    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"
    return str(make_conninfo(**params))


def require_server() -> None:
    """Skip the calling module (fail it under ``CI=true``) if the server is
    unreachable."""
    try:
        psycopg.connect(PG_DSN, connect_timeout=3).close()
    except psycopg.Error as err:
        reason = (
            f"PostgreSQL is unreachable at {redacted(PG_DSN)} ({err}); start it "
            "or set POOLHOUSE_TEST_PG_DSN"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true, so this fails instead of skipping)")
        pytest.skip(reason, allow_module_level=True)


require_server()
ASYNCPG_KWARGS = asyncpg_kwargs(PG_DSN)
