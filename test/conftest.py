"""Shared fixtures: a fake driver, a fake clock, and listener isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from poolhouse import event
from poolhouse import events

from .fakedbapi import FakeDBAPI
from .fakedbapi import FakeDialect


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def dbapi() -> FakeDBAPI:
    return FakeDBAPI()


@pytest.fixture
def dialect() -> FakeDialect:
    return FakeDialect()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _isolate_signals() -> Iterator[None]:
    """Signals are global: drop every listener and receiver after each test."""
    yield
    event._clear()
    for signal, _ in events.SIGNATURES.values():
        signal._clear_state()  # blinker's documented test helper
