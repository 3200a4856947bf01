"""The generic adapters, driven by test clients: a raw ASGI app and a raw WSGI app.

The helpers at the top (no ``test_`` prefix) are shared by the framework adapter tests.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
from werkzeug.test import Client as WerkzeugClient

from sitewarden.warden import Warden

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: "install httpx2 instead"
    from starlette.testclient import TestClient

HOST = "www.example.org"
HTTPS = f"https://{HOST}"
HTTP = f"http://{HOST}"
EVIL_HOST = "evil.example.net"
SESSION = "__Host-sw_session"
FORM = {"content-type": "application/x-www-form-urlencoded"}
SAME_ORIGIN = {"sec-fetch-site": "same-origin"}
CROSS_SITE = {"sec-fetch-site": "cross-site", "origin": "https://evil.example.net"}
FINGERPRINTS = [("Server", "TestServer/1.0"), ("X-Powered-By", "PHP/5.0")]

_TOKEN = re.compile(r'<input type="hidden" name="_authenticator" value="([^"]+)">')
_NONCE = re.compile(r'<script nonce="([^"]+)">')


def make_warden(**settings: Any) -> Warden:
    """A Warden on a fresh memory store, HTTPS redirect off unless asked."""
    settings.setdefault("https_redirect", False)
    return Warden(
        store="memory://",
        allowed_hosts=[HOST, "manage.example.org"],
        manage_hosts=["manage.example.org"],
        **settings,
    )


def assert_security_headers(headers: Mapping[str, str], *, https: bool) -> None:
    """The policy's headers are present (HSTS only on HTTPS); fingerprints are gone."""
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'self'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    if https:
        assert headers["strict-transport-security"].startswith("max-age=31536000")
    else:
        assert "strict-transport-security" not in headers
    assert "server" not in headers
    assert "x-powered-by" not in headers


def token_from(html: str) -> str:
    """The CSRF token of the ``csrf_input`` rendered in *html*."""
    match = _TOKEN.search(html)
    assert match is not None, html
    return match.group(1)


def nonce_from(html: str) -> str:
    """The nonce of the first ``<script nonce=…>`` in *html*."""
    match = _NONCE.search(html)
    assert match is not None, html
    return match.group(1)


def assert_nonce_in_csp(html: str, headers: Mapping[str, str]) -> None:
    """The nonce rendered in the page is the one the CSP allows; the page is not cached."""
    nonce = nonce_from(html)
    assert len(nonce) >= 16
    assert f"'nonce-{nonce}'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def session_cookie(set_cookies: Iterable[str]) -> str:
    """The one ``Set-Cookie`` value for the session cookie."""
    found = [c for c in set_cookies if c.strip().startswith(SESSION + "=")]
    assert len(found) == 1, list(set_cookies)
    return found[0].strip()


def assert_login_cookie(value: str) -> None:
    """A session cookie as OWASP wants it: __Host-, Secure, HttpOnly, SameSite, Path=/."""
    lower = value.lower()
    assert value.startswith(SESSION + "=") and len(value) > len(SESSION) + 20
    assert "; secure" in lower
    assert "; httponly" in lower
    assert "; samesite=lax" in lower
    assert "; path=/" in lower
    assert "domain=" not in lower


def assert_logout_cookie(value: str) -> None:
    """The session cookie deleted."""
    assert value.startswith(SESSION + "=;")
    assert "max-age=0" in value.lower()


# -- a raw ASGI application ------------------------------------------------------------


class Recorder:
    """Counts the application's calls and its state changes."""

    def __init__(self) -> None:
        self.calls = 0
        self.changes = 0


def page(body: str) -> str:
    return f"<!doctype html><title>t</title>{body}"


def asgi_app(rec: Recorder) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        rec.calls += 1
        ex = scope["sitewarden"]
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        status = 200
        if path == "/form":
            field = ex.warden.csrf.field
            text = page(
                f'<form method="post"><input type="hidden" name="{field}" '
                f'value="{ex.csrf_token()}"></form>'
            )
        elif path == "/nonce":
            text = page(f'<script nonce="{ex.csp_nonce}">1</script>')
        elif path == "/login":
            ex.login("alice")
            text = "welcome"
        elif path == "/logout":
            ex.logout()
            text = "bye"
        elif path == "/whoami":
            text = str(scope["sitewarden.user"])
        else:
            if scope["method"] == "POST":
                rec.changes += 1
            text = "ok " + body.decode()
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            *((n.encode(), v.encode()) for n, v in FINGERPRINTS),
            (b"set-cookie", b"pref=dark; Path=/"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode()})

    return app


class MarkEndpoint:
    """Outer ASGI layer that says which endpoint a path goes to (as a router would)."""

    def __init__(self, app: Any, exempt: Callable[..., Any]) -> None:
        self.app = app
        self.exempt = exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") == "/hook":
            scope = {**scope, "endpoint": self.exempt}
        await self.app(scope, receive, send)


@pytest.fixture
def asgi() -> tuple[TestClient, Recorder, Warden]:
    rec = Recorder()
    warden = make_warden()

    @warden.csrf_exempt
    def hook() -> None:  # stands for the routed endpoint
        pass

    client = TestClient(MarkEndpoint(warden.asgi(asgi_app(rec)), hook), base_url=HTTPS)
    return client, rec, warden


def test_asgi_security_headers_and_fingerprints(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, _, _ = asgi
    r = client.get("/")
    assert r.status_code == 200
    assert_security_headers(r.headers, https=True)
    # the application's cookie is hardened
    (pref,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("pref=")]
    assert "Secure" in pref and "HttpOnly" in pref and "SameSite=Lax" in pref


def test_asgi_plain_http_has_no_hsts(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, _, _ = asgi
    r = client.get(HTTP + "/")
    assert r.status_code == 200
    assert_security_headers(r.headers, https=False)


def test_asgi_bad_host_refused_before_the_app(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    r = client.get("/", headers={"host": EVIL_HOST})
    assert r.status_code == 400
    assert rec.calls == 0
    assert "x-content-type-options" in r.headers


def test_asgi_https_redirect() -> None:
    rec = Recorder()
    client = TestClient(make_warden(https_redirect=True).asgi(asgi_app(rec)), base_url=HTTP)
    r = client.get("/a/b?x=1", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == f"{HTTPS}/a/b?x=1"
    r = client.post("/a", follow_redirects=False)
    assert r.status_code == 308
    assert rec.calls == 0


def test_asgi_cross_site_post_refused(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    r = client.post("/change", content=b"a=1", headers={**FORM, **CROSS_SITE})
    assert r.status_code == 403
    assert rec.calls == 0 and rec.changes == 0
    r = client.post("/change", content=b"a=1", headers={**FORM, **SAME_ORIGIN})
    assert r.status_code == 200
    assert rec.changes == 1


def test_asgi_token_in_form_body(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    token = token_from(client.get("/form").text)
    r = client.post("/change", data={"_authenticator": token, "a": "1"})
    assert r.status_code == 200
    assert "a=1" in r.text  # the application still reads the whole body
    assert rec.changes == 1
    for data in ({"a": "1"}, {"_authenticator": "x" * 64, "a": "1"}):
        r = client.post("/change", data=data)
        assert r.status_code == 403
    assert rec.changes == 1


def test_asgi_exempt_endpoint(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    assert client.post("/hook", content=b"{}", headers=CROSS_SITE).status_code == 200
    assert client.post("/other", content=b"{}", headers=CROSS_SITE).status_code == 403
    assert rec.changes == 1


def test_asgi_exempt_paths_setting() -> None:
    rec = Recorder()
    client = TestClient(
        make_warden(csrf_exempt_paths=["/api/*"]).asgi(asgi_app(rec)), base_url=HTTPS
    )
    assert client.post("/api/x", content=b"{}", headers=CROSS_SITE).status_code == 200
    assert client.post("/x", content=b"{}", headers=CROSS_SITE).status_code == 403


def test_asgi_login_logout(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, _, _ = asgi
    r = client.post("/login", headers=SAME_ORIGIN)
    assert r.status_code == 200
    assert_login_cookie(session_cookie(r.headers.get_list("set-cookie")))
    r = client.get("/whoami")
    assert r.text == "alice"
    assert r.headers["cache-control"] == "no-store"
    r = client.post("/logout", headers=SAME_ORIGIN)
    assert_logout_cookie(session_cookie(r.headers.get_list("set-cookie")))
    assert r.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert client.get("/whoami").text == "None"


def test_asgi_nonce(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, _, _ = asgi
    r = client.get("/nonce")
    assert_nonce_in_csp(r.text, r.headers)


def test_asgi_management_path(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    assert client.get("/site/manage_main").status_code == 404
    assert rec.calls == 0


# -- a raw WSGI application ------------------------------------------------------------


def wsgi_app(rec: Recorder) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        rec.calls += 1
        ex = environ["sitewarden"]
        path = environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path == "/form":
            text = page(
                f'<form method="post"><input type="hidden" name="_authenticator" '
                f'value="{ex.csrf_token()}"></form>'
            )
        elif path == "/nonce":
            text = page(f'<script nonce="{ex.csp_nonce}">1</script>')
        elif path == "/login":
            ex.login("alice")
            text = "welcome"
        elif path == "/logout":
            ex.logout()
            text = "bye"
        elif path == "/whoami":
            text = str(environ["sitewarden.user"])
        else:
            if environ["REQUEST_METHOD"] == "POST":
                rec.changes += 1
            text = "ok " + body.decode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/html; charset=utf-8"),
                *FINGERPRINTS,
                ("Set-Cookie", "pref=dark; Path=/"),
            ],
        )
        return [text.encode()]

    return app


def mark_exempt(app: Any) -> Any:
    """Outer WSGI layer that exempts ``/hook`` (what a routing framework would do)."""

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/hook":
            environ["sitewarden.csrf_exempt"] = True
        return app(environ, start_response)

    return outer


@pytest.fixture
def wsgi() -> tuple[WerkzeugClient, Recorder]:
    rec = Recorder()
    client = WerkzeugClient(mark_exempt(make_warden().wsgi(wsgi_app(rec))))
    return client, rec


def test_wsgi_security_headers(wsgi: tuple[WerkzeugClient, Recorder]) -> None:
    client, _ = wsgi
    r = client.get("/", base_url=HTTPS)
    assert r.status_code == 200
    assert_security_headers(r.headers, https=True)
    r = client.get("/", base_url=HTTP)
    assert_security_headers(r.headers, https=False)


def test_wsgi_bad_host(wsgi: tuple[WerkzeugClient, Recorder]) -> None:
    client, rec = wsgi
    assert client.get("/", base_url=f"https://{EVIL_HOST}").status_code == 400
    assert rec.calls == 0


def test_wsgi_https_redirect() -> None:
    rec = Recorder()
    client = WerkzeugClient(make_warden(https_redirect=True).wsgi(wsgi_app(rec)))
    r = client.get("/a?x=1", base_url=HTTP)
    assert r.status_code == 301
    assert r.headers["location"] == f"{HTTPS}/a?x=1"
    assert client.post("/a", base_url=HTTP).status_code == 308
    assert rec.calls == 0


def test_wsgi_csrf(wsgi: tuple[WerkzeugClient, Recorder]) -> None:
    client, rec = wsgi
    r = client.post("/change", base_url=HTTPS, data={"a": "1"}, headers=CROSS_SITE)
    assert r.status_code == 403
    assert rec.calls == 0
    r = client.post("/change", base_url=HTTPS, data={"a": "1"}, headers=SAME_ORIGIN)
    assert r.status_code == 200
    token = token_from(client.get("/form", base_url=HTTPS).get_data(as_text=True))
    r = client.post("/change", base_url=HTTPS, data={"_authenticator": token, "a": "2"})
    assert r.status_code == 200
    assert "a=2" in r.get_data(as_text=True)
    assert client.post("/change", base_url=HTTPS, data={"a": "3"}).status_code == 403
    bad = {"_authenticator": "A" * 64}
    assert client.post("/change", base_url=HTTPS, data=bad).status_code == 403
    assert rec.changes == 2
    r = client.post("/hook", base_url=HTTPS, data={"a": "1"}, headers=CROSS_SITE)
    assert r.status_code == 200


def test_wsgi_login_logout_nonce_manage(wsgi: tuple[WerkzeugClient, Recorder]) -> None:
    client, rec = wsgi
    r = client.post("/login", base_url=HTTPS, headers=SAME_ORIGIN)
    assert_login_cookie(session_cookie(r.headers.getlist("Set-Cookie")))
    r = client.get("/whoami", base_url=HTTPS)
    assert r.get_data(as_text=True) == "alice"
    assert r.headers["Cache-Control"] == "no-store"
    r = client.post("/logout", base_url=HTTPS, headers=SAME_ORIGIN)
    assert_logout_cookie(session_cookie(r.headers.getlist("Set-Cookie")))
    assert "Clear-Site-Data" in r.headers
    assert client.get("/whoami", base_url=HTTPS).get_data(as_text=True) == "None"
    r = client.get("/nonce", base_url=HTTPS)
    assert_nonce_in_csp(r.get_data(as_text=True), r.headers)
    calls = rec.calls
    assert client.get("/manage_main", base_url=HTTPS).status_code == 404
    assert rec.calls == calls


REPORT_PATH = "/.sitewarden/csp-report"
REPORT_BODY = (
    b'{"csp-report": {"document-uri": "https://www.example.org/", '
    b'"violated-directive": "script-src", "blocked-uri": "inline"}}'
)
REPORT_HEADERS = {"content-type": "application/csp-report", **CROSS_SITE}


def test_asgi_csp_report(asgi: tuple[TestClient, Recorder, Warden]) -> None:
    client, rec, _ = asgi
    r = client.post(REPORT_PATH, content=REPORT_BODY, headers=REPORT_HEADERS)
    assert 200 <= r.status_code < 300
    assert rec.calls == 0


def test_wsgi_csp_report(wsgi: tuple[WerkzeugClient, Recorder]) -> None:
    client, rec = wsgi
    r = client.post(REPORT_PATH, base_url=HTTPS, data=REPORT_BODY, headers=REPORT_HEADERS)
    assert 200 <= r.status_code < 300
    assert rec.calls == 0


# -- WebSocket handshakes through the ASGI adapter --------------------------------------


def websocket_app(rec: Recorder) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        rec.calls += 1
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": str(scope["sitewarden.user"])})
        await send({"type": "websocket.close", "code": 1000})

    return app


def test_asgi_websocket_same_origin_and_bad_host() -> None:
    from starlette.websockets import WebSocketDisconnect

    rec = Recorder()
    client = TestClient(make_warden().asgi(websocket_app(rec)))
    with client.websocket_connect(f"wss://{HOST}/ws", headers={"origin": HTTPS}) as ws:
        assert ws.receive_text() == "None"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(f"wss://{EVIL_HOST}/ws") as ws,
    ):
        ws.receive_text()
    assert rec.calls == 1


def test_asgi_websocket_cross_site_origin_refused() -> None:
    """Cross-site WebSocket hijacking: another site's page opens a socket with our cookie."""
    from starlette.websockets import WebSocketDisconnect

    rec = Recorder()
    client = TestClient(make_warden().asgi(websocket_app(rec)))
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(
            f"wss://{HOST}/ws", headers={"origin": "https://evil.example.net"}
        ) as ws,
    ):
        ws.receive_text()
    assert rec.calls == 0


def test_asgi_websocket_same_origin_and_non_browser_clients_pass() -> None:
    rec = Recorder()
    client = TestClient(make_warden().asgi(websocket_app(rec)))
    for headers in ({"origin": f"https://{HOST}"}, {}):
        with client.websocket_connect(f"wss://{HOST}/ws", headers=headers) as ws:
            ws.receive_text()
    assert rec.calls == 2


def test_asgi_headers_read_only_by_refusals_still_reach_them(
    asgi: tuple[TestClient, Recorder, Warden],
) -> None:
    """Accept and User-Agent are not decoded up front, yet refusals and reports see them."""
    client, _, warden = asgi
    r = client.post(
        "/change", content=b"a=1", headers={**FORM, **CROSS_SITE, "accept": "application/json"}
    )
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/json")
    r = client.post(
        "/change", content=b"a=1", headers={**FORM, **CROSS_SITE, "accept": "text/html"}
    )
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    report = {"csp-report": {"document-uri": "https://example.org/", "blocked-uri": "inline"}}
    sent = client.post(
        REPORT_PATH,
        content=json.dumps(report).encode(),
        headers={**REPORT_HEADERS, "user-agent": "Agent/7"},
    )
    assert 200 <= sent.status_code < 300
    from sitewarden.reports import list_reports

    assert list_reports(warden.store, 1)[0]["user_agent"] == "Agent/7"
