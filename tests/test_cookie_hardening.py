"""Set-Cookie hardening: Secure, HttpOnly and SameSite added, nothing removed or doubled."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.headers.cookies import harden_set_cookie


def attributes(value: str) -> Counter[str]:
    """Count the attribute names of a Set-Cookie value (after the first pair), lower-cased."""
    return Counter(
        part.partition("=")[0].strip().lower() for part in value.split(";")[1:] if part.strip()
    )


def harden(value: str, *, https: bool = True, samesite: str = "Lax", exempt: str = "") -> str:
    return harden_set_cookie(
        value, https=https, samesite=samesite, exempt=frozenset(exempt.split())
    )


def test_plain_cookie_gets_every_flag() -> None:
    assert harden("sid=abc; Path=/") == "sid=abc; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert harden("sid=abc") == "sid=abc; Secure; HttpOnly; SameSite=Lax"


def test_samesite_value_comes_from_the_setting() -> None:
    assert harden("a=1", samesite="Strict").endswith("; SameSite=Strict")


def test_plain_http_gets_no_secure() -> None:
    assert harden("sid=abc; Path=/", https=False) == "sid=abc; Path=/; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(
    "value",
    [
        "id=1; Path=/; Secure; HttpOnly; SameSite=Strict",
        "id=1; secure; HTTPONLY; samesite=lax",
        "id=1;Secure;HttpOnly;SameSite=Lax",
        "id=1; SECURE ; httponly ; SAMESITE = Strict",
    ],
)
def test_already_flagged_cookie_is_returned_as_it_is(value: str) -> None:
    assert harden(value) is value
    assert harden(value, https=False) is value


def test_flags_are_matched_case_insensitively_and_never_doubled() -> None:
    result = harden("id=1; secure; Path=/")
    assert result == "id=1; secure; Path=/; HttpOnly; SameSite=Lax"
    result = harden("id=1; HTTPONLY")
    assert attributes(result) == {"httponly": 1, "secure": 1, "samesite": 1}


def test_explicit_samesite_is_kept() -> None:
    assert (
        harden("id=1; SameSite=Strict", samesite="Lax") == "id=1; SameSite=Strict; Secure; HttpOnly"
    )


def test_samesite_none_gets_secure_even_over_http() -> None:
    # Browsers reject SameSite=None without Secure.
    assert (
        harden("embed=1; SameSite=None", https=False) == "embed=1; SameSite=None; Secure; HttpOnly"
    )
    assert harden("embed=1; samesite=none", https=False).count("Secure") == 1


def test_samesite_none_from_the_setting_gets_secure_over_http() -> None:
    assert harden("a=1", https=False, samesite="None") == "a=1; Secure; HttpOnly; SameSite=None"


@pytest.mark.parametrize("name", ["__Host-sid", "__Secure-sid", "__host-sid"])
def test_prefixed_names_get_secure_over_http(name: str) -> None:
    assert attributes(harden(f"{name}=1; Path=/", https=False))["secure"] == 1


def test_exempt_name_gets_no_httponly_but_the_rest() -> None:
    assert harden("csrftoken=x; Path=/", exempt="csrftoken") == (
        "csrftoken=x; Path=/; Secure; SameSite=Lax"
    )
    # Names are exact: another cookie is hardened fully.
    assert "HttpOnly" in harden("CSRFTOKEN=x", exempt="csrftoken")


@pytest.mark.parametrize(
    "value",
    [
        "sid=; Max-Age=0; Path=/",
        "sid=deleted; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/",
    ],
)
def test_deletions_are_hardened(value: str) -> None:
    # A browser only overwrites a Secure cookie from a Secure Set-Cookie.
    assert harden(value) == value + "; Secure; HttpOnly; SameSite=Lax"


def test_quoted_value_with_semicolon_is_not_split() -> None:
    value = 'a="x;y"; Path=/'
    assert harden(value) == 'a="x;y"; Path=/; Secure; HttpOnly; SameSite=Lax'
    # A flag-like text inside the quotes is data, not a flag: the real flag is still added.
    assert harden('a="x; Secure; HttpOnly"', https=True) == (
        'a="x; Secure; HttpOnly"; Secure; HttpOnly; SameSite=Lax'
    )
    # An unterminated quote falls back to the first ';'.
    assert harden('a="x; Secure') == 'a="x; Secure; HttpOnly; SameSite=Lax'


def test_quoted_name_is_used_for_the_exemption() -> None:
    assert "HttpOnly" not in harden('pref="a;b"', exempt="pref")


def test_trailing_separator_is_not_doubled() -> None:
    assert harden("a=b;") == "a=b; Secure; HttpOnly; SameSite=Lax"
    assert harden("a=b; Path=/ ;  ") == "a=b; Path=/; Secure; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize("value", ["", "   ", "novalue", "flag; a=b", ";=", "Secure; HttpOnly"])
def test_malformed_values_are_returned_unchanged(value: str) -> None:
    assert harden(value) is value


def test_empty_name_is_still_a_cookie() -> None:
    # Browsers store "=v" as a cookie with an empty name (RFC 6265bis); it gets the flags.
    assert harden("=v") == "=v; Secure; HttpOnly; SameSite=Lax"


# -- properties ----------------------------------------------------------------------

_attribute = st.sampled_from(
    [
        "Path=/",
        "Domain=example.org",
        "Max-Age=0",
        "secure",
        "Secure",
        "HttpOnly",
        "httponly",
        "SameSite=Lax",
        "samesite=None",
        "SameSite=Strict",
        "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["sid", "__Host-s", "pref", "a"]),
    val=st.sampled_from(["1", "", '"x;y"', "abc=def"]),
    attrs=st.lists(_attribute, max_size=5),
    https=st.booleans(),
    samesite=st.sampled_from(["Lax", "Strict", "None"]),
)
def test_hardening_invariants(
    name: str, val: str, attrs: list[str], https: bool, samesite: str
) -> None:
    value = "; ".join([f"{name}={val}", *attrs])
    exempt = frozenset({"pref"})
    result = harden_set_cookie(value, https=https, samesite=samesite, exempt=exempt)
    # Nothing removed: the app's text is a prefix.
    assert result.startswith(value.rstrip(" ;"))
    # Idempotent.
    assert harden_set_cookie(result, https=https, samesite=samesite, exempt=exempt) == result
    head = f"{name}={val}"
    counts = attributes(";" + result[len(head) :])
    original = attributes(";" + value[len(head) :])
    for flag in ("secure", "httponly", "samesite"):
        # Never doubled: what the app wrote stays as it is, a missing flag is added once.
        assert counts[flag] - original[flag] in (0, 1)
        assert counts[flag] <= max(original[flag], 1)
    assert counts["samesite"] >= 1
    if name != "pref":
        assert counts["httponly"] >= 1
    # The last SameSite attribute is the one browsers apply; None needs Secure.
    sites = [
        part.partition("=")[2].strip().lower()
        for part in result[len(head) :].split(";")
        if part.partition("=")[0].strip().lower() == "samesite"
    ]
    if https or sites[-1] == "none":
        assert counts["secure"] >= 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_never_raises(value: str) -> None:
    result = harden_set_cookie(value, https=True, samesite="Lax")
    assert isinstance(result, str)
