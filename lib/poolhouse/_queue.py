"""Slot bookkeeping for a bounded pool with first-come, first-served waiters.

:class:`SlotQueue` makes every decision of :class:`.QueuePool` (reuse an idle
connection, open a new one, wait, hand a returned connection to the oldest
waiter, close an overflow connection) without locking, blocking or touching a
driver.  The caller holds its own lock around each call and does the I/O the
answer asks for, so a thread-based and an asyncio-based shell can share it.

Waiters are opaque to this module: a shell enqueues whatever object it will
later wake (a lock, a future), and a method that frees something returns the
waiter that now owns it.  A returned connection goes straight to the oldest
waiter, never back to the idle set while someone waits, so no waiter can be
overtaken by a newcomer: that is what makes the hand-off fair.
"""

from __future__ import annotations

from collections import deque
from typing import Final
from typing import Generic
from typing import TypeVar

_T = TypeVar("_T")
_W = TypeVar("_W")


class Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Answer of :meth:`SlotQueue.take`: a slot is reserved, open a connection.
CREATE: Final = Marker("CREATE")
#: Answer of :meth:`SlotQueue.give_back`: the item is surplus, close it.
CLOSE: Final = Marker("CLOSE")
#: What a waiter is granted when its pool closes: fail the checkout.
CLOSED: Final = Marker("CLOSED")
#: What a waiter is granted when the database stayed unreachable for the
#: pool's *reconnect_timeout*: fail the checkout.
UNREACHABLE: Final = Marker("UNREACHABLE")


class SlotQueue(Generic[_T, _W]):
    """Idle items, open-slot count and FIFO waiters of one pool.

    Not thread-safe: every call must be made under the owner's lock.

    :param pool_size: how many items to keep idle; ``0`` means no limit at
        all (any number open, any number idle; *max_overflow* is ignored).
    :param max_overflow: how many items may be open beyond *pool_size*;
        ``-1`` means no limit.
    :param use_lifo: reuse the most recently returned idle item first.
    """

    __slots__ = (
        "idle",
        "waiters",
        "opened",
        "closing",
        "pool_size",
        "max_overflow",
        "use_lifo",
        "grown_by_worker",
    )

    def __init__(self, pool_size: int, max_overflow: int, use_lifo: bool) -> None:
        self.idle: deque[_T] = deque()
        self.waiters: deque[_W] = deque()
        #: Slots in use: idle items, checked-out items, items being closed,
        #: and reservations granted by :data:`CREATE` still being opened.
        self.opened = 0
        #: Items told to close (:data:`CLOSE`, :meth:`drain_idle`) whose slot is
        #: held until the caller reports them closed with :meth:`free_slot`, so
        #: the limit holds even while a close is in progress.
        self.closing = 0
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self.use_lifo = use_lifo
        #: A background worker opens every item (:meth:`reserve_growth`):
        #: callers never get :data:`CREATE`, they wait for an item.
        self.grown_by_worker = False

    def has_room(self) -> bool:
        """Tell whether one more item may be opened."""
        return (
            self.pool_size == 0
            or self.max_overflow < 0
            or self.opened < self.pool_size + self.max_overflow
        )

    def checked_out(self) -> int:
        """Slots held by users (or reserved for one): not idle, not closing."""
        return self.opened - len(self.idle) - self.closing

    def take(self) -> _T | Marker | None:
        """Claim an idle item, reserve a slot (:data:`CREATE`), or ``None`` to wait.

        Invariant: waiters exist only while nothing is idle (and, without a
        worker, there is no room), because anything freed goes to the oldest
        waiter first.  So a newcomer that finds something free is not jumping
        the queue.
        """
        idle = self.idle
        if idle:
            return idle.pop() if self.use_lifo else idle.popleft()
        if not self.grown_by_worker and self.has_room():
            self.opened += 1
            return CREATE
        return None

    def enqueue(self, waiter: _W) -> None:
        """Queue *waiter* behind the others, after :meth:`take` answered ``None``."""
        self.waiters.append(waiter)

    def cancel(self, waiter: _W) -> bool:
        """Withdraw a waiter that gave up.

        :return: ``False`` if it was already granted something, which it now owns
            and must use or give back.
        """
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return False
        return True

    def resize(self, pool_size: int, max_overflow: int) -> tuple[list[_T], list[_W]]:
        """Change the limits.

        :return: the idle items beyond the new *pool_size* (counted as
            closing: the caller closes each and calls ``free_slot(closed=True)``)
            and the waiters that now have room (each owns a slot: it must
            open an item).  Items in use beyond a lowered limit are closed as
            they come back, once *pool_size* are idle.
        """
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        surplus = []
        while pool_size and len(self.idle) > pool_size:
            surplus.append(self.idle.popleft())
        self.closing += len(surplus)
        admitted = []
        while self.waiters and self.has_room() and not self.grown_by_worker:
            self.opened += 1
            admitted.append(self.waiters.popleft())
        return surplus, admitted

    def remove_waiters(self) -> list[_W]:
        """Remove and return every waiter (the pool is closing)."""
        waiters = list(self.waiters)
        self.waiters.clear()
        return waiters

    def give_back(self, item: _T) -> _W | Marker | None:
        """Return a checked-in item.

        :return: the waiter that now owns *item*; :data:`CLOSE` if
            *pool_size* items are idle already, so it must be closed, after
            which the caller calls ``free_slot(closed=True)``; or ``None`` once
            it is idle.  An item is kept while fewer than *pool_size* are idle,
            however many are open: closing it while others are checked out
            would only make the next checkout open a new one.
        """
        if self.waiters:
            return self.waiters.popleft()
        if 0 < self.pool_size <= len(self.idle):
            self.closing += 1
            return CLOSE
        self.idle.append(item)
        return None

    def free_slot(self, closed: bool = False) -> _W | None:
        """Release the slot of an item that was closed or never opened.

        :param closed: the item was one this queue said to close
            (:data:`CLOSE` or :meth:`drain_idle`).
        :return: the waiter that now owns the slot (it must open an item),
            or ``None`` if nobody waited and the slot is free.
        """
        if closed:
            self.closing -= 1
        if self.waiters and not self.grown_by_worker:
            return self.waiters.popleft()
        self.opened -= 1
        return None

    def reserve_growth(self, min_idle: int, probe: bool = False) -> bool:
        """For the worker: reserve a slot if there is room and a waiter needs
        an item, fewer than *min_idle* are idle (never more than *pool_size*
        count), or *probe* (the server is down: try anyway).  The worker then
        opens the item and returns it with :meth:`give_back`, or calls
        :meth:`free_slot` if that failed."""
        floor = min(min_idle, self.pool_size) if self.pool_size else min_idle
        if self.has_room() and (self.waiters or len(self.idle) < floor or probe):
            self.opened += 1
            return True
        return False

    def remove_idle(self, items: list[_T]) -> None:
        """Take *items* out of the idle set to close them (as
        :meth:`drain_idle` does for all)."""
        for item in items:
            self.idle.remove(item)
        self.closing += len(items)

    def drain_idle(self) -> list[_T]:
        """Remove and return every idle item; the caller closes each one and
        then calls ``free_slot(closed=True)`` for it."""
        items = list(self.idle)
        self.idle.clear()
        self.closing += len(items)
        return items
