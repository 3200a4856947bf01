"""The automatic CSRF check: each attack is refused, the legitimate request beside it passes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.csrf import create_token
from sitewarden.guards.csrf_guard import (
    MAX_BODY_BYTES,
    REASON_BAD_FETCH_SITE,
    REASON_BAD_ORIGIN,
    REASON_BAD_REFERER,
    REASON_BAD_TOKEN,
    REASON_CROSS_SITE,
    REASON_INSECURE_REFERER,
    REASON_MALFORMED_REFERER,
    REASON_NO_TOKEN,
    REASON_NULL_ORIGIN,
    REASON_SAME_SITE,
    CsrfGuard,
    Decision,
)
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy, load_policy
from sitewarden.web.request import RequestView

SITE = "https://example.org"
URLENCODED = "application/x-www-form-urlencoded"
BOUNDARY = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@pytest.fixture(scope="module")
def keys() -> KeyManager:
    return KeyManager.open("memory://")


def make_guard(keys: KeyManager, **settings: object) -> CsrfGuard:
    return CsrfGuard(load_policy(**settings), keys)


@pytest.fixture(scope="module")
def guard(keys: KeyManager) -> CsrfGuard:
    return make_guard(
        keys,
        csrf_trusted_origins=["https://sso.partner.example", "https://*.cdn.example.net"],
        csrf_exempt_paths=["/api/webhooks/*", "/login/callback"],
    )


def post(
    headers: Mapping[str, str] | None = None, *, path: str = "/edit", method: str = "POST"
) -> RequestView:
    return RequestView(
        method=method, scheme="https", host="example.org", path=path, headers=dict(headers or {})
    )


def refused(decision: Decision, reason: str) -> bool:
    return decision == Decision(False, reason, False)


ALLOWED = Decision(True, None, False)


def multipart(*parts: tuple[str, str], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for disposition, value in parts:
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value.encode() + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# -- rule 1: what is never checked ------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_are_never_checked(guard: CsrfGuard, method: str) -> None:
    view = post({"sec-fetch-site": "cross-site", "origin": "https://evil.example"}, method=method)
    assert guard.decide(view, SITE, "alice") == ALLOWED


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "get"])
def test_every_other_method_is_checked(guard: CsrfGuard, method: str) -> None:
    """Methods are case-sensitive: a lower-case ``get`` is not the safe GET."""
    view = post({"sec-fetch-site": "cross-site"}, method=method)
    assert refused(guard.decide(view, SITE, "alice"), REASON_CROSS_SITE)


def test_off_mode_checks_nothing(keys: KeyManager) -> None:
    guard = make_guard(keys, csrf="off")
    assert guard.decide(post({"sec-fetch-site": "cross-site"}), SITE, "alice") == ALLOWED
    assert guard.decide(post(), SITE, "alice") == ALLOWED
    assert guard.decide_with_body(post({"content-type": URLENCODED}), "a", b"x=1") == ALLOWED


@pytest.mark.parametrize("path", ["/api/webhooks/github", "/api/webhooks/a/b", "/login/callback"])
def test_exempt_paths_pass(guard: CsrfGuard, path: str) -> None:
    view = post({"sec-fetch-site": "cross-site"}, path=path)
    assert guard.decide(view, SITE, None) == ALLOWED


@pytest.mark.parametrize(
    "path",
    [
        "/api/webhooks",  # the pattern needs something after the slash
        "/login/callback/x",
        "/Login/callback",  # case-sensitive
        "/x/api/webhooks/a",  # anchored at the start
        "/api/webhooks/../../admin/delete",  # dot segments: may be routed elsewhere
        "/api/webhooks/%2e%2e/%2E%2E/admin",
        "/api/webhooks/./x",
    ],
)
def test_non_exempt_and_traversal_paths_are_checked(guard: CsrfGuard, path: str) -> None:
    view = post({"sec-fetch-site": "cross-site"}, path=path)
    assert refused(guard.decide(view, SITE, None), REASON_CROSS_SITE)


def test_per_request_exemption(guard: CsrfGuard) -> None:
    view = post({"sec-fetch-site": "cross-site"})
    assert guard.decide(view, SITE, "alice", exempt=True) == ALLOWED
    assert refused(guard.decide(view, SITE, "alice"), REASON_CROSS_SITE)


# -- rule 2: Fetch Metadata ---------------------------------------------------------------


def test_cross_site_form_post_is_refused(guard: CsrfGuard) -> None:
    """The classic attack: an auto-submitting form on evil.example."""
    view = post(
        {
            "sec-fetch-site": "cross-site",
            "origin": "https://evil.example",
            "referer": "https://evil.example/cats.html",
            "content-type": URLENCODED,
        }
    )
    assert refused(guard.decide(view, SITE, "alice"), REASON_CROSS_SITE)


def test_cross_site_refused_even_with_a_valid_token(guard: CsrfGuard, keys: KeyManager) -> None:
    """Fetch Metadata decides first: a leaked token does not open the cross-site door."""
    view = post({"sec-fetch-site": "cross-site", "x-csrf-token": create_token(keys, "alice")})
    assert refused(guard.decide(view, SITE, "alice"), REASON_CROSS_SITE)


def test_sibling_subdomain_is_refused(guard: CsrfGuard) -> None:
    """A page on user-content.example.org is same-site, but not this site."""
    view = post({"sec-fetch-site": "same-site", "origin": "https://user-content.example.org"})
    assert refused(guard.decide(view, SITE, "alice"), REASON_SAME_SITE)


@pytest.mark.parametrize("value", ["same-origin", "none", "Same-Origin", " same-origin "])
def test_same_origin_and_user_initiated_pass(guard: CsrfGuard, value: str) -> None:
    view = post({"sec-fetch-site": value, "origin": SITE})
    assert guard.decide(view, SITE, "alice") == ALLOWED


def test_same_origin_needs_no_origin_header(guard: CsrfGuard) -> None:
    assert guard.decide(post({"sec-fetch-site": "same-origin"}), SITE, "alice") == ALLOWED


@pytest.mark.parametrize("value", ["", "cross-origin", "same-origin, cross-site", "\x00"])
def test_unknown_fetch_site_values_count_as_cross_site(guard: CsrfGuard, value: str) -> None:
    view = post({"sec-fetch-site": value, "origin": SITE})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_FETCH_SITE)


@pytest.mark.parametrize(
    "origin",
    ["https://sso.partner.example", "https://eu.cdn.example.net", "https://a.b.cdn.example.net"],
)
@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site", "weird"])
def test_trusted_origins_pass_fetch_metadata(
    guard: CsrfGuard, origin: str, fetch_site: str
) -> None:
    view = post({"sec-fetch-site": fetch_site, "origin": origin})
    assert guard.decide(view, SITE, "alice") == ALLOWED


@pytest.mark.parametrize(
    "origin",
    [
        "https://cdn.example.net",  # the wildcard covers subdomains, not the apex
        "https://evilcdn.example.net",
        "https://eu.cdn.example.net.evil.com",
        "http://eu.cdn.example.net",  # scheme differs
        "https://eu.cdn.example.net:8443",  # port differs
        "https://.cdn.example.net",
        "https://a..cdn.example.net",
        "https://x@eu.cdn.example.net",
        "https://evil.com/.cdn.example.net",
        "https://sso.partner.example.evil.com",
        "http://sso.partner.example",
    ],
)
def test_lookalikes_of_trusted_origins_are_refused(guard: CsrfGuard, origin: str) -> None:
    view = post({"sec-fetch-site": "cross-site", "origin": origin})
    assert refused(guard.decide(view, SITE, "alice"), REASON_CROSS_SITE)
    assert refused(guard.decide(post({"origin": origin}), SITE, "alice"), REASON_BAD_ORIGIN)


def test_trusted_origin_with_port_and_case(keys: KeyManager) -> None:
    guard = make_guard(
        keys, csrf_trusted_origins=["https://*.Example.COM:8443", "https://A.test:443"]
    )
    for origin in ("https://x.example.com:8443", "https://a.test", "HTTPS://A.TEST:443"):
        view = post({"sec-fetch-site": "cross-site", "origin": origin})
        assert guard.decide(view, SITE, None) == ALLOWED, origin
    view = post({"sec-fetch-site": "cross-site", "origin": "https://x.example.com"})
    assert not guard.decide(view, SITE, None).allowed


# -- rule 3: Origin --------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [SITE, "https://EXAMPLE.org", "https://example.org:443"])
def test_matching_origin_passes(guard: CsrfGuard, origin: str) -> None:
    assert guard.decide(post({"origin": origin}), SITE, "alice") == ALLOWED


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://example.org.evil.com",
        "https://evil.com?.example.org",
        "http://example.org",  # scheme mismatch: a network attacker owns plain HTTP
        "https://example.org:8443",  # port mismatch: another server
        "https://www.example.org",
        "https://example.org/",
        "https://example.org, https://evil.example",
        "",
    ],
)
def test_mismatched_origin_is_refused(guard: CsrfGuard, origin: str) -> None:
    assert refused(guard.decide(post({"origin": origin}), SITE, "alice"), REASON_BAD_ORIGIN)


def test_origin_check_uses_the_site_origin_given(guard: CsrfGuard) -> None:
    """Behind a proxy the site origin is resolved by the engine; the port is part of it."""
    view = post({"origin": "http://localhost:8080"})
    assert guard.decide(view, "http://localhost:8080", None) == ALLOWED
    assert guard.decide(view, "http://LOCALHOST:8080", None) == ALLOWED
    assert refused(guard.decide(view, "http://localhost:8081", None), REASON_BAD_ORIGIN)
    assert (
        guard.decide(post({"origin": "http://example.org"}), "http://example.org:80", None)
        == ALLOWED
    )


def test_null_origin_is_refused(guard: CsrfGuard, keys: KeyManager) -> None:
    """A sandboxed iframe on any site sends ``Origin: null``."""
    assert refused(guard.decide(post({"origin": "null"}), SITE, "alice"), REASON_NULL_ORIGIN)
    # even with a Referer or a token: the Origin header decides
    view = post(
        {"origin": "null", "referer": SITE + "/", "x-csrf-token": create_token(keys, "alice")}
    )
    assert refused(guard.decide(view, SITE, "alice"), REASON_NULL_ORIGIN)


def test_trusted_origin_passes_origin_check(guard: CsrfGuard) -> None:
    assert guard.decide(post({"origin": "https://sso.partner.example"}), SITE, None) == ALLOWED


# -- rule 4: Referer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "referer",
    [
        SITE,
        SITE + "/",
        SITE + "/folder/edit?x=1#top",
        "https://example.org:443/edit",
        "HTTPS://Example.ORG/edit",
        "https://eu.cdn.example.net/page",  # trusted
    ],
)
def test_matching_referer_passes(guard: CsrfGuard, referer: str) -> None:
    assert guard.decide(post({"referer": referer}), SITE, "alice") == ALLOWED


@pytest.mark.parametrize(
    "referer",
    [
        "https://evil.example/",
        "https://example.org.evil.com/",
        "https://evil.com\\example.org/",
        "https://evil.com\\@example.org/",
        "https://example.org:8443/",
        "https://evil.com?https://example.org/",
        "android-app://com.example/",
    ],
)
def test_mismatched_referer_is_refused(guard: CsrfGuard, referer: str) -> None:
    assert refused(guard.decide(post({"referer": referer}), SITE, "alice"), REASON_BAD_REFERER)


@pytest.mark.parametrize(
    "referer",
    [
        "https://example.org@evil.com/",  # userinfo: the host is evil.com
        "example.org/edit",
        "/edit",
        "https:///edit",
        "",
        "1https://example.org/",
        "x" * 5000,
    ],
)
def test_malformed_referer_is_refused(guard: CsrfGuard, referer: str) -> None:
    decision = guard.decide(post({"referer": referer}), SITE, "alice")
    assert refused(decision, REASON_MALFORMED_REFERER)


def test_http_referer_on_https_site_is_refused(guard: CsrfGuard) -> None:
    """A network attacker can inject a form into any plain-HTTP page of the same host."""
    view = post({"referer": "http://example.org/edit"})
    assert refused(guard.decide(view, SITE, "alice"), REASON_INSECURE_REFERER)
    # on a plain-HTTP site the same Referer is the site itself
    assert guard.decide(view, "http://example.org", "alice") == ALLOWED


def test_origin_wins_over_referer(guard: CsrfGuard) -> None:
    view = post({"origin": "https://evil.example", "referer": SITE + "/edit"})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_ORIGIN)


# -- rule 5: the authenticator ----------------------------------------------------------------


def test_no_headers_and_no_token_is_refused(guard: CsrfGuard) -> None:
    assert refused(guard.decide(post(), SITE, "alice"), REASON_NO_TOKEN)
    view = post({"content-type": "application/json"})
    assert refused(guard.decide(view, SITE, "alice"), REASON_NO_TOKEN)


def test_valid_token_in_header_passes(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"x-csrf-token": create_token(keys, "alice")})
    assert guard.decide(view, SITE, "alice") == ALLOWED
    anon = post({"x-csrf-token": create_token(keys)})
    assert guard.decide(anon, SITE, None) == ALLOWED


def test_token_for_another_user_is_refused(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"x-csrf-token": create_token(keys, "mallory")})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_TOKEN)


def test_anonymous_token_for_a_signed_in_user_is_refused(
    guard: CsrfGuard, keys: KeyManager
) -> None:
    """Login CSRF's cousin: the attacker's own anonymous token planted in a victim's request."""
    view = post({"x-csrf-token": create_token(keys)})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_TOKEN)
    # and a user's token is no good once signed out
    view = post({"x-csrf-token": create_token(keys, "alice")})
    assert refused(guard.decide(view, SITE, None), REASON_BAD_TOKEN)


def test_token_for_another_form_is_refused(guard: CsrfGuard, keys: KeyManager) -> None:
    """The automatic check accepts only the general token (extra="")."""
    view = post({"x-csrf-token": create_token(keys, "alice", extra="delete-site")})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_TOKEN)


@pytest.mark.parametrize("token", ["", "x", "A" * 64, "é" * 64, "null"])
def test_forged_header_tokens_are_refused(guard: CsrfGuard, token: str) -> None:
    view = post({"x-csrf-token": token, "content-type": URLENCODED})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_TOKEN)


def test_custom_header_and_field_names(keys: KeyManager) -> None:
    guard = make_guard(keys, csrf_header="X-Authenticator", csrf_field="csrf!token")
    token = create_token(keys, "alice")
    assert guard.decide(post({"x-authenticator": token}), SITE, "alice") == ALLOWED
    assert refused(guard.decide(post({"x-csrf-token": token}), SITE, "alice"), REASON_NO_TOKEN)
    view = post({"content-type": URLENCODED})
    body = f"a=1&csrf%21token={token}".encode()
    assert guard.decide_with_body(view, "alice", body) == ALLOWED
    mp = post({"content-type": MULTIPART})
    assert (
        guard.decide_with_body(mp, "alice", multipart(('form-data; name="csrf!token"', token)))
        == ALLOWED
    )


@pytest.mark.parametrize(
    "content_type",
    [URLENCODED, URLENCODED + "; charset=UTF-8", "Application/X-WWW-Form-Urlencoded", MULTIPART],
)
def test_form_posts_without_header_token_need_the_body(guard: CsrfGuard, content_type: str) -> None:
    decision = guard.decide(post({"content-type": content_type}), SITE, "alice")
    assert decision == Decision(False, REASON_NO_TOKEN, True)  # fails closed if ignored


def test_valid_token_in_urlencoded_body_passes(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": URLENCODED + "; charset=UTF-8"})
    assert guard.decide(view, SITE, "alice").needs_body
    token = create_token(keys, "alice")
    body = f"title=Hello+world&_authenticator={token}&text=%C3%A9".encode()
    assert guard.decide_with_body(view, "alice", body) == ALLOWED
    # the token of another user in the same place
    body = f"_authenticator={create_token(keys, 'mallory')}".encode()
    assert refused(guard.decide_with_body(view, "alice", body), REASON_BAD_TOKEN)
    assert refused(guard.decide_with_body(view, "alice", b"title=x"), REASON_NO_TOKEN)
    assert refused(guard.decide_with_body(view, "alice", b""), REASON_NO_TOKEN)


def test_valid_token_in_multipart_body_passes(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": MULTIPART})
    assert guard.decide(view, SITE, "alice").needs_body
    token = create_token(keys, "alice")
    body = multipart(
        ('form-data; name="title"', "Hello"),
        ('form-data; name="_authenticator"', token),
        ('form-data; name="file"; filename="a.txt"', "contents"),
    )
    assert guard.decide_with_body(view, "alice", body) == ALLOWED
    # with a preamble, a quoted boundary and an unquoted name
    quoted = post({"content-type": f'multipart/form-data; boundary="{BOUNDARY}"'})
    body = b"preamble\r\n" + multipart(("form-data; name=_authenticator", token))
    assert guard.decide_with_body(quoted, "alice", body) == ALLOWED


def test_multipart_token_before_a_large_file_is_found_in_the_prefix(
    guard: CsrfGuard, keys: KeyManager
) -> None:
    """The adapter passes only the first MAX_BODY_BYTES of a big upload."""
    view = post({"content-type": MULTIPART})
    token = create_token(keys, "alice")
    body = multipart(
        ('form-data; name="_authenticator"', token),
        ('form-data; name="file"; filename="big.bin"', "x" * (MAX_BODY_BYTES * 2)),
    )
    assert guard.decide_with_body(view, "alice", body[:MAX_BODY_BYTES]) == ALLOWED
    assert guard.decide_with_body(view, "alice", body) == ALLOWED


def test_multipart_lookalike_parts_are_not_the_field(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": MULTIPART})
    token = create_token(keys, "alice")
    cases = [
        # a file upload named _authenticator is not the field
        multipart(('form-data; name="_authenticator"; filename="t.txt"', token)),
        multipart(('form-data; name="x_authenticator"', token)),
        multipart(('form-data; name="_authenticatorx"', token)),
        multipart(('form-data; filename="_authenticator"', token)),
        multipart(('attachment; name="_authenticator"', token)),
        # the field's name appearing only inside another field's value
        multipart(('form-data; name="text"', f'name="_authenticator"\r\n\r\n{token}')),
    ]
    for body in cases:
        assert refused(guard.decide_with_body(view, "alice", body), REASON_NO_TOKEN), body


def test_urlencoded_lookalike_fields_are_not_the_field(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": URLENCODED})
    token = create_token(keys, "alice")
    for body in (
        f"x_authenticator={token}",
        f"_authenticatorx={token}",
        f"text=a_authenticator={token}",
        f"text=%26_authenticator%3D{token}",
    ):
        decision = guard.decide_with_body(view, "alice", body.encode())
        assert refused(decision, REASON_NO_TOKEN), body
    # the real field after a lookalike is still found
    body = f"x_authenticator=1&_authenticator={token}".encode()
    assert guard.decide_with_body(view, "alice", body) == ALLOWED


def test_big_urlencoded_form_is_cheap(guard: CsrfGuard, keys: KeyManager) -> None:
    """Only the field's own segment is decoded, wherever it is in a large form."""
    view = post({"content-type": URLENCODED})
    token = create_token(keys, "alice")
    body = b"x=1&" * 300_000 + f"_authenticator={token}".encode()
    start = time.perf_counter()
    assert guard.decide_with_body(view, "alice", body[:MAX_BODY_BYTES]).reason == REASON_NO_TOKEN
    body = b"x=1&" * 20_000 + f"_authenticator={token}".encode()
    assert guard.decide_with_body(view, "alice", body) == ALLOWED
    assert time.perf_counter() - start < 0.1


def test_body_token_for_the_wrong_user_is_refused(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": MULTIPART})
    body = multipart(('form-data; name="_authenticator"', create_token(keys)))
    assert refused(guard.decide_with_body(view, "alice", body), REASON_BAD_TOKEN)


MALFORMED_MULTIPART = [
    b"",
    b"--",
    f"--{BOUNDARY}".encode(),
    f"--{BOUNDARY}\r\n".encode(),
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_authenticator"'.encode(),
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_authenticator"\r\n\r\n'.encode(),
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_authenticator"\r\n\r\nabc'.encode(),
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_authenticator"\r\n\r\n'.encode()
    + b"A" * 100_000,
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="_authenticator'.encode()
    + b"\xff" * 10_000,
    f"--{BOUNDARY}\r\n".encode() + b"X-Junk: " + b"j" * 100_000 + b"\r\n\r\n_authenticator",
    f"--{BOUNDARY}XYZ\r\n".encode() + b'Content-Disposition: form-data; name="_authenticator"',
    (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n' * 5000).encode()
    + b"_authenticator",
    bytes(range(256)) * 100 + b"_authenticator",
]


@pytest.mark.parametrize("body", MALFORMED_MULTIPART, ids=range(len(MALFORMED_MULTIPART)))
def test_malformed_multipart_is_refused_cleanly(guard: CsrfGuard, body: bytes) -> None:
    view = post({"content-type": MULTIPART})
    decision = guard.decide_with_body(view, "alice", body)
    assert not decision.allowed
    assert decision.reason in (REASON_NO_TOKEN, REASON_BAD_TOKEN)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary="',
        "multipart/form-data; boundary=" + "b" * 100,
        "multipart/form-data; boundary=bad\x00boundary",
        "multipart/form-data; boundary=é",
    ],
)
def test_bad_multipart_boundaries_are_refused(
    guard: CsrfGuard, keys: KeyManager, content_type: str
) -> None:
    body = multipart(('form-data; name="_authenticator"', create_token(keys, "alice")))
    decision = guard.decide_with_body(post({"content-type": content_type}), "alice", body)
    assert refused(decision, REASON_NO_TOKEN)


@pytest.mark.parametrize(
    "body",
    [
        b"_authenticator=" + b"A" * 2_000_000,  # a huge field
        b"&" * 50_000 + b"_authenticator=x",  # more fields than allowed
        b"_authenticator=%ZZ%",
        b"_authenticator=\xff\xfe\x00",
        bytes(range(256)) * 1000 + b"&_authenticator=",
        b"_authenticator",
    ],
)
def test_malformed_urlencoded_is_refused_cleanly(guard: CsrfGuard, body: bytes) -> None:
    view = post({"content-type": URLENCODED})
    decision = guard.decide_with_body(view, "alice", body)
    assert not decision.allowed
    assert decision.reason in (REASON_NO_TOKEN, REASON_BAD_TOKEN)


def test_body_of_another_content_type_is_not_searched(guard: CsrfGuard, keys: KeyManager) -> None:
    view = post({"content-type": "text/plain"})
    body = f"_authenticator={create_token(keys, 'alice')}".encode()
    assert refused(guard.decide_with_body(view, "alice", body), REASON_NO_TOKEN)


def test_header_token_decides_before_the_body(guard: CsrfGuard, keys: KeyManager) -> None:
    """A bad header token is refused at once; the body is not consulted."""
    view = post({"x-csrf-token": "forged", "content-type": URLENCODED})
    assert refused(guard.decide(view, SITE, "alice"), REASON_BAD_TOKEN)


# -- log-only rollout ----------------------------------------------------------------------


def test_log_only_allows_but_reports(keys: KeyManager) -> None:
    guard = make_guard(keys, csrf="log-only")
    cases = {
        REASON_CROSS_SITE: post({"sec-fetch-site": "cross-site"}),
        REASON_BAD_ORIGIN: post({"origin": "https://evil.example"}),
        REASON_NULL_ORIGIN: post({"origin": "null"}),
        REASON_BAD_REFERER: post({"referer": "https://evil.example/"}),
        REASON_NO_TOKEN: post(),
        REASON_BAD_TOKEN: post({"x-csrf-token": "forged"}),
    }
    for reason, view in cases.items():
        assert guard.decide(view, SITE, "alice") == Decision(True, reason, False)
    assert guard.decide(post({"origin": SITE}), SITE, "alice") == ALLOWED


def test_log_only_still_reads_form_bodies(keys: KeyManager) -> None:
    guard = make_guard(keys, csrf="log-only")
    view = post({"content-type": URLENCODED})
    assert guard.decide(view, SITE, "alice") == Decision(False, REASON_NO_TOKEN, True)
    assert guard.decide_with_body(view, "alice", b"x=1") == Decision(True, REASON_NO_TOKEN, False)
    body = f"_authenticator={create_token(keys, 'alice')}".encode()
    assert guard.decide_with_body(view, "alice", body) == ALLOWED


def test_vary_headers() -> None:
    assert CsrfGuard.vary_headers == ("Sec-Fetch-Site", "Origin")


# -- the refusal page ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/json, text/plain, */*",  # axios, fetch wrappers
        "text/html;q=0.5, application/json",
        "application/*",
        "APPLICATION/JSON; q=0.9",
    ],
)
def test_json_refusal(guard: CsrfGuard, accept: str) -> None:
    reply = guard.refusal(REASON_CROSS_SITE, accept)
    assert reply.status == 403
    headers = dict(reply.headers)
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert json.loads(reply.body) == {"error": "csrf", "reason": REASON_CROSS_SITE}


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "*/*",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",  # a browser
        "application/json;q=0, */*",
        "application/json;q=0.5, text/html",
        "application/json, text/html",
        "application/json;q=nan",
        "application/json;q=2",
        "text/plain",
        "garbage;;;,,,==",
    ],
)
def test_html_refusal(guard: CsrfGuard, accept: str) -> None:
    reply = guard.refusal(REASON_BAD_ORIGIN, accept)
    assert reply.status == 403
    headers = dict(reply.headers)
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    page = reply.body.decode()
    assert REASON_BAD_ORIGIN in page
    # renders under default-src 'none': nothing to load, nothing inline
    for forbidden in ("<script", "<style", "style=", "<link", "<img", "src=", "url("):
        assert forbidden not in page.lower()
    assert not re.search(r"\bon[a-z]+\s*=", page, re.IGNORECASE)  # no event handlers


def test_html_refusal_escapes_the_reason(guard: CsrfGuard) -> None:
    reply = guard.refusal('<script>alert("x")</script>&', "text/html")
    page = reply.body.decode()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    odd = guard.refusal("\ud800 lone surrogate", "text/html")
    assert odd.status == 403


# -- robustness and cost -------------------------------------------------------------------

header_values = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["same-origin", "cross-site", "same-site", "none", "null", SITE, ""]),
    st.builds(lambda s: SITE + s, st.text(max_size=50)),
    st.builds(lambda s: "https://" + s, st.text(max_size=50)),
)


@settings(max_examples=400, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["sec-fetch-site", "origin", "referer", "x-csrf-token", "content-type", "accept"]
        ),
        header_values,
    ),
    method=st.sampled_from(["POST", "GET", "DELETE", "post", ""]),
    path=st.text(max_size=40),
    userid=st.one_of(st.none(), st.text(max_size=20)),
    body=st.binary(max_size=500),
)
def test_arbitrary_headers_never_raise(
    guard: CsrfGuard,
    headers: dict[str, str],
    method: str,
    path: str,
    userid: str | None,
    body: bytes,
) -> None:
    view = RequestView(
        method=method, scheme="https", host="example.org", path=path, headers=headers
    )
    decision = guard.decide(view, SITE, userid)
    assert isinstance(decision, Decision)
    if decision.reason is not None and not decision.allowed:
        reply = guard.refusal(decision.reason, headers.get("accept", ""))
        assert reply.status == 403
    for content_type in (headers.get("content-type", ""), URLENCODED, MULTIPART):
        with_type = RequestView(
            method=method,
            scheme="https",
            host="example.org",
            path=path,
            headers={**headers, "content-type": content_type},
        )
        result = guard.decide_with_body(with_type, userid, body)
        assert not result.allowed


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.binary(max_size=300),
    suffix=st.binary(max_size=300),
    boundary=st.sampled_from([BOUNDARY, "x", "a'b()+_,-./:=?"]),
)
def test_arbitrary_multipart_bytes_never_raise(
    guard: CsrfGuard, prefix: bytes, suffix: bytes, boundary: str
) -> None:
    view = post({"content-type": f'multipart/form-data; boundary="{boundary}"'})
    body = prefix + multipart(('form-data; name="_authenticator"', "t" * 64), boundary=boundary)
    body = body + suffix
    for cut in (len(prefix), len(body) // 2, len(body)):
        assert not guard.decide_with_body(view, "alice", body[:cut]).allowed


def test_per_request_cost_is_small(guard: CsrfGuard) -> None:
    """The common cases are dictionary gets and string compares: a few µs at most."""
    views = [
        post({"sec-fetch-site": "same-origin", "origin": SITE}),
        post({"origin": SITE}),
        post({"referer": SITE + "/edit"}),
        post({"sec-fetch-site": "cross-site", "origin": "https://eu.cdn.example.net"}),
    ]
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        for view in views:
            guard.decide(view, SITE, "alice")
    per_call = (time.perf_counter() - start) / (n * len(views))
    assert per_call < 50e-6  # generous for slow CI; typically ~1 µs


def test_policy_default_is_enforce(keys: KeyManager) -> None:
    guard = CsrfGuard(Policy(), keys)
    assert guard.mode == "enforce"
    assert refused(guard.decide(post(), SITE, None), REASON_NO_TOKEN)
