"""Named rings of rotating secrets (the plone.keyring idea), kept durably in a store.

A :class:`Keyring` is a fixed-size list of secrets, newest first. New values are signed
with :attr:`Keyring.current`; values are verified against every secret in the ring, so a
signature stays valid until its secret has been rotated out. Rotation therefore retires
secrets gradually instead of signing everyone out at once.

A :class:`KeyManager` holds the named rings of a site in a
:class:`~sitewarden.store.base.Store`:

``system``   general-purpose signing;
``forms``    CSRF authenticators of signed-in users;
``anon``     CSRF authenticators of anonymous visitors;
``sessions`` session tickets;
``totp``     sealing of TOTP secrets at rest (:mod:`sitewarden.accounts.totp`); created on
             first use and never rotated automatically (a rotation that pushed the sealing
             secret out of the ring would make every enrolled user's secret unreadable);
``user:<id>`` one ring per user, created on demand, rotated to end all of that user's
             sessions at once ("log out everywhere").

Threats and the lines that stop them:

* Guessable secrets: every secret is 32 bytes (256 bits) from :mod:`secrets`.
* Lost secrets: every change is one atomic store transaction; two processes rotating the
  same ring at the same moment apply both rotations, one after the other.
* Silent reset: a ring that cannot be read is an error (:class:`KeyringError` or
  :class:`~sitewarden.errors.StoreError`), never replaced by fresh secrets — that would
  sign every user out and void every form in flight.
* Secret leaks: secrets never appear in a ``repr``, a log line or CLI output; only
  :func:`fingerprint` (a short one-way hash) is shown.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from sitewarden.errors import ConfigError, KeyringError, UnknownRingError
from sitewarden.hmackey import PrekeyedHMAC
from sitewarden.store import Store, open_store

__all__ = [
    "DEFAULT_RINGS",
    "DEFAULT_ROTATE_AFTER",
    "DEFAULT_SIZE",
    "SECRET_BYTES",
    "KeyManager",
    "Keyring",
    "fingerprint",
    "new_secret",
]

#: Bytes per secret: 256 bits.
SECRET_BYTES = 32
#: Secrets per ring unless told otherwise (plone.keyring's default).
DEFAULT_SIZE = 5
#: The rings every :class:`KeyManager` creates and fills on first use.
DEFAULT_RINGS = ("system", "forms", "anon", "sessions")
#: Automatic rotation intervals in seconds (plone.protect's schedule, plus sessions).
#: A token signed with the current secret survives ``size - 1`` further rotations.
DEFAULT_ROTATE_AFTER: Mapping[str, float | None] = {
    "system": 7 * 86400.0,
    "forms": 86400.0,
    "anon": 86400.0,
    "sessions": 7 * 86400.0,
    # Never automatic: TOTP secrets sealed with a secret that has left the ring are lost.
    # Rotate on purpose, then reseal (see docs/totp.md).
    "totp": None,
}
#: Prefix of per-user ring names.
USER_RING_PREFIX = "user:"
_STORE_PREFIX = "keyring:"
_FORMAT_VERSION = 1


def new_secret() -> bytes:
    """Return a fresh 256-bit secret from the operating system's CSPRNG."""
    return secrets.token_bytes(SECRET_BYTES)


def fingerprint(secret: bytes) -> str:
    """Return a short, one-way identifier of *secret* (12 hex digits), safe to display."""
    return hashlib.sha256(b"sitewarden fingerprint\0" + secret).hexdigest()[:12]


class Keyring:
    """A fixed-size list of secrets, newest first; empty slots are ``None``.

    Keyrings are plain values: a :class:`KeyManager` hands out a snapshot and persists
    changes through its store. Mutating a snapshot changes nothing in the store.
    """

    __slots__ = ("_macs", "_secrets", "last_rotation")

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        secrets: list[bytes | None] | None = None,
        last_rotation: float = 0.0,
    ) -> None:
        """Create a ring of *size* empty slots, or from existing *secrets* (newest first)."""
        if secrets is None:
            if not isinstance(size, int) or size < 1:
                raise KeyringError(f"keyring size must be a whole number ≥ 1, not {size!r}")
            secrets = [None] * size
        self._secrets: list[bytes | None] = list(secrets)
        #: Unix time of the last :meth:`rotate` (0.0 if never rotated).
        self.last_rotation = float(last_rotation)
        self._macs: dict[str, tuple[PrekeyedHMAC, ...]] = {}

    # -- reading ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of slots."""
        return len(self._secrets)

    @property
    def current(self) -> bytes:
        """The newest secret: the one new signatures use."""
        secret = self._secrets[0]
        if secret is None:
            raise KeyringError("keyring is empty: fill() or rotate() it before signing")
        return secret

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Every secret present, newest first: the ones a signature is checked against."""
        return tuple(s for s in self._secrets if s is not None)

    def macs(self, algorithm: str = "sha256") -> tuple[PrekeyedHMAC, ...]:
        """Pre-keyed HMACs of :attr:`secrets`, newest first, computed once per ring state."""
        macs = self._macs.get(algorithm)
        if macs is None:
            macs = tuple(PrekeyedHMAC(s, algorithm) for s in self.secrets)
            self._macs[algorithm] = macs
        return macs

    def fingerprints(self) -> list[str | None]:
        """Return the :func:`fingerprint` of every slot (``None`` if empty), newest first."""
        return [None if s is None else fingerprint(s) for s in self._secrets]

    def __iter__(self) -> Iterator[bytes | None]:
        """Iterate over the slots, newest first."""
        return iter(self._secrets)

    def __len__(self) -> int:
        """Return the number of slots."""
        return len(self._secrets)

    def __eq__(self, other: object) -> bool:
        """Rings are equal when they hold the same secrets and rotation time."""
        if not isinstance(other, Keyring):
            return NotImplemented
        return self._secrets == other._secrets and self.last_rotation == other.last_rotation

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Show size and fingerprints, never the secrets."""
        return f"<Keyring size={self.size} fingerprints={self.fingerprints()}>"

    # -- changing --------------------------------------------------------------------

    def rotate(self, now: float | None = None, size: int | None = None) -> None:
        """Add a new secret at the front and drop the oldest.

        With *size*, the ring is resized at the same time (growing adds empty slots at
        the end, shrinking drops the oldest secrets).
        """
        size = self.size if size is None else size
        if size < 1:
            raise KeyringError(f"keyring size must be ≥ 1, not {size}")
        kept = self._secrets[: size - 1]
        self._secrets = [new_secret(), *kept] + [None] * (size - 1 - len(kept))
        self.last_rotation = time.time() if now is None else now
        self._macs = {}

    def fill(self) -> None:
        """Put a fresh secret in every empty slot; secrets already present are kept."""
        self._secrets = [new_secret() if s is None else s for s in self._secrets]
        self._macs = {}

    def clear(self) -> None:
        """Empty every slot (the size is kept). A cleared ring cannot sign until filled."""
        self._secrets = [None] * self.size
        self._macs = {}

    # -- serialisation ---------------------------------------------------------------

    def to_json(self) -> bytes:
        """Serialise for the store (secrets as hex)."""
        doc = {
            "version": _FORMAT_VERSION,
            "secrets": [None if s is None else s.hex() for s in self._secrets],
            "last_rotation": self.last_rotation,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, name: str = "?") -> Keyring:
        """Parse a stored ring; raise :class:`KeyringError` naming the ring if malformed."""
        try:
            doc: Any = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _malformed(name, "not JSON") from exc
        if not isinstance(doc, dict) or doc.get("version") != _FORMAT_VERSION:
            raise _malformed(name, f"unknown format (expected version {_FORMAT_VERSION})")
        slots = doc.get("secrets")
        last = doc.get("last_rotation")
        if not isinstance(slots, list) or not slots:
            raise _malformed(name, "no secret slots")
        if not isinstance(last, int | float) or isinstance(last, bool) or not math.isfinite(last):
            raise _malformed(name, "bad last_rotation")
        parsed: list[bytes | None] = []
        for slot in slots:
            if slot is None:
                parsed.append(None)
                continue
            try:
                secret = bytes.fromhex(slot) if isinstance(slot, str) else None
            except ValueError:
                secret = None
            if secret is None or len(secret) < SECRET_BYTES:
                raise _malformed(name, "a secret is not 256-bit hex")
            parsed.append(secret)
        return cls(secrets=parsed, last_rotation=float(last))


def _malformed(name: str, why: str) -> KeyringError:
    return KeyringError(
        f"keyring {name!r} in the store is malformed ({why}); it was left untouched — "
        "restore the store from a backup, or reset the ring on purpose with "
        f"'sitewarden keyring rotate --ring {name} --reset' (signs out its users)"
    )


def _check_ring_name(name: object) -> str:
    if not isinstance(name, str) or not name or any(ord(c) < 32 for c in name):
        raise KeyringError(f"invalid keyring name {name!r}")
    return name


class KeyManager:
    """The named rings of one site, persisted in a :class:`~sitewarden.store.base.Store`.

    Rings are cached in the process for *cache_ttl* seconds, so reading a secret on the
    per-request path costs a dictionary lookup. A ring changed by another process is seen
    at the latest after *cache_ttl*, or at once when a caller asks for a reload after a
    failed verification (see :meth:`reload_after_miss`).
    """

    def __init__(
        self,
        store: Store,
        *,
        size: int = DEFAULT_SIZE,
        rotate_after: Mapping[str, float | None] | None = None,
        cache_ttl: float = 5.0,
        miss_reload_interval: float = 0.5,
    ) -> None:
        """Use the rings in *store*; see :meth:`open` for the usual entry point.

        *rotate_after* maps ring names to an automatic rotation interval in seconds
        (``None`` turns it off for that ring); it is merged over
        :data:`DEFAULT_ROTATE_AFTER`.
        """
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ConfigError(f"keyring size: expected a whole number ≥ 1, got {size!r}")
        intervals = dict(DEFAULT_ROTATE_AFTER)
        for ring, seconds in (rotate_after or {}).items():
            if seconds is not None and (
                not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0
            ):
                raise ConfigError(
                    f"keyring rotate_after[{ring!r}]: expected seconds > 0 or None, got {seconds!r}"
                )
            intervals[_check_ring_name(ring)] = seconds
        self.store = store
        self.size = size
        self.rotate_after: dict[str, float | None] = intervals
        self.cache_ttl = cache_ttl
        self.miss_reload_interval = miss_reload_interval
        self._lock = threading.Lock()
        # name -> (monotonic time loaded, ring)
        self._cache: dict[str, tuple[float, Keyring]] = {}
        #: ``cached_ring(name)``: the cache entry ``(monotonic time loaded, ring)`` of ring
        #: *name*, or ``None``. A hot path may use the ring while ``time.monotonic()`` is
        #: within :attr:`cache_ttl` of that time, as :meth:`ring` does, and must call
        #: :meth:`ring` otherwise.
        self.cached_ring = self._cache.get

    @classmethod
    def open(
        cls,
        store_url: str | Store | None = None,
        *,
        size: int = DEFAULT_SIZE,
        rotate_after: Mapping[str, float | None] | None = None,
        cache_ttl: float = 5.0,
    ) -> KeyManager:
        """Open the rings in the store at *store_url*, creating and filling missing ones.

        *store_url* defaults to ``$SITEWARDEN_STORE`` or
        ``sqlite:///.sitewarden/state.db``; an open :class:`Store` is used as it is.
        Existing rings are read and checked: a malformed one raises
        :class:`KeyringError` and is left untouched.
        """
        store = store_url if isinstance(store_url, Store) else open_store(store_url)
        manager = cls(store, size=size, rotate_after=rotate_after, cache_ttl=cache_ttl)
        for name in DEFAULT_RINGS:
            manager._ensure(name, size)
        return manager

    # -- reading ---------------------------------------------------------------------

    def ring(self, name: str = "system") -> Keyring:
        """Return the ring *name* (cached; rotated first if its interval has passed).

        Raises :class:`~sitewarden.errors.UnknownRingError` if there is no such ring, and
        :class:`KeyringError` if the stored ring is malformed.
        """
        entry = self._cache.get(name)
        if entry is not None and time.monotonic() - entry[0] < self.cache_ttl:
            return entry[1]
        return self._load(name)

    def secret(self, name: str = "system") -> bytes:
        """Return the current secret of ring *name*."""
        return self.ring(name).current

    def secrets(self, name: str = "system") -> tuple[bytes, ...]:
        """Return every secret of ring *name*, newest first, for verification."""
        return self.ring(name).secrets

    def stored_ring(self, name: str) -> Keyring:
        """Read ring *name* straight from the store: no cache, no automatic rotation.

        For inspection (``sitewarden keyring show``), which must never change state.
        """
        raw = self.store.get(_STORE_PREFIX + _check_ring_name(name))
        if raw is None:
            raise UnknownRingError(f"no keyring named {name!r} in {self.store.url}")
        return Keyring.from_json(raw, name)

    def names(self) -> list[str]:
        """Return the names of every ring in the store, per-user rings included."""
        return [k[len(_STORE_PREFIX) :] for k in self.store.keys(_STORE_PREFIX)]

    def reload_after_miss(self, name: str) -> Keyring | None:
        """Reload ring *name* after a verification failed against the cached copy.

        Another process may have rotated the ring since it was cached. Returns the
        reloaded ring if it differs from the cached one, else ``None``. Reloads are
        throttled to one per *miss_reload_interval* per ring, so a flood of forged values
        cannot turn into a flood of store reads.
        """
        entry = self._cache.get(name)
        if entry is None:
            return None
        if time.monotonic() - entry[0] < self.miss_reload_interval:
            return None
        fresh = self._load(name)
        return None if fresh == entry[1] else fresh

    # -- changing --------------------------------------------------------------------

    def rotate(self, name: str = "system") -> Keyring:
        """Rotate ring *name* now (a new current secret; the oldest is dropped)."""

        def change(ring: Keyring) -> bool:
            ring.rotate(size=self._size_for(name, ring))
            return True

        return self._change(name, change)

    def reset(self, name: str) -> Keyring:
        """Replace every secret of ring *name*: everything it signed stops validating."""

        def change(ring: Keyring) -> bool:
            ring.clear()
            ring.rotate(size=self._size_for(name, ring))
            ring.fill()
            return True

        return self._change(name, change)

    def ensure(self, name: str, size: int | None = None) -> Keyring:
        """Return ring *name*, creating and filling it first if it does not exist."""
        return self._ensure(_check_ring_name(name), size or self.size)

    def user_ring(self, userid: str) -> Keyring:
        """Return the per-user ring of *userid* (one secret), creating it on first use.

        Reads come from the cache like any ring; the store is written only when the ring
        does not exist yet.
        """
        name = self.user_ring_name(userid)
        try:
            return self.ring(name)
        except UnknownRingError:
            return self._ensure(name, 1)

    def find_user_ring(self, userid: str) -> Keyring | None:
        """Return the per-user ring of *userid* if it exists, without creating it."""
        try:
            return self.ring(self.user_ring_name(userid))
        except UnknownRingError:
            return None

    def rotate_user(self, userid: str) -> Keyring:
        """Give *userid* a new per-user secret: everything signed with the old one dies."""
        name = self.user_ring_name(userid)
        self._ensure(name, 1)
        return self.rotate(name)

    @staticmethod
    def user_ring_name(userid: str) -> str:
        """Return the ring name used for *userid*'s per-user secret."""
        if not isinstance(userid, str) or not userid:
            raise KeyringError("a per-user ring needs a non-empty user id")
        return USER_RING_PREFIX + userid

    @staticmethod
    def store_key(name: str) -> str:
        """Return the store key under which ring *name* is kept (for batched reads)."""
        return _STORE_PREFIX + _check_ring_name(name)

    def refresh(self) -> None:
        """Forget every cached ring, so the next read comes from the store."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def __repr__(self) -> str:
        """Show the store, never a secret."""
        return f"<KeyManager store={self.store.url}>"

    # -- internals -------------------------------------------------------------------

    def _size_for(self, name: str, ring: Keyring) -> int:
        return ring.size if name.startswith(USER_RING_PREFIX) else self.size

    def _remember(self, name: str, ring: Keyring) -> Keyring:
        with self._lock:
            entry = self._cache.get(name)
            if entry is not None and entry[1] == ring:
                ring = entry[1]  # unchanged: keep the object and its pre-keyed MACs
            self._cache[name] = (time.monotonic(), ring)
        return ring

    def _load(self, name: str) -> Keyring:
        raw = self.store.get(_STORE_PREFIX + name)
        if raw is None:
            raise UnknownRingError(f"no keyring named {name!r} in {self.store.url}")
        ring = Keyring.from_json(raw, name)
        interval = self.rotate_after.get(name)
        if interval is not None and time.time() - ring.last_rotation >= interval:
            return self._rotate_if_due(name, interval)
        return self._remember(name, ring)

    def _rotate_if_due(self, name: str, interval: float) -> Keyring:
        # The age is checked again inside the transaction: when several processes notice
        # a stale ring at once, exactly one rotates it and the others see its result.
        def change(ring: Keyring) -> bool:
            if time.time() - ring.last_rotation < interval:
                return False
            ring.rotate(size=self._size_for(name, ring))
            return True

        return self._change(name, change)

    def _change(self, name: str, change: Any) -> Keyring:
        _check_ring_name(name)

        def update(raw: bytes | None) -> bytes | None:
            if raw is None:
                raise UnknownRingError(f"no keyring named {name!r} in {self.store.url}")
            ring = Keyring.from_json(raw, name)
            return ring.to_json() if change(ring) else None

        stored = self.store.update(_STORE_PREFIX + name, update)
        assert stored is not None  # update() raised if the ring was missing
        return self._remember(name, Keyring.from_json(stored, name))

    def _ensure(self, name: str, size: int) -> Keyring:
        def create(raw: bytes | None) -> bytes | None:
            if raw is not None:
                Keyring.from_json(raw, name)  # validate: never overwrite a bad ring
                return None
            ring = Keyring(size)
            ring.fill()
            ring.last_rotation = time.time()
            return ring.to_json()

        stored = self.store.update(_STORE_PREFIX + name, create)
        assert stored is not None
        ring = Keyring.from_json(stored, name)
        interval = self.rotate_after.get(name)
        if interval is not None and time.time() - ring.last_rotation >= interval:
            return self._rotate_if_due(name, interval)
        return self._remember(name, ring)
