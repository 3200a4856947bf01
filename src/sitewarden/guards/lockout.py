"""Login lockout: short, escalating locks per account and per client address.

**Threat.** Online password guessing: one attacker trying many passwords on one account,
a botnet spreading guesses on one account over many addresses (so per-address limits never
trigger), and password spraying — one address trying a few common passwords on many
accounts (so per-account limits never trigger).

**Rules.** The login view reports every wrong password with :meth:`Lockout.failure` and
every right one with :meth:`Lockout.success`, and asks :meth:`Lockout.status` before
checking a password.

* **Per account:** ``lockout_threshold`` failures within ``lockout_window`` seconds (a
  sliding window) lock the account, whatever addresses they came from.
* **Per client address:** ``lockout_address_threshold`` failures within the window, across
  all logins, lock the address. IPv6 addresses are counted per ``/64``
  (``rate_limit_ipv6_prefix``): one host owns a whole /64 and can pick any address in it.
  Addresses in ``lockout_allow_networks`` are never counted or locked by address; their
  failures still count against the account. An address that is ``None`` or not an IP
  address is not counted by address (there is nothing to count it under; a caller that
  lets clients choose the address string has lost already, since any fresh address would
  do as well).
* **Short, escalating locks** instead of Products.LoginLockout's day-long one: the n-th
  lock of a scope lasts ``lockout_duration * 2**(n-1)`` seconds, capped at
  ``lockout_max_duration``. A lock is "the next one" when it starts less than
  ``lockout_max_duration`` after the previous lock ended; after that long in peace the
  count starts again at one. When a lock ends, counting starts from zero.
* **Attempts during a lock** are not counted anywhere and do not extend it, unless
  ``lockout_extend_on_attempt`` (each attempt then restarts the lock period). An attempt
  refused because the *address* is locked is not counted against the account either, and
  the other way round: the application refuses it without checking the password, so it is
  no guess.
* **A repeated wrong password is counted once.** A user who retypes the same wrong
  password learns nothing new and should not lose an attempt. Each record keeps keyed
  fingerprints — HMAC-SHA256 under the ``system`` ring's secret over the login and the
  password, never the password and never a plain hash — of the last
  :data:`FINGERPRINTS_KEPT` wrong passwords of the current window, compared with
  :func:`hmac.compare_digest` against every secret of the ring (so a rotation does not
  count a repeat twice). Fingerprints are dropped when a lock starts and when they leave
  the window.
* **Logins are normalised** (:func:`normalise_login`: NFKC, case folding, stripped, control
  and format characters removed) so ``Admin``, ``admin `` and full-width ``ADMIN`` share one
  count. An application with case-sensitive logins passes ``normalise=`` its own canonical
  form.
* **No account enumeration.** The lockout never knows whether a login exists: it counts
  strings. Its answers for an unknown login and a known one with the same history are the
  same, so the login view can show ``attempts_left`` and ``retry_after`` to everyone.
* :meth:`~Lockout.success` clears the account's failures, **not** the address counter:
  otherwise an attacker could reset its address count by signing in to its own account
  between guesses. The lock level (the escalation) is kept too, and a success reported
  during a lock changes nothing: the view must refuse logins while locked.

**Storage.** One JSON record per scope, ``lockout:account:<32 hex>`` (a SHA-256 of the
normalised login, so any login gives a short, safe key) and ``lockout:address:<address or
IPv6 network>``, changed only through :meth:`Store.update` — atomic, so many workers
failing at once never lose a count and the lock falls on exactly the threshold-th failure.
Each write sets the record's expiry to what it still has to remember (the window, or the
lock plus ``lockout_max_duration`` for the escalation), so records clean themselves up.

**Damaged records fail closed.** A record that cannot be read is reported with a
``lockout.malformed`` event and replaced by a lock of ``lockout_duration`` from now: it
might have been a lock, and an unreadable lock must never become an unlock. It is never a
crash. Store errors (:class:`~sitewarden.errors.StoreError`) propagate: the login view
must refuse the login then (fail closed).

**Events** (``sitewarden.events``): ``login.failure`` (login, client, failures, counted,
reason), ``login.success`` (login, client), ``lockout.locked`` (scope, login or address,
client, until, lock_level, duration), ``lockout.unlocked`` (scope, login or address, reason),
``lockout.malformed`` (key, reason). Never a password, never a fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

from sitewarden import events
from sitewarden.guards.clientip import parse_ip
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy
from sitewarden.store.base import Store

_HEX = re.compile(r"[0-9a-f]+")

__all__ = [
    "ACCOUNT_PREFIX",
    "ADDRESS_PREFIX",
    "FINGERPRINTS_KEPT",
    "REASON_ACCOUNT_LOCKED",
    "REASON_ADDRESS_LOCKED",
    "REASON_REPEAT",
    "LockRecord",
    "Lockout",
    "LockoutStatus",
    "Scope",
    "address_bucket",
    "normalise_login",
]

#: Store key prefix of the per-account records.
ACCOUNT_PREFIX = "lockout:account:"
#: Store key prefix of the per-address records.
ADDRESS_PREFIX = "lockout:address:"
#: Fingerprints of wrong passwords kept per record (the most recent ones of the window).
FINGERPRINTS_KEPT = 20
#: Characters of a login kept in its record and events (for people to read, not to count).
NAME_MAX = 256

#: ``login.failure`` reasons for a failure that was not counted.
REASON_REPEAT = "repeated password"
REASON_ACCOUNT_LOCKED = "account locked"
REASON_ADDRESS_LOCKED = "address locked"

#: What a lock applies to.
Scope = Literal["account", "address"]

_FORMAT_VERSION = 1
_FP_BYTES = 16  # 128-bit fingerprints: collisions among 20 entries are out of reach
_FP_LABEL = b"sitewarden lockout fingerprint v1\0"
_KEY_LABEL = b"sitewarden lockout login\0"
_MAX_LEVEL = 64  # 2**63 times any duration is past every cap
_MAX_ENTRIES = 10_000  # a stored list longer than this is not one sitewarden wrote
_FAR = 1e11  # Unix seconds in the year 5138: a later time is not one sitewarden wrote
_T = TypeVar("_T")


def normalise_login(login: str) -> str:
    """Return the canonical form under which *login* is counted.

    NFKC (full-width and compatibility forms become plain ones), Unicode case folding,
    NFKC again (folding can denormalise), control and format characters (zero-width
    spaces, bidi marks) removed, surrounding white space stripped. Merging too much only
    shares a count; merging too little would let ``Admin`` and ``admin `` each get their
    own attempts at the same account of a case-insensitive site.
    """
    if not isinstance(login, str):
        raise TypeError(f"login must be a str, not {type(login).__name__}")
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
    if not folded.isascii() or not folded.isprintable():
        folded = "".join(c for c in folded if unicodedata.category(c) not in ("Cc", "Cf"))
    return folded.strip()


def address_bucket(address: str | None, ipv6_prefix: int = 64) -> str | None:
    """Return the name under which failures from *address* are counted, or ``None``.

    IPv4 addresses count alone; IPv6 addresses by their ``/ipv6_prefix`` network (written
    ``2001:db8::/64``); IPv4-mapped IPv6 addresses as the IPv4 address. ``None`` and text
    that is not an IP address give ``None``: not counted by address.
    """
    if address is None:
        return None
    if not isinstance(address, str):
        raise TypeError(f"address must be a str or None, not {type(address).__name__}")
    parsed = parse_ip(address)
    if parsed is None:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, ipv6_prefix), strict=False))
    return str(parsed)


@dataclasses.dataclass(frozen=True, slots=True)
class LockoutStatus:
    """What the login view may tell the person at the keyboard (the same for any login).

    ``locked``: refuse the login without checking the password. ``failures``: counted
    failures of the locked scope, or of the account when nothing is locked.
    ``retry_after``: whole seconds until the lock ends, rounded up (0 when not locked),
    for a ``Retry-After`` header or "try again in 5 minutes". ``attempts_left``: failures
    still allowed before a lock (the smaller of the account's and the address's; 0 when
    locked). ``scope``: ``"account"`` or ``"address"`` when locked (the one ending last),
    else ``None``.
    """

    locked: bool
    failures: int
    retry_after: int
    attempts_left: int
    scope: Scope | None


@dataclasses.dataclass(frozen=True, slots=True)
class LockRecord:
    """One active lock, for the admin screens and ``sitewarden lockout list``.

    ``name`` is the normalised login (``scope == "account"``) or the address or IPv6
    network (``scope == "address"``); ``until`` is the Unix time the lock ends; ``level``
    is its place in the escalation (1 for a first lock).
    """

    scope: Scope
    name: str
    failures: int
    until: float
    level: int

    def retry_after(self, now: float) -> int:
        """Whole seconds from *now* until the lock ends, rounded up (0 if it has ended)."""
        return max(0, math.ceil(self.until - now))


@dataclasses.dataclass(frozen=True, slots=True)
class _Record:
    """The stored state of one account or address (see :meth:`_Record.encode`)."""

    name: str
    failures: tuple[float, ...] = ()  # times of the counted failures, oldest first
    prints: tuple[tuple[float, str], ...] = ()  # (time, hex fingerprint), oldest first
    until: float = 0.0  # end of the last lock; kept after it ends for the escalation
    level: int = 0  # locks in the current escalation (0: none remembered)

    def locked(self, now: float) -> bool:
        return self.until > now

    def encode(self) -> bytes:
        doc = {
            "v": _FORMAT_VERSION,
            "name": self.name,
            "failures": list(self.failures),
            "prints": [list(p) for p in self.prints],
            "until": self.until,
            "level": self.level,
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def _time(value: object) -> bool:
    """Whether *value* is a plausible Unix time (a finite, non-negative number, not a bool)."""
    # type() rather than isinstance(): bool is an int subclass. The range check also
    # rejects NaN (every comparison is false) and infinity.
    return (type(value) is float or type(value) is int) and 0 <= value < _FAR


def _decode(raw: bytes) -> _Record | None:
    """Parse a stored record; ``None`` if it is not one sitewarden wrote."""
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != _FORMAT_VERSION:
        return None
    name, failures, prints = doc.get("name"), doc.get("failures"), doc.get("prints")
    until, level = doc.get("until"), doc.get("level")
    if (
        not isinstance(name, str)
        or not isinstance(failures, list)
        or not isinstance(prints, list)
        or len(failures) > _MAX_ENTRIES
        or len(prints) > _MAX_ENTRIES
        or not all(map(_time, failures))
        or not _time(until)
        or isinstance(level, bool)
        or not isinstance(level, int)
        or not 0 <= level <= _MAX_LEVEL
        or (level == 0) != (until == 0)
    ):
        return None
    kept: list[tuple[float, str]] = []
    for item in prints:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not _time(item[0])
            or not isinstance(item[1], str)
            or len(item[1]) != 2 * _FP_BYTES
            or not _HEX.fullmatch(item[1])  # compare_digest refuses non-ASCII: a crash
        ):
            return None
        kept.append((float(item[0]), item[1]))
    return _Record(
        name[:NAME_MAX],
        tuple(float(t) for t in failures),
        tuple(kept[-FINGERPRINTS_KEPT:]),
        float(cast(float, until)),
        level,
    )


class _LongerTTL(Exception):
    """Raised inside an update whose record must live longer than the ttl it was given."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl)
        self.ttl = ttl


@dataclasses.dataclass(frozen=True, slots=True)
class _Prints:
    """A password's fingerprint under the current secret, and under every secret."""

    current: str
    candidates: tuple[str, ...]


class Lockout:
    """Counts failed logins per account and per address and locks either; see the module.

    *clock* returns Unix seconds (inject one in tests). *normalise* maps a login to the
    form it is counted under (default :func:`normalise_login`). All methods are safe to
    call from many threads, processes and machines sharing *store*.
    """

    def __init__(
        self,
        policy: Policy,
        store: Store,
        keys: KeyManager,
        *,
        clock: Callable[[], float] = time.time,
        normalise: Callable[[str], str] = normalise_login,
    ) -> None:
        """Use *policy*'s lockout settings, *store* for the records, *keys* for fingerprints."""
        self.policy = policy
        self.store = store
        self.keys = keys
        self._clock = clock
        self._normalise = normalise
        self._allow = tuple(
            ipaddress.ip_network(net, strict=False) for net in policy.lockout_allow_networks
        )
        # Nothing a record remembers outlives this: the window, or a lock (at most
        # max_duration, restarted at most at "now") plus max_duration of escalation memory.
        self._longest_ttl = float(policy.lockout_window + 2 * policy.lockout_max_duration + 60)

    # -- the login view ----------------------------------------------------------------

    def failure(
        self, login: str, address: str | None, password: str | None = None
    ) -> LockoutStatus:
        """Record a failed login of *login* from *address*; return the status afterwards.

        Give *password* (the wrong one tried) so that a repeat of it is not counted again;
        only a keyed fingerprint of it is kept. A call while the account or the address is
        locked counts nothing (and restarts the lock if ``lockout_extend_on_attempt``).
        """
        name, account_key = self._account(login)
        bucket = self._bucket(address)
        if password is not None and not isinstance(password, str):
            raise TypeError(f"password must be a str or None, not {type(password).__name__}")
        now = self._clock()
        prints = None if password is None else self._fingerprints(name, password)
        client = _client(address)

        # Speculative read: an attempt refused for the address is no guess at the account.
        address_key = None if bucket is None else ADDRESS_PREFIX + bucket
        address_locked = address_key is not None and self._peek_locked(address_key, now)

        def count_account(rec: _Record | None) -> tuple[_Record | None, str]:
            refused = REASON_ADDRESS_LOCKED if address_locked else None
            return self._count(rec, name, now, self.policy.lockout_threshold, prints, refused)

        account, account_outcome = self._write(
            account_key, name, now, self.policy.lockout_window, count_account
        )
        address_rec: _Record | None = None
        address_outcome = None
        if address_key is not None and bucket is not None:
            # An attempt on an account that was already locked is no guess either.
            account_was_locked = account_outcome in ("locked", "extended")
            address_name = bucket

            def count_address(rec: _Record | None) -> tuple[_Record | None, str]:
                refused = REASON_ACCOUNT_LOCKED if account_was_locked else None
                threshold = self.policy.lockout_address_threshold
                return self._count(rec, address_name, now, threshold, prints, refused)

            address_rec, address_outcome = self._write(
                address_key, bucket, now, self.policy.lockout_window, count_address
            )

        status = self._status(account, address_rec, now)
        counted = account_outcome in ("counted", "lock")
        reason = _REASONS.get(account_outcome)
        events.emit(
            "login.failure",
            logging.WARNING,
            login=name[:NAME_MAX],
            client=client,
            failures=len(account.failures) if account else 0,
            counted=counted,
            reason=reason,
        )
        if account_outcome == "lock" and account is not None:
            self._locked_event("account", account, client)
        if address_outcome == "lock" and address_rec is not None:
            self._locked_event("address", address_rec, client)
        return status

    def success(self, login: str, address: str | None) -> LockoutStatus:
        """Record a right password; return the state the sign-in must obey.

        When the returned status is ``locked`` the view must refuse the sign-in like any
        attempt during a lock. This closes the race of parallel guesses: requests that
        all passed :meth:`status` before the lock began still have their passwords checked,
        and a right guess among them must not sign in once the failures beside it have
        locked the account (its answer then looks exactly like the wrong guesses').

        Otherwise the account's failures and fingerprints are cleared. The address counter
        is left alone (an attacker must not reset its count by signing in to its own
        account between guesses), and so is the lock level.
        """
        name, key = self._account(login)
        self._bucket(address)  # the same argument check as failure()
        now = self._clock()

        def clear(rec: _Record | None) -> tuple[_Record | None, str]:
            if rec is None or rec.locked(now) or not (rec.failures or rec.prints):
                return None, "unchanged"
            return dataclasses.replace(rec, failures=(), prints=()), "cleared"

        # Expiry 0 first: a record left with nothing to remember is deleted by the write.
        self._write(key, name, now, 0.0, clear)
        found = self.status(login, address)
        if not found.locked:
            events.emit(
                "login.success", logging.INFO, login=name[:NAME_MAX], client=_client(address)
            )
        return found

    def status(self, login: str, address: str | None) -> LockoutStatus:
        """Return the account's and the address's state now, without counting anything.

        Ask before checking a password: when ``locked``, refuse without checking it.
        """
        name, key = self._account(login)
        bucket = self._bucket(address)
        now = self._clock()
        account = self._read(key, name, now)
        address_rec = None if bucket is None else self._read(ADDRESS_PREFIX + bucket, bucket, now)
        return self._status(account, address_rec, now)

    # -- administration ----------------------------------------------------------------

    def unlock(self, login: str) -> bool:
        """Lift the lock of *login* and forget its failures; return whether it was locked."""
        name, key = self._account(login)
        return self._unlock("account", key, name)

    def unlock_address(self, address: str) -> bool:
        """Lift the lock of *address* (or of the network ``lockout list`` shows for it).

        Returns whether it was locked. Raises :class:`ValueError` for text that is neither
        an IP address nor a network.
        """
        if not isinstance(address, str):
            raise TypeError(f"address must be a str, not {type(address).__name__}")
        prefix = self.policy.rate_limit_ipv6_prefix
        # The allow list is not consulted: an address added to it after it was locked must
        # still be unlockable.
        bucket = address_bucket(address, prefix)
        if bucket is None and "/" in address:
            try:
                net = ipaddress.ip_network(address.strip(), strict=False)
            except ValueError:
                net = None
            if net is not None:
                whole = net.prefixlen == net.max_prefixlen
                bucket = address_bucket(str(net.network_address), prefix) if whole else str(net)
        if bucket is None:
            raise ValueError(f"{address!r} is not an IP address or network")
        return self._unlock("address", ADDRESS_PREFIX + bucket, bucket)

    def locked(self, now: float | None = None) -> list[LockRecord]:
        """Return every active lock, accounts first, each sorted by name.

        A damaged record is replaced by a lock (see the module docstring) and listed.
        """
        now = self._clock() if now is None else now
        found: list[LockRecord] = []
        scopes: tuple[tuple[Scope, str], ...] = (
            ("account", ACCOUNT_PREFIX),
            ("address", ADDRESS_PREFIX),
        )
        for scope, prefix in scopes:
            for key in self.store.keys(prefix):
                name = key[len(prefix) :] if scope == "address" else ""
                rec = self._read(key, name, now)
                if rec is not None and rec.locked(now):
                    failures = len(rec.failures)
                    found.append(LockRecord(scope, rec.name, failures, rec.until, rec.level))
        found.sort(key=lambda r: (r.scope != "account", r.name))
        return found

    # -- counting ----------------------------------------------------------------------

    def _count(
        self,
        rec: _Record | None,
        name: str,
        now: float,
        threshold: int,
        prints: _Prints | None,
        refused: str | None,
    ) -> tuple[_Record | None, str]:
        """Pure: the record after one failed attempt, and what happened to the attempt.

        Outcomes: ``counted``, ``lock`` (counted, and it started a lock), ``locked`` and
        ``extended`` (during a lock), ``repeat``, or the *refused* reason (the other scope
        is locked). ``None`` as the record means "leave it as it is".
        """
        if rec is None:
            rec = _Record(name)
        if rec.locked(now):
            if self.policy.lockout_extend_on_attempt:
                until = now + self._duration(rec.level)
                if until > rec.until:
                    return dataclasses.replace(rec, until=until), "extended"
            return None, "locked"
        if refused is not None:
            return None, refused
        if prints is not None and _seen(rec.prints, prints.candidates):
            return None, "repeat"
        failures = (*rec.failures, now)
        kept = rec.prints
        if prints is not None:
            kept = (*kept, (now, prints.current))[-FINGERPRINTS_KEPT:]
        if len(failures) < threshold:
            return _Record(name, failures, kept, rec.until, rec.level), "counted"
        # The threshold-th failure: lock. A lock starting within max_duration of the end of
        # the previous one is the next level of the escalation.
        level = min(rec.level + 1, _MAX_LEVEL) if rec.level else 1
        until = now + self._duration(level)
        # Fingerprints are dropped: nothing to compare them with until the lock ends.
        return _Record(name, failures, (), until, level), "lock"

    def _duration(self, level: int) -> int:
        """Return the length of a lock of *level* (1 for the first): doubled, capped."""
        p = self.policy
        if level - 1 >= _MAX_LEVEL - 1:
            return p.lockout_max_duration
        return min(p.lockout_duration << (level - 1), p.lockout_max_duration)

    def _settle(self, rec: _Record, now: float) -> _Record:
        """Drop what the record no longer has to remember at *now*."""
        if rec.locked(now):
            return rec  # frozen during a lock: its failures are what caused it
        cutoff = now - self.policy.lockout_window
        # A lock's end also ends its failures: counting starts again from zero.
        failures = tuple(t for t in rec.failures if t > cutoff and t >= rec.until)
        prints = tuple(p for p in rec.prints if p[0] > cutoff and p[0] >= rec.until)
        until, level = rec.until, rec.level
        if level and now >= until + self.policy.lockout_max_duration:
            until, level = 0.0, 0  # long enough in peace: the escalation starts over
        return _Record(rec.name, failures, prints, until, level)

    def _expires(self, rec: _Record) -> float:
        """Return the Unix time after which *rec* remembers nothing useful."""
        window = self.policy.lockout_window
        end = rec.until + self.policy.lockout_max_duration if rec.level else 0.0
        # max(), not the last entry: another machine's clock may have written later times.
        if rec.failures:
            end = max(end, max(rec.failures) + window)
        if rec.prints:
            end = max(end, max(t for t, _ in rec.prints) + window)
        return end

    def _repair(self, name: str, now: float) -> _Record:
        """Return the record that replaces a damaged one: a first-level lock from *now*."""
        return _Record(name, (), (), now + self._duration(1), 1)

    def _write(
        self,
        key: str,
        name: str,
        now: float,
        ttl: float,
        step: Callable[[_Record | None], tuple[_Record | None, _T]],
    ) -> tuple[_Record | None, _T]:
        """Apply *step* to the record under *key* atomically; return the result and outcome.

        *step* receives the settled record (``None`` if absent) and returns the record to
        store (``None``: unchanged) and an outcome. It may run several times (optimistic
        stores retry), so it is pure; the outcome of the run that was committed is
        returned. The record's expiry is what it still has to remember: *ttl* is a first
        guess, and the update is redone with a longer one when the new record needs it
        (nothing was written by the aborted attempt, so nothing is counted twice).
        """
        committed: list[Any] = []

        def apply(raw: bytes | None) -> bytes | None:
            committed.clear()
            rec: _Record | None = None
            damaged = False
            if raw is not None:
                rec = _decode(raw)
                if rec is None:
                    damaged = True
                    rec = self._repair(name, now)
                else:
                    rec = self._settle(rec, now)
            new, outcome = step(rec)
            if new is None and damaged:
                new = rec  # the repair itself must be written
            if new is not None and not new.name and name:
                new = dataclasses.replace(new, name=name[:NAME_MAX])
            committed.extend((new if new is not None else rec, outcome, damaged))
            if new is None:
                return None
            needed = self._expires(new) - now
            # The tolerance: (now + window) - now may exceed window by a rounding error.
            # At the longest ttl nothing is redone (only clocks far apart could want more).
            if needed > ttl + 0.001 and ttl < self._longest_ttl:
                raise _LongerTTL(needed)
            return new.encode()

        while True:
            try:
                self.store.update(key, apply, ttl=ttl)
                break
            except _LongerTTL as longer:
                # Grows every round and stops at the longest ttl, where apply never raises.
                ttl = min(max(longer.ttl + 1.0, 2 * ttl), self._longest_ttl)
        final, outcome, damaged = committed
        if damaged:
            self._malformed_event(key)
        return final, outcome

    def _read(self, key: str, name: str, now: float) -> _Record | None:
        """Return the settled record under *key*; a damaged one is repaired (locked)."""
        raw = self.store.get(key)
        if raw is None:
            return None
        rec = _decode(raw)
        if rec is not None:
            return self._settle(rec, now)
        repaired, _ = self._write(key, name, now, 0.0, lambda rec: (None, None))
        return repaired

    def _peek_locked(self, key: str, now: float) -> bool:
        """Whether the record under *key* is locked now (a damaged record counts as locked)."""
        raw = self.store.get(key)
        if raw is None:
            return False
        rec = _decode(raw)
        return rec is None or rec.locked(now)

    def _unlock(self, scope: Scope, key: str, name: str) -> bool:
        raw = self.store.get(key)
        if raw is None:
            return False
        rec = _decode(raw)
        was_locked = rec is None or rec.locked(self._clock())  # damaged counts as locked
        self.store.delete(key)
        if was_locked:
            shown = rec.name if rec is not None and rec.name else name
            fields = {"login": shown} if scope == "account" else {"address": shown}
            events.emit("lockout.unlocked", logging.INFO, scope=scope, reason="admin", **fields)
        return was_locked

    # -- helpers -----------------------------------------------------------------------

    def _status(
        self, account: _Record | None, address: _Record | None, now: float
    ) -> LockoutStatus:
        p = self.policy
        scopes: tuple[tuple[Scope, _Record | None], ...] = (
            ("account", account),
            ("address", address),
        )
        locks = [
            (rec.until, scope, rec) for scope, rec in scopes if rec is not None and rec.locked(now)
        ]
        if locks:
            # The lock ending last decides when to come back; on a tie, the account's.
            until, scope, rec = max(locks, key=lambda lock: (lock[0], lock[1] == "account"))
            return LockoutStatus(
                locked=True,
                failures=len(rec.failures),
                retry_after=max(1, math.ceil(until - now)),
                attempts_left=0,
                scope=scope,
            )
        failures = len(account.failures) if account is not None else 0
        left = p.lockout_threshold - failures
        if address is not None:
            left = min(left, p.lockout_address_threshold - len(address.failures))
        return LockoutStatus(False, failures, 0, max(0, left), None)

    def _account(self, login: str) -> tuple[str, str]:
        """Return the counted name of *login* and its store key."""
        if not isinstance(login, str):
            raise TypeError(f"login must be a str, not {type(login).__name__}")
        name = self._normalise(login)
        if not isinstance(name, str):
            raise TypeError("the normalise function must return a str")
        # A hash keeps any login (long, odd characters) a short, safe key.
        digest = hashlib.sha256(_KEY_LABEL + name.encode("utf-8", "surrogatepass"))
        return _display(name), ACCOUNT_PREFIX + digest.hexdigest()[:32]

    def _bucket(self, address: str | None) -> str | None:
        """Return the address counter's name, or ``None`` if the address is not counted."""
        bucket = address_bucket(address, self.policy.rate_limit_ipv6_prefix)
        if bucket is None or not self._allow:
            return bucket
        parsed = parse_ip(address) if address is not None else None
        if parsed is not None and any(parsed in net for net in self._allow):
            return None  # trusted networks (the office, monitoring) are never locked out
        return bucket

    def _fingerprints(self, name: str, password: str) -> _Prints:
        """HMAC-SHA256 of the login and password under each ``system`` secret, truncated."""
        login = name.encode("utf-8", "surrogatepass")
        message = (
            _FP_LABEL
            + len(login).to_bytes(4, "big")  # length prefix: ("ab","c") differs from ("a","bc")
            + login
            + password.encode("utf-8", "surrogatepass")
        )
        prints = tuple(
            hmac.digest(secret, message, hashlib.sha256)[:_FP_BYTES].hex()
            for secret in self.keys.secrets("system")
        )
        return _Prints(prints[0], prints)

    def _locked_event(self, scope: Scope, rec: _Record, client: str | None) -> None:
        fields = {"login": rec.name} if scope == "account" else {"address": rec.name}
        events.emit(
            "lockout.locked",
            logging.WARNING,
            scope=scope,
            client=client,
            until=round(rec.until, 3),
            lock_level=rec.level,  # the escalation step (docs/events.md)
            duration=self._duration(rec.level),
            **fields,
        )

    def _malformed_event(self, key: str) -> None:
        events.emit(
            "lockout.malformed",
            logging.ERROR,
            key=key,
            reason=(
                f"unreadable lockout record replaced by a lock of "
                f"{self._duration(1)} s (fail closed)"
            ),
        )


_REASONS = {
    "repeat": REASON_REPEAT,
    "locked": REASON_ACCOUNT_LOCKED,
    "extended": REASON_ACCOUNT_LOCKED,
    REASON_ADDRESS_LOCKED: REASON_ADDRESS_LOCKED,
}


def _seen(stored: tuple[tuple[float, str], ...], candidates: tuple[str, ...]) -> bool:
    """Whether any candidate fingerprint is stored (constant time per comparison)."""
    found = False
    for _, fp in stored:
        for candidate in candidates:
            found |= hmac.compare_digest(fp, candidate)
    return found


def _display(name: str) -> str:
    """*name* safe to store as JSON and print: lone surrogates replaced, capped."""
    return name.encode("utf-8", "replace").decode("utf-8")[:NAME_MAX] if name else name


def _client(address: str | None) -> str | None:
    """Return the client address for events: normalised, or ``None`` if not one."""
    if not isinstance(address, str):
        return None
    parsed = parse_ip(address)
    return None if parsed is None else str(parsed)
