"""An in-process store (``memory://``): for tests and single-process development.

State is lost when the process ends, and is not shared between processes; use SQLite or
Redis for anything real. Thread-safe: one lock guards every operation.
"""

from __future__ import annotations

import builtins
import threading
import time

from sitewarden.store.base import Store, Updater

__all__ = ["MemoryStore"]


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

    def _live(self, key: str) -> bool:
        """Drop *key* if it has expired; return whether anything is left under it."""
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self._drop(key)
            return False
        return key in self._values or key in self._counters or key in self._sets

    def _drop(self, key: str) -> bool:
        found = False
        for table in (self._values, self._counters, self._sets):
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

    def update(self, key: str, fn: Updater) -> bytes | None:
        """Atomically replace the value under *key* by ``fn(current)``."""
        with self._lock:
            current = self._values.get(key) if self._live(key) else None
            new = fn(current)
            if new is None:
                return current
            self._drop(key)
            self._values[key] = bytes(new)
            return self._values[key]

    def keys(self, prefix: str) -> list[str]:
        """Return the live keys starting with *prefix*, sorted."""
        with self._lock:
            names = {*self._values, *self._counters, *self._sets}
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
