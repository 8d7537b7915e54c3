"""The plain decisions shared by both sides, tested directly."""

from __future__ import annotations

import pytest

from poolhouse._decisions import backoff_delay
from poolhouse._decisions import jittered_lifetime
from poolhouse._decisions import stale_reason


def test_jitter_stays_within_five_percent() -> None:
    assert jittered_lifetime(None, lambda: 0.5) == float("inf")
    assert jittered_lifetime(200, lambda: 0.0) == 200
    assert jittered_lifetime(200, lambda: 0.999999) == pytest.approx(190, abs=1e-3)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"soft_invalidated": True}, "soft-invalidated"),
        ({"generation": 1}, "expired"),
        ({"recycle": 5.0}, "older than recycle"),
        ({"lifetime": 9.0}, "older than max_lifetime"),
        ({"uses": 3, "max_uses": 3}, "used 3 times (max_uses)"),
        ({"uses": 2, "max_uses": 3}, None),
    ],
)
def test_stale_reason_names_the_rule(
    changes: dict[str, object], reason: str | None
) -> None:
    args: dict[str, object] = {
        "soft_invalidated": False,
        "generation": 2,
        "pool_generation": 2,
        "age": 10.0,
        "recycle": -1,
        "lifetime": float("inf"),
        "uses": 0,
        "max_uses": None,
    }
    args.update(changes)
    assert stale_reason(**args) == reason  # type: ignore[arg-type]


def test_backoff_doubles_from_100_ms_to_the_limit_with_jitter() -> None:
    full = [backoff_delay(n, 10.0, lambda: 0.0) for n in range(1, 10)]
    assert full == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])
    assert backoff_delay(3, 10.0, lambda: 0.999999) == pytest.approx(0.2, abs=1e-6)
    assert backoff_delay(10_000, 10.0, lambda: 0.0) == 10.0
