r"""Signed-in sessions: mod_auth_tkt tickets with idle, absolute and sliding lifetimes.

A session is a ticket (:mod:`sitewarden.tickets`, HMAC-SHA256) in one cookie; nothing is
written to the store per request. The ticket is::

    HMAC (32 bytes) + "%08x" % issued + quote(userid) + "!" + "%08x" % login_time

* ``issued`` — the ticket's own timestamp: when it was last (re)issued. It drives the
  **idle** timeout (``issued + session_idle_timeout > now``).
* ``user_data`` — the login time as eight lowercase hex digits (seconds since the epoch,
  like the timestamp). It drives the **absolute** timeout
  (``login_time + session_absolute_timeout > now``) and is carried unchanged through every
  re-issue.
* The user id is percent-encoded (``quote_userid=True``), so any non-empty user id without
  control characters works, ``!`` included.

A ticket older than :attr:`~sitewarden.policy.Policy.refresh_after` is flagged
(:attr:`SessionState.refresh`) and the engine re-issues it with :meth:`SessionManager.renew`:
an active user stays signed in until the absolute lifetime ends, an idle one is signed out
after the idle timeout. (plone.session's ``timeout`` counts from the last issue and is only
refreshed by a separate JavaScript ping, so active users were signed out.)

**Keys.** The signing key is ``sessions secret + user secret``: one of the ``sessions``
ring's secrets (ring of 5, rotated weekly) followed by the user's own one-secret ring
``user:<userid>``. Rotating ``sessions`` retires every session gradually (a ticket survives
four rotations, and an active user is moved to the newest secret at the next refresh);
rotating the user's ring (:meth:`SessionManager.logout_everywhere`) ends every session of
that user on every device at once.

**Cost per request.** The cookie's parsed form, each user's combined ring and the state of
a repeat cookie are cached, and the same combined :class:`~sitewarden.keyring.Keyring`
object is handed to :func:`~sitewarden.tickets.validate_ticket` on every request, so its
verified-ticket cache answers a repeat cookie without an HMAC: a few dictionary lookups.

**Revocation across processes.** Each process re-reads a user's ring straight from the
store at most every ``revocation_ttl`` seconds (default 1 s) while that user is active, so a
:meth:`~SessionManager.logout_everywhere` done in another process is honoured here within
``revocation_ttl``. In the process that did it, it is honoured at once.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from sitewarden.errors import KeyringError
from sitewarden.keyring import KeyManager, Keyring
from sitewarden.policy import Policy
from sitewarden.tickets import (
    TicketError,
    create_ticket,
    decode_cookie,
    encode_cookie,
    validate_ticket,
)

__all__ = ["SessionManager", "SessionState"]

#: Longest cookie value looked at (characters). Real values are about 60 + the user id;
#: browsers cap a cookie at 4096 bytes. Anything longer is refused before decoding.
MAX_COOKIE_VALUE = 4096

#: Users whose combined ring is kept (oldest refreshed evicted first).
_USERS_LIMIT = 10_000
#: Cookie values whose parsed form (and last state) is kept; cleared when full.
_SEEN_LIMIT = 4096
#: The HMAC-SHA256 digest and the eight hex digits of the timestamp.
_HEADER = 32 + 8
_LOGIN_FIELD = re.compile(rb"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class SessionState:
    """A valid session, as read from its cookie by :meth:`SessionManager.check`.

    ``issued`` and ``login_time`` are Unix times in whole seconds: the ticket's last
    (re)issue and the login. ``refresh`` asks the engine to re-issue the cookie with
    :meth:`SessionManager.renew` on this response (the ticket is older than the policy's
    ``refresh_after``, or was signed with an older ``sessions`` secret).
    """

    userid: str
    issued: int
    login_time: int
    refresh: bool
    #: The combined ring that verified the ticket; :meth:`SessionManager.renew` signs with
    #: it, so a renewal can never outlive a revocation the verification had not yet seen.
    _keyring: Keyring | None = field(default=None, repr=False, compare=False)


class _UserKeys:
    """One user's signing state: the rings it was built from and their combination."""

    __slots__ = ("combined", "raw", "read_at", "sessions", "user")

    def __init__(
        self, sessions: Keyring, user: Keyring, combined: Keyring, read_at: float, raw: bytes
    ) -> None:
        self.sessions = sessions
        self.user = user
        self.combined = combined
        #: ``time.monotonic()`` of the last read of the user's ring from the store.
        self.read_at = read_at
        #: The user's ring as stored: an unchanged re-read is recognised without parsing.
        self.raw = raw


#: "Not given" for :meth:`SessionManager.check`'s prefetched ring (``None`` means absent).
_NOT_GIVEN: Any = object()


def _combine(sessions: Keyring, user: Keyring) -> Keyring:
    """Return the ring of signing keys ``sessions secret + user secret``, newest first."""
    combined: list[bytes | None] = [s + u for s in sessions.secrets for u in user.secrets]
    return Keyring(secrets=combined or [None])  # an empty ring signs nothing, verifies nothing


def _parse(value: str) -> tuple[bytes, str, int] | None:
    """Return ``(ticket, userid, login_time)`` read from a cookie value, unverified."""
    try:
        ticket = decode_cookie(value)
    except TicketError:
        return None
    parts = ticket[_HEADER:].split(b"!")
    if len(parts) != 2:  # sessions never carry tokens
        return None
    uid, data = parts
    if not _LOGIN_FIELD.fullmatch(data):
        return None
    try:
        userid = unquote_to_bytes(uid).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not userid or _CONTROL.search(userid):
        return None  # never a ring name: refused before any store read
    return ticket, userid, int(data, 16)


def _check_userid(userid: object) -> str:
    if not isinstance(userid, str) or not userid or _CONTROL.search(userid):
        raise ValueError(
            f"a session needs a non-empty user id without control characters, not {userid!r}"
        )
    return userid


class SessionManager:
    """Issue, check, renew and revoke session cookies under one :class:`Policy`.

    *keys* provides the ``sessions`` ring (created if missing) and the per-user rings.
    *revocation_ttl* (seconds, default 1) bounds how long a user's ring is trusted before it
    is read again from the store: a "log out everywhere" done by another process is
    honoured within that time. ``0`` reads the store on every request.

    :meth:`check` and :meth:`verify` never raise for any cookie value; a store that cannot
    be read raises :class:`~sitewarden.errors.StoreError` (the engine applies
    ``on_store_failure``).
    """

    def __init__(self, policy: Policy, keys: KeyManager, *, revocation_ttl: float = 1.0) -> None:
        """Use *policy*'s session settings and the rings of *keys*."""
        if (
            isinstance(revocation_ttl, bool)
            or not isinstance(revocation_ttl, int | float)
            or not 0 <= revocation_ttl < float("inf")
        ):
            raise ValueError(f"revocation_ttl: expected seconds ≥ 0, got {revocation_ttl!r}")
        self.policy = policy
        self.keys = keys
        self.revocation_ttl = float(revocation_ttl)
        #: The session cookie's name (``__Host-`` prefixed when Secure).
        self.cookie_name: str = policy.session_cookie_name
        self._idle = policy.session_idle_timeout
        self._absolute = policy.session_absolute_timeout
        self._refresh_after = policy.refresh_after
        flags = "; Path=/" + ("; Secure" if policy.session_cookie_secure else "")
        self._flags = f"{flags}; HttpOnly; SameSite={policy.session_samesite}"
        self._users: dict[str, _UserKeys] = {}
        # cookie value -> (ticket, userid, login_time, state whose refresh is False, or None)
        self._seen: dict[str, tuple[bytes, str, int, SessionState | None]] = {}
        self._lock = threading.Lock()
        keys.ensure("sessions")

    # -- issuing -------------------------------------------------------------------

    def issue(self, userid: str, *, now: float | None = None) -> str:
        """Return a new cookie value for *userid*, signed in now (login time = *now*).

        Creates the user's ring on first login. Call it at every login and privilege
        change: the new ticket replaces whatever cookie the browser had.
        """
        _check_userid(userid)
        stamp = int(time.time() if now is None else now)
        # Always read the user's ring from the store: a login must not be signed with a
        # secret another process has just revoked.
        keys = self._rebuild(userid, self._users.get(userid), time.monotonic(), create=True)
        assert keys is not None  # created if missing
        return self._sign(keys.combined, userid, stamp, stamp)

    def renew(self, state: SessionState, *, now: float | None = None) -> str:
        """Return a new cookie value for *state*: a new timestamp, the same login time.

        Signed with the ring that verified *state* (for a state from :meth:`check`), so
        renewing a session another process revoked in the meantime yields a dead cookie.
        """
        stamp = int(time.time() if now is None else now)
        combined = state._keyring
        if combined is None:
            userid = _check_userid(state.userid)
            keys = self._rebuild(userid, self._users.get(userid), time.monotonic(), create=True)
            assert keys is not None
            combined = keys.combined
        return self._sign(combined, state.userid, stamp, state.login_time)

    def _sign(self, combined: Keyring, userid: str, issued: int, login_time: int) -> str:
        ticket = create_ticket(
            combined, userid, user_data=f"{login_time:08x}", timestamp=issued, quote_userid=True
        )
        return encode_cookie(ticket)

    # -- checking ------------------------------------------------------------------

    def verify(self, value: str, *, now: float | None = None) -> str | None:
        """Return the user id if cookie *value* is a valid session, else ``None``."""
        state = self.check(value, now=now)
        return None if state is None else state.userid

    def ring_key(self, value: str) -> str | None:
        """Return the store key :meth:`check` would read for cookie *value* now, if any.

        The engine fetches it in the same round trip as its other reads (bans, rate limits)
        and hands the bytes to :meth:`check` as *ring*, so with ``revocation_ttl = 0`` a
        signed-in request still costs one store round trip in all.
        """
        if type(value) is not str or len(value) > MAX_COOKIE_VALUE:
            return None
        seen = self._seen.get(value)
        if seen is None:
            parsed = _parse(value)
            if parsed is None:
                return None
            userid = parsed[1]
        else:
            userid = seen[1]
        keys = self._users.get(userid)
        try:
            sessions = self.keys.ring("sessions")
        except KeyringError:
            return None  # check() meets the damaged ring again, and the engine handles it
        if (
            keys is not None
            and keys.sessions is sessions
            and time.monotonic() - keys.read_at < self.revocation_ttl
        ):
            return None  # the cached ring is fresh enough: no read needed
        return KeyManager.store_key(KeyManager.user_ring_name(userid))

    def check(
        self, value: str, *, now: float | None = None, ring: bytes | None = _NOT_GIVEN
    ) -> SessionState | None:
        """Return the session in cookie *value*, or ``None`` if it is not a valid one.

        Valid means: genuine (signed with a current key of the ``sessions`` ring and the
        user's ring), not idle for ``session_idle_timeout`` and signed in less than
        ``session_absolute_timeout`` ago. Never raises for any *value*. *ring* is the
        user's stored ring as read under :meth:`ring_key` by the caller (``None``: absent).
        """
        if type(value) is not str or len(value) > MAX_COOKIE_VALUE:
            return None
        seen = self._seen.get(value)
        if seen is None:
            parsed = _parse(value)
            if parsed is None:
                return None
            ticket, userid, login = parsed
            cached = None
        else:
            ticket, userid, login, cached = seen
        t = time.time() if now is None else now
        mono = time.monotonic()
        keys = self._users.get(userid)
        manager = self.keys
        # keys.ring("sessions") without a call: its cache entry, while it is fresh.
        entry = manager.cached_ring("sessions")
        if entry is not None and mono - entry[0] < manager.cache_ttl:
            sessions = entry[1]
        else:
            sessions = manager.ring("sessions")
        if (
            keys is None
            or keys.sessions is not sessions
            or mono - keys.read_at >= self.revocation_ttl
        ):
            keys = self._rebuild(userid, keys, mono, create=False, raw=ring)
            if keys is None:
                return None  # no ring: never signed in here (or an attacker-chosen id)
        if cached is not None and cached._keyring is keys.combined:
            # A repeat cookie under the very ring object that verified it: the signature
            # check would give the same answer, so only the clocks are checked again.
            issued = cached.issued
            if (
                issued + self._idle > t
                and login + self._absolute > t
                and (t - issued < self._refresh_after)
            ):
                return cached
        found = validate_ticket(keys.combined, ticket, quote_userid=True)
        if found is None:
            keys = self._reload_after_miss(userid, keys, mono)
            if keys is None:
                return None
            found = validate_ticket(keys.combined, ticket, quote_userid=True)
            if found is None:
                return None
        issued = found.timestamp
        if (
            issued + self._idle <= t
            or login + self._absolute <= t
            or login > issued
            or found.userid != userid
        ):
            return None
        refresh = t - issued >= self._refresh_after or found.key_index > 0
        state = SessionState(userid, issued, login, refresh, keys.combined)
        if len(self._seen) >= _SEEN_LIMIT:
            self._seen.clear()
        self._seen[value] = (ticket, userid, login, None if refresh else state)
        return state

    # -- revoking ------------------------------------------------------------------

    def logout_everywhere(self, userid: str) -> None:
        """End every session of *userid* on every device (rotates the user's ring).

        Honoured at once in this process and within ``revocation_ttl`` in the others.
        """
        self.keys.rotate_user(_check_userid(userid))
        with self._lock:
            self._users.pop(userid, None)

    # -- cookies -------------------------------------------------------------------

    def set_cookie(self, value: str) -> str:
        """Return the ``Set-Cookie`` header value that stores session cookie *value*.

        ``Path=/``, ``Secure`` (unless the policy turns it off), ``HttpOnly``, the policy's
        ``SameSite``, and no ``Domain`` (the ``__Host-`` prefix requires that). No
        ``Max-Age``: a browser-session cookie, gone when the browser forgets its session;
        the lifetimes are enforced by the server from the signed ticket, never by the
        cookie's expiry.
        """
        return f"{self.cookie_name}={value}{self._flags}"

    def clear_cookie(self) -> str:
        """Return the ``Set-Cookie`` header value that deletes the session cookie."""
        return f"{self.cookie_name}={self._flags}; Max-Age=0"

    # -- internals -----------------------------------------------------------------

    def _rebuild(
        self,
        userid: str,
        old: _UserKeys | None,
        mono: float,
        *,
        create: bool,
        raw: bytes | None = _NOT_GIVEN,
    ) -> _UserKeys | None:
        """Read *userid*'s ring (or take *raw*, read by the caller); rebuild its combination.

        An unchanged ring (the same stored bytes) keeps the cached objects without parsing,
        so re-reading on every request costs one store read and a comparison. Without
        *create*, a missing ring gives ``None`` and nothing is written.
        """
        sessions = self.keys.ring("sessions")
        name = KeyManager.user_ring_name(userid)
        if raw is _NOT_GIVEN:
            raw = self.keys.store.get(KeyManager.store_key(name))
        if raw is None:
            if not create:
                with self._lock:
                    self._users.pop(userid, None)
                return None
            self.keys.user_ring(userid)
            raw = self.keys.store.get(KeyManager.store_key(name))
            if raw is None:  # pragma: no cover - deleted between two statements
                return None
        if old is not None and hmac.compare_digest(old.raw, raw):
            user = old.user  # unchanged: keep the object, and with it the combined ring
            if old.sessions is sessions:
                old.read_at = mono
                return old
        else:
            user = Keyring.from_json(raw, name)
        keys = _UserKeys(sessions, user, _combine(sessions, user), mono, raw)
        with self._lock:
            self._users.pop(userid, None)  # re-inserted last: eviction is oldest-read first
            while len(self._users) >= _USERS_LIMIT:
                del self._users[next(iter(self._users))]
            self._users[userid] = keys
        return keys

    def _reload_after_miss(self, userid: str, keys: _UserKeys, mono: float) -> _UserKeys | None:
        """After a failed verification, pick up rings another process may have changed.

        The user's ring is re-read at most once per ``miss_reload_interval`` per user, the
        ``sessions`` ring at most once per that interval in all (the key manager's own
        throttle), so forged cookies cannot become a flood of store reads. Returns the new
        state if anything changed, else ``None``.
        """
        sessions_changed = self.keys.reload_after_miss("sessions") is not None
        if not sessions_changed and mono - keys.read_at < self.keys.miss_reload_interval:
            return None
        fresh = self._rebuild(userid, keys, mono, create=False)
        if fresh is None or fresh.combined is keys.combined:
            return None
        return fresh
