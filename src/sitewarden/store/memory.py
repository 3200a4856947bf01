"""An in-process store (``memory://``): for tests and single-process development.

State is lost when the process ends, and is not shared between processes; use SQLite or
Redis for anything real. Thread-safe: one lock guards every operation.

:meth:`MemoryStore.throttle` is the in-process rate limiter's hot path: its state is one
integer per key (the theoretical arrival time in ``time.monotonic_ns()`` units, so the
arithmetic is exact and a burst of *limit* is exactly *limit*), kept in its own table and
swept of stale entries as the table grows.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Sequence

from sitewarden.store.base import (
    MAX_PERIOD,
    Store,
    Throttle,
    Updater,
    check_throttle_args,
    new_throttle,
)

__all__ = ["MemoryStore"]

_monotonic_ns = time.monotonic_ns
#: The throttle table is first swept when it holds this many states.
_SWEEP_MIN = 1024


class MemoryStore(Store):
    """A dictionary-backed :class:`~sitewarden.store.base.Store` with expiry."""

    def __init__(self) -> None:
        """Create an empty store."""
        self.url = "memory://"
        self._lock = threading.Lock()
        self._values: dict[str, bytes] = {}
        self._counters: dict[str, int] = {}
        self._sets: dict[str, set[bytes]] = {}
        self._expires: dict[str, float] = {}
        # Throttle states: key -> theoretical arrival time (monotonic ns). A state is live
        # while it lies in the future; stale ones are swept when the table doubles.
        self._tats: dict[str, int] = {}
        self._sweep_at = _SWEEP_MIN

    def _live(self, key: str) -> bool:
        """Drop *key* if it has expired; return whether anything is left under it."""
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self._drop(key)
            return False
        tat = self._tats.get(key)
        if tat is not None:
            if tat > time.monotonic_ns():
                return True
            del self._tats[key]
            return False
        return key in self._values or key in self._counters or key in self._sets

    def _drop(self, key: str) -> bool:
        found = False
        for table in (self._values, self._counters, self._sets, self._tats):
            if key in table:
                del table[key]
                found = True
        self._expires.pop(key, None)
        return found

    def _expire_at(self, key: str, ttl: float | None) -> None:
        if ttl is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = time.monotonic() + ttl

    def get(self, key: str) -> bytes | None:
        """Return the value under *key*, or ``None``."""
        with self._lock:
            return self._values.get(key) if self._live(key) else None

    def get_many(self, keys: Sequence[str]) -> builtins.list[bytes | None]:
        """Return the values of *keys* in order, read under one lock."""
        with self._lock:
            return [self._values.get(k) if self._live(k) else None for k in keys]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store *value* under *key* with an optional time to live."""
        with self._lock:
            self._drop(key)
            self._values[key] = bytes(value)
            self._expire_at(key, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store *value* only if *key* is absent; return whether it was stored."""
        with self._lock:
            if self._live(key):
                return False
            self._values[key] = bytes(value)
            self._expire_at(key, ttl)
            return True

    def delete(self, key: str) -> bool:
        """Remove *key*; return whether it existed."""
        with self._lock:
            return self._live(key) and self._drop(key)

    def update(self, key: str, fn: Updater, ttl: float | None = None) -> bytes | None:
        """Atomically replace the value under *key* by ``fn(current)``."""
        with self._lock:
            current = self._values.get(key) if self._live(key) else None
            new = fn(current)
            if new is None:
                return current
            self._drop(key)
            self._values[key] = bytes(new)
            self._expire_at(key, ttl)
            return self._values[key]

    def keys(self, prefix: str) -> list[str]:
        """Return the live keys starting with *prefix*, sorted."""
        with self._lock:
            names = {*self._values, *self._counters, *self._sets, *self._tats}
            return sorted(k for k in names if k.startswith(prefix) and self._live(k))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add *amount* to the counter *key*; *ttl* is set when it is created."""
        with self._lock:
            if not self._live(key) or key not in self._counters:
                self._drop(key)
                self._counters[key] = 0
                self._expire_at(key, ttl)
            self._counters[key] += amount
            return self._counters[key]

    def throttle(
        self, key: str, limit: int, period: float, cost: int = 1, peek: Sequence[str] = ()
    ) -> Throttle:
        """Decide one request by GCRA under the store's lock (see :meth:`Store.throttle`)."""
        # A few comparisons for the common, valid case; the full check explains the rest.
        try:
            valid = (
                0 <= cost <= limit
                and 0.0 < period <= MAX_PERIOD
                and type(limit) is int
                and type(cost) is int
            )
        except TypeError:
            valid = False
        if not valid:
            check_throttle_args(limit, period, cost)
        interval = round(period * 1e9 / limit)  # ns between two requests at the steady rate
        if interval < 1000:
            check_throttle_args(limit, period, cost)
        capacity = interval * limit  # the most debt allowed: a full burst
        increment = interval * cost
        with self._lock:
            now = _monotonic_ns()
            tats = self._tats
            tat = tats.get(key)
            fresh = tat is None
            if tat is None or tat < now:
                tat = now
            debt = tat + increment - now
            allowed = debt <= capacity
            if allowed and increment:
                tats[key] = now + debt
                if fresh and len(tats) >= self._sweep_at:
                    self._sweep(now)
            peeked = self._peek(peek) if peek else ()
        if allowed:
            return new_throttle(True, limit, (capacity - debt) // interval, 0.0, debt / 1e9, peeked)
        held = tat - now  # what this request found: it consumed nothing
        return new_throttle(
            False,
            limit,
            (capacity - held) // interval,
            (debt - capacity) / 1e9,
            held / 1e9,
            peeked,
        )

    def _peek(self, keys: Sequence[str]) -> tuple[bytes | None, ...]:
        """Read the values of *keys* (caller holds the lock); cheap when they are absent."""
        values = self._values
        expires = self._expires
        found: list[bytes | None] = []
        for key in keys:
            value = values.get(key)
            if value is not None and key in expires and not self._live(key):
                value = None
            found.append(value)
        return tuple(found)

    def _sweep(self, now: int) -> None:
        """Forget throttle states that lie in the past (caller holds the lock)."""
        tats = self._tats
        for key in [k for k, tat in tats.items() if tat <= now]:
            del tats[key]
        self._sweep_at = max(_SWEEP_MIN, 2 * len(tats))

    def set_add(self, key: str, *members: bytes) -> int:
        """Add *members* to the set *key*; return how many were new."""
        if not members:
            return 0  # like Redis: an empty set does not exist
        with self._lock:
            if not self._live(key) or key not in self._sets:
                self._drop(key)
                self._sets[key] = set()
            target = self._sets[key]
            before = len(target)
            target.update(bytes(m) for m in members)
            return len(target) - before

    def set_remove(self, key: str, *members: bytes) -> int:
        """Remove *members* from the set *key*; return how many were there."""
        with self._lock:
            if not self._live(key) or key not in self._sets:
                return 0
            target = self._sets[key]
            removed = sum(1 for m in set(members) if m in target)
            target.difference_update(members)
            if not target:
                self._drop(key)
            return removed

    def set_members(self, key: str) -> builtins.set[bytes]:
        """Return a copy of the set *key*."""
        with self._lock:
            if not self._live(key):
                return set()
            return set(self._sets.get(key, ()))

    def ping(self) -> None:
        """Do nothing: an in-process store always answers."""

    def close(self) -> None:
        """Drop all state."""
        with self._lock:
            self._values.clear()
            self._counters.clear()
            self._sets.clear()
            self._expires.clear()
            self._tats.clear()
