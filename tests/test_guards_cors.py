"""CorsGuard: preflights and response headers, and the classic CORS holes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.errors import ConfigError
from sitewarden.guards.cors import CorsGuard
from sitewarden.policy import Policy
from sitewarden.web.request import Reply, RequestView

APP = "https://app.example.org"


def guard(**settings: Any) -> CorsGuard:
    return CorsGuard(Policy(**settings))


def preflight(
    origin: str | None = APP,
    method: str | None = "POST",
    headers: str | None = None,
    path: str = "/api/items",
) -> RequestView:
    h: dict[str, str] = {}
    if origin is not None:
        h["origin"] = origin
    if method is not None:
        h["access-control-request-method"] = method
    if headers is not None:
        h["access-control-request-headers"] = headers
    return RequestView("OPTIONS", "https", "api.example.org", path, headers=h)


def actual(origin: str | None = APP, path: str = "/api/items") -> RequestView:
    h = {} if origin is None else {"origin": origin}
    return RequestView("GET", "https", "api.example.org", path, headers=h)


def as_dict(reply: Reply | None) -> dict[str, str]:
    assert reply is not None
    return dict(reply.headers)


def has_cors(headers: list[tuple[str, str]]) -> bool:
    return any(name.startswith("access-control-") for name, _ in headers)


# -- inert -----------------------------------------------------------------------------


def test_without_origins_the_guard_is_inert() -> None:
    g = guard()
    assert g.preflight(preflight()) is None
    assert g.response_headers(actual()) == []


# -- preflights ------------------------------------------------------------------------


def test_allowed_preflight() -> None:
    g = guard(
        cors_origins=(APP,),
        cors_allow_methods=("GET", "POST", "PUT"),
        cors_allow_headers=("X-Requested-With",),
        cors_max_age=300,
    )
    reply = g.preflight(preflight(method="PUT", headers="x-requested-with, Content-Type"))
    assert reply is not None and reply.status == 204
    h = as_dict(reply)
    assert h["access-control-allow-origin"] == APP
    assert h["access-control-allow-methods"] == "GET, POST, PUT"
    assert h["access-control-allow-headers"].split(", ")[0] == "x-requested-with"
    assert "content-type" in h["access-control-allow-headers"]
    assert h["access-control-max-age"] == "300"
    assert h["vary"] == "Origin"
    assert "access-control-allow-credentials" not in h


def test_preflight_with_credentials_echoes_the_exact_origin() -> None:
    g = guard(cors_origins=(APP,), cors_allow_credentials=True)
    h = as_dict(g.preflight(preflight()))
    assert h["access-control-allow-origin"] == APP
    assert h["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://app.example.org.evil.example",
        "https://evilapp.example.org",
        "http://app.example.org",
        "https://app.example.org:8443",
        "https://app.example.org/",
        "https://APP.example.org.",
        "https://app.example.org, https://evil.example",
        "null",
        "",
        "*",
    ],
)
@pytest.mark.parametrize("credentials", [False, True])
def test_disallowed_origin_preflight_gets_403_without_cors_headers(
    origin: str, credentials: bool
) -> None:
    g = guard(cors_origins=(APP,), cors_allow_credentials=credentials)
    reply = g.preflight(preflight(origin=origin))
    assert reply is not None and reply.status == 403
    assert not has_cors(reply.headers)
    assert not has_cors(g.response_headers(actual(origin=origin)))


def test_disallowed_method_is_refused() -> None:
    g = guard(cors_origins=(APP,), cors_allow_methods=("GET", "POST"))
    # methods are case-sensitive: "post " is not POST
    for method in ("DELETE", "PUT", "post ", "TRACE", "", "GET, DELETE"):
        reply = g.preflight(preflight(method=method))
        assert reply is not None and reply.status == 403, method
        assert not has_cors(reply.headers)


def test_disallowed_header_is_refused() -> None:
    g = guard(cors_origins=(APP,), cors_allow_headers=("X-Api-Key",))
    for requested in ("authorization", "x-api-key, x-evil", "x-api-key,,cookie", "x" * 5000):
        reply = g.preflight(preflight(headers=requested))
        assert reply is not None and reply.status == 403, requested
        assert not has_cors(reply.headers)
    ok = g.preflight(preflight(headers="X-API-KEY,content-type, accept"))
    assert ok is not None and ok.status == 204


def test_not_a_preflight_is_left_to_the_application() -> None:
    g = guard(cors_origins=(APP,), cors_paths=("/api/*",))
    assert g.preflight(preflight(origin=None)) is None
    assert g.preflight(preflight(method=None)) is None
    assert g.preflight(preflight(path="/other")) is None
    get = actual()
    assert g.preflight(get) is None


# -- actual requests -------------------------------------------------------------------


def test_actual_request_from_allowed_origin() -> None:
    g = guard(
        cors_origins=(APP,),
        cors_allow_credentials=True,
        cors_expose_headers=("X-Total-Count", "ETag"),
    )
    h = dict(g.response_headers(actual()))
    assert h == {
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Total-Count, ETag",
        "vary": "Origin",
    }


def test_vary_origin_is_always_sent_on_cors_paths() -> None:
    g = guard(cors_origins=(APP,))
    assert g.response_headers(actual(origin=None)) == [("vary", "Origin")]
    assert g.response_headers(actual(origin="https://evil.example")) == [("vary", "Origin")]


def test_arbitrary_origin_with_credentials_is_never_echoed() -> None:
    g = guard(cors_origins=(APP, "https://*.example.net"), cors_allow_credentials=True)
    for origin in ("https://evil.example", "null", "https://example.net", APP + ".evil"):
        headers = g.response_headers(actual(origin=origin))
        assert headers == [("vary", "Origin")]
        reply = g.preflight(preflight(origin=origin))
        assert reply is not None and reply.status == 403


def test_star_without_credentials() -> None:
    g = guard(cors_origins=("*",))
    h = as_dict(g.preflight(preflight(origin="https://anyone.example")))
    assert h["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in h
    headers = dict(g.response_headers(actual(origin="https://anyone.example")))
    assert headers["access-control-allow-origin"] == "*"


def test_star_never_allows_null() -> None:
    g = guard(cors_origins=("*",))
    reply = g.preflight(preflight(origin="null"))
    assert reply is not None and reply.status == 403
    assert g.response_headers(actual(origin="null")) == [("vary", "Origin")]


def test_star_with_credentials_is_refused_by_the_policy() -> None:
    with pytest.raises(ConfigError):
        guard(cors_origins=("*",), cors_allow_credentials=True)


def test_literal_null_only_without_credentials() -> None:
    # the policy refuses "null" today; the guard stays safe if that ever changes
    policy = Policy(cors_origins=(APP,))
    object.__setattr__(policy, "cors_origins", ("null",))
    g = CorsGuard(policy)
    assert as_dict(g.preflight(preflight(origin="null")))["access-control-allow-origin"] == ("null")
    object.__setattr__(policy, "cors_allow_credentials", True)
    with pytest.raises(ConfigError, match="null"):
        CorsGuard(policy)


def test_list_origins_are_echoed_not_starred() -> None:
    g = guard(cors_origins=(APP, "https://other.example"))
    assert dict(g.response_headers(actual(origin="https://other.example")))[
        "access-control-allow-origin"
    ] == ("https://other.example")


def test_default_port_in_config_is_normalised() -> None:
    g = guard(cors_origins=("https://App.Example.org:443", "http://localhost:8000"))
    assert dict(g.response_headers(actual()))["access-control-allow-origin"] == APP
    local = dict(g.response_headers(actual(origin="http://localhost:8000")))
    assert local["access-control-allow-origin"] == "http://localhost:8000"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://a.example.net", True),
        ("https://a.b-c.example.net", True),
        ("https://example.net", False),
        ("https://.example.net", False),
        ("https://a..example.net", False),
        ("http://a.example.net", False),
        ("https://a.example.net:8443", False),
        ("https://evil.com/.example.net", False),
        ("https://evil.com#.example.net", False),
        ("https://evil.com?.example.net", False),
        ("https://user@a.example.net", False),
        ("https://a.example.net.evil.com", False),
        ("https://ä.example.net", False),
    ],
)
def test_wildcard_subdomain_origins(origin: str, allowed: bool) -> None:
    g = guard(cors_origins=("https://*.example.net",), cors_allow_credentials=True)
    headers = dict(g.response_headers(actual(origin=origin)))
    assert ("access-control-allow-origin" in headers) is allowed
    if allowed:
        assert headers["access-control-allow-origin"] == origin


# -- paths and configuration -----------------------------------------------------------


def test_paths() -> None:
    g = guard(cors_origins=(APP,), cors_paths=("/api/*", "/feed.json", "/v?/items"))
    assert has_cors(g.response_headers(actual(path="/api/x/y")))
    assert has_cors(g.response_headers(actual(path="/feed.json")))
    assert has_cors(g.response_headers(actual(path="/v2/items")))
    assert g.response_headers(actual(path="/api")) == []
    assert g.response_headers(actual(path="/feed.jsonx")) == []
    assert g.response_headers(actual(path="/private")) == []


def test_wildcard_methods_and_headers_without_credentials() -> None:
    g = guard(cors_origins=(APP,), cors_allow_methods=("*",), cors_allow_headers=("*",))
    h = as_dict(g.preflight(preflight(method="PROPFIND", headers="x-anything, x-other")))
    assert h["access-control-allow-methods"] == "*"
    assert h["access-control-allow-headers"] == "*"
    bad = g.preflight(preflight(headers="x-ok, bad header"))
    assert bad is not None and bad.status == 403


@pytest.mark.parametrize(
    "settings_",
    [
        {"cors_allow_methods": ("GET\r\nX-Evil: 1",)},
        {"cors_allow_headers": ("x-a, x-b",)},
        {"cors_expose_headers": ("x a",)},
        {"cors_allow_headers": ("*",), "cors_allow_credentials": True},
        {"cors_allow_methods": ("*",), "cors_allow_credentials": True},
    ],
)
def test_bad_settings_are_config_errors(settings_: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        guard(cors_origins=(APP,), **settings_)


@settings(max_examples=300, deadline=None)
@given(
    origin=st.text(max_size=40) | st.sampled_from([APP, "null", "https://x.example.net"]),
    method=st.text(max_size=10),
    requested=st.text(max_size=40),
)
def test_never_echoes_an_unlisted_origin(origin: str, method: str, requested: str) -> None:
    g = guard(cors_origins=(APP, "https://*.example.net"), cors_allow_credentials=True)
    for headers in (
        g.response_headers(actual(origin=origin)),
        (
            g.preflight(preflight(origin=origin, method=method, headers=requested)) or Reply(0, [])
        ).headers,
    ):
        allow = dict(headers).get("access-control-allow-origin")
        if allow is not None:
            assert allow == origin
            assert origin == APP or (
                origin.startswith("https://") and origin.endswith(".example.net")
            )
