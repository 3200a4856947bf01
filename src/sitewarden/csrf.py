"""CSRF authenticators: plone.protect's user-bound HMAC tokens, hardened.

A token proves that a form was rendered by this site for this user. It is::

    base64url( salt ‖ HMAC-SHA256(ring secret, context ‖ salt) )

with a fresh 16-byte random *salt* per issue, and a *context* made of a purpose label,
the user id (or an anonymous marker) and ``extra``, each length-prefixed. What each part
stops:

* **Forgery** — only the holder of the ring secret can compute the MAC. Signed-in users'
  tokens use the ``forms`` ring, anonymous ones the ``anon`` ring.
* **Token transplant** — the user id is inside the MAC, so one user's token never
  validates for another, and a token for one ``extra`` (one form) never validates for
  another. Fields are length-prefixed, unlike plone.protect's plain concatenation where
  ``("ab", "c")`` and ``("a", "bc")`` collide.
* **BREACH** — the random salt changes every byte of the token on every issue (salt and
  MAC alike), so a compressed response leaks nothing that repeats across pages. A salted
  MAC gives this without the XOR mask Django and Rails use, and costs no extra work.
* **Lifetime** — a token stays valid while its secret stays in the ring (rotation retires
  it after ``size - 1`` further rotations), like plone.protect.

Checking recomputes the MAC with every secret of the ring, newest first, compares with
:func:`hmac.compare_digest`, and returns ``False`` — never raises — for any malformed
token.
"""

from __future__ import annotations

import binascii
import hmac
import os

from sitewarden.hmackey import PrekeyedHMAC
from sitewarden.keyring import KeyManager

__all__ = ["TOKEN_LENGTH", "check_token", "create_token", "ring_for"]

_SALT_BYTES = 16  # 128 bits: no two issues share a salt
_MAC_BYTES = 32
#: Length of a token in characters (48 bytes in base64url: no padding needed).
TOKEN_LENGTH = 64
_PURPOSE = b"sitewarden.csrf.v2\0"

#: Tokens verified recently → the ring's MAC tuple that verified them. A page (or a
#: single-page app) sends the same token with every request it makes; a hit skips the
#: decoding and the HMAC. Only verified tokens enter, and a hit counts only under the very
#: same MAC tuple — any rotation or reload with other secrets makes a new one — so the
#: answer is the one a full check would give. Bounded.
_VERIFIED: dict[tuple[str, str | None, str], tuple[PrekeyedHMAC, ...]] = {}
_VERIFIED_LIMIT = 4096

#: (userid, extra) → MAC input. Forms are rendered for the same users and forms over and
#: over, so the encoding is done once per pair; bounded.
_CONTEXTS: dict[tuple[str | None, str], bytes] = {}

# base64url by translating standard base64: binascii directly skips the wrappers' checks
# and copies (0.6 µs per decode); the length checks stand in for them.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def ring_for(userid: str | None) -> str:
    """Return the name of the ring that signs *userid*'s tokens."""
    return "anon" if userid is None else "forms"


def _context(userid: str | None, extra: str) -> bytes:
    context = _CONTEXTS.get((userid, extra))
    if context is None:
        uid = b"" if userid is None else userid.encode("utf-8")
        marker = b"A" if userid is None else b"U"
        ext = extra.encode("utf-8")
        context = b"%s%s%d:%s%d:%s" % (_PURPOSE, marker, len(uid), uid, len(ext), ext)
        if len(_CONTEXTS) >= 4096:
            _CONTEXTS.clear()
        _CONTEXTS[(userid, extra)] = context
    return context


def create_token(keys: KeyManager, userid: str | None = None, extra: str = "") -> str:
    """Return a fresh authenticator for *userid* (``None``: anonymous).

    *extra* scopes the token to one form or action (``extra="delete-page"``).
    """
    if userid is not None and (not isinstance(userid, str) or not userid):
        raise ValueError("userid must be a non-empty string, or None for anonymous visitors")
    if not isinstance(extra, str):
        raise ValueError("extra must be a string")
    ring = keys.ring(ring_for(userid))
    salt = os.urandom(_SALT_BYTES)  # the OS CSPRNG, as secrets.token_bytes uses
    mac = ring.macs()[0].digest(_context(userid, extra) + salt)
    encoded = binascii.b2a_base64(salt + mac, newline=False)
    return encoded.translate(_TO_URLSAFE).decode("ascii")


def check_token(
    keys: KeyManager, token: object, userid: str | None = None, extra: str = ""
) -> bool:
    """Return whether *token* is a genuine authenticator for *userid* and *extra*.

    If no secret in the cached ring matches, the ring is reloaded once (throttled) in
    case another process rotated it, and checked again.
    """
    if type(token) is not str or len(token) != TOKEN_LENGTH:
        return False
    if userid is not None and (type(userid) is not str or not userid):
        return False
    if type(extra) is not str:
        return False
    name = ring_for(userid)
    macs = keys.ring(name).macs()
    key = (token, userid, extra)
    if _VERIFIED.get(key) is macs:
        return True  # this very token was verified under this very ring state
    try:
        raw = binascii.a2b_base64(token.encode("ascii").translate(_FROM_URLSAFE))
    except (UnicodeEncodeError, binascii.Error):
        return False
    if len(raw) != _SALT_BYTES + _MAC_BYTES:
        return False  # a2b_base64 drops stray characters: the length catches them
    message = _context(userid, extra) + raw[:_SALT_BYTES]
    mac = raw[_SALT_BYTES:]
    for candidate in macs:
        if hmac.compare_digest(candidate.digest(message), mac):
            _remember(key, macs)
            return True
    fresh = keys.reload_after_miss(name)
    if fresh is not None:
        for candidate in fresh.macs():
            if hmac.compare_digest(candidate.digest(message), mac):
                _remember(key, fresh.macs())
                return True
    return False


def _remember(key: tuple[str, str | None, str], macs: tuple[PrekeyedHMAC, ...]) -> None:
    if len(_VERIFIED) >= _VERIFIED_LIMIT:
        _VERIFIED.clear()
    _VERIFIED[key] = macs
