"""Fixtures for the browser tests: the demo, a mirror of it, an attacker, and Chromium.

Everything runs on loopback and is started and stopped by the fixtures:

* ``demo`` — ``sitewarden demo --https`` as a subprocess on free ports with a fresh state
  directory; the admin password is read from its first-run output. Stopped by its
  process id (terminate, wait, kill).
* ``mirror_protected`` / ``mirror_unprotected`` — a tiny Starlette app with the demo's
  routes (``/``, ``/login``, ``/comments``, ``/healthz``) plus one deliberately vulnerable
  route, ``/reflect?q=``, which echoes its input unescaped. The protected one is wrapped
  by ``Warden("strict", ...)`` exactly as the demo is; the unprotected one is the same app
  with no Warden and a naive session cookie. Every attack is run against both: the
  unprotected run is the control that shows the test can see the attack succeed.
* ``attacker`` — a plain HTTP server on another origin, serving attack pages from
  ``http://localhost:<port>`` (cross-site to ``https://127.0.0.1``) and
  ``https://127.0.0.1:<other port>`` (same site, other origin: the browser sends even
  ``SameSite=Strict`` cookies, so only sitewarden's CSRF check stands in the way).
* ``browsers`` — Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, never a
  downloaded browser.

**TLS.** Chromium ignores ``NODE_EXTRA_CA_CERTS`` and has no per-launch CA option, so each
browser is launched with ``--ignore-certificate-errors-spki-list=<sha256 of the server
keys>``: certificates with exactly those keys are accepted *as valid* — the page is a
normal secure context, ``Secure``/``__Host-`` cookies, HSTS handling and the Reporting API
behave as on a real HTTPS site — while any other certificate error is still an error.
(``ignore_https_errors=True`` would also load the pages, but Chromium then treats the
origin as one with certificate errors, which changes how reports and some cookie rules
are handled; the tests are about CSP, framing, CSRF and cookies, so they must see the
normal behaviour.)

**Skips.** Without Chromium (or Playwright) the tests are skipped, unless
``SITEWARDEN_REQUIRE_SERVICES=1`` (CI), where they fail: a missing install step must not
hide behind a green run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.server
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: Debian's Chromium (``apt-get install chromium``); override with SITEWARDEN_CHROMIUM.
CHROMIUM = os.environ.get("SITEWARDEN_CHROMIUM", "/usr/bin/chromium")
#: What this machine's closed network needs (docs: the machine notes), plus
#: ``--short-reporting-delay``: Reporting API uploads after 100 ms instead of a minute.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--short-reporting-delay",
]
REQUIRE_SERVICES = os.environ.get("SITEWARDEN_REQUIRE_SERVICES") == "1"
#: Seconds a server gets to answer /healthz after start.
START_TIMEOUT = 60.0


def missing(reason: str) -> None:
    """Skip the test for a missing tool — or fail when CI requires every service."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (SITEWARDEN_REQUIRE_SERVICES=1: required, not skipped)")
    pytest.skip(reason)


# -- small helpers ---------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spki_sha256(cert_pem: Path) -> str:
    """Return base64(sha256(SubjectPublicKeyInfo)) of a certificate, as Chromium wants it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@dataclass(frozen=True)
class Tls:
    """A CA and a server certificate for 127.0.0.1 / localhost / ::1."""

    ca: Path
    cert: Path
    key: Path

    @property
    def spki(self) -> str:
        return spki_sha256(self.cert)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def make_tls(directory: Path) -> Tls:
    """Create a local CA and server certificate with the demo's own code."""
    from sitewarden.demo.tls import ensure_tls

    files = ensure_tls(directory)
    return Tls(files.ca_cert, files.cert, files.key)


def http_get(
    url: str, context: ssl.SSLContext | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """GET *url* without following redirects; return (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[Any] = [NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def wait_healthy(
    url: str,
    context: ssl.SSLContext | Callable[[], ssl.SSLContext | None] | None,
    alive: Callable[[], bool] = lambda: True,
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll *url* until it answers 200, or raise with the reason."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server exited before {url} answered ({last})")
        ctx = context() if callable(context) else context
        try:
            status, _, _ = http_get(url, ctx, timeout=2.0)
            if status == 200:
                return
            last = f"status {status}"
        except (OSError, ssl.SSLError) as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s ({last})")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Stop *proc* by its process id: terminate, wait, then kill."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# -- in-process servers ----------------------------------------------------------------


class UvicornThread:
    """Serve an ASGI app with uvicorn in a background thread (HTTPS when *tls* is given)."""

    def __init__(self, app: Any, port: int, tls: Tls | None = None) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # the tests talk to it directly; trust no X-Forwarded-*
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = port

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class AttackerServer:
    """Serves attack pages (registered with :meth:`put`) on two origins other than the sites'.

    ``cross_site``: ``http://localhost:<port>`` — another site altogether.
    ``same_site``: ``https://127.0.0.1:<port>`` — the same site as ``https://127.0.0.1:<p>``
    (sites ignore ports), another origin; Chromium sends ``SameSite=Strict`` cookies along.
    """

    def __init__(self, tls: Tls) -> None:
        pages: dict[str, bytes] = {}
        self.pages = pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._https.socket = tls.server_context().wrap_socket(self._https.socket, server_side=True)
        self.cross_site = f"http://localhost:{self._http.server_address[1]}"
        self.same_site = f"https://127.0.0.1:{self._https.server_address[1]}"
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in (self._http, self._https)
        ]

    def start(self) -> AttackerServer:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        for s in (self._http, self._https):
            s.shutdown()
            s.server_close()

    def put(self, origin: str, body: str) -> str:
        """Serve *body* on a fresh path; return its URL on *origin* (cross_site/same_site)."""
        path = f"/attack-{secrets.token_hex(6)}.html"
        self.pages[path] = body.encode()
        return origin + path


# -- the sites under test --------------------------------------------------------------


@dataclass
class Site:
    """A site under attack: where it is, how to sign in, and where its CSP reports go."""

    name: str
    base_url: str  # https://127.0.0.1:<port>, no trailing slash
    protected: bool
    username: str
    password: str
    spki: list[str]
    reports: Callable[[], list[dict[str, Any]]]  # stored CSP reports, newest first
    has_reflect: bool = False  # the deliberately vulnerable /reflect?q= route
    notes: list[str] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return self.base_url + path


@dataclass
class DemoProcess:
    """A running ``sitewarden demo --https``."""

    proc: subprocess.Popen[str]
    state_dir: Path
    port: int
    http_port: int
    output: list[str]
    admin_user: str = ""
    admin_password: str = ""

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def tls(self) -> Tls:
        d = self.state_dir / "tls"
        return Tls(d / "ca.pem", d / "server.pem", d / "server-key.pem")

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.state_dir / 'state.db'}"

    def text(self) -> str:
        return "".join(self.output)


#: The demo's first-run line: ``Admin account created: user 'admin', password '…'``.
_ADMIN_LINE = re.compile(
    r"user\s*[:=]?\s*['\"]?(?P<user>[a-z0-9][a-z0-9_.-]*)['\"]?\s*[,;]?\s*"
    r"password\s*[:=]?\s*['\"]?(?P<password>[A-Za-z0-9_\-]{8,})",
    re.IGNORECASE,
)


def sitewarden_command() -> list[str]:
    """The ``sitewarden`` console script of this environment."""
    script = Path(sys.executable).with_name("sitewarden")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from sitewarden.cli import main; sys.exit(main())"]


def start_demo(state_dir: Path, *extra: str) -> DemoProcess:
    """Start ``sitewarden demo --https`` on free ports; return once /healthz answers."""
    port, http_port = free_port(), free_port()
    cmd = [
        *sitewarden_command(),
        "demo",
        "--https",
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    demo = DemoProcess(proc, state_dir, port, http_port, [])

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            demo.output.append(line)

    threading.Thread(target=pump, daemon=True).start()

    def context() -> ssl.SSLContext | None:
        return demo.tls.client_context() if demo.tls.ca.exists() else None

    try:
        wait_healthy(demo.base_url + "/healthz", context, alive=lambda: proc.poll() is None)
    except RuntimeError as exc:
        stop_process(proc)
        raise RuntimeError(f"{exc}\ncommand: {' '.join(cmd)}\noutput:\n{demo.text()}") from None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = _ADMIN_LINE.search(demo.text())
        if found:
            demo.admin_user, demo.admin_password = found["user"], found["password"]
            break
        time.sleep(0.05)
    return demo


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """``sitewarden demo --https`` on free ports with a fresh state directory."""
    proc = start_demo(tmp_path_factory.mktemp("demo-state"))
    try:
        if not proc.admin_password:
            pytest.fail(
                "the demo's first run printed no admin credentials "
                f"(expected \"user 'admin', password '…'\"); output:\n{proc.text()}"
            )
        yield proc
    finally:
        stop_process(proc.proc)


# -- the mirror app --------------------------------------------------------------------

MIRROR_USER = "admin"
MIRROR_PASSWORD = "mirror-" + secrets.token_urlsafe(12)


def mirror_app(protected: bool, state_dir: Path, https_port: int) -> tuple[Any, Any]:
    """The demo's routes in a few lines, plus ``/reflect?q=`` (reflects *q* unescaped).

    With *protected*, the app is wrapped by ``Warden("strict", …)`` with the demo's settings
    and uses sitewarden's session (``exchange.login``) and authenticator; without, it is a
    typical unprotected app: no security headers, no CSRF check, and its own session cookie
    ``session=<random>; SameSite=None; Secure`` (no HttpOnly) — as apps that opt out of
    SameSite for embedding or single sign-on send it.
    Return ``(asgi_app, warden or None)``.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    comments: list[tuple[str, str]] = []
    sessions: dict[str, str] = {}

    def exchange(request: Request) -> Any:
        return request.scope["sitewarden"]

    def user_of(request: Request) -> str | None:
        if protected:
            return exchange(request).user  # type: ignore[no-any-return]
        return sessions.get(request.cookies.get("session", ""))

    def token_field(request: Request) -> str:
        if not protected:
            return ""
        ex = exchange(request)
        field_name = ex.warden.policy.csrf_field
        return f'<input type="hidden" name="{field_name}" value="{ex.csrf_token()}">'

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{body}</body></html>",
            status_code=status,
        )

    async def home(request: Request) -> Response:
        user = user_of(request)
        if user is None:
            return page("mirror home", '<p>Not signed in. <a href="/login">Sign in</a></p>')
        items = "".join(f"<li><b>{html.escape(u)}</b>: {html.escape(t)}</li>" for u, t in comments)
        return page(
            "mirror home",
            f"<p>Signed in as {html.escape(user)}.</p>"
            f'<form method="post" action="/comments">{token_field(request)}'
            '<textarea name="text" id="text"></textarea><button type="submit">Post</button>'
            f'</form><ol id="comments">{items}</ol>',
        )

    async def login_form(request: Request) -> Response:
        return page(
            "Sign in",
            f'<form method="post" action="/login">{token_field(request)}'
            '<input id="username" name="username"><input id="password" name="password" '
            'type="password"><button type="submit">Sign in</button></form>',
        )

    async def login(request: Request) -> Response:
        form = await request.form()
        if (form.get("username"), form.get("password")) != (MIRROR_USER, MIRROR_PASSWORD):
            return page("Sign in", "<p>Wrong user name or password.</p>", 400)
        response = RedirectResponse("/", 303)
        if protected:
            exchange(request).login(MIRROR_USER)
        else:
            token = secrets.token_urlsafe(16)
            sessions[token] = MIRROR_USER
            response.set_cookie("session", token, secure=True, samesite="none")
        return response

    async def add_comment(request: Request) -> Response:
        user = user_of(request)
        if user is None:
            return page("Forbidden", "<p>Sign in to comment.</p>", 403)
        form = await request.form()
        comments.append((user, str(form.get("text", ""))))
        return RedirectResponse("/#comments", 303)

    async def reflect(request: Request) -> Response:
        # Deliberately vulnerable: a reflected XSS, for the CSP test only.
        return page("search", f"<p>Results for: {request.query_params.get('q', '')}</p>")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/comments", add_comment, methods=["POST"]),
            Route("/reflect", reflect, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    if not protected:
        return app, None
    from sitewarden.warden import Warden

    warden = Warden(
        "strict",
        store=f"sqlite:///{state_dir / 'state.db'}",
        allowed_hosts=["127.0.0.1", "localhost", "::1"],
        https_port=https_port,
    )
    return warden.asgi(app), warden


@pytest.fixture(scope="session")
def shared_tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """One CA and certificate for the mirrors and the attacker's HTTPS origin."""
    return make_tls(tmp_path_factory.mktemp("tls"))


def _mirror(protected: bool, tls: Tls, state_dir: Path) -> Iterator[Site]:
    from sitewarden.reports import list_reports

    port = free_port()
    app, warden = mirror_app(protected, state_dir, port)
    server = UvicornThread(app, port, tls).start()
    try:
        base = f"https://127.0.0.1:{port}"
        wait_healthy(base + "/healthz", tls.client_context())
        yield Site(
            name="mirror-protected" if protected else "mirror-unprotected",
            base_url=base,
            protected=protected,
            username=MIRROR_USER,
            password=MIRROR_PASSWORD,
            spki=[tls.spki],
            reports=(lambda: list_reports(warden.keys.store, 200)) if warden else list,
            has_reflect=True,
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mirror_protected(shared_tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The mirror app behind ``Warden("strict")``."""
    yield from _mirror(True, shared_tls, tmp_path_factory.mktemp("mirror"))


@pytest.fixture(scope="session")
def mirror_unprotected(shared_tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The same mirror app with no Warden: the control for every attack."""
    yield from _mirror(False, shared_tls, tmp_path_factory.mktemp("mirror-bare"))


@pytest.fixture(scope="session")
def demo_site(demo: DemoProcess) -> Site:
    """The demo as a :class:`Site`; its CSP reports are read from its SQLite store."""
    from sitewarden.reports import list_reports
    from sitewarden.store import open_store

    def reports() -> list[dict[str, Any]]:
        store = open_store(demo.store_url, create=False)
        try:
            return list_reports(store, 200)
        finally:
            store.close()

    return Site(
        name="demo",
        base_url=demo.base_url,
        protected=True,
        username=demo.admin_user,
        password=demo.admin_password,
        spki=[demo.tls.spki],
        reports=reports,
    )


@pytest.fixture
def site(request: pytest.FixtureRequest) -> Site:
    """The site under attack, by name (tests parametrize it: ``indirect=True``)."""
    name = {"demo": "demo_site"}.get(request.param, request.param.replace("-", "_"))
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def attacker(shared_tls: Tls) -> Iterator[AttackerServer]:
    """The attacker's pages, on origins other than every site's."""
    server = AttackerServer(shared_tls).start()
    try:
        yield server
    finally:
        server.stop()


# -- Chromium --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    """Playwright's driver, or a skip (a failure in CI) when Chromium is not installed."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        missing(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright (Python) is not installed")
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


class Browsers:
    """Chromium instances, one per set of trusted server keys (launched on first use)."""

    def __init__(self, pw: Any) -> None:
        self._pw = pw
        self._open: dict[tuple[str, ...], Any] = {}

    def get(self, spki: list[str]) -> Any:
        key = tuple(sorted(set(spki)))
        if key not in self._open:
            self._open[key] = self._pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={','.join(key)}"],
            )
        return self._open[key]

    def close(self) -> None:
        for browser in self._open.values():
            with contextlib.suppress(Exception):
                browser.close()


@pytest.fixture(scope="session")
def browsers(playwright_instance: Any) -> Iterator[Browsers]:
    """Launch Chromium on demand; close every instance at the end."""
    b = Browsers(playwright_instance)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def context(browsers: Browsers, site: Site, shared_tls: Tls) -> Iterator[Any]:
    """A fresh browser profile (no cookies) that trusts *site* and the attacker's HTTPS."""
    ctx = browsers.get([*site.spki, shared_tls.spki]).new_context()
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()
