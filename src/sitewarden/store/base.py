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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

__all__ = ["MAX_PERIOD", "Store", "Throttle", "Updater", "check_throttle_args", "new_throttle"]

#: The function given to :meth:`Store.update`: it receives the current value (``None``
#: when the key is absent) and returns the value to store, or ``None`` to change nothing.
Updater = Callable[[bytes | None], bytes | None]


@dataclass(frozen=True, slots=True)
class Throttle:
    """The decision of :meth:`Store.throttle` (GCRA), with the values peeked on the way.

    ``allowed``: whether this request may proceed (a refused one consumed nothing);
    ``limit``: the burst size asked for; ``remaining``: how many more requests of cost 1
    would be allowed right now, after this one; ``retry_after``: seconds until this
    request would be allowed (``0.0`` when it was); ``reset_after``: seconds until the
    full burst is available again; ``peeked``: the values of the ``peek`` keys, in order
    (``None`` where absent), read in the same atomic step.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float
    peeked: tuple[bytes | None, ...] = ()


# Building a frozen dataclass through __init__ costs one object.__setattr__ per field;
# setting the slots through their descriptors costs half. A throttle decision is made on
# every rate-limited request, so the backends build results this way.
_new = object.__new__
_Setter = Callable[[Throttle, object], None]
_set_allowed = cast(_Setter, vars(Throttle)["allowed"].__set__)
_set_limit = cast(_Setter, vars(Throttle)["limit"].__set__)
_set_remaining = cast(_Setter, vars(Throttle)["remaining"].__set__)
_set_retry_after = cast(_Setter, vars(Throttle)["retry_after"].__set__)
_set_reset_after = cast(_Setter, vars(Throttle)["reset_after"].__set__)
_set_peeked = cast(_Setter, vars(Throttle)["peeked"].__set__)


def new_throttle(
    allowed: bool,
    limit: int,
    remaining: int,
    retry_after: float,
    reset_after: float,
    peeked: tuple[bytes | None, ...],
) -> Throttle:
    """Build a :class:`Throttle` quickly (the same object ``Throttle(...)`` would give)."""
    result: Throttle = _new(Throttle)
    _set_allowed(result, allowed)
    _set_limit(result, limit)
    _set_remaining(result, remaining)
    _set_retry_after(result, retry_after)
    _set_reset_after(result, reset_after)
    _set_peeked(result, peeked)
    return result


#: The longest period :meth:`Store.throttle` accepts (a year, in seconds).
MAX_PERIOD = 366 * 86_400.0


def check_throttle_args(limit: int, period: float, cost: int) -> None:
    """Raise :class:`ValueError` unless *limit*, *period* and *cost* make a usable rate.

    *limit* must be at least 1, *period* a finite number of seconds above zero, and *cost*
    between 0 (look without consuming) and *limit* (a larger cost could never be allowed).
    """
    if type(limit) is not int or limit < 1:
        raise ValueError(f"throttle: limit must be a whole number >= 1, not {limit!r}")
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise ValueError(f"throttle: period must be a number of seconds, not {period!r}")
    if not 0.0 < period <= MAX_PERIOD:
        raise ValueError(f"throttle: period must be seconds > 0 (at most a year), not {period!r}")
    if type(cost) is not int or not 0 <= cost <= limit:
        raise ValueError(f"throttle: cost must be a whole number from 0 to {limit}, not {cost!r}")
    if period / limit < 1e-6:
        raise ValueError(
            f"throttle: {limit} per {period:g} s is more than one request per microsecond"
        )


class Store(abc.ABC):
    """Abstract base of the state stores; see the module docstring for the data model."""

    #: The URL this store was opened from, with any password removed (safe to print).
    url: str
    #: Whether the store is reached over the network and shared by many machines (Redis):
    #: every read is a round trip, and other machines' writes must be seen at once.
    remote: bool = False

    # -- key-value -------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the value stored under *key*, or ``None`` if absent or expired."""

    def get_many(self, keys: Sequence[str]) -> builtins.list[bytes | None]:
        """Return the values of *keys*, in order (``None`` where absent), in one round trip.

        Redis sends one ``MGET``; memory and SQLite read under one lock / one transaction,
        so the values are a consistent snapshot. This default asks :meth:`get` for each key
        and exists only for third-party backends.
        """
        return [self.get(key) for key in keys]

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
    def update(self, key: str, fn: Updater, ttl: float | None = None) -> bytes | None:
        """Atomically read *key*, call ``fn(current)`` and write what it returns.

        ``fn`` may be called more than once (optimistic backends retry on conflict), so it
        must not have side effects. Returning ``None`` leaves the value (and its expiry)
        unchanged. An exception raised by ``fn`` aborts the update and propagates. Returns
        the value stored afterwards. A value written by ``update`` expires *ttl* seconds
        after the write (``None``: never), so short-lived records such as lockout counts
        clean themselves up.
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

    # -- rate limiting ---------------------------------------------------------------

    @abc.abstractmethod
    def throttle(
        self, key: str, limit: int, period: float, cost: int = 1, peek: Sequence[str] = ()
    ) -> Throttle:
        """Decide one request against the rate *limit* per *period* seconds kept under *key*.

        GCRA (the generic cell rate algorithm): at most *limit* requests at once, refilled
        continuously at *limit*/*period* per second, so *limit* requests are allowed in any
        burst and no more than about *limit* per *period* in the long run. A request of
        *cost* counts as that many. The stored state is one number, the theoretical arrival
        time, which expires by itself once the full burst is available again. A refused
        request consumes nothing.

        The decision is atomic across threads, processes and (with Redis) machines: *n*
        simultaneous requests against an empty key allow exactly ``min(n, limit)``. The
        values of the *peek* keys are read in the same step (one Redis round trip), so a
        guard can check a ban record while it counts. Raises :class:`ValueError` for a
        limit, period or cost that makes no rate (see :func:`check_throttle_args`).
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
