"""ProxyResolver: forwarded headers believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.guards.clientip import (
    MAX_HOPS,
    Origin,
    ProxyResolver,
    forwarded_headers_present,
    normalise_ip,
)
from sitewarden.web.request import RequestView

PROXY = "10.0.0.1"
TRUSTED = ProxyResolver(("10.0.0.0/8", "fd00::/8"))
NOBODY = ProxyResolver(())


def view(
    headers: dict[str, str] | None = None,
    client: str | None = PROXY,
    scheme: str = "http",
    host: str = "backend:8080",
) -> RequestView:
    return RequestView("GET", scheme, host, "/", headers=headers or {}, client=client)


# -- no trusted proxies: nothing forwarded is believed ---------------------------------


def test_no_trusted_proxies_returns_the_view_unchanged() -> None:
    v = view({"x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https"}, client="8.8.8.8")
    assert NOBODY.resolve(v) == Origin("8.8.8.8", "http", "backend:8080")


def test_no_trusted_proxies_ignores_forwarded_even_from_a_private_peer() -> None:
    v = view({"forwarded": "for=127.0.0.1;proto=https;host=admin.example.org"})
    assert NOBODY.resolve(v) == Origin(PROXY, "http", "backend:8080")


def test_ipv4_mapped_peer_is_normalised() -> None:
    assert NOBODY.resolve(view(client="::ffff:192.0.2.1")).client == "192.0.2.1"
    assert NOBODY.resolve(view(client="::FFFF:192.0.2.1")).client == "192.0.2.1"
    assert TRUSTED.resolve(view(client="::ffff:8.8.8.8")).client == "8.8.8.8"


def test_missing_or_non_ip_peer_is_returned_as_is() -> None:
    assert TRUSTED.resolve(view({"x-forwarded-for": "1.2.3.4"}, client=None)).client is None
    v = view({"x-forwarded-for": "1.2.3.4"}, client="testclient")
    assert TRUSTED.resolve(v) == Origin("testclient", "http", "backend:8080")


def test_forwarded_headers_present() -> None:
    assert not forwarded_headers_present(view({"user-agent": "x"}))
    for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"):
        assert forwarded_headers_present(view({name: "x"}))


def test_origin_is_frozen() -> None:
    origin = NOBODY.resolve(view())
    with pytest.raises(FrozenInstanceError):
        origin.client = "1.2.3.4"  # type: ignore[misc]
    assert origin == Origin(PROXY, "http", "backend:8080")
    assert hash(origin) == hash(Origin(PROXY, "http", "backend:8080"))


# -- spoofing from an untrusted peer ---------------------------------------------------


def test_spoofed_x_forwarded_for_from_untrusted_peer_is_ignored() -> None:
    v = view({"x-forwarded-for": "1.2.3.4"}, client="203.0.113.9")
    assert TRUSTED.resolve(v).client == "203.0.113.9"


def test_spoofed_proto_and_host_from_untrusted_peer_are_ignored() -> None:
    v = view(
        {"x-forwarded-proto": "https", "x-forwarded-host": "admin.example.org"},
        client="203.0.113.9",
    )
    assert TRUSTED.resolve(v) == Origin("203.0.113.9", "http", "backend:8080")


def test_spoofed_forwarded_from_untrusted_peer_is_ignored() -> None:
    v = view({"forwarded": "for=10.0.0.7;proto=https"}, client="203.0.113.9")
    assert TRUSTED.resolve(v) == Origin("203.0.113.9", "http", "backend:8080")


# -- behind a trusted proxy ------------------------------------------------------------


def test_trusted_proxy_single_hop() -> None:
    v = view(
        {
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-proto": "https",
            "x-forwarded-host": "www.example.org",
        }
    )
    assert TRUSTED.resolve(v) == Origin("203.0.113.7", "https", "www.example.org")


def test_prepended_fake_address_is_not_believed() -> None:
    # the client sent "X-Forwarded-For: 127.0.0.1"; the proxy appended what it saw
    v = view({"x-forwarded-for": "127.0.0.1, 203.0.113.7"})
    assert TRUSTED.resolve(v).client == "203.0.113.7"


def test_prepended_trusted_looking_address_is_not_believed() -> None:
    v = view({"x-forwarded-for": "10.0.0.99, 203.0.113.7"})
    assert TRUSTED.resolve(v).client == "203.0.113.7"


def test_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    v = view({"x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.0.0.3, 10.0.0.2"})
    assert TRUSTED.resolve(v).client == "203.0.113.7"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    v = view({"x-forwarded-for": "10.0.0.5, 10.0.0.3"})
    assert TRUSTED.resolve(v).client == "10.0.0.5"


def test_no_x_forwarded_for_gives_the_peer() -> None:
    assert TRUSTED.resolve(view({"x-forwarded-proto": "https"})) == Origin(
        PROXY, "https", "backend:8080"
    )
    assert TRUSTED.resolve(view()).client == PROXY
    assert TRUSTED.resolve(view({"x-forwarded-for": " , "})).client == PROXY


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("203.0.113.7:51234", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("  203.0.113.7  ", "203.0.113.7"),
        ("203.0.113.7,", "203.0.113.7"),
    ],
)
def test_address_forms(header: str, client: str) -> None:
    assert TRUSTED.resolve(view({"x-forwarded-for": header})).client == client


@pytest.mark.parametrize(
    "header",
    [
        "unknown",
        "1.2.3.4, garbage",
        "1.2.3.4, _hidden",
        "1.2.3.4, 999.1.1.1",
        "1.2.3.4, 01.2.3.4",
        "1.2.3.4, 1.2.3.4:port",
        "1.2.3.4, [::1",
        "1.2.3.4, " + "9" * 200,
    ],
)
def test_a_malformed_hop_makes_the_client_unknown(header: str) -> None:
    # what lies left of a hop nobody vouches for is the client's own text
    assert TRUSTED.resolve(view({"x-forwarded-for": header})).client is None


def test_more_trusted_hops_than_examined_makes_the_client_unknown() -> None:
    hops = ", ".join(["203.0.113.7"] + ["10.0.0.2"] * (MAX_HOPS + 5))
    assert TRUSTED.resolve(view({"x-forwarded-for": hops})).client is None


def test_huge_headers_are_cheap_and_safe() -> None:
    junk = "a," * 200_000
    v = view(
        {
            "x-forwarded-for": junk + "203.0.113.7",
            "x-forwarded-proto": junk + "https",
            "x-forwarded-host": junk + "example.org",
            "forwarded": "for=x;" * 50_000 + ", for=203.0.113.7",
        }
    )
    start = time.perf_counter()
    origin = TRUSTED.resolve(v)
    assert time.perf_counter() - start < 0.1
    assert origin == Origin("203.0.113.7", "https", "example.org")


def test_long_entries_are_not_cached() -> None:
    resolver = ProxyResolver(("10.0.0.0/8",))
    resolver.resolve(view({"x-forwarded-for": "x" * 10_000 + ", " + "1" * 5000}))
    assert all(len(key) <= 80 for key in resolver._cache)


# -- scheme and host -------------------------------------------------------------------


def test_proto_and_host_are_taken_from_the_clients_hop() -> None:
    # edge proxy saw https from the client; the inner proxy got http from the edge
    v = view(
        {
            "x-forwarded-for": "203.0.113.7, 10.0.0.3",
            "x-forwarded-proto": "https, http",
            "x-forwarded-host": "www.example.org, edge.internal",
        }
    )
    assert TRUSTED.resolve(v) == Origin("203.0.113.7", "https", "www.example.org")


def test_single_overwritten_proto_is_used_for_a_deeper_client() -> None:
    v = view({"x-forwarded-for": "203.0.113.7, 10.0.0.3", "x-forwarded-proto": "https"})
    assert TRUSTED.resolve(v).scheme == "https"


def test_client_prepended_proto_is_not_used() -> None:
    # the client sent "X-Forwarded-Proto: https"; the proxy appended "http"
    v = view({"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https, http"})
    assert TRUSTED.resolve(v).scheme == "http"


@pytest.mark.parametrize("proto", ["ftp", "", "javascript", "HTTPS ", "https\r\nx: y"])
def test_unknown_proto_falls_back_to_the_view(proto: str) -> None:
    v = view({"x-forwarded-proto": proto}, scheme="http")
    expected = "https" if proto.strip().lower() == "https" else "http"
    assert TRUSTED.resolve(v).scheme == expected


# -- RFC 7239 Forwarded ----------------------------------------------------------------


def test_forwarded_header() -> None:
    v = view({"forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https;host=example.org'})
    assert TRUSTED.resolve(v) == Origin("2001:db8:cafe::17", "https", "example.org")


def test_forwarded_walks_elements_from_the_right() -> None:
    v = view(
        {
            "forwarded": (
                "for=127.0.0.1;proto=https;host=admin.example.org, "
                "for=203.0.113.7;proto=http;host=www.example.org, for=10.0.0.3;proto=http"
            )
        }
    )
    assert TRUSTED.resolve(v) == Origin("203.0.113.7", "http", "www.example.org")


def test_forwarded_case_and_quoting() -> None:
    v = view({"forwarded": 'For="203.0.113.7";Proto="HTTPS";Host="Example.org"'})
    assert TRUSTED.resolve(v) == Origin("203.0.113.7", "https", "Example.org")


@pytest.mark.parametrize("value", ["for=unknown", "for=_hidden", 'for="', "proto=https, for=x"])
def test_forwarded_unknown_client(value: str) -> None:
    assert TRUSTED.resolve(view({"forwarded": value})).client is None


def test_forwarded_without_for_keeps_the_peer() -> None:
    v = view({"forwarded": "proto=https;host=example.org"})
    assert TRUSTED.resolve(v) == Origin(PROXY, "https", "example.org")


def test_both_header_kinds_agreeing() -> None:
    v = view({"x-forwarded-for": "203.0.113.7", "forwarded": "for=203.0.113.7"})
    assert TRUSTED.resolve(v).client == "203.0.113.7"


def test_both_header_kinds_disagreeing_fail_closed() -> None:
    # the proxy writes one kind; the client wrote the other
    v = view(
        {
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-proto": "http",
            "x-forwarded-host": "www.example.org",
            "forwarded": "for=127.0.0.1;proto=https;host=admin.example.org",
        }
    )
    assert TRUSTED.resolve(v) == Origin(None, "http", "")


# -- helpers and properties ------------------------------------------------------------


def test_normalise_ip() -> None:
    assert normalise_ip("::ffff:1.2.3.4") == "1.2.3.4"
    assert normalise_ip('"[::1]:80"') == "::1"
    assert normalise_ip("1.2.3.4:_obf") == "1.2.3.4"
    assert normalise_ip("localhost") is None
    assert normalise_ip("") is None


def test_is_trusted() -> None:
    assert TRUSTED.is_trusted("10.1.2.3")
    assert TRUSTED.is_trusted("::ffff:10.1.2.3")
    assert TRUSTED.is_trusted("fd00::1")
    assert not TRUSTED.is_trusted("11.0.0.1")
    assert not TRUSTED.is_trusted("garbage")
    assert not TRUSTED.is_trusted(None)
    assert not NOBODY.is_trusted("10.1.2.3")


_header_text = st.text(max_size=200) | st.lists(
    st.sampled_from(
        ["1.2.3.4", "10.0.0.2", "[::1]:80", "unknown", "", " ", '"', "for=", ";", "=", "::ffff:"]
    ),
    max_size=8,
).map(", ".join)


@settings(max_examples=300, deadline=None)
@given(
    xff=st.none() | _header_text,
    proto=st.none() | _header_text,
    host=st.none() | _header_text,
    fwd=st.none() | _header_text,
    peer=st.sampled_from([PROXY, "203.0.113.9", "::ffff:10.0.0.1", "garbage", "fd00::5"]),
)
def test_never_raises_on_arbitrary_header_values(
    xff: str | None, proto: str | None, host: str | None, fwd: str | None, peer: str
) -> None:
    headers = {
        name: value
        for name, value in (
            ("x-forwarded-for", xff),
            ("x-forwarded-proto", proto),
            ("x-forwarded-host", host),
            ("forwarded", fwd),
        )
        if value is not None
    }
    origin = TRUSTED.resolve(view(headers, client=peer))
    assert origin.scheme in ("http", "https")
    if origin.client is not None and origin.client != peer:
        ipaddress.ip_address(origin.client)  # a forwarded client is always a real address
    if not TRUSTED.is_trusted(peer):
        assert origin == Origin(normalise_ip(peer) or peer, "http", "backend:8080")
