"""https_redirect: plain HTTP to HTTPS, with a Location that cannot point elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitewarden.guards.clientip import Origin, ProxyResolver
from sitewarden.guards.https import https_redirect
from sitewarden.web.request import Reply, RequestView


def request(
    path: str = "/page",
    query: str = "",
    method: str = "GET",
    scheme: str = "http",
    host: str = "example.org",
) -> tuple[RequestView, Origin]:
    view = RequestView(method, scheme, host, path, query=query, client="203.0.113.7")
    return view, Origin("203.0.113.7", scheme, host)


def location(reply: Reply | None) -> str:
    assert reply is not None
    values = [v for k, v in reply.headers if k == "location"]
    assert len(values) == 1
    return values[0]


def test_https_is_not_redirected() -> None:
    assert https_redirect(*request(scheme="https"), None) is None


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_get_301(method: str) -> None:
    reply = https_redirect(*request(method=method), None)
    assert reply is not None
    assert reply.status == 301
    assert location(reply) == "https://example.org/page"
    assert ("content-type", "text/plain; charset=utf-8") in reply.headers
    assert b"https://example.org/page" in reply.body


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_get_308(method: str) -> None:
    reply = https_redirect(*request(method=method), None)
    assert reply is not None
    assert reply.status == 308


def test_no_cache_control_on_the_permanent_redirect() -> None:
    reply = https_redirect(*request(), None)
    assert reply is not None
    assert all(name != "cache-control" for name, _ in reply.headers)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("example.org", None, "https://example.org/page"),
        ("example.org:8080", None, "https://example.org/page"),
        ("example.org:8080", 443, "https://example.org/page"),
        ("example.org", 8443, "https://example.org:8443/page"),
        ("Example.ORG.:80", 8443, "https://example.org:8443/page"),
        ("[::1]:8000", None, "https://[::1]/page"),
        ("[::1]:8000", 8443, "https://[::1]:8443/page"),
    ],
)
def test_host_and_port(host: str, port: int | None, expected: str) -> None:
    assert location(https_redirect(*request(host=host), port)) == expected


def test_query_is_kept() -> None:
    reply = https_redirect(*request(query="a=1&b=%2F+x"), None)
    assert location(reply) == "https://example.org/page?a=1&b=%2F+x"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//evil.com/x", "https://example.org/evil.com/x"),
        ("///evil.com", "https://example.org/evil.com"),
        ("/\\evil.com", "https://example.org/evil.com"),
        ("\\\\evil.com", "https://example.org/evil.com"),
        ("/a//b", "https://example.org/a//b"),
        ("/a\\b", "https://example.org/a%5Cb"),
        ("", "https://example.org/"),
        ("*", "https://example.org/"),
        ("evil.com", "https://example.org/"),
        ("/a b/100%", "https://example.org/a%20b/100%25"),
        ("/ä", "https://example.org/%C3%A4"),
        ("/@evil.com", "https://example.org/@evil.com"),
    ],
)
def test_path_cannot_redirect_elsewhere(path: str, expected: str) -> None:
    assert location(https_redirect(*request(path=path), None)) == expected


def test_crlf_cannot_inject_headers() -> None:
    reply = https_redirect(*request(path="/x\r\nSet-Cookie: a=b", query="q=\r\nX: y"), None)
    loc = location(reply)
    assert "\r" not in loc and "\n" not in loc
    assert loc == "https://example.org/x%0D%0ASet-Cookie:%20a=b?q=%0D%0AX:%20y"


def test_malformed_host_is_refused_not_echoed() -> None:
    reply = https_redirect(*request(host="example.org@evil.com"), None)
    assert reply is not None
    assert reply.status == 400
    assert all(name != "location" for name, _ in reply.headers)


def test_forwarded_proto_from_untrusted_peer_does_not_stop_the_redirect() -> None:
    resolver = ProxyResolver(("10.0.0.0/8",))
    view = RequestView(
        "GET",
        "http",
        "example.org",
        "/",
        headers={"x-forwarded-proto": "https", "forwarded": "proto=https"},
        client="203.0.113.7",
    )
    reply = https_redirect(view, resolver.resolve(view), None)
    assert reply is not None and reply.status == 301


def test_forwarded_proto_from_trusted_proxy_is_believed() -> None:
    resolver = ProxyResolver(("10.0.0.0/8",))
    view = RequestView(
        "GET",
        "http",
        "backend:8080",
        "/",
        headers={"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7"},
        client="10.0.0.1",
    )
    assert https_redirect(view, resolver.resolve(view), None) is None
    view.headers = {"x-forwarded-proto": "http", "x-forwarded-host": "www.example.org"}
    assert location(https_redirect(view, resolver.resolve(view), None)) == (
        "https://www.example.org/"
    )


@settings(max_examples=300, deadline=None)
@given(path=st.text(max_size=60), query=st.text(max_size=60))
def test_location_always_stays_on_the_host(path: str, query: str) -> None:
    loc = location(https_redirect(*request(path="/" + path, query=query), 8443))
    assert loc.isascii() and loc.isprintable() and " " not in loc
    parts = urlsplit(loc)
    assert parts.scheme == "https"
    assert parts.netloc == "example.org:8443"
    assert parts.path.startswith("/") and not parts.path.startswith("//")
