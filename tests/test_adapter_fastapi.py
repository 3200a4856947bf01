"""FastAPI: the Starlette middleware on a FastAPI app, with included (nested) routers."""

from __future__ import annotations

import warnings

import jinja2
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates

from sitewarden.warden import Warden
from sitewarden.web.starlette import SitewardenMiddleware, exchange, install_jinja
from tests.test_asgi_wsgi import (
    CROSS_SITE,
    EVIL_HOST,
    FINGERPRINTS,
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
    from fastapi.testclient import TestClient

TEMPLATES = {
    "form.html": '<form method="post">{{ csrf_input() }}</form>',
    "nonce.html": '<script nonce="{{ csp_nonce() }}">1</script>',
}


def build(warden: Warden, rec: Recorder) -> FastAPI:
    app = FastAPI()
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES)))
    install_jinja(templates, warden)

    @app.get("/", response_class=PlainTextResponse)
    def home() -> Response:
        rec.calls += 1
        return PlainTextResponse("home", headers=dict(FINGERPRINTS))

    @app.get("/form", response_class=HTMLResponse)
    def form(request: Request) -> Response:
        rec.calls += 1
        return templates.TemplateResponse(request, "form.html")

    @app.get("/nonce", response_class=HTMLResponse)
    def nonce(request: Request) -> Response:
        return templates.TemplateResponse(request, "nonce.html")

    @app.post("/change")
    async def change(request: Request) -> dict[str, str | None]:
        rec.calls += 1
        data = await request.form()
        rec.changes += 1
        return {"a": str(data.get("a"))}

    @app.post("/hook")
    @warden.csrf_exempt
    def hook() -> dict[str, str]:
        rec.calls += 1
        rec.changes += 1
        return {"hooked": "yes"}

    @app.post("/login")
    def login(request: Request) -> dict[str, str]:
        exchange(request).login("alice")
        return {"ok": "welcome"}

    @app.post("/logout")
    def logout(request: Request) -> dict[str, str]:
        exchange(request).logout()
        return {"ok": "bye"}

    @app.get("/whoami", response_class=PlainTextResponse)
    def whoami(request: Request) -> str:
        return str(exchange(request).user)

    inner = APIRouter()

    @warden.csrf_exempt  # the decorator order does not matter: it marks the function
    @inner.post("/hook")
    def inner_hook() -> dict[str, str]:
        rec.changes += 1
        return {"hooked": "inner"}

    @inner.post("/change")
    def inner_change() -> dict[str, str]:
        rec.changes += 1
        return {"changed": "inner"}

    outer = APIRouter()
    outer.include_router(inner, prefix="/v1")
    app.include_router(outer, prefix="/api")
    app.add_middleware(SitewardenMiddleware, warden=warden)
    return app


@pytest.fixture
def site() -> tuple[TestClient, Recorder]:
    rec = Recorder()
    return TestClient(build(make_warden(), rec), base_url=HTTPS), rec


def test_headers(site: tuple[TestClient, Recorder]) -> None:
    client, _ = site
    r = client.get("/")
    assert r.status_code == 200
    assert_security_headers(r.headers, https=True)
    assert_security_headers(client.get(HTTP + "/").headers, https=False)
    # FastAPI's own pages get them too
    assert_security_headers(client.get("/openapi.json").headers, https=True)


def test_bad_host(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.get("/", headers={"host": EVIL_HOST}).status_code == 400
    assert rec.calls == 0


def test_https_redirect() -> None:
    rec = Recorder()
    client = TestClient(build(make_warden(https_redirect=True), rec), base_url=HTTP)
    assert client.get("/", follow_redirects=False).status_code == 301
    r = client.post("/change", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == f"{HTTPS}/change"
    assert rec.calls == 0


def test_csrf(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.post("/change", data={"a": "1"}, headers=CROSS_SITE).status_code == 403
    assert rec.calls == 0 and rec.changes == 0
    r = client.post("/change", data={"a": "1"}, headers=SAME_ORIGIN)
    assert r.status_code == 200 and r.json() == {"a": "1"}
    token = token_from(client.get("/form").text)
    r = client.post("/change", data={"_authenticator": token, "a": "2"})
    assert r.status_code == 200 and r.json() == {"a": "2"}
    assert client.post("/change", data={"a": "3"}).status_code == 403
    assert client.post("/change", data={"_authenticator": "y" * 64}).status_code == 403
    # a JSON API call without browser headers and without a token is refused too
    assert client.post("/change", json={"a": 4}).status_code == 403
    assert rec.changes == 2


def test_exempt_through_included_routers(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    assert client.post("/hook", headers=CROSS_SITE).json() == {"hooked": "yes"}
    assert client.post("/api/v1/hook", headers=CROSS_SITE).json() == {"hooked": "inner"}
    assert client.post("/api/v1/change", headers=CROSS_SITE).status_code == 403
    assert client.post("/v1/hook", headers=CROSS_SITE).status_code == 403  # no such route
    assert rec.changes == 2


def test_login_logout_nonce_manage(site: tuple[TestClient, Recorder]) -> None:
    client, rec = site
    r = client.post("/login", headers=SAME_ORIGIN)
    assert_login_cookie(session_cookie(r.headers.get_list("set-cookie")))
    r = client.get("/whoami")
    assert r.text == "alice"
    assert r.headers["cache-control"] == "no-store"
    r = client.post("/logout", headers=SAME_ORIGIN)
    assert_logout_cookie(session_cookie(r.headers.get_list("set-cookie")))
    assert "clear-site-data" in r.headers
    assert client.get("/whoami").text == "None"
    r = client.get("/nonce")
    assert_nonce_in_csp(r.text, r.headers)
    calls = rec.calls
    assert client.get("/manage_main").status_code == 404
    assert rec.calls == calls
