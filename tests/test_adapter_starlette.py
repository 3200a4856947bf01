"""Starlette: ``SitewardenMiddleware``, route-based exemption and the Jinja2 helpers."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router
from starlette.templating import Jinja2Templates

from sitewarden.warden import Warden
from sitewarden.web.starlette import SitewardenMiddleware, exchange, install_jinja
from tests.test_asgi_wsgi import (
    CROSS_SITE,
    EVIL_HOST,
    FINGERPRINTS,
    HOST,
    HTTP,
    HTTPS,
    SAME_ORIGIN,
    Recorder,
    assert_login_cookie,
    assert_logout_cookie,
    assert_nonce_in_csp,
    assert_security_headers,
    make_warden,
    session_cookie,
    token_from,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: "install httpx2 instead"
    from starlette.testclient import TestClient

TEMPLATES = {
    "form.html": '<form method="post" action="/change">{{ csrf_input() }}</form>'
    "<p>{{ csrf_token() }}</p>",
    "nonce.html": '<script nonce="{{ csp_nonce() }}">1</script>',
    "sri.html": '<script src="/app.js" {{ sri(path) }}></script>',
}


def build(warden: Warden, rec: Recorder, *, as_middleware_list: bool = False) -> Starlette:
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES)))
    install_jinja(templates, warden)

    async def home(request: Request) -> Response:
        rec.calls += 1
        return PlainTextResponse("home", headers=dict(FINGERPRINTS))

    async def form(request: Request) -> Response:
        rec.calls += 1
        return templates.TemplateResponse(request, "form.html")

    async def nonce(request: Request) -> Response:
        rec.calls += 1
        return templates.TemplateResponse(request, "nonce.html")

    async def sri(request: Request) -> Response:
        return templates.TemplateResponse(request, "sri.html", {"path": request.query_params["p"]})

    async def change(request: Request) -> Response:
        rec.calls += 1
        data = await request.form()
        rec.changes += 1
        return PlainTextResponse(f"changed {data.get('a')}")

    @warden.csrf_exempt
    async def hook(request: Request) -> Response:
        rec.calls += 1
        rec.changes += 1
        return PlainTextResponse("hooked")

    @warden.csrf_exempt
    class HookEndpoint(HTTPEndpoint):
        async def post(self, request: Request) -> Response:
            rec.changes += 1
            return PlainTextResponse("class hook")

    async def login(request: Request) -> Response:
        exchange(request).login("alice")
        return PlainTextResponse("welcome")

    async def logout(request: Request) -> Response:
        exchange(request).logout()
        return PlainTextResponse("bye")

    async def whoami(request: Request) -> Response:
        return PlainTextResponse(str(request.scope["sitewarden.user"]))

    routes = [
        Route("/", home),
        Route("/form", form),
        Route("/nonce", nonce),
        Route("/sri", sri),
        Route("/change", change, methods=["POST"]),
        Route("/hook", hook, methods=["POST"]),
        Route("/class-hook", HookEndpoint),
        # the first matching route wins: /dup goes to `change`, which is not exempt
        Route("/dup", change, methods=["POST"]),
        Route("/dup", hook, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/whoami", whoami),
        Mount(
            "/api",
            routes=[
                Route("/hook/{n:int}", hook, methods=["POST"]),
                Route("/change", change, methods=["POST"]),
                Mount("/v2", app=Router([Route("/hook", hook, methods=["POST"])])),
            ],
        ),
        Host("hooks.example.org", Router([Route("/in", hook, methods=["POST"])])),
    ]
    if as_middleware_list:
        return Starlette(
            routes=routes, middleware=[Middleware(SitewardenMiddleware, warden=warden)]
        )
    app = Starlette(routes=routes)
    app.add_middleware(SitewardenMiddleware, warden=warden)
    return app


@pytest.fixture
def site() -> tuple[TestClient, Recorder]:
    rec = Recorder()
    return TestClient(build(make_warden(), rec), base_url=HTTPS), rec


def test_headers(site: tuple[TestClient, Recorder]) -> None:
    client, _ = site
    r = client.get("/")
    assert r.status_code == 200 and r.text == "home"
    assert_security_headers(r.headers, https=True)
    assert_security_headers(client.get(HTTP + "/").headers, https=False)


def test_middleware_list_form() -> None:
    rec = Recorder()
    client = TestClient(build(make_warden(), rec, as_middleware_list=True), base_url=HTTPS)
    assert_security_headers(client.get("/").headers, https=True)
    assert client.post("/change", data={"a": "1"}, headers=CROSS_SITE).status_code == 403
    assert client.post("/hook", headers=CROSS_SITE).status_code == 200


def test_bad_host(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.get("/", headers={"host": EVIL_HOST}).status_code == 400
    assert client.post("/hook", headers={"host": EVIL_HOST}).status_code == 400
    assert rec.calls == 0


def test_https_redirect() -> None:
    rec = Recorder()
    client = TestClient(build(make_warden(https_redirect=True), rec), base_url=HTTP)
    r = client.get("/form?x=1", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == f"{HTTPS}/form?x=1"
    assert client.post("/change", follow_redirects=False).status_code == 308
    assert rec.calls == 0


def test_cross_site_post_refused_same_origin_passes(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    r = client.post("/change", data={"a": "1"}, headers=CROSS_SITE)
    assert r.status_code == 403
    assert rec.calls == 0 and rec.changes == 0
    r = client.post("/change", data={"a": "1"}, headers=SAME_ORIGIN)
    assert r.status_code == 200 and r.text == "changed 1"
    r = client.post("/change", data={"a": "2"}, headers={"origin": HTTPS})
    assert r.status_code == 200
    assert rec.changes == 2


def test_token_from_template(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    html = client.get("/form").text
    token = token_from(html)
    r = client.post("/change", data={"_authenticator": token, "a": "1"})
    assert r.status_code == 200 and r.text == "changed 1"  # the form is still readable
    assert client.post("/change", data={"a": "1"}).status_code == 403
    assert client.post("/change", data={"_authenticator": "x" * 64}).status_code == 403
    # the token in a header works too (JavaScript clients)
    r = client.post("/change", headers={"x-csrf-token": token}, data={"a": "3"})
    assert r.status_code == 200
    assert rec.changes == 2


def test_exempt_routes(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.post("/hook", headers=CROSS_SITE).text == "hooked"
    assert client.post("/class-hook", headers=CROSS_SITE).text == "class hook"
    assert client.post("/api/hook/7", headers=CROSS_SITE).status_code == 200
    assert client.post("/api/v2/hook", headers=CROSS_SITE).status_code == 200
    r = client.post(
        "https://hooks.example.org/in", headers=CROSS_SITE
    )  # a Host route: but the host is not allowed
    assert r.status_code == 400
    # not exempt: same path pattern, other endpoint, or shadowed by an earlier route
    assert client.post("/api/hook/x", headers=CROSS_SITE).status_code == 403
    assert client.post("/api/change", headers=CROSS_SITE).status_code == 403
    assert client.post("/dup", headers=CROSS_SITE).status_code == 403
    assert client.post("/nowhere", headers=CROSS_SITE).status_code == 403
    assert rec.changes == 4


def test_exempt_host_route() -> None:
    rec = Recorder()
    warden = Warden(
        store="memory://", allowed_hosts=[HOST, "hooks.example.org"], https_redirect=False
    )
    client = TestClient(build(warden, rec), base_url=HTTPS)
    assert client.post("https://hooks.example.org/in", headers=CROSS_SITE).status_code == 200
    assert client.post("https://hooks.example.org/x", headers=CROSS_SITE).status_code == 403


def test_login_logout(site: tuple[TestClient, Recorder]) -> None:
    client, _ = site
    r = client.post("/login", headers=SAME_ORIGIN)
    assert r.status_code == 200
    assert_login_cookie(session_cookie(r.headers.get_list("set-cookie")))
    r = client.get("/whoami")
    assert r.text == "alice"
    assert r.headers["cache-control"] == "no-store"
    # a signed-in user's token is bound to the user
    token = token_from(client.get("/form").text)
    assert client.post("/change", data={"_authenticator": token}).status_code == 200
    r = client.post("/logout", headers=SAME_ORIGIN)
    assert_logout_cookie(session_cookie(r.headers.get_list("set-cookie")))
    assert "clear-site-data" in r.headers
    assert client.get("/whoami").text == "None"
    # the signed-in user's token is no good for the anonymous visitor
    assert client.post("/change", data={"_authenticator": token}).status_code == 403


def test_nonce(site: tuple[TestClient, Recorder]) -> None:
    client, _ = site
    r = client.get("/nonce")
    assert_nonce_in_csp(r.text, r.headers)


def test_sri(site: tuple[TestClient, Recorder], tmp_path: Path) -> None:
    client, _ = site
    script = tmp_path / "app.js"
    script.write_bytes(b"alert('Hello, world.');")
    r = client.get("/sri", params={"p": str(script)})
    assert (
        'integrity="sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"'
        in r.text
    )
    assert 'crossorigin="anonymous"' in r.text


def test_management_path(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.get("/manage_main").status_code == 404
    assert rec.calls == 0


def test_exchange_without_middleware() -> None:
    async def view(request: Request) -> Response:
        exchange(request)
        return PlainTextResponse("unreachable")

    client = TestClient(Starlette(routes=[Route("/", view)]), raise_server_exceptions=True)
    with pytest.raises(RuntimeError, match="SitewardenMiddleware"):
        client.get("/")


def test_lifespan_passes_through() -> None:
    started: list[Any] = []

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        started.append(True)
        yield

    app = Starlette(routes=[], lifespan=lifespan)
    app.add_middleware(SitewardenMiddleware, warden=make_warden())
    with TestClient(app, base_url=HTTPS):
        pass
    assert started == [True]
    assert HOST  # the constant is shared with the other adapter tests
