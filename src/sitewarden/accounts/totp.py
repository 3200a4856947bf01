"""TOTP two-factor sign-in (RFC 6238): secrets, QR codes, verification, recovery codes.

What collective.googleauthenticator got wrong, and the line here that stops it:

* The secret was kept in plain text in a member property. Here secrets are **sealed**
  (AES-256-GCM, key derived by HKDF-SHA256 from the ``totp`` keyring ring) and the sealed
  text is bound to the user id: a sealed secret copied to another account does not open.
* The QR code was drawn by Google's chart API, which received the secret. Here
  :meth:`TOTP.qr_svg` draws it locally with ``segno``; nothing leaves the process.
* A code could be used again within its 30 s (no replay protection). Here the last accepted
  time step of each user is kept in the shared store, and only a strictly later step is
  accepted — atomically, so two workers (or machines) racing with one code accept it once.
* Codes could be guessed without limit. Here at most ``totp_max_attempts`` wrong codes per
  ``totp_attempt_window`` are evaluated per user; after that even the right code is refused
  until the window ends. Each attempt reserves its slot before the code is checked, so
  parallel guesses cannot overshoot the limit.
* There were no backup codes. Here :meth:`TOTP.new_recovery_codes` issues one-time codes of
  80 bits each, stored only as hashes, each usable exactly once even under a race.

Store layout (keys are ``prefix + userid``):

====================  =======  ======================================================
``totp:last:``        value    ``b"<step> <nonce>"``: last accepted time step; expires
                               when no step it covers can be accepted any more
``totp:attempts:``    counter  codes tried in the current attempt window (expires)
``totp:recovery:``    value    JSON ``{"v": 1, "codes": [sha256 hex…], "change": nonce}``
``keyring:totp``      value    the sealing ring (:mod:`sitewarden.keyring`)
====================  =======  ======================================================

The sealed secret itself is *not* in the store: the application keeps it with the account
(a column, a member property), like a password hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sitewarden import events
from sitewarden.errors import ConfigError, TotpError, UnknownRingError
from sitewarden.keyring import KeyManager, Keyring, fingerprint
from sitewarden.policy import Policy
from sitewarden.store import Store

__all__ = [
    "RECOVERY_ALPHABET",
    "RECOVERY_CODE_LENGTH",
    "RING",
    "SEALED_PREFIX",
    "SECRET_BYTES",
    "TOTP",
]

#: The keyring ring whose secrets seal TOTP secrets (never rotated automatically).
RING = "totp"
#: Version tag of sealed secrets; a later format gets a new tag, old ones still open.
SEALED_PREFIX = "swtotp1:"
#: Bytes of a new TOTP secret: 160 bits, RFC 4226's recommended length (32 base32 chars).
SECRET_BYTES = 20
#: Shortest secret accepted from elsewhere (RFC 4226 R6: at least 128 bits).
MIN_SECRET_BYTES = 16
#: Crockford's base32 alphabet: no I, L, O or U, so nothing is misread when typed.
RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
#: Characters per recovery code: 16 * 5 bits = 80 bits, shown as four groups of four.
RECOVERY_CODE_LENGTH = 16
#: Most recovery codes one call may issue.
MAX_RECOVERY_CODES = 100

_KEY_LAST = "totp:last:"
_KEY_ATTEMPTS = "totp:attempts:"
_KEY_RECOVERY = "totp:recovery:"
_HKDF_INFO = b"sitewarden totp seal v1"
_AAD_LABEL = b"swtotp1\0"
_FP_BYTES = 6  # keyring.fingerprint() is 12 hex digits
_NONCE_BYTES = 12  # AES-GCM's standard nonce
_TAG_BYTES = 16
_RECOVERY_LABEL = b"sitewarden recovery v1\0"
_MAX_USERID = 512
_MAX_INPUT = 64  # longest code input looked at; anything longer is refused unread
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]+")
_BASE32 = re.compile(r"[A-Z2-7]+")
_SEALED_TAG = re.compile(r"swtotp\d+:")
_HASH = re.compile(r"[0-9a-f]{64}")
# Crockford's reading rules: the letters people type for the digits they look like.
_RECOVERY_READ = str.maketrans({"o": "0", "i": "1", "l": "1", "-": None, " ": None})
_RECOVERY_CHARS = frozenset(RECOVERY_ALPHABET)


def _check_userid(userid: object) -> str:
    if not isinstance(userid, str) or not userid or len(userid) > _MAX_USERID:
        raise TotpError(f"a TOTP user id must be a non-empty string of at most {_MAX_USERID}")
    if _CONTROL.search(userid):
        raise TotpError("a TOTP user id must not contain control characters")
    try:
        userid.encode("utf-8")  # bound into the cipher's associated data and the hashes
    except UnicodeEncodeError:
        raise TotpError("a TOTP user id must be valid Unicode (no lone surrogates)") from None
    return userid


def _normalise_secret(secret: object) -> str:
    """Return *secret* as canonical base32 (upper case, no spaces or padding), or raise."""
    if not isinstance(secret, str):
        raise TotpError("a TOTP secret must be a base32 string")
    text = secret.replace(" ", "").rstrip("=").upper()
    if not _BASE32.fullmatch(text) or len(text) % 8 in (1, 3, 6):
        # 1, 3 and 6 characters past a block are lengths no byte string encodes to.
        raise TotpError("a TOTP secret must be base32 (letters A-Z and digits 2-7)")
    if len(text) * 5 // 8 < MIN_SECRET_BYTES:
        raise TotpError(f"a TOTP secret must hold at least {MIN_SECRET_BYTES * 8} bits")
    return text


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TotpError("sealed TOTP secret is not valid base64url") from None


class TOTP:
    """TOTP two-factor sign-in for the accounts of one site.

    *policy* supplies the issuer, digits, period, window and attempt limits; *store* keeps
    replay marks, attempt counters and recovery-code hashes (shared by every worker);
    *keys* holds the ``totp`` ring that seals secrets. *clock* returns Unix seconds
    (injectable for tests).
    """

    def __init__(
        self,
        policy: Policy,
        store: Store,
        keys: KeyManager,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Build the TOTP service; refuse a key manager that would rotate the ``totp`` ring."""
        if keys.rotate_after.get(RING) is not None:
            # An automatic rotation would eventually push the sealing secret out of the ring
            # and make every enrolled user's secret unreadable.
            raise ConfigError(
                f"keyring rotate_after[{RING!r}]: must be None; rotate the totp ring only on "
                "purpose and reseal afterwards (docs/totp.md)"
            )
        self.policy = policy
        self.store = store
        self.keys = keys
        self.clock = clock
        self._aead: dict[str, AESGCM] = {}  # ring secret fingerprint -> derived cipher

    def __repr__(self) -> str:
        """Show the settings, never a secret."""
        p = self.policy
        return (
            f"<TOTP issuer={p.totp_issuer!r} digits={p.totp_digits} period={p.totp_period} "
            f"window={p.totp_window} store={self.store.url}>"
        )

    # -- secrets ---------------------------------------------------------------------

    def new_secret(self) -> str:
        """Return a fresh 160-bit secret as 32 base32 characters (from :mod:`secrets`)."""
        return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")

    def seal(self, secret: str, userid: str) -> str:
        """Encrypt *secret* for storage with *userid*'s account (``"swtotp1:" + base64url``).

        AES-256-GCM with a fresh 96-bit nonce, under a key derived (HKDF-SHA256) from the
        current secret of the ``totp`` ring; the user id is authenticated as associated
        data, so the result opens only for *userid*.
        """
        plain = _normalise_secret(secret).encode("ascii")
        return self._seal(plain, _check_userid(userid), self._ring().current)

    def unseal(self, sealed: str, userid: str) -> str:
        """Open a sealed secret of *userid*; raise :class:`TotpError` if it does not open.

        The ring secret that sealed it is found by its fingerprint (recorded in the sealed
        text); a wrong user, altered text or a secret rotated out of the ring is an error.
        """
        return self._unseal(sealed, _check_userid(userid))[0]

    def reseal(self, sealed: str, userid: str) -> str:
        """Return *sealed* moved to the newest ``totp`` ring secret (unchanged if it is).

        Run this over every enrolled user after a deliberate ``totp`` ring rotation, before
        the old secret leaves the ring (see docs/totp.md).
        """
        uid = _check_userid(userid)
        plain, fp = self._unseal(sealed, uid)
        # Read the ring straight from the store: after a rotation in another process the
        # cached copy may not know the newest secret yet.
        current = self.keys.stored_ring(RING).current
        if hmac.compare_digest(fp, bytes.fromhex(fingerprint(current))):
            return sealed
        return self._seal(plain.encode("ascii"), uid, current)

    # -- enrolment -------------------------------------------------------------------

    def provisioning_uri(self, secret: str, account: str) -> str:
        """Return the ``otpauth://totp/…`` URI an authenticator app enrols from.

        *secret* is the plain base32 secret; *account* is what the app shows under the
        issuer (``policy.totp_issuer``), usually the login name or e-mail address.
        """
        text = _normalise_secret(secret)
        if not isinstance(account, str) or not account or len(account) > _MAX_USERID:
            raise TotpError("a TOTP account name must be a non-empty string")
        if ":" in account or _CONTROL.search(account):
            # The label is "issuer:account"; a colon in the account would shift the split.
            raise TotpError("a TOTP account name must not contain ':' or control characters")
        issuer = quote(self.policy.totp_issuer, safe="")
        label = f"{issuer}:{quote(account, safe='@')}"
        return (
            f"otpauth://totp/{label}?secret={text}&issuer={issuer}"
            f"&digits={self.policy.totp_digits}&period={self.policy.totp_period}"
        )

    def qr_svg(self, secret: str, account: str, *, scale: int = 4) -> str:
        """Return the QR code of :meth:`provisioning_uri` as an inline ``<svg>`` string.

        Drawn locally (``segno``, error correction M or better): the secret is never sent
        to a chart service. Serve the page that shows it with ``Cache-Control: no-store``.
        """
        qr = segno.make(self.provisioning_uri(secret, account), error="m")
        return str(qr.svg_inline(scale=scale))

    # -- verification ----------------------------------------------------------------

    def verify(self, userid: str, secret: str, code: str) -> bool:
        """Return whether *code* is a valid, unused TOTP code of *userid* right now.

        *secret* is the sealed secret (or a plain base32 one). Codes of the current step
        and ``policy.totp_window`` steps either side are accepted, once each: a code whose
        step is not strictly later than the last accepted one is a replay. After
        ``policy.totp_max_attempts`` wrong codes in ``policy.totp_attempt_window`` seconds,
        every code is refused until the window ends. A damaged secret raises
        :class:`TotpError`; a malformed code is simply refused.
        """
        uid = _check_userid(userid)
        plain = self._plain_secret(secret, uid)
        digits = self.policy.totp_digits
        typed = code.replace(" ", "") if isinstance(code, str) and len(code) <= _MAX_INPUT else ""
        if len(typed) != digits or not _DIGITS.fullmatch(typed):
            events.emit("totp.failure", user=uid, reason="malformed code")
            return False

        # Reserve the attempt before checking the code: parallel guesses each take a slot,
        # so no burst of requests can evaluate more than the limit.
        attempts_key = _KEY_ATTEMPTS + uid
        window_s = self.policy.totp_attempt_window
        tries = self.store.incr(attempts_key, 1, ttl=window_s)
        if tries > self.policy.totp_max_attempts:
            events.emit("totp.throttled", user=uid, reason="too many wrong codes")
            return False

        step = self._matching_step(plain, typed)
        if step is None:
            events.emit("totp.failure", user=uid, reason="wrong code")
            return False
        if not self._mark_step(uid, step):
            # The slot stays taken: a replayed code counts as a wrong one.
            events.emit("totp.replay", user=uid, reason="code already used")
            return False
        self.store.incr(attempts_key, -1, ttl=window_s)  # a right code is not a failure
        return True

    def _matching_step(self, plain: str, typed: str) -> int | None:
        """Return the latest time step within the window whose code is *typed*."""
        period = self.policy.totp_period
        window = self.policy.totp_window
        otp = pyotp.TOTP(plain, digits=self.policy.totp_digits, interval=period)
        now_step = int(self.clock() // period)
        found: int | None = None
        for step in range(now_step - window, now_step + window + 1):
            if step < 0:
                continue
            # Every step is compared in constant time and none ends the loop early, so the
            # time taken says nothing about which step (if any) matched.
            if hmac.compare_digest(otp.generate_otp(step), typed):
                found = step
        return found

    def _mark_step(self, uid: str, step: int) -> bool:
        """Record *step* as *uid*'s last accepted step if it is strictly later; say if so."""
        mine = f"{step} {secrets.token_hex(8)}".encode("ascii")

        def later(current: bytes | None) -> bytes | None:
            if current is not None and _stored_step(current) >= step:
                return None  # replay: this step (or a later one) was accepted already
            return mine

        # The mark must outlive every moment at which a step it covers could still be
        # accepted: 2 * window + 1 steps, plus one for the partly elapsed step and one of
        # slack for clocks that differ between machines.
        ttl = (2 * self.policy.totp_window + 3) * self.policy.totp_period
        # update() may call `later` more than once; the random nonce tells whether the
        # value that was finally stored is ours.
        stored = self.store.update(_KEY_LAST + uid, later, ttl=ttl)
        return stored is not None and hmac.compare_digest(stored, mine)

    # -- recovery codes --------------------------------------------------------------

    def new_recovery_codes(self, userid: str, count: int = 10) -> list[str]:
        """Issue *count* one-time recovery codes for *userid*, replacing any earlier set.

        Each code is 80 random bits written as ``xxxx-xxxx-xxxx-xxxx`` in Crockford's base32
        (no i, l, o, u). Only their hashes are stored: show the codes once, now.
        """
        uid = _check_userid(userid)
        if not isinstance(count, int) or isinstance(count, bool):
            raise TotpError("the number of recovery codes must be a whole number")
        if not 1 <= count <= MAX_RECOVERY_CODES:
            raise TotpError(f"the number of recovery codes must be 1 to {MAX_RECOVERY_CODES}")
        codes = [
            "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
            for _ in range(count)
        ]
        record = _recovery_record([_recovery_hash(uid, c) for c in codes])
        self.store.set(_KEY_RECOVERY + uid, record)  # one write: the old set dies at once
        return ["-".join(c[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)) for c in codes]

    def use_recovery_code(self, userid: str, code: str) -> bool:
        """Spend one recovery code of *userid*; return whether it was valid and unused.

        Case, dashes and spaces do not matter, and ``o``/``i``/``l`` read as ``0``/``1``.
        Each code works once: of two workers presenting it at the same moment, exactly one
        succeeds.
        """
        uid = _check_userid(userid)
        typed = (
            code.strip().lower().translate(_RECOVERY_READ)
            if isinstance(code, str) and len(code) <= _MAX_INPUT
            else ""
        )
        if len(typed) != RECOVERY_CODE_LENGTH or not set(typed) <= _RECOVERY_CHARS:
            events.emit("totp.failure", user=uid, reason="malformed recovery code")
            return False
        wanted = _recovery_hash(uid, typed)
        key = _KEY_RECOVERY + uid
        mine = secrets.token_hex(8)

        def spend(current: bytes | None) -> bytes | None:
            if current is None:
                return None
            hashes_left = _read_recovery(current, key)
            # Compare with every stored hash in constant time, without stopping early.
            keep = [h for h in hashes_left if not hmac.compare_digest(h, wanted)]
            if len(keep) == len(hashes_left):
                return None  # not a code of this user (or already spent)
            return _recovery_record(keep, change=mine)

        # update() serialises the spenders: the first removes the hash, the others no
        # longer find it. The nonce says whether the stored change is ours.
        stored = self.store.update(key, spend)
        won = stored is not None and hmac.compare_digest(_recovery_change(stored, key), mine)
        if not won:
            events.emit("totp.failure", user=uid, reason="wrong recovery code")
            return False
        left = len(_read_recovery(stored, key)) if stored is not None else 0
        events.emit("totp.recovery_used", logging.WARNING, user=uid, left=left)
        return True

    def recovery_codes_left(self, userid: str) -> int:
        """Return how many unused recovery codes *userid* has (0 if none were issued)."""
        key = _KEY_RECOVERY + _check_userid(userid)
        raw = self.store.get(key)
        return 0 if raw is None else len(_read_recovery(raw, key))

    def disable(self, userid: str) -> None:
        """Forget *userid*'s replay mark, attempt count and recovery codes.

        The application deletes the sealed secret it keeps with the account.
        """
        uid = _check_userid(userid)
        for prefix in (_KEY_LAST, _KEY_ATTEMPTS, _KEY_RECOVERY):
            self.store.delete(prefix + uid)

    # -- sealing internals -----------------------------------------------------------

    def _ring(self) -> Keyring:
        try:
            return self.keys.ring(RING)
        except UnknownRingError:
            return self.keys.ensure(RING)  # first use: create and fill it

    def _cipher(self, secret: bytes) -> tuple[bytes, AESGCM]:
        fp_hex = fingerprint(secret)
        cipher = self._aead.get(fp_hex)
        if cipher is None:
            key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
                secret
            )
            cipher = AESGCM(key)
            if len(self._aead) >= 64:
                self._aead.clear()  # ring secrets are few; bound the cache after many resets
            self._aead[fp_hex] = cipher
        return bytes.fromhex(fp_hex), cipher

    def _seal(self, plain: bytes, uid: str, ring_secret: bytes) -> str:
        fp, cipher = self._cipher(ring_secret)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        body = cipher.encrypt(nonce, plain, _aad(fp, uid))
        text = base64.urlsafe_b64encode(fp + nonce + body).rstrip(b"=").decode("ascii")
        return SEALED_PREFIX + text

    def _unseal(self, sealed: object, uid: str) -> tuple[str, bytes]:
        """Return the plain secret and the fingerprint of the ring secret that sealed it."""
        if not isinstance(sealed, str) or not sealed.startswith(SEALED_PREFIX):
            if isinstance(sealed, str) and _SEALED_TAG.match(sealed):
                raise TotpError("sealed TOTP secret has an unknown format version")
            raise TotpError(f"not a sealed TOTP secret (expected {SEALED_PREFIX!r}…)")
        raw = _b64decode(sealed[len(SEALED_PREFIX) :])
        if len(raw) <= _FP_BYTES + _NONCE_BYTES + _TAG_BYTES:
            raise TotpError("sealed TOTP secret is truncated")
        fp, nonce, body = (
            raw[:_FP_BYTES],
            raw[_FP_BYTES : _FP_BYTES + _NONCE_BYTES],
            raw[_FP_BYTES + _NONCE_BYTES :],
        )
        ring_secret = self._ring_secret(fp)
        if ring_secret is None:
            raise TotpError(
                f"sealed TOTP secret was sealed with totp ring secret {fp.hex()}, which is no "
                "longer in the ring; restore the ring from a backup, or the user must enrol "
                "again"
            )
        try:
            plain = self._cipher(ring_secret)[1].decrypt(nonce, body, _aad(fp, uid))
        except InvalidTag:
            raise TotpError(
                "sealed TOTP secret does not open: it belongs to another user or was altered"
            ) from None
        try:
            return _normalise_secret(plain.decode("ascii")), fp
        except (UnicodeDecodeError, TotpError):
            raise TotpError("sealed TOTP secret opened but holds no valid secret") from None

    def _ring_secret(self, fp: bytes) -> bytes | None:
        """Return the ``totp`` ring secret whose fingerprint is *fp*, or ``None``."""
        wanted = fp.hex()
        ring = self._ring()
        for candidate in (ring, None):
            if candidate is None:
                # Not in the cached copy: another process may have rotated the ring since.
                # Sealed secrets come from the application's own records, not from requests,
                # so this store read cannot be driven by an attacker's flood.
                candidate = self.keys.stored_ring(RING)
            for secret in candidate.secrets:
                if hmac.compare_digest(fingerprint(secret), wanted):
                    return secret
        return None

    def _plain_secret(self, secret: object, uid: str) -> str:
        if isinstance(secret, str) and _SEALED_TAG.match(secret):
            return self._unseal(secret, uid)[0]
        return _normalise_secret(secret)


def _aad(fp: bytes, uid: str) -> bytes:
    # The fingerprint has a fixed length and the user id comes last, so no two
    # (fingerprint, user) pairs give the same associated data.
    return _AAD_LABEL + fp + uid.encode("utf-8")


def _stored_step(raw: bytes) -> int:
    try:
        return int(raw.split(b" ", 1)[0])
    except ValueError:
        # Fail closed: a mark we cannot read might stand for a later step.
        raise TotpError("a TOTP replay mark in the store is malformed; it was left as is") from None


def _recovery_hash(uid: str, code: str) -> str:
    # 80-bit random codes need no slow hash: 2^80 guesses are out of reach even offline.
    # The user id is hashed in, so one guess cannot be tried against every user's hashes
    # at once, and a hash copied to another account does not match there.
    data = _RECOVERY_LABEL + uid.encode("utf-8") + b"\0" + code.encode("ascii")
    return hashlib.sha256(data).hexdigest()


def _recovery_record(hashes_: list[str], change: str | None = None) -> bytes:
    doc = {"v": 1, "codes": hashes_, "change": change or secrets.token_hex(8)}
    return json.dumps(doc, separators=(",", ":")).encode("ascii")


def _parse_recovery(raw: bytes, key: str) -> dict[str, Any]:
    try:
        doc: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if (
        not isinstance(doc, dict)
        or doc.get("v") != 1
        or not isinstance(doc.get("codes"), list)
        or not all(isinstance(h, str) and _HASH.fullmatch(h) for h in doc["codes"])
        or not isinstance(doc.get("change"), str)
        or not doc["change"].isascii()
    ):
        raise TotpError(f"the recovery codes record {key!r} in the store is malformed")
    return doc


def _read_recovery(raw: bytes, key: str) -> list[str]:
    codes: list[str] = _parse_recovery(raw, key)["codes"]
    return codes


def _recovery_change(raw: bytes, key: str) -> str:
    change: str = _parse_recovery(raw, key)["change"]
    return change
