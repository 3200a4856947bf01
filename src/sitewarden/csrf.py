"""CSRF authenticators: plone.protect's user-bound HMAC tokens, hardened.

A token proves that a form was rendered by this site for this user. It is::

    base64url( pad ‖ pad ⊕ HMAC-SHA256(ring secret, context) )

where *context* is a purpose label, the user id (or an anonymous marker) and ``extra``,
each length-prefixed. What each part stops:

* **Forgery** — only the holder of the ring secret can compute the MAC. Signed-in users'
  tokens use the ``forms`` ring, anonymous ones the ``anon`` ring.
* **Token transplant** — the user id is inside the MAC, so one user's token never
  validates for another, and a token for one ``extra`` (one form) never validates for
  another. Fields are length-prefixed, unlike plone.protect's plain concatenation where
  ``("ab", "c")`` and ``("a", "bc")`` collide.
* **BREACH** — a fresh random pad masks the MAC on every issue, so the bytes of the token
  differ on every page and a compressed response leaks nothing that repeats.
* **Lifetime** — a token stays valid while its secret stays in the ring (rotation retires
  it after ``size - 1`` further rotations), like plone.protect.

Checking tries every secret of the ring, newest first, with
:func:`hmac.compare_digest`, and returns ``False`` — never raises — for any malformed
token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

from sitewarden.keyring import KeyManager

__all__ = ["ANONYMOUS", "TOKEN_LENGTH", "check_token", "create_token", "ring_for"]

#: The identity anonymous visitors' tokens are bound to (it cannot be a user id: those
#: are non-empty, and this marker is length-prefixed differently from any of them).
ANONYMOUS = ""
_MAC_BYTES = 32
#: Length of a token in characters (64 bytes, unpadded base64url).
TOKEN_LENGTH = 86
_PURPOSE = b"sitewarden.csrf.v1\0"


def ring_for(userid: str | None) -> str:
    """Return the name of the ring that signs *userid*'s tokens."""
    return "anon" if userid is None else "forms"


def _context(userid: str | None, extra: str) -> bytes:
    uid = b"" if userid is None else userid.encode("utf-8")
    marker = b"A" if userid is None else b"U"
    ext = extra.encode("utf-8")
    return b"%s%s%d:%s%d:%s" % (_PURPOSE, marker, len(uid), uid, len(ext), ext)


def _xor(a: bytes, b: bytes) -> bytes:
    """XOR two 32-byte strings (through ints: one C operation instead of a byte loop)."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(_MAC_BYTES, "big")


def _check_userid(userid: str | None) -> None:
    if userid is not None and (not isinstance(userid, str) or not userid):
        raise ValueError("userid must be a non-empty string, or None for anonymous visitors")


def create_token(keys: KeyManager, userid: str | None = None, extra: str = "") -> str:
    """Return a fresh, masked authenticator for *userid* (``None``: anonymous).

    *extra* scopes the token to one form or action (``extra="delete-page"``).
    """
    _check_userid(userid)
    ring = keys.ring(ring_for(userid))
    mac = ring.macs()[0].digest(_context(userid, extra))
    pad = secrets.token_bytes(_MAC_BYTES)
    masked = _xor(pad, mac)
    return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode("ascii")


def check_token(
    keys: KeyManager, token: object, userid: str | None = None, extra: str = ""
) -> bool:
    """Return whether *token* is a genuine authenticator for *userid* and *extra*.

    If no secret in the cached ring matches, the ring is reloaded once (throttled) in
    case another process rotated it, and checked again.
    """
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return False
    if userid is not None and (not isinstance(userid, str) or not userid):
        return False
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"==")
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False
    if len(raw) != 2 * _MAC_BYTES:
        return False
    mac = _xor(raw[:_MAC_BYTES], raw[_MAC_BYTES:])
    context = _context(userid, extra)
    name = ring_for(userid)
    ring = keys.ring(name)
    for candidate in ring.macs():
        if hmac.compare_digest(candidate.digest(context), mac):
            return True
    fresh = keys.reload_after_miss(name)
    if fresh is not None:
        for candidate in fresh.macs():
            if hmac.compare_digest(candidate.digest(context), mac):
                return True
    return False
