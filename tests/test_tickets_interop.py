"""Tickets interoperate with plone.session's tktauth, Pyramid's AuthTicket and mod_auth_tkt.

Both directions are checked for every peer: a ticket the peer makes validates here with
the same fields, a ticket made here validates in the peer with the same fields, and for
identical inputs the tickets are byte-identical. plone.session's published doctest
vectors are pinned as literals, so they hold even if the reference module changed.
"""

from __future__ import annotations

import binascii

import pytest

from sitewarden.tickets import (
    Ticket,
    create_ticket,
    decode_cookie,
    encode_cookie,
    validate_ticket,
)
from tests.interop import load_pyramid_authentication, load_tktauth

tktauth = load_tktauth()
pyramid_auth = load_pyramid_authentication()

SECRETS = [
    pytest.param("abcdefghijklmnopqrstuvwxyz0123456789", id="ascii-secret"),
    pytest.param("sëcret-🔑-密钥", id="non-ascii-secret"),
]

# (userid, tokens, user_data, ip, timestamp)
CASES = [
    pytest.param("jbloggs", (), "", "0.0.0.0", 1216720800, id="plain"),
    pytest.param("jöe", ("rôle", "编辑"), "Jöe Blöggs", "0.0.0.0", 1700000000, id="latin-cjk"),
    pytest.param("用户", (), "数据", "192.168.1.20", 0, id="cjk-ip-ts0"),
    pytest.param("🙂user", ("🔑",), "", "10.0.0.1", 0xFFFFFFFF, id="emoji-maxts"),
    pytest.param("admin", ("manager", "editor"), "x" * 300, "203.0.113.7", 1, id="long-data"),
    pytest.param("a b%20c", (), "commas, spaces = fine", "0.0.0.0", 1216720800, id="punct"),
]

PLONE_FLAVOURS = [
    pytest.param(False, id="hmac-sha256"),
    pytest.param(True, id="mod_auth_tkt"),
]


# -- plone.session tktauth ------------------------------------------------------------


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), CASES)
def test_plone_ticket_validates_here(
    secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt
) -> None:
    ticket = tktauth.createTicket(
        secret, userid, list(tokens), user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt
    )
    got = validate_ticket(secret, ticket, ip, mod_auth_tkt=mod_auth_tkt)
    assert got == Ticket(userid, tokens, user_data, timestamp, 0)


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), CASES)
def test_our_ticket_validates_in_plone(
    secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt
) -> None:
    ticket = create_ticket(
        secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt
    )
    data = tktauth.validateTicket(secret, ticket, ip, mod_auth_tkt=mod_auth_tkt)
    assert data is not None
    digest, got_userid, got_tokens, got_user_data, got_timestamp = data
    assert digest == ticket[:32]
    assert (got_userid, got_tokens, got_user_data, got_timestamp) == (
        userid,
        tokens,
        user_data,
        timestamp,
    )


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), CASES)
def test_tickets_are_byte_identical_to_plone(
    secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt
) -> None:
    ours = create_ticket(
        secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt
    )
    theirs = tktauth.createTicket(
        secret, userid, list(tokens), user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt
    )
    assert ours == theirs


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
def test_ip_bound_ticket_is_rejected_elsewhere_by_both(mod_auth_tkt) -> None:
    secret = "shared"
    ours = create_ticket(
        secret, "jöe", ip="198.51.100.4", timestamp=1700000000, mod_auth_tkt=mod_auth_tkt
    )
    theirs = tktauth.createTicket(
        secret, "jöe", ip="198.51.100.4", timestamp=1700000000, mod_auth_tkt=mod_auth_tkt
    )
    for ticket in (ours, theirs):
        assert validate_ticket(secret, ticket, "198.51.100.5", mod_auth_tkt=mod_auth_tkt) is None
        assert (
            tktauth.validateTicket(secret, ticket, "198.51.100.5", mod_auth_tkt=mod_auth_tkt)
            is None
        )


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
@pytest.mark.parametrize("offset", [-1, 0, 1, 3600])
def test_timeout_agrees_with_plone(mod_auth_tkt, offset) -> None:
    secret, timestamp, timeout = "shared", 1700000000, 600
    ticket = create_ticket(secret, "jöe", timestamp=timestamp, mod_auth_tkt=mod_auth_tkt)
    now = timestamp + timeout + offset
    ours = validate_ticket(secret, ticket, timeout=timeout, now=now, mod_auth_tkt=mod_auth_tkt)
    theirs = tktauth.validateTicket(
        secret, ticket, timeout=timeout, now=now, mod_auth_tkt=mod_auth_tkt
    )
    assert (ours is None) == (theirs is None)
    assert (ours is None) == (offset >= 0)


# -- plone.session's published doctest vectors (literals, independent of the module) ---

DOCTEST_SECRET = "abcdefghijklmnopqrstuvwxyz0123456789"
DOCTEST_USERID = "jbloggs"
DOCTEST_TIMESTAMP = 1216720800
DOCTEST_TIMEOUT = 12 * 60 * 60
DOCTEST_MOD_AUTH_TKT = b"c7c7300ac5cf529656444123aca345294885afa0jbloggs!"
DOCTEST_MOD_AUTH_TKT_FULL = b"eea3630e98177bdbf0e7f803e1632b7e4885afa0jbloggs!foo,bar!Joe Bloggs"
DOCTEST_HMAC_COOKIE = "8wiYmYOwO++VlO4AOw3432oTlQ4qMP/ag5ZhNb72WBE0ODg1YWZhMGpibG9nZ3Mh"
DOCTEST_MOD_AUTH_TKT_COOKIE = "YzdjNzMwMGFjNWNmNTI5NjU2NDQ0MTIzYWNhMzQ1Mjk0ODg1YWZhMGpibG9nZ3Mh"


def test_doctest_vector_mod_auth_tkt_simple() -> None:
    ticket = create_ticket(
        DOCTEST_SECRET, DOCTEST_USERID, timestamp=DOCTEST_TIMESTAMP, mod_auth_tkt=True
    )
    assert ticket == DOCTEST_MOD_AUTH_TKT
    assert encode_cookie(ticket) == DOCTEST_MOD_AUTH_TKT_COOKIE
    assert validate_ticket(DOCTEST_SECRET, DOCTEST_MOD_AUTH_TKT, mod_auth_tkt=True) == Ticket(
        "jbloggs", (), "", DOCTEST_TIMESTAMP
    )


def test_doctest_vector_mod_auth_tkt_tokens_and_user_data() -> None:
    ticket = create_ticket(
        DOCTEST_SECRET,
        DOCTEST_USERID,
        ["foo", "bar"],
        "Joe Bloggs",
        timestamp=DOCTEST_TIMESTAMP,
        mod_auth_tkt=True,
    )
    assert ticket == DOCTEST_MOD_AUTH_TKT_FULL
    got = validate_ticket(
        DOCTEST_SECRET,
        DOCTEST_MOD_AUTH_TKT_FULL,
        timeout=DOCTEST_TIMEOUT,
        now=DOCTEST_TIMESTAMP + 3600,
        mod_auth_tkt=True,
    )
    assert got == Ticket("jbloggs", ("foo", "bar"), "Joe Bloggs", DOCTEST_TIMESTAMP)


def test_doctest_vector_hmac_cookie() -> None:
    ticket = create_ticket(DOCTEST_SECRET, DOCTEST_USERID, timestamp=DOCTEST_TIMESTAMP)
    assert encode_cookie(ticket) == DOCTEST_HMAC_COOKIE
    assert decode_cookie(DOCTEST_HMAC_COOKIE) == ticket
    assert ticket.endswith(b"4885afa0jbloggs!")
    assert ticket.startswith(b"\xf3\x08\x98\x99\x83\xb0;\xef\x95\x94\xee")


@pytest.mark.parametrize(
    ("cookie", "mod_auth_tkt"),
    [(DOCTEST_HMAC_COOKIE, False), (DOCTEST_MOD_AUTH_TKT_COOKIE, True)],
    ids=["hmac-sha256", "mod_auth_tkt"],
)
def test_doctest_vector_timeout_boundary(cookie, mod_auth_tkt) -> None:
    ticket = decode_cookie(cookie)

    def check(now: int) -> Ticket | None:
        return validate_ticket(
            DOCTEST_SECRET, ticket, timeout=DOCTEST_TIMEOUT, now=now, mod_auth_tkt=mod_auth_tkt
        )

    assert check(DOCTEST_TIMESTAMP + 3600) == Ticket("jbloggs", (), "", DOCTEST_TIMESTAMP)
    assert check(DOCTEST_TIMESTAMP + DOCTEST_TIMEOUT - 1) is not None
    assert check(DOCTEST_TIMESTAMP + DOCTEST_TIMEOUT) is None
    # the doctest's own "LATER = NOW + TIMEOUT"
    assert check(DOCTEST_TIMESTAMP + 3600 + DOCTEST_TIMEOUT) is None


def test_doctest_vector_wrong_family_or_secret_fails() -> None:
    """The published tickets do not validate under another digest family or secret."""
    assert validate_ticket(DOCTEST_SECRET, DOCTEST_MOD_AUTH_TKT) is None  # hmac-sha256
    hmac_ticket = decode_cookie(DOCTEST_HMAC_COOKIE)
    assert validate_ticket(DOCTEST_SECRET, hmac_ticket, mod_auth_tkt=True) is None
    assert validate_ticket(DOCTEST_SECRET[:-1], hmac_ticket) is None
    assert validate_ticket(DOCTEST_SECRET[:-1], DOCTEST_MOD_AUTH_TKT, mod_auth_tkt=True) is None


# -- Pyramid AuthTicket / parse_ticket ------------------------------------------------

PYRAMID_ALGS = ["md5", "sha256", "sha512"]

# (userid, tokens, user_data, ip, timestamp)
PYRAMID_CASES = [
    pytest.param("jbloggs", (), "", "0.0.0.0", 1216720800, id="plain"),
    pytest.param("jöe", ("rôle", "编辑"), "Jöe Blöggs", "127.0.0.1", 1700000000, id="latin-cjk"),
    pytest.param("用户", (), "数据", "192.168.1.20", 0, id="cjk-ts0"),
    pytest.param("🙂", ("🔑",), "🎉", "0.0.0.0", 0xFFFFFFFF, id="emoji"),
    pytest.param("bang!user", ("admin",), "", "10.1.2.3", 1700000000, id="bang-in-userid"),
    pytest.param("100% sure", (), "x", "0.0.0.0", 1700000000, id="percent-space"),
    pytest.param("jöe", ("a", "b"), "d", "2001:db8::1", 1700000000, id="ipv6"),
]


def _pyramid_cookie_value(secret, userid, tokens, user_data, ip, timestamp, alg) -> bytes:
    ticket = pyramid_auth.AuthTicket(
        secret, userid, ip, tokens=tokens, user_data=user_data, time=timestamp, hashalg=alg
    )
    return ticket.cookie_value().encode("utf-8")


@pytest.mark.parametrize("alg", PYRAMID_ALGS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), PYRAMID_CASES)
def test_pyramid_ticket_validates_here(
    secret, userid, tokens, user_data, ip, timestamp, alg
) -> None:
    ticket = _pyramid_cookie_value(secret, userid, tokens, user_data, ip, timestamp, alg)
    got = validate_ticket(secret, ticket, ip, digest=alg, quote_userid=True)
    assert got == Ticket(userid, tokens, user_data, timestamp, 0)


@pytest.mark.parametrize("alg", PYRAMID_ALGS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), PYRAMID_CASES)
def test_our_ticket_validates_in_pyramid(
    secret, userid, tokens, user_data, ip, timestamp, alg
) -> None:
    ticket = create_ticket(
        secret, userid, tokens, user_data, ip, timestamp, digest=alg, quote_userid=True
    )
    parsed = pyramid_auth.parse_ticket(secret, ticket.decode("utf-8"), ip, hashalg=alg)
    # Pyramid reports "no tokens" as [""]
    assert parsed == (timestamp, userid, list(tokens) or [""], user_data)


@pytest.mark.parametrize("alg", PYRAMID_ALGS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), PYRAMID_CASES)
def test_tickets_are_byte_identical_to_pyramid(
    userid, tokens, user_data, ip, timestamp, alg
) -> None:
    secret = "pyramid-secret"
    ours = create_ticket(
        secret, userid, tokens, user_data, ip, timestamp, digest=alg, quote_userid=True
    )
    theirs = _pyramid_cookie_value(secret, userid, tokens, user_data, ip, timestamp, alg)
    assert ours == theirs


@pytest.mark.parametrize("alg", PYRAMID_ALGS)
def test_userid_with_slash_interoperates_with_pyramid(alg) -> None:
    # Pyramid leaves "/" unquoted, we quote it: the bytes differ, the tickets agree.
    secret, userid, timestamp = "pyramid-secret", "dept/jöe", 1700000000
    theirs = _pyramid_cookie_value(secret, userid, (), "", "0.0.0.0", timestamp, alg)
    assert validate_ticket(secret, theirs, digest=alg, quote_userid=True) == Ticket(
        userid, (), "", timestamp
    )
    ours = create_ticket(secret, userid, timestamp=timestamp, digest=alg, quote_userid=True)
    assert pyramid_auth.parse_ticket(secret, ours.decode(), "0.0.0.0", hashalg=alg) == (
        timestamp,
        userid,
        [""],
        "",
    )


@pytest.mark.parametrize("alg", PYRAMID_ALGS)
def test_pyramid_rejects_our_ticket_from_another_ip(alg) -> None:
    ticket = create_ticket(
        "s", "jöe", ip="192.0.2.1", timestamp=1700000000, digest=alg, quote_userid=True
    )
    with pytest.raises(pyramid_auth.BadTicket):
        pyramid_auth.parse_ticket("s", ticket.decode(), "192.0.2.2", hashalg=alg)
    theirs = _pyramid_cookie_value("s", "jöe", (), "", "192.0.2.1", 1700000000, alg)
    assert validate_ticket("s", theirs, "192.0.2.2", digest=alg, quote_userid=True) is None


@pytest.mark.parametrize(
    ("userid", "tokens", "user_data", "ip"),
    [
        ("jbloggs", (), "", "0.0.0.0"),
        ("jbloggs", ("admin", "editor"), "Joe Bloggs", "127.0.0.1"),
    ],
)
def test_plain_ascii_md5_is_mod_auth_tkt_both_ways(userid, tokens, user_data, ip) -> None:
    # No quoting needed for plain ASCII: this is exactly Apache mod_auth_tkt's ticket.
    secret, timestamp = "mod-auth-tkt-secret", 1700000000
    theirs = _pyramid_cookie_value(secret, userid, tokens, user_data, ip, timestamp, "md5")
    expected = Ticket(userid, tokens, user_data, timestamp)
    assert validate_ticket(secret, theirs, ip, digest="md5") == expected
    assert validate_ticket(secret, theirs, ip, mod_auth_tkt=True) == expected
    ours = create_ticket(secret, userid, tokens, user_data, ip, timestamp, mod_auth_tkt=True)
    assert ours == theirs
    assert pyramid_auth.parse_ticket(secret, ours.decode(), ip, hashalg="md5") == (
        timestamp,
        userid,
        list(tokens) or [""],
        user_data,
    )
    # and plone's mod_auth_tkt flavour is the same ticket
    assert ours == tktauth.createTicket(
        secret, userid, list(tokens), user_data, ip, timestamp, mod_auth_tkt=True
    )


# -- cookies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"mod_auth_tkt": True}, {"digest": "sha512"}],
    ids=["hmac-sha256", "mod_auth_tkt", "sha512"],
)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), CASES)
def test_cookie_round_trip(userid, tokens, user_data, ip, timestamp, kwargs) -> None:
    ticket = create_ticket("s", userid, tokens, user_data, ip, timestamp, **kwargs)
    cookie = encode_cookie(ticket)
    assert cookie.isascii()
    assert "\n" not in cookie
    assert decode_cookie(cookie) == ticket
    assert validate_ticket("s", decode_cookie(cookie), ip, **kwargs) == Ticket(
        userid, tokens, user_data, timestamp
    )


@pytest.mark.parametrize("mod_auth_tkt", PLONE_FLAVOURS)
@pytest.mark.parametrize(("userid", "tokens", "user_data", "ip", "timestamp"), CASES)
def test_plone_cookie_encoding_decodes_here(
    userid, tokens, user_data, ip, timestamp, mod_auth_tkt
) -> None:
    ticket = tktauth.createTicket(
        "s", userid, list(tokens), user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt
    )
    cookie = binascii.b2a_base64(ticket).rstrip()  # plone.session's encoding
    assert decode_cookie(cookie) == ticket
    assert decode_cookie(cookie.decode("ascii")) == ticket
    assert decode_cookie(binascii.b2a_base64(ticket)) == ticket  # trailing newline kept
    assert validate_ticket("s", decode_cookie(cookie), ip, mod_auth_tkt=mod_auth_tkt) == Ticket(
        userid, tokens, user_data, timestamp
    )
    # and the other way: plone.session decodes our cookie
    ours = create_ticket("s", userid, tokens, user_data, ip, timestamp, mod_auth_tkt=mod_auth_tkt)
    assert binascii.a2b_base64(encode_cookie(ours)) == ticket
