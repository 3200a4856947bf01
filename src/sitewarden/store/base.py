"""The one protocol through which all of sitewarden's shared state goes.

Keyrings, counters with expiry (lockout, rate limits), sets (bans, revocations), and
key-values with expiry (TOTP replay marks, CSP reports) are all kept through these few
operations. Each backend — memory, SQLite, Redis — implements them atomically, so that
several threads, processes or machines sharing one store never lose an update.

Keys are ``str`` (sitewarden namespaces them, e.g. ``"keyring:forms"``); values and set
members are ``bytes``. Times to live are seconds (``float``); ``None`` means "no expiry",
and a ttl of zero or less means "already expired" (nothing is kept).

A key holds one kind of data — a value, a counter or a set — for its whole life; using it
as another kind is a programming error whose outcome is backend-specific (Redis raises
:class:`~sitewarden.errors.StoreError`). sitewarden's own key prefixes keep kinds apart.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable

__all__ = ["Store", "Updater"]

#: The function given to :meth:`Store.update`: it receives the current value (``None``
#: when the key is absent) and returns the value to store, or ``None`` to change nothing.
Updater = Callable[[bytes | None], bytes | None]


class Store(abc.ABC):
    """Abstract base of the state stores; see the module docstring for the data model."""

    #: The URL this store was opened from, with any password removed (safe to print).
    url: str

    # -- key-value -------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the value stored under *key*, or ``None`` if absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store *value* under *key*, replacing any value; it expires after *ttl* seconds."""

    @abc.abstractmethod
    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store *value* only if *key* is absent (or expired); return whether it was stored.

        This is the atomic "first one wins" used for one-time marks such as TOTP replay.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove *key* (value, counter or set); return whether anything was removed."""

    @abc.abstractmethod
    def update(self, key: str, fn: Updater) -> bytes | None:
        """Atomically read *key*, call ``fn(current)`` and write what it returns.

        ``fn`` may be called more than once (optimistic backends retry on conflict), so it
        must not have side effects. Returning ``None`` leaves the value unchanged. An
        exception raised by ``fn`` aborts the update and propagates. Returns the value
        stored afterwards. A value written by ``update`` has no expiry.
        """

    @abc.abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """Return the live keys (values, counters and sets) that start with *prefix*, sorted."""

    # -- counters --------------------------------------------------------------------

    @abc.abstractmethod
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add *amount* to the counter *key* (absent counts as 0) and return the new count.

        *ttl* applies when the counter is created and is kept by later increments, so a
        counter is a fixed window that ends *ttl* seconds after its first hit.
        """

    # -- sets ------------------------------------------------------------------------

    @abc.abstractmethod
    def set_add(self, key: str, *members: bytes) -> int:
        """Add *members* to the set *key*; return how many were not there before."""

    @abc.abstractmethod
    def set_remove(self, key: str, *members: bytes) -> int:
        """Remove *members* from the set *key*; return how many were there."""

    @abc.abstractmethod
    def set_members(self, key: str) -> builtins.set[bytes]:
        """Return the members of the set *key* (empty if absent)."""

    # -- lifecycle -------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`~sitewarden.errors.StoreUnavailableError` unless the store answers."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and file handles; the store may not be used afterwards."""

    def __enter__(self) -> Store:
        """Return the store itself, to be closed when the ``with`` block ends."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the store."""
        self.close()

    def __repr__(self) -> str:
        """Show the backend and its (password-free) URL."""
        return f"<{type(self).__name__} {self.url}>"
