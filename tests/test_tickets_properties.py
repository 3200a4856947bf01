"""Property tests for tickets: round trips, mutations, garbage, and cookie decoding.

Every property runs against each digest family. Example counts are kept small enough for
the whole file to take a few seconds.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sitewarden.tickets import (
    DIGESTS,
    Ticket,
    TicketError,
    create_ticket,
    decode_cookie,
    encode_cookie,
    validate_ticket,
)
from tests.interop import load_pyramid_authentication, load_tktauth

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIZE = {"hmac-sha256": 32, "md5": 32, "sha256": 64, "sha512": 128}

# Text that survives UTF-8 (no surrogates). NUL is left out: it is the separator of the
# signed fields (see test_tickets.test_create_refuses_nul).
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0")
_no_bang = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0!")
_token_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\0!,")

secrets = st.one_of(st.binary(max_size=80), st.text(_chars, max_size=40))
userids = st.text(_no_bang, min_size=1, max_size=20)
quotable_userids = st.text(_chars, min_size=1, max_size=20)
tokens = st.lists(st.text(_token_chars, min_size=1, max_size=10), max_size=4).map(tuple)
user_data = st.text(_no_bang, max_size=40)
timestamps = st.integers(0, 2**32 - 1)
ips = st.one_of(
    st.just("0.0.0.0"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)
digests = st.sampled_from(DIGESTS)


def timestamps_for(ip: str):
    """IPv6 bindings need ten-digit timestamps (see tickets._IPV6_MIN_TIMESTAMP)."""
    return st.integers(10**9, 2**32 - 1) if ":" in ip else timestamps


@st.composite
def tickets(draw):
    """A valid ticket with everything needed to validate it."""
    digest = draw(digests)
    quote = draw(st.booleans())
    case = {
        "secret": draw(secrets),
        "userid": draw(quotable_userids if quote else userids),
        "tokens": draw(tokens),
        "user_data": draw(user_data),
        "ip": (ip := draw(ips)),
        "timestamp": draw(timestamps_for(ip)),
    }
    options = {"digest": digest, "quote_userid": quote}
    return case, options, create_ticket(**case, **options)


@FAST
@given(tickets())
def test_round_trip(made) -> None:
    case, options, ticket = made
    got = validate_ticket(case["secret"], ticket, case["ip"], **options)
    assert got == Ticket(case["userid"], case["tokens"], case["user_data"], case["timestamp"])
    # and through a cookie
    from_cookie = decode_cookie(encode_cookie(ticket))
    assert validate_ticket(case["secret"], from_cookie, case["ip"], **options) == got


_bytes = st.one_of(st.integers(0, 255), st.sampled_from(b"!%,0aAfF"))


def _mutate(data, ticket: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
    if kind == "truncate":
        return ticket[: data.draw(st.integers(0, len(ticket) - 1))]
    if kind == "insert":
        i = data.draw(st.integers(0, len(ticket)))
        return ticket[:i] + bytes([data.draw(_bytes)]) + ticket[i:]
    i = data.draw(st.integers(0, len(ticket) - 1))
    if kind == "delete":
        return ticket[:i] + ticket[i + 1 :]
    return ticket[:i] + bytes([data.draw(_bytes)]) + ticket[i + 1 :]


def _known_alias(original: bytes, mutant: bytes, size: int, quote: bool) -> bool:
    """The one second spelling the validator accepts for one signed content.

    With ``quote_userid``, the case of a percent-escape's hex digit (``%C3`` / ``%c3``),
    which Pyramid also accepts. (``uid!!data`` for ``uid!data`` used to be another; it is
    now refused, see test_tickets.test_empty_tokens_field_is_not_an_alias.)
    """
    if mutant[: size + 8] != original[: size + 8]:
        return False
    tail, mutated_tail = original[size + 8 :], mutant[size + 8 :]
    if quote and len(tail) == len(mutated_tail):
        diff = [i for i in range(len(tail)) if tail[i] != mutated_tail[i]]
        uid_end = tail.index(b"!")
        return (
            len(diff) == 1
            and diff[0] < uid_end
            and b"%" in tail[max(0, diff[0] - 2) : diff[0]]
            and tail[diff[0] : diff[0] + 1].lower() == mutated_tail[diff[0] : diff[0] + 1].lower()
        )
    return False


@FAST
@given(tickets(), st.data())
def test_single_mutation_never_yields_another_ticket(made, data) -> None:
    case, options, ticket = made
    mutant = _mutate(data, ticket)
    got = validate_ticket(case["secret"], mutant, case["ip"], **options)
    if mutant == ticket:
        assert got is not None
    elif got is not None:
        # never a different ticket; the same one only under a known alias
        assert got == Ticket(case["userid"], case["tokens"], case["user_data"], case["timestamp"])
        assert _known_alias(ticket, mutant, SIZE[options["digest"]], options["quote_userid"])


@FAST
@given(st.binary(max_size=300), digests, st.booleans(), secrets)
def test_random_bytes_never_validate(garbage, digest, quote, secret) -> None:
    assert validate_ticket(secret, garbage, digest=digest, quote_userid=quote) is None


@FAST
@given(
    digests,
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"!", b"")), min_size=2, max_size=3),
    st.data(),
)
def test_well_formed_garbage_never_validates(digest, quote, ts, fields, data) -> None:
    # passes every syntactic check, so only the digest can reject it
    mac = data.draw(st.binary(min_size=SIZE[digest], max_size=SIZE[digest]))
    garbage = mac + b"%08x" % ts + b"!".join(fields)
    assert validate_ticket(b"secret", garbage, digest=digest, quote_userid=quote) is None


@FAST
@given(st.text(max_size=300), digests)
def test_text_never_validates(text, digest) -> None:
    assert validate_ticket("secret", text, digest=digest) is None


@FAST
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_decode_cookie_returns_bytes_or_raises_ticket_error(value) -> None:
    try:
        result = decode_cookie(value)
    except TicketError:
        return
    assert isinstance(result, bytes)


_cookie_chars = st.sampled_from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/=-_" \t\n\r')


@FAST
@given(st.text(_cookie_chars, max_size=60))
def test_decode_cookie_near_base64(value) -> None:
    try:
        result = decode_cookie(value)
    except TicketError:
        return
    assert isinstance(result, bytes)
    assert result  # empty values are refused, not decoded to b""


@FAST
@given(st.binary(min_size=1, max_size=6144))
def test_cookie_round_trip(raw) -> None:
    cookie = encode_cookie(raw)
    assert decode_cookie(cookie) == raw
    assert decode_cookie(cookie.rstrip("=")) == raw
    assert decode_cookie(f'"{cookie}"') == raw


# -- agreement with the reference implementations ----------------------------------------

tktauth = load_tktauth()
pyramid_auth = load_pyramid_authentication()


@FAST
@given(
    secrets,
    userids,
    tokens,
    user_data,
    st.one_of(st.just("0.0.0.0"), st.ip_addresses(v=4).map(str)),
    timestamps,
    st.booleans(),
)
def test_agrees_with_plone(secret, userid, toks, data, ip, ts, mod_auth_tkt) -> None:
    ours = create_ticket(secret, userid, toks, data, ip, ts, mod_auth_tkt=mod_auth_tkt)
    assert ours == tktauth.createTicket(
        secret, userid, list(toks), data, ip, ts, mod_auth_tkt=mod_auth_tkt
    )
    assert tktauth.validateTicket(secret, ours, ip, mod_auth_tkt=mod_auth_tkt)[1:] == (
        userid,
        toks,
        data,
        ts,
    )


@FAST
@given(
    st.text(_chars, min_size=1, max_size=30),
    quotable_userids,
    tokens,
    user_data,
    ips,
    timestamps,
    st.sampled_from(["md5", "sha256", "sha512"]),
)
def test_agrees_with_pyramid(secret, userid, toks, data, ip, ts, alg) -> None:
    # Pyramid's parse_ticket strips '"' from both ends of the ticket, user data included
    assume(not data.endswith('"'))
    # IPv6 bindings: sitewarden refuses non-ten-digit timestamps (ambiguous signed data)
    assume(":" not in ip or ts >= 10**9)
    theirs = pyramid_auth.AuthTicket(
        secret, userid, ip, tokens=toks, user_data=data, time=ts, hashalg=alg
    ).cookie_value()
    expected = Ticket(userid, toks, data, ts)
    assert validate_ticket(secret, theirs.encode(), ip, digest=alg, quote_userid=True) == expected
    ours = create_ticket(secret, userid, toks, data, ip, ts, digest=alg, quote_userid=True)
    assert pyramid_auth.parse_ticket(secret, ours.decode(), ip, hashalg=alg) == (
        ts,
        userid,
        list(toks) or [""],
        data,
    )
