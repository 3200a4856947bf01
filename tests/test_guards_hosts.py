"""HostGuard: the Host allowlist, and Host header injection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.errors import ConfigError
from sitewarden.guards.hosts import HostGuard, normalise_host

GUARD = HostGuard(("example.org", "www.example.org", "*.example.net", "[::1]", "127.0.0.1"))


@pytest.mark.parametrize(
    "host",
    [
        "example.org",
        "EXAMPLE.ORG",
        "example.org:8000",
        "example.org.",
        "Example.Org.:443",
        "www.example.org",
        "a.example.net",
        "deep.sub.example.net:8443",
        "[::1]",
        "[::1]:8000",
        "[0:0:0:0:0:0:0:1]:80",
        "127.0.0.1:8080",
    ],
)
def test_allowed(host: str) -> None:
    assert GUARD.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        # Host header injection
        "evil.com",
        "example.org.evil.com",
        "example.org@evil.com",
        "example.org:80@evil",
        "evil.com#example.org",
        "evil.com/example.org",
        "evil.com?example.org",
        "evil.com\\example.org",
        "example.org:evil",
        "example.org:80:80",
        "wwwexample.org",
        "xexample.net",
        # a wildcard is for subdomains only
        "example.net",
        ".example.net",
        "a..example.net",
        # malformed
        "",
        " ",
        "example.org ",
        " example.org",
        "exa mple.org",
        "a/b",
        "example.org\r\nx: y",
        "exämple.org",
        "example.org:",
        "example.org:99999",
        "example.org:123456",
        "example.org..",
        "example_org",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[example.org]",
        "[fe80::1%eth0]",
        "a" * 254,
    ],
)
def test_refused(host: str) -> None:
    assert not GUARD.allows(host)


def test_star_allows_any_well_formed_host_only() -> None:
    guard = HostGuard(("*",))
    assert guard.allows("anything.example")
    assert guard.allows("[2001:db8::1]:443")
    for bad in ("a/b", "a b", "x@y", "", "é.example", "a" * 254, "a:b@c"):
        assert not guard.allows(bad)


def test_length_limit() -> None:
    name = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters
    assert len(name) == 253
    assert HostGuard((name,)).allows(name)
    assert HostGuard((name,)).allows(name + ".")  # the trailing dot does not count
    assert normalise_host("c" + name) is None


def test_ports_in_the_list_are_ignored() -> None:
    guard = HostGuard(("localhost:8000",))
    assert guard.allows("localhost")
    assert guard.allows("localhost:9000")


def test_empty_list_allows_nothing() -> None:
    guard = HostGuard(())
    assert not guard.allows("localhost")


def test_bad_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        HostGuard(("exa mple.org",))
    with pytest.raises(ConfigError, match="allowed_hosts"):
        HostGuard(("*.",))


def test_normalise_host() -> None:
    assert normalise_host("Example.ORG:8080") == "example.org"
    assert normalise_host("example.org.") == "example.org"
    assert normalise_host("[::1]:8000") == "::1"
    assert normalise_host("::1") == "::1"  # a bare IPv6 address (adapters may give one)
    assert normalise_host("example.org@evil") is None


def test_remembered_hosts_are_bounded_and_stay_correct() -> None:
    guard = HostGuard(("*.example.net",))
    for i in range(600):
        assert guard.allows(f"h{i}.example.net")
    assert guard.allows("h1.example.net")
    assert not guard.allows("example.net")
    assert not guard.allows("evil.com")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet="aAz09.-[]:@/ \\", max_size=40))
def test_never_raises_and_only_allows_listed_names(host: str) -> None:
    allowed = GUARD.allows(host)
    name = normalise_host(host)
    if allowed:
        assert name is not None
        assert name in ("example.org", "www.example.org", "::1", "127.0.0.1") or (
            name.endswith(".example.net") and not name.startswith(".")
        )
        assert all(c not in name for c in "@/ \\#?")
