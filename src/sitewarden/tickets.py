r"""Signed session tickets in the mod_auth_tkt format (plone.session, Pyramid, Apache).

A ticket is::

    digest + "%08x" % timestamp + userid + "!" [+ ",".join(tokens) + "!"] + user_data

and travels base64-encoded in a cookie (:func:`encode_cookie`, :func:`decode_cookie`).
The digest covers ``ip (4 bytes) + timestamp (4 bytes, big-endian)`` and
``userid \0 tokens \0 user_data``. Two families of digest:

``hmac-sha256`` (the default, plone.session's)
    ``HMAC-SHA256(secret, data)``: 32 raw bytes.
``md5``, ``sha256``, ``sha512`` (``mod_auth_tkt=True`` selects ``md5``)
    mod_auth_tkt's double hash ``H(H(data1 + secret + data2).hex() + secret).hex()``:
    32, 64 or 128 hex characters. Apache's mod_auth_tkt (``TKTAuthDigestType``) and
    Pyramid's ``AuthTicket(hashalg=…)`` use these.

Pyramid percent-encodes the user id inside the ticket; pass ``quote_userid=True`` to make
and read tickets the way Pyramid does (this also lets a user id contain ``!``).

:func:`validate_ticket` returns ``None`` for anything but a genuine, unexpired ticket —
malformed, truncated, forged, wrongly typed — and never raises for such input: a bad
cookie means "not signed in", not an error page. Digests are compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import struct
import time
from binascii import hexlify, unhexlify
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from urllib.parse import quote, unquote_to_bytes

from sitewarden.hmackey import PREKEYED_SHA256, PrekeyedHMAC, prekeyed
from sitewarden.keyring import Keyring

__all__ = [
    "DIGESTS",
    "Ticket",
    "TicketError",
    "create_ticket",
    "decode_cookie",
    "encode_cookie",
    "validate_ticket",
]

#: The digest names accepted by ``digest=``.
DIGESTS = ("hmac-sha256", "md5", "sha256", "sha512")

#: Length of the digest field for each digest: raw HMAC bytes, or hex characters.
_DIGEST_LENGTH = {"hmac-sha256": 32, "md5": 32, "sha256": 64, "sha512": 128}
_pack_timestamp = struct.Struct("!I").pack

#: A secret as callers give it: bytes, text (UTF-8 encoded), or a whole keyring.
Secret = bytes | str
Secrets = Secret | Keyring | Iterable[Secret]


class TicketError(ValueError):
    """A cookie value or ticket argument is malformed (the message says how)."""


class Ticket(NamedTuple):
    """The content of a valid ticket."""

    userid: str
    tokens: tuple[str, ...]
    user_data: str
    timestamp: int
    #: Position in the ring of the secret that validated it (0 = current). A ticket
    #: validated by an older secret is a candidate for re-issue.
    key_index: int = 0


# -- helpers -------------------------------------------------------------------------


def _digest_name(mod_auth_tkt: bool, digest: str | None) -> str:
    if digest is None:
        return "md5" if mod_auth_tkt else "hmac-sha256"
    if digest not in _DIGEST_LENGTH:
        raise ValueError(f"digest must be one of {', '.join(DIGESTS)}, not {digest!r}")
    if mod_auth_tkt and digest == "hmac-sha256":
        raise ValueError("mod_auth_tkt=True selects the double hash; hmac-sha256 contradicts it")
    return digest


#: The default ``ip``: "bound to no address" (plone.session never binds tickets to one).
_ANY_ADDRESS = "0.0.0.0"  # noqa: S104 (an address, not a bind)
_NO_IP = b"\0\0\0\0"
_IP_CACHE: dict[str, bytes] = {_ANY_ADDRESS: _NO_IP}


def _ip_bytes(ip: str) -> bytes:
    """Return the address part of the signed data (IPv4 packed; IPv6 as text, as Pyramid).

    Parsed strictly (``ipaddress``): ``inet_aton`` would also take ``"127.1"`` or
    ``"1.2.3.4 junk"``, so one binding could be spelled several ways.
    """
    packed = _IP_CACHE.get(ip)
    if packed is None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f"ip must be an IPv4 or IPv6 address, not {ip!r}") from None
        # IPv6 is signed as the text given (Pyramid's rule), so both sides must spell it
        # the same way; IPv4 is packed, as mod_auth_tkt does.
        packed = address.packed if address.version == 4 else ip.encode("ascii")
        if len(_IP_CACHE) < 4096:
            _IP_CACHE[ip] = packed
    return packed


#: IPv6 bindings sign ``address text + decimal timestamp`` with no separator (Pyramid's
#: convention). With a variable number of digits, "…::1" + "1700000000" and "…::11" +
#: "700000000" would be the same bytes: a ticket could be moved to another address by
#: rewriting its timestamp. Requiring ten digits (timestamps from 2001-09-09 to 2286)
#: makes the split unambiguous and keeps every real Pyramid ticket valid.
_IPV6_MIN_TIMESTAMP = 10**9


def _data1(ip_part: bytes, timestamp: int) -> bytes | None:
    """Return the signed address-and-time prefix, or ``None`` if it would be ambiguous."""
    if len(ip_part) == 4:
        return ip_part + _pack_timestamp(timestamp)
    if timestamp < _IPV6_MIN_TIMESTAMP or timestamp >= 10 * _IPV6_MIN_TIMESTAMP:
        return None
    return ip_part + str(timestamp).encode("ascii")


def _as_bytes(secret: Secret) -> bytes:
    if type(secret) is bytes:
        return secret
    if isinstance(secret, str):
        return secret.encode("utf-8")
    if isinstance(secret, bytes):
        return bytes(secret)
    raise TypeError(f"a secret must be bytes or str, not {type(secret).__name__}")


def _double_hash(algorithm: str, secret: bytes, data1: bytes, data2: bytes) -> bytes:
    first = hashlib.new(algorithm, data1 + secret + data2).hexdigest().encode("ascii")
    return hashlib.new(algorithm, first + secret).hexdigest().encode("ascii")


def _hmac_index(secret: Secrets, message: bytes, given: bytes) -> int:
    """Return the position of the secret whose HMAC of *message* is *given*, or -1.

    A secret of a type that cannot be a key validates nothing (-1), never raises.
    """
    try:
        if isinstance(secret, Keyring):
            macs: Sequence[PrekeyedHMAC] = secret.macs()
        elif isinstance(secret, bytes | str):
            macs = (prekeyed(_as_bytes(secret)),)
        else:
            macs = [prekeyed(_as_bytes(s)) for s in secret]
    except TypeError:
        return -1
    for index, mac in enumerate(macs):
        if hmac.compare_digest(mac.digest(message), given):
            return index
    return -1


def _double_hash_index(
    secret: Secrets, algorithm: str, data1: bytes, data2: bytes, given: bytes
) -> int:
    try:
        if isinstance(secret, Keyring):
            keys: Iterable[bytes] = secret.secrets
        elif isinstance(secret, bytes | str):
            keys = (_as_bytes(secret),)
        else:
            keys = [_as_bytes(s) for s in secret]
    except TypeError:
        return -1
    for index, key in enumerate(keys):
        if hmac.compare_digest(_double_hash(algorithm, key, data1, data2), given):
            return index
    return -1


#: Token fields seen before → their tuple (a handful of distinct values per site); bounded.
_TOKENS: dict[bytes, tuple[str, ...]] = {}


def _split_tokens(toks: bytes) -> tuple[str, ...]:
    """Decode a token field (strict UTF-8: raises UnicodeDecodeError) and remember it."""
    tokens = tuple(toks.decode().split(","))
    if len(_TOKENS) >= 1024:
        _TOKENS.clear()
    _TOKENS[toks] = tokens
    return tokens


#: Tickets found genuine recently → (what verified it, ip part, quote flag, Ticket).
#: Browsers send the same cookie on every request until it is refreshed, so most
#: validations repeat one made moments ago; a hit skips parsing and the HMAC. Only tickets
#: whose MAC verified are stored, each with exactly what verified it (the secret bytes
#: object, or the keyring's MAC tuple, which any rotation replaces), and a hit counts only
#: with that same object, address and flag. The timeout is checked on every call. Entries
#: cannot be planted (a forged ticket never verifies) and the table is bounded.
_VERIFIED: dict[bytes, tuple[object, bytes, bool, Ticket]] = {}
_VERIFIED_LIMIT = 4096
_VERIFIED_MAX_TICKET = 1024  # bytes: the table's memory stays under ~8 MiB


_new_ticket = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path

# Byte values, for membership tests: `0 in data` is ten times faster than `b"\0" in data`.
_NUL, _BANG, _COMMA = 0, ord("!"), ord(",")


# -- creating ------------------------------------------------------------------------

#: Checked and encoded (userid, tokens, user_data, quote) → (signed fields, shown fields).
#: Sessions re-issue tickets for the same user on every refresh, so the checks and
#: encodings are done once per distinct value set; bounded, only valid entries stored.
_FIELDS: dict[tuple[str, tuple[str, ...], str, bool], tuple[bytes, bytes]] = {}


def _check_fields(
    userid: str, tokens: Iterable[str], user_data: str, quote_userid: bool
) -> tuple[bytes, bytes]:
    """Check and encode the fields: the signed ones (NUL-separated), the shown ones (``!``).

    Raises :class:`TicketError` for anything that would make an ambiguous ticket. Results
    for plain ``str``/``tuple`` arguments are remembered in ``_FIELDS``.
    """
    if not isinstance(userid, str) or not userid:
        raise TicketError("userid must be a non-empty string")
    if isinstance(tokens, str | bytes):
        raise TicketError("tokens must be a sequence of strings, not a single string")
    if not isinstance(user_data, str):
        raise TicketError(f"user_data must be a string, not {type(user_data).__name__}")
    token_list = tuple(tokens)
    for token in token_list:
        if not isinstance(token, str) or not token or "!" in token or "," in token:
            raise TicketError(f"tokens must be non-empty strings without '!' or ',': {token!r}")
    uid = userid.encode("utf-8")
    toks = ",".join(token_list).encode("utf-8")
    data = user_data.encode("utf-8")
    if _BANG in data:
        raise TicketError("user_data must not contain '!' (the ticket field separator)")
    # NUL separates the fields inside the signed data: a NUL inside a field would let
    # "admin\\0" + "" be re-read as "admin" + "\\0" under the same signature.
    if _NUL in uid or _NUL in toks or _NUL in data:
        raise TicketError("userid, tokens and user_data must not contain NUL characters")
    shown_uid = quote(userid, safe="").encode("ascii") if quote_userid else uid
    if _BANG in shown_uid:
        raise TicketError("userid contains '!'; pass quote_userid=True to encode it")
    signed = uid + b"\0" + toks + b"\0" + data
    shown = shown_uid + b"!" + (toks + b"!" if toks else b"") + data
    if type(tokens) is tuple and type(userid) is str and type(user_data) is str:
        if len(_FIELDS) >= 4096:
            _FIELDS.clear()
        _FIELDS[(userid, tokens, user_data, quote_userid)] = (signed, shown)
    return signed, shown


def create_ticket(
    secret: Secret | Keyring,
    userid: str,
    tokens: Iterable[str] = (),
    user_data: str = "",
    ip: str = _ANY_ADDRESS,
    timestamp: int | None = None,
    *,
    mod_auth_tkt: bool = False,
    digest: str | None = None,
    quote_userid: bool = False,
) -> bytes:
    """Return a signed ticket for *userid*.

    *secret* is bytes, text (UTF-8), or a :class:`~sitewarden.keyring.Keyring` (its
    current secret signs). *tokens* and *user_data* are carried, signed, in the clear.
    *ip* binds the ticket to a client address (the default ``0.0.0.0`` binds to none).
    *timestamp* defaults to now. Raises :class:`TicketError` for a field that would make
    an ambiguous ticket (``!`` in the user id, tokens or user data — use
    ``quote_userid=True`` for user ids with ``!``; ``,`` in a token; NUL anywhere).
    """
    name = (
        "hmac-sha256" if digest is None and not mod_auth_tkt else _digest_name(mod_auth_tkt, digest)
    )
    if timestamp is None:
        timestamp = int(time.time())
    elif type(timestamp) is not int or not 0 <= timestamp <= 0xFFFFFFFF:
        raise TicketError(f"timestamp must be whole seconds in 0..2**32-1, not {timestamp!r}")
    try:
        fields = _FIELDS.get((userid, tokens, user_data, quote_userid))  # type: ignore[arg-type]
    except TypeError:  # unhashable arguments (a list of tokens): checked the long way
        fields = None
    signed, shown = fields or _check_fields(userid, tokens, user_data, quote_userid)
    ip_part = _IP_CACHE.get(ip) or _ip_bytes(ip)
    packed_time = _pack_timestamp(timestamp)
    data1 = ip_part + packed_time if len(ip_part) == 4 else _data1(ip_part, timestamp)
    if data1 is None:
        raise TicketError("an IPv6-bound ticket needs a ten-digit timestamp (2001..2286)")
    if type(secret) is bytes:
        key = secret
    elif isinstance(secret, Keyring):
        key = secret.current
    else:
        key = _as_bytes(secret)
    if name != "hmac-sha256":
        mac = _double_hash(name, key, data1, signed)
    elif isinstance(secret, Keyring):
        # the ring's own pre-keyed MAC: per-user rings never churn the shared cache
        mac = secret.macs()[0].digest(data1 + signed)
    else:
        mac = (PREKEYED_SHA256.get(key) or prekeyed(key)).digest(data1 + signed)
    # hexlify of the packed time is the "%08x" field: eight lowercase hex digits.
    return mac + hexlify(packed_time) + shown


# -- validating ----------------------------------------------------------------------


def validate_ticket(
    secret: Secrets,
    ticket: bytes,
    ip: str = _ANY_ADDRESS,
    timeout: float = 0,
    now: float | None = None,
    *,
    mod_auth_tkt: bool = False,
    digest: str | None = None,
    quote_userid: bool = False,
) -> Ticket | None:
    """Return the :class:`Ticket` if *ticket* is genuine and unexpired, else ``None``.

    *secret* is one secret or several (a list, or a :class:`~sitewarden.keyring.Keyring`
    whose every secret is tried, newest first). With a *timeout* (seconds), the ticket is
    valid while ``timestamp + timeout > now`` (plone.session's rule); ``0`` means no
    expiry. Never raises for a malformed *ticket*; raises :class:`ValueError` only for a
    wrong *digest* or *ip* argument (a programming error, not bad input).
    """
    if digest is None and not mod_auth_tkt:
        name, size = "hmac-sha256", 32
    else:
        name = _digest_name(mod_auth_tkt, digest)
        size = _DIGEST_LENGTH[name]
    # check the argument before the input; the default needs no lookup
    ip_part = _NO_IP if ip is _ANY_ADDRESS else _IP_CACHE.get(ip) or _ip_bytes(ip)
    if type(ticket) is not bytes:
        if not isinstance(ticket, bytes | bytearray | memoryview):
            return None
        ticket = bytes(ticket)
    if name == "hmac-sha256":
        hit = _VERIFIED.get(ticket)
        if hit is not None and hit[1] == ip_part and hit[2] == quote_userid:
            proof = hit[0]
            # Only with exactly what verified it: the same secret object, or the same
            # ring state (a Keyring's MAC tuple is replaced by any rotation or refill).
            if proof is secret or (type(secret) is Keyring and proof is secret.macs()):
                found = hit[3]
                if timeout and found[3] + timeout <= (time.time() if now is None else now):
                    return None
                return found
    stamp = ticket[size : size + 8]
    # Exactly eight lowercase hex digits. unhexlify refuses anything but hex pairs (int()
    # would also take "0x1f", "+1f", " 1f", "1_f") and the lower() test refuses "A-F":
    # otherwise several byte strings could carry one signature.
    try:
        packed_time = unhexlify(stamp)
    except binascii.Error:
        return None
    if len(packed_time) != 4 or not (stamp.islower() or stamp.isdigit()):
        return None
    timestamp = int.from_bytes(packed_time, "big")
    rest = ticket[size + 8 :]
    if _NUL in rest:
        return None  # NUL would let bytes move between fields under one signature
    parts = rest.split(b"!")
    if len(parts) == 2:
        uid, data = parts
        toks = b""
        signed = uid + b"\0\0" + data
    elif len(parts) == 3:
        uid, toks, data = parts
        if not toks:
            return None  # "uid!!data" would be a second spelling of "uid!data"
        signed = rest.replace(b"!", b"\0")
    else:
        return None
    if quote_userid:
        uid = unquote_to_bytes(uid)
        if _NUL in uid:
            return None
        signed = uid + b"\0" + toks + b"\0" + data
    if not uid:
        return None
    data1 = ip_part + packed_time if len(ip_part) == 4 else _data1(ip_part, timestamp)
    if data1 is None:
        return None
    given = ticket[:size]
    if name != "hmac-sha256":
        index = _double_hash_index(secret, name, data1, signed, given)
    elif type(secret) is bytes:  # the common case inline: this runs on every request
        mac = PREKEYED_SHA256.get(secret) or prekeyed(secret)
        index = 0 if hmac.compare_digest(mac.digest(data1 + signed), given) else -1
    else:
        index = _hmac_index(secret, data1 + signed, given)
    if index < 0:
        return None
    if timeout and timestamp + timeout <= (time.time() if now is None else now):
        return None
    try:
        found = _new_ticket(
            Ticket,
            (
                uid.decode(),  # UTF-8, strict
                (_TOKENS.get(toks) or _split_tokens(toks)) if toks else (),
                data.decode(),
                timestamp,
                index,
            ),
        )
    except UnicodeDecodeError:
        return None
    if name == "hmac-sha256" and len(ticket) <= _VERIFIED_MAX_TICKET:
        proof = (
            secret if type(secret) is bytes else secret.macs() if type(secret) is Keyring else None
        )
        if proof is not None:
            if len(_VERIFIED) >= _VERIFIED_LIMIT:
                _VERIFIED.clear()
            _VERIFIED[ticket] = (proof, ip_part, quote_userid, found)
    return found


# -- cookies -------------------------------------------------------------------------


def encode_cookie(ticket: bytes) -> str:
    """Return *ticket* as a one-line standard base64 cookie value (plone.session's form)."""
    return base64.b64encode(ticket).decode("ascii")


def decode_cookie(value: str | bytes) -> bytes:
    """Return the ticket inside cookie *value*; raise :class:`TicketError` if malformed.

    Accepts the value with or without the double quotes some servers add, and with or
    without base64 padding.
    """
    if isinstance(value, str):
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raise TicketError("cookie value is not ASCII base64") from None
    elif isinstance(value, bytes):
        raw = value
    else:
        raise TicketError(f"cookie value must be str or bytes, not {type(value).__name__}")
    raw = raw.strip().strip(b'"')
    if not raw or len(raw) > 8192:
        raise TicketError("cookie value is empty or too long")
    raw += b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise TicketError("cookie value is not valid base64") from None
