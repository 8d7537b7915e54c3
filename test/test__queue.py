"""SlotQueue: the lock-free decisions behind QueuePool (no threads here)."""

from __future__ import annotations

import random
from collections import deque

import pytest

from poolhouse._queue import CLOSE
from poolhouse._queue import CREATE
from poolhouse._queue import Marker
from poolhouse._queue import SlotQueue


class Item:
    """A stand-in for a ConnectionRecord."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Item({self.name})"


class Waiter:
    """A stand-in for a parked thread."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Waiter({self.name})"


Queue = SlotQueue[Item, Waiter]


def fill(q: Queue, n: int) -> list[Item]:
    """Take *n* slots that must all be CREATE, and return the items made."""
    items = []
    for i in range(n):
        assert q.take() is CREATE
        items.append(Item(str(i)))
    return items


def closed(q: Queue) -> Waiter | None:
    """Report one item closed that give_back() (CLOSE) or drain_idle() handed
    over for closing; return the waiter that now owns its slot, if any."""
    return q.free_slot(closed=True)


def test_markers_are_distinct_and_named() -> None:
    assert isinstance(CREATE, Marker)
    assert isinstance(CLOSE, Marker)
    assert CREATE is not CLOSE
    assert repr(CREATE) == "CREATE"
    assert repr(CLOSE) == "CLOSE"


def test_new_queue_is_empty() -> None:
    q: Queue = SlotQueue(3, 2, False)
    assert q.opened == 0
    assert not q.idle
    assert not q.waiters
    assert (q.pool_size, q.max_overflow, q.use_lifo) == (3, 2, False)


def test_take_reserves_up_to_pool_size_plus_max_overflow() -> None:
    q: Queue = SlotQueue(2, 1, False)
    for expected_opened in (1, 2, 3):
        assert q.has_room()
        assert q.take() is CREATE
        assert q.opened == expected_opened
    assert not q.has_room()
    assert q.take() is None
    assert q.opened == 3


def test_max_overflow_minus_one_never_runs_out_of_room() -> None:
    q: Queue = SlotQueue(2, -1, False)
    fill(q, 500)
    assert q.opened == 500
    assert q.has_room()
    assert q.take() is CREATE


def test_pool_size_zero_keeps_every_item_and_ignores_max_overflow() -> None:
    q: Queue = SlotQueue(0, 3, False)
    items = fill(q, 3)
    # pool_size=0 means no limit at all: max_overflow=3 does not bound it.
    assert q.has_room()
    items.append(Item("3"))
    assert q.take() is CREATE
    assert q.opened == 4
    for item in items:
        assert q.give_back(item) is None
    assert list(q.idle) == items
    assert (q.opened, q.closing, q.checked_out()) == (4, 0, 0)
    assert q.take() is items[0]


def test_pool_size_zero_unlimited_overflow_keeps_everything() -> None:
    q: Queue = SlotQueue(0, -1, False)
    items = fill(q, 50)
    for item in items:
        assert q.give_back(item) is None
    assert len(q.idle) == 50
    assert q.opened == 50


def test_give_back_keeps_items_until_pool_size_are_idle_then_closes() -> None:
    q: Queue = SlotQueue(2, 2, False)
    items = fill(q, 4)
    # Kept while fewer than pool_size are idle, however many are open.
    assert q.give_back(items[0]) is None
    assert (q.opened, q.closing) == (4, 0)
    assert q.give_back(items[1]) is None
    assert (q.opened, q.closing) == (4, 0)
    # pool_size are idle now: the next ones returned are closed.
    assert q.give_back(items[2]) is CLOSE
    assert closed(q) is None
    assert q.opened == 3
    assert q.give_back(items[3]) is CLOSE
    assert closed(q) is None
    assert list(q.idle) == [items[0], items[1]]
    assert q.opened == 2


def test_give_back_closes_once_pool_size_are_idle_with_unlimited_overflow() -> None:
    q: Queue = SlotQueue(1, -1, False)
    items = fill(q, 3)
    assert q.give_back(items[0]) is None
    assert q.opened == 3
    assert q.give_back(items[1]) is CLOSE
    assert closed(q) is None
    assert q.give_back(items[2]) is CLOSE
    assert closed(q) is None
    assert list(q.idle) == [items[0]]
    assert q.opened == 1


def test_close_holds_the_slot_until_reported_closed() -> None:
    """The limit holds while a surplus item is being closed."""
    q: Queue = SlotQueue(1, 1, False)
    items = fill(q, 2)
    assert q.give_back(items[0]) is None
    assert q.give_back(items[1]) is CLOSE
    assert (q.opened, q.closing, q.checked_out()) == (2, 1, 0)
    assert not q.has_room()
    assert q.take() is items[0]
    assert q.take() is None  # the slot being closed still counts
    assert closed(q) is None
    assert (q.opened, q.closing, q.checked_out()) == (1, 0, 1)
    assert q.take() is CREATE


def test_slot_of_a_closed_item_goes_to_the_oldest_waiter() -> None:
    q: Queue = SlotQueue(1, 1, False)
    items = fill(q, 2)
    assert q.give_back(items[0]) is None
    assert q.give_back(items[1]) is CLOSE
    assert q.take() is items[0]
    first, second = Waiter("first"), Waiter("second")
    for w in (first, second):
        assert q.take() is None
        q.enqueue(w)
    assert closed(q) is first  # it must open an item in the slot
    assert (q.opened, q.closing) == (2, 0)
    assert list(q.waiters) == [second]


def test_items_being_closed_do_not_count_toward_pool_size() -> None:
    q: Queue = SlotQueue(1, 2, False)
    items = fill(q, 3)
    assert q.give_back(items[0]) is None
    assert q.give_back(items[1]) is CLOSE
    assert q.give_back(items[2]) is CLOSE
    assert list(q.idle) == [items[0]]
    assert (q.opened, q.closing, q.checked_out()) == (3, 2, 0)
    # Two are on their way out: only the idle one counts toward pool_size, so
    # the one taken and returned meanwhile is kept.
    assert q.take() is items[0]
    assert q.give_back(items[0]) is None
    assert list(q.idle) == [items[0]]
    assert (q.opened, q.closing, q.checked_out()) == (3, 2, 0)
    assert closed(q) is None
    assert closed(q) is None
    assert (q.opened, q.closing, q.checked_out()) == (1, 0, 0)


def test_checked_out_counts_users_only() -> None:
    q: Queue = SlotQueue(2, 2, False)
    assert q.checked_out() == 0
    items = fill(q, 3)
    assert q.checked_out() == 3
    assert q.give_back(items[0]) is None
    assert q.checked_out() == 2
    assert q.give_back(items[1]) is None
    assert q.checked_out() == 1
    assert q.give_back(items[2]) is CLOSE  # closing: not a user's
    assert (q.opened, q.checked_out()) == (3, 0)
    assert closed(q) is None
    assert (q.opened, q.checked_out()) == (2, 0)


@pytest.mark.parametrize(
    ("use_lifo", "expected_order"),
    [(False, ["0", "1", "2"]), (True, ["2", "1", "0"])],
)
def test_idle_items_are_reused_fifo_or_lifo(
    use_lifo: bool, expected_order: list[str]
) -> None:
    q: Queue = SlotQueue(3, 0, use_lifo)
    items = fill(q, 3)
    for item in items:
        assert q.give_back(item) is None
    taken = [q.take() for _ in range(3)]
    assert [t.name for t in taken if isinstance(t, Item)] == expected_order
    assert q.take() is None


def test_idle_item_is_preferred_over_opening_a_new_one() -> None:
    q: Queue = SlotQueue(2, 5, False)
    (item,) = fill(q, 1)
    assert q.give_back(item) is None
    assert q.take() is item
    assert q.opened == 1


def test_returned_item_goes_to_the_oldest_waiter_not_the_idle_set() -> None:
    q: Queue = SlotQueue(1, 0, False)
    (item,) = fill(q, 1)
    assert q.take() is None
    first, second = Waiter("first"), Waiter("second")
    q.enqueue(first)
    assert q.take() is None
    q.enqueue(second)

    assert q.give_back(item) is first
    # Handed off directly: a newcomer finds nothing to overtake with.
    assert not q.idle
    assert q.opened == 1
    assert q.take() is None
    assert list(q.waiters) == [second]

    assert q.give_back(item) is second
    assert not q.waiters
    assert q.give_back(item) is None
    assert list(q.idle) == [item]


def test_surplus_item_goes_to_a_waiter_instead_of_being_closed() -> None:
    q: Queue = SlotQueue(1, 1, False)
    items = fill(q, 2)
    waiter = Waiter("w")
    assert q.take() is None
    q.enqueue(waiter)
    # The overflow item goes to the waiter, not back to the idle set.
    assert q.give_back(items[1]) is waiter
    assert not q.idle
    assert q.opened == 2
    # Nobody waits: kept until pool_size are idle, then closed.
    assert q.give_back(items[0]) is None
    assert q.give_back(items[1]) is CLOSE
    assert closed(q) is None
    assert list(q.idle) == [items[0]]
    assert q.opened == 1


def test_use_lifo_does_not_change_the_order_of_waiters() -> None:
    q: Queue = SlotQueue(1, 0, True)
    (item,) = fill(q, 1)
    waiters = [Waiter(str(i)) for i in range(4)]
    for w in waiters:
        assert q.take() is None
        q.enqueue(w)
    served = [q.give_back(item) for _ in waiters]
    assert served == waiters


def test_free_slot_without_waiters_releases_the_slot() -> None:
    q: Queue = SlotQueue(1, 0, False)
    fill(q, 1)
    assert q.take() is None
    assert q.free_slot() is None
    assert q.opened == 0
    assert q.take() is CREATE


def test_free_slot_hands_the_slot_to_the_oldest_waiter() -> None:
    q: Queue = SlotQueue(1, 0, False)
    fill(q, 1)
    first, second = Waiter("first"), Waiter("second")
    q.enqueue(first)
    q.enqueue(second)
    assert q.free_slot() is first
    # The slot now belongs to `first`, which must open an item in it.
    assert q.opened == 1
    assert list(q.waiters) == [second]


def test_cancel_withdraws_a_waiting_waiter() -> None:
    q: Queue = SlotQueue(1, 0, False)
    (item,) = fill(q, 1)
    first, second = Waiter("first"), Waiter("second")
    q.enqueue(first)
    q.enqueue(second)
    assert q.cancel(first) is True
    assert list(q.waiters) == [second]
    assert q.give_back(item) is second


def test_cancel_of_a_granted_waiter_says_it_owns_the_grant() -> None:
    q: Queue = SlotQueue(1, 0, False)
    (item,) = fill(q, 1)
    waiter = Waiter("w")
    q.enqueue(waiter)
    assert q.give_back(item) is waiter
    assert q.cancel(waiter) is False
    assert q.opened == 1


def test_cancel_of_an_unknown_waiter_is_false() -> None:
    q: Queue = SlotQueue(1, 0, False)
    assert q.cancel(Waiter("stranger")) is False


def test_drain_idle_returns_idle_items_and_frees_their_slots() -> None:
    q: Queue = SlotQueue(3, 1, False)
    items = fill(q, 3)
    for item in items[1:]:
        assert q.give_back(item) is None
    assert q.opened == 3
    assert q.drain_idle() == items[1:]
    assert not q.idle
    for _ in items[1:]:
        assert closed(q) is None
    assert q.opened == 1  # the checked-out item keeps its slot
    assert q.drain_idle() == []
    assert q.opened == 1


def test_drained_items_hold_their_slots_until_reported_closed() -> None:
    q: Queue = SlotQueue(2, 0, False)
    items = fill(q, 2)
    for item in items:
        assert q.give_back(item) is None
    assert q.drain_idle() == items
    assert (q.opened, q.closing, q.checked_out()) == (2, 2, 0)
    assert q.take() is None
    waiter = Waiter("w")
    q.enqueue(waiter)
    assert closed(q) is waiter
    assert closed(q) is None
    assert (q.opened, q.closing) == (1, 0)


def test_drain_idle_of_an_empty_queue() -> None:
    q: Queue = SlotQueue(3, 1, False)
    assert q.drain_idle() == []
    assert q.opened == 0


@pytest.mark.parametrize(
    ("pool_size", "max_overflow", "use_lifo"),
    [(1, 0, False), (2, 3, True), (0, 4, False), (3, -1, False), (0, -1, True)],
)
@pytest.mark.parametrize("seed", range(4))
def test_random_operations_keep_the_invariants(
    pool_size: int, max_overflow: int, use_lifo: bool, seed: int
) -> None:
    """A model check: slots are conserved (closing ones included), the limit
    holds, waiters are served in order, and a waiter exists only while nothing
    is idle and there is no room."""
    rng = random.Random(seed)
    q: Queue = SlotQueue(pool_size, max_overflow, use_lifo)
    names = iter(range(1_000_000))
    held: list[Item] = []  # items checked out
    closing = 0  # items told to close whose close is still in progress
    parked: deque[Waiter] = deque()  # our own model of the wait line
    enqueued: list[Waiter] = []
    served: list[Waiter] = []
    cancelled: set[Waiter] = set()
    # pool_size=0 means no limit at all, whatever max_overflow says.
    limit = pool_size + max_overflow if pool_size and max_overflow >= 0 else None

    def serve(heir: Waiter | None) -> None:
        """*heir* was handed a slot: it opens an item in it."""
        if heir is not None:
            assert heir is parked.popleft()
            served.append(heir)
            open_item_for_slot()

    def open_item_for_slot() -> None:
        """A CREATE answer: the open succeeds or fails at random."""
        if rng.random() < 0.2:
            serve(q.free_slot())
        else:
            held.append(Item(str(next(names))))

    for _ in range(500):
        op = rng.random()
        if op < 0.4:
            got = q.take()
            if got is None:
                waiter = Waiter(str(next(names)))
                q.enqueue(waiter)
                parked.append(waiter)
                enqueued.append(waiter)
            elif got is CREATE:
                open_item_for_slot()
            else:
                assert isinstance(got, Item)
                held.append(got)
        elif op < 0.75 and held:
            item = held.pop(rng.randrange(len(held)))
            heir = q.give_back(item)
            if isinstance(heir, Waiter):
                assert heir is parked.popleft()
                served.append(heir)
                held.append(item)
            elif heir is CLOSE:
                # Closed only when pool_size are idle already.
                assert pool_size and len(q.idle) == pool_size
                closing += 1
            else:
                assert heir is None
        elif op < 0.85 and closing:
            closing -= 1
            serve(closed(q))
        elif op < 0.88:
            closing += len(q.drain_idle())
        elif parked:
            waiter = parked[rng.randrange(len(parked))]
            assert q.cancel(waiter) is True
            parked.remove(waiter)
            cancelled.add(waiter)

        assert q.opened == len(q.idle) + len(held) + closing
        assert q.closing == closing
        assert q.checked_out() == len(held)
        assert list(q.waiters) == list(parked)
        if q.waiters:
            assert not q.idle
            assert not q.has_room()
        if limit is not None:
            assert q.opened <= limit
        else:
            assert q.has_room()
            assert not q.waiters
        if pool_size and q.idle:
            assert len(q.idle) <= pool_size

    if limit is not None:
        assert served, "the run never made anyone wait"
    # First come, first served: the grants follow the order of arrival.
    assert served == [w for w in enqueued if w not in cancelled][: len(served)]
