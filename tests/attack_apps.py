"""The attack matrix's target: one tiny site, built on every stack, with or without sitewarden.

Every stack serves the same four routes:

* ``GET /`` — a page that sets the application's own cookie ``app_session=abc; Path=/``
  and leaks two fingerprint headers (``Server: Werkzeug/3.0 Python/3.11``,
  ``X-Powered-By: PHP/8.1``);
* ``POST /transfer`` — the state change: it appends the form to ``Site.transfers``;
* ``GET /manage_main`` — a management screen;
* ``POST /login`` — signs "alice" in: the unprotected site sets a naive cookie
  ``sw_session=alice; Path=/``, the protected one calls ``exchange.login("alice")``.

Every route appends its path to ``Site.calls``, so a test can tell whether the application
ran at all. Each stack is driven by its own framework's test client, wrapped in
:class:`Target`, which gives every stack the same request/response interface and keeps a
transcript of the exchange for failure messages.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi import Request as FastAPIRequest
from fastapi.responses import PlainTextResponse as FastAPIText
from flask import Flask, make_response, request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client as WerkzeugClient

import tests.test_adapter_django  # noqa: F401  configures Django for the whole test process
from sitewarden.warden import Warden
from sitewarden.web.flask import Sitewarden
from sitewarden.web.flask import exchange as flask_exchange
from sitewarden.web.starlette import SitewardenMiddleware, exchange

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette: "install httpx2 instead"
    from starlette.testclient import TestClient

HOST = "example.org"
MANAGE_HOST = "admin.example.org"
SITE = f"https://{HOST}"
APP_COOKIE = ("app_session", "abc")
NAIVE_SESSION = ("sw_session", "alice")
APP_COOKIE_HEADER = "app_session=abc; Path=/"
NAIVE_SESSION_HEADER = "sw_session=alice; Path=/"  # no Secure, HttpOnly or SameSite
FINGERPRINTS = {"Server": "Werkzeug/3.0 Python/3.11", "X-Powered-By": "PHP/8.1"}

STACKS = ("asgi", "wsgi", "starlette", "fastapi", "django", "flask")


def make_warden() -> Warden:
    """The protected site's Warden: a fresh memory store, defaults otherwise (HTTPS on)."""
    return Warden(store="memory://", allowed_hosts=[HOST], manage_hosts=[MANAGE_HOST])


@dataclass
class Site:
    """What the application saw: every call (its path) and every state change."""

    protected: bool
    calls: list[str] = field(default_factory=list)
    transfers: list[dict[str, str]] = field(default_factory=list)

    def transfer(self, body: bytes | str) -> None:
        if isinstance(body, bytes):
            body = body.decode("latin-1")
        self.transfers.append(dict(urllib.parse.parse_qsl(body)))


@dataclass
class Response:
    """A response as it reaches the client: status and raw headers (``Set-Cookie`` included)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


Send = Callable[[str, str, str, str, dict[str, str], str], Response]


@dataclass
class Target:
    """One stack, protected or not, behind a uniform ``request`` method."""

    stack: str
    site: Site
    _send: Send
    log: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        *,
        scheme: str = "https",
        host: str = HOST,
        headers: Mapping[str, str] | None = None,
        body: str = "",
    ) -> Response:
        hdrs = dict(headers or {})
        r = self._send(method, scheme, host, path, hdrs, body)
        sent = "".join(f"\n    {k}: {v}" for k, v in hdrs.items())
        got = "".join(f"\n    {k}: {v}" for k, v in r.headers)
        self.log.append(
            f"  > {method} {scheme}://{host}{path} (Host: {host}){sent}"
            + (f"\n    [body] {body}" if body else "")
            + f"\n  < {r.status}{got}\n    [body] {r.body[:200]!r}"
        )
        return r

    def transcript(self) -> str:
        return "\n".join(self.log)


# -- raw ASGI ---------------------------------------------------------------------------


def raw_asgi_app(site: Site) -> Any:
    """A hand-written ASGI application."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        method, path = scope["method"], scope["path"]
        site.calls.append(path)
        status, text = 200, "ok"
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if method == "GET" and path == "/":
            text = "home"
            headers.append((b"set-cookie", APP_COOKIE_HEADER.encode()))
            headers.extend((k.encode(), v.encode()) for k, v in FINGERPRINTS.items())
        elif method == "POST" and path == "/transfer":
            site.transfer(body)
            text = "transferred"
        elif method == "GET" and path == "/manage_main":
            text = "management screen"
        elif method == "POST" and path == "/login":
            text = "welcome"
            if site.protected:
                scope["sitewarden"].login("alice")
            else:
                headers.append((b"set-cookie", NAIVE_SESSION_HEADER.encode()))
        else:
            status, text = 404, "not found"
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode()})

    return app


# -- raw WSGI ---------------------------------------------------------------------------


def raw_wsgi_app(site: Site) -> Any:
    """A hand-written WSGI application."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        site.calls.append(path)
        status, text = "200 OK", "ok"
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if method == "GET" and path == "/":
            text = "home"
            headers.append(("Set-Cookie", APP_COOKIE_HEADER))
            headers.extend(FINGERPRINTS.items())
        elif method == "POST" and path == "/transfer":
            site.transfer(body)
            text = "transferred"
        elif method == "GET" and path == "/manage_main":
            text = "management screen"
        elif method == "POST" and path == "/login":
            text = "welcome"
            if site.protected:
                environ["sitewarden"].login("alice")
            else:
                headers.append(("Set-Cookie", NAIVE_SESSION_HEADER))
        else:
            status, text = "404 Not Found", "not found"
        start_response(status, headers)
        return [text.encode()]

    return app


# -- Starlette and FastAPI --------------------------------------------------------------


def starlette_app(site: Site, warden: Warden | None) -> Any:
    async def home(request: Request) -> PlainTextResponse:
        site.calls.append(request.url.path)
        response = PlainTextResponse("home", headers=FINGERPRINTS)
        response.set_cookie(*APP_COOKIE, samesite=None)
        return response

    async def transfer(request: Request) -> PlainTextResponse:
        site.calls.append(request.url.path)
        site.transfer(await request.body())
        return PlainTextResponse("transferred")

    async def manage(request: Request) -> PlainTextResponse:
        site.calls.append(request.url.path)
        return PlainTextResponse("management screen")

    async def login(request: Request) -> PlainTextResponse:
        site.calls.append(request.url.path)
        response = PlainTextResponse("welcome")
        if warden is not None:
            exchange(request).login("alice")
        else:
            response.set_cookie(*NAIVE_SESSION, samesite=None)
        return response

    middleware = [Middleware(SitewardenMiddleware, warden=warden)] if warden else []
    return Starlette(
        routes=[
            Route("/", home),
            Route("/transfer", transfer, methods=["POST"]),
            Route("/manage_main", manage),
            Route("/login", login, methods=["POST"]),
        ],
        middleware=middleware,
    )


def fastapi_app(site: Site, warden: Warden | None) -> Any:
    app = FastAPI()

    @app.get("/", response_class=FastAPIText)
    def home(request: FastAPIRequest) -> FastAPIText:
        site.calls.append(request.url.path)
        response = FastAPIText("home", headers=FINGERPRINTS)
        response.set_cookie(*APP_COOKIE, samesite=None)
        return response

    @app.post("/transfer", response_class=FastAPIText)
    async def transfer(request: FastAPIRequest) -> FastAPIText:
        site.calls.append(request.url.path)
        form = await request.form()
        site.transfers.append({k: str(v) for k, v in form.items()})
        return FastAPIText("transferred")

    @app.get("/manage_main", response_class=FastAPIText)
    def manage(request: FastAPIRequest) -> FastAPIText:
        site.calls.append(request.url.path)
        return FastAPIText("management screen")

    @app.post("/login", response_class=FastAPIText)
    def login(request: FastAPIRequest) -> FastAPIText:
        site.calls.append(request.url.path)
        response = FastAPIText("welcome")
        if warden is not None:
            exchange(request).login("alice")
        else:
            response.set_cookie(*NAIVE_SESSION, samesite=None)
        return response

    if warden is not None:
        app.add_middleware(SitewardenMiddleware, warden=warden)
    return app


def asgi_sender(app: Any) -> Send:
    """Drive an ASGI app with Starlette's TestClient (httpx), redirects not followed."""
    client = TestClient(app, base_url=SITE, follow_redirects=False)

    def send(
        method: str, scheme: str, host: str, path: str, headers: dict[str, str], body: str
    ) -> Response:
        r = client.request(
            method, f"{scheme}://{host}{path}", headers=headers, content=body.encode() or None
        )
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in r.headers.raw]
        return Response(r.status_code, raw, r.content)

    return send


# -- WSGI: raw and Flask ----------------------------------------------------------------


def flask_app(site: Site, warden: Warden | None) -> Any:
    app = Flask(__name__)

    @app.get("/")
    def home() -> Any:
        site.calls.append(request.path)
        response = make_response("home", 200, FINGERPRINTS)
        response.set_cookie(*APP_COOKIE)
        return response

    @app.post("/transfer")
    def transfer() -> str:
        site.calls.append(request.path)
        site.transfers.append(dict(request.form))
        return "transferred"

    @app.get("/manage_main")
    def manage() -> str:
        site.calls.append(request.path)
        return "management screen"

    @app.post("/login")
    def login() -> Any:
        site.calls.append(request.path)
        response = make_response("welcome")
        if warden is not None:
            flask_exchange().login("alice")
        else:
            response.set_cookie(*NAIVE_SESSION)
        return response

    if warden is not None:
        Sitewarden(app, warden=warden)
    return app


def wsgi_sender(client: Any) -> Send:
    """Drive a WSGI app with a Werkzeug test client (Flask's ``test_client`` is one)."""

    def send(
        method: str, scheme: str, host: str, path: str, headers: dict[str, str], body: str
    ) -> Response:
        r = client.open(
            path,
            method=method,
            base_url=f"{scheme}://{host}",
            headers=headers,
            data=body.encode(),
        )
        return Response(r.status_code, list(r.headers.items()), r.get_data())

    return send


# -- Django -----------------------------------------------------------------------------


class DjangoUrls:
    """A URLconf object (``ROOT_URLCONF`` may be any object with ``urlpatterns``)."""

    def __init__(self, site: Site) -> None:
        from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
        from django.urls import path

        def home(request: HttpRequest) -> HttpResponse:
            site.calls.append(request.path)
            response = HttpResponse("home", content_type="text/plain")
            for name, value in FINGERPRINTS.items():
                response[name] = value
            response.set_cookie(*APP_COOKIE)
            return response

        def transfer(request: HttpRequest) -> HttpResponse:
            site.calls.append(request.path)
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            site.transfers.append(request.POST.dict())
            return HttpResponse("transferred", content_type="text/plain")

        def manage(request: HttpRequest) -> HttpResponse:
            site.calls.append(request.path)
            return HttpResponse("management screen", content_type="text/plain")

        def login(request: Any) -> HttpResponse:
            site.calls.append(request.path)
            response = HttpResponse("welcome", content_type="text/plain")
            if site.protected:
                request.sitewarden.login("alice")
            else:
                response.set_cookie(*NAIVE_SESSION)
            return response

        self.urlpatterns = [
            path("", home),
            path("transfer", transfer),
            path("manage_main", manage),
            path("login", login),
        ]


def django_sender(client: Any) -> Send:
    """Drive Django with its test client; ``Set-Cookie`` written as Django's handlers do."""

    def send(
        method: str, scheme: str, host: str, path: str, headers: dict[str, str], body: str
    ) -> Response:
        content_type = headers.pop("content-type", "application/octet-stream")
        r = client.generic(
            method,
            path,
            body,
            content_type=content_type,
            secure=scheme == "https",
            headers={"host": host, **headers},
        )
        if body or content_type != "application/octet-stream":
            headers["content-type"] = content_type  # keep the transcript complete
        raw = list(r.items())
        # django.core.handlers.wsgi.WSGIHandler writes cookies exactly like this
        raw.extend(("Set-Cookie", c.output(header="").strip()) for c in r.cookies.values())
        return Response(r.status_code, raw, r.content)

    return send


# -- the matrix's entry point -------------------------------------------------------------


@contextlib.contextmanager
def target(stack: str, protected: bool) -> Iterator[Target]:
    """Build *stack*'s site (with sitewarden when *protected*) and its test client."""
    site = Site(protected)
    if stack == "django":
        from django.test import Client, override_settings

        with override_settings(
            ROOT_URLCONF=DjangoUrls(site),
            # Django's own host check off: the Host guard under test is sitewarden's
            ALLOWED_HOSTS=["*"],
            MIDDLEWARE=["sitewarden.web.django.SitewardenMiddleware"] if protected else [],
            SITEWARDEN={
                "store": "memory://",
                "allowed_hosts": [HOST],
                "manage_hosts": [MANAGE_HOST],
            },
        ):
            yield Target(stack, site, django_sender(Client()))
        return
    warden = make_warden() if protected else None
    if stack == "asgi":
        app = raw_asgi_app(site)
        send = asgi_sender(warden.asgi(app) if warden else app)
    elif stack == "starlette":
        send = asgi_sender(starlette_app(site, warden))
    elif stack == "fastapi":
        send = asgi_sender(fastapi_app(site, warden))
    elif stack == "wsgi":
        app = raw_wsgi_app(site)
        send = wsgi_sender(WerkzeugClient(warden.wsgi(app) if warden else app))
    elif stack == "flask":
        send = wsgi_sender(flask_app(site, warden).test_client())
    else:
        raise ValueError(stack)
    yield Target(stack, site, send)
