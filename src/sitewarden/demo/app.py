"""The demo site: a small Starlette application protected by sitewarden.

:func:`create_app` builds the application and its :class:`~sitewarden.warden.Warden` and
returns ``(warden.asgi(app), warden)``. Everything the site keeps — sitewarden's keyring,
the accounts, the comments and the CSP reports — lives in one SQLite store,
``<state_dir>/state.db``.

The application itself contains no security code beyond what any site has (who may see
the admin area, what a password is): host checks, the HTTPS redirect, CSRF, security
headers, the session cookie, "log out everywhere" and the ``/manage`` restrictions are
sitewarden's. Pages use no inline script or style, so the strict Content-Security-Policy
needs no nonce; the one script is loaded with Subresource Integrity.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sitewarden.demo.accounts import ADMIN_NAME, MAX_PASSWORD, Accounts, new_password
from sitewarden.keyring import USER_RING_PREFIX, KeyManager
from sitewarden.reports import list_reports
from sitewarden.sri import integrity_for_file
from sitewarden.store import open_store
from sitewarden.store.base import Store
from sitewarden.warden import Warden
from sitewarden.web.starlette import exchange as _exchange
from sitewarden.web.starlette import install_jinja

__all__ = [
    "COMMENTS_KEY",
    "DEFAULT_HOSTS",
    "LOGIN_FAILURES_ALLOWED",
    "MAX_COMMENT",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "Comments",
    "create_app",
]

#: Where the templates and static files are (package data).
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

#: Host names the demo answers to (plus ``--host`` when it names one).
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
#: The store key holding the comments (one JSON list, newest last).
COMMENTS_KEY = "demo:comments"
#: Longest comment accepted (characters), and how many comments are kept.
MAX_COMMENT = 2000
MAX_COMMENTS = 100
#: Failed sign-ins allowed per client address per quarter hour.
LOGIN_FAILURES_ALLOWED = 20
_LOGIN_WINDOW = 900.0
_FAIL_PREFIX = "demo:login-fail:"

#: The one message for a wrong password and an unknown user.
BAD_LOGIN = "Unknown user name or wrong password."

_NO_STORE = {"cache-control": "no-store"}


class Comments:
    """The comment list in the store (one key, updated atomically)."""

    def __init__(self, store: Store) -> None:
        """Keep the comments in *store*."""
        self.store = store

    def add(self, user: str, text: str) -> None:
        """Append a comment by *user*; the oldest are dropped beyond the limit."""
        entry = {"id": secrets.token_hex(8), "user": user, "text": text, "at": time.time()}

        def append(raw: bytes | None) -> bytes:
            items = _load_list(raw)
            items.append(entry)
            return json.dumps(items[-MAX_COMMENTS:]).encode()

        self.store.update(COMMENTS_KEY, append)

    def list(self) -> list[dict[str, Any]]:
        """Return the comments, newest first."""
        return list(reversed(_load_list(self.store.get(COMMENTS_KEY))))


def _load_list(raw: bytes | None) -> list[dict[str, Any]]:
    if raw is None:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _print_admin(name: str, password: str) -> None:
    print(f"Admin account created: user {name!r}, password {password!r} (shown only once)")


def create_app(
    state_dir: str | os.PathLike[str],
    https: bool,
    *,
    https_port: int | None = None,
    hosts: Sequence[str] = (),
    manage_host: str = "127.0.0.1",
    reset_admin: bool = False,
    on_admin_password: Callable[[str, str], None] | None = None,
) -> tuple[Any, Warden]:
    """Build the demo site; return ``(asgi_app, warden)``.

    *state_dir* holds the SQLite store (created ``0700``). With *https* the policy is the
    ``strict`` preset; *https_port* is where plain HTTP is redirected to (``None``: 443).
    Without it the site is the loosened development mode: no HTTPS redirect and a session
    cookie without ``Secure`` (the rest of the strict preset is kept). *hosts* are extra
    Host names to answer to; ``/manage`` is served only on *manage_host* from loopback.

    The first run creates the account ``admin`` with a random password and hands it to
    *on_admin_password* (default: printed to standard output) — the only place it ever
    appears. *reset_admin* gives the existing admin a new random password the same way
    and ends its sessions everywhere.
    """
    state = Path(state_dir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{(state / 'state.db').resolve()}")
    allowed = list(DEFAULT_HOSTS)
    allowed += [h for h in hosts if h and h not in allowed]
    if manage_host not in allowed:
        allowed.append(manage_host)
    settings: dict[str, Any] = {
        "allowed_hosts": allowed,
        "manage_hosts": [manage_host],
        "manage_networks": ["127.0.0.0/8", "::1/128"],
    }
    if https:
        settings["https_port"] = https_port
    else:
        # Loosened development mode for plain http://127.0.0.1: no redirect to HTTPS and
        # a session cookie that the browser sends over HTTP. Never run a site like this.
        settings["https_redirect"] = False
        settings["session_cookie_secure"] = False
    try:
        keys = KeyManager.open(store)
        warden = Warden("strict", keys=keys, **settings)
        accounts = Accounts(store)
        announce = on_admin_password or _print_admin
        if accounts.get(ADMIN_NAME) is None:
            password = new_password()
            if accounts.create(ADMIN_NAME, password, admin=True):
                announce(ADMIN_NAME, password)
        elif reset_admin:
            password = new_password()
            accounts.set_password(ADMIN_NAME, password)
            warden.sessions.logout_everywhere(ADMIN_NAME)
            announce(ADMIN_NAME, password)
    except BaseException:
        store.close()
        raise
    site = _Site(warden, accounts, Comments(store), https=https)
    return warden.asgi(site.app), warden


class _Site:
    """The routes; one instance per :func:`create_app` call."""

    def __init__(self, warden: Warden, accounts: Accounts, comments: Comments, https: bool):
        self.warden = warden
        self.store = warden.keys.store
        self.accounts = accounts
        self.comments = comments
        self.https = https
        env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,  # every template, whatever its name
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["isotime"] = _isotime
        self.templates = Jinja2Templates(env=env)
        install_jinja(self.templates, warden)  # csrf_input(), csp_nonce(), …
        # Subresource Integrity of the page assets, computed once at start-up.
        self.assets = {
            name: integrity_for_file(STATIC_DIR / name) for name in ("app.js", "style.css")
        }
        self.app = Starlette(
            routes=[
                Route("/", self.home, methods=["GET"]),
                Route("/login", self.login_form, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/logout-everywhere", self.logout_everywhere, methods=["POST"]),
                Route("/comments", self.add_comment, methods=["POST"]),
                Route("/manage", self.manage, methods=["GET"]),
                Route("/manage/users", self.add_user, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            ]
        )

    # -- helpers ---------------------------------------------------------------------

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        ex = _exchange(request)
        context.update(
            user=ex.user,
            assets=self.assets,
            https=self.https,
        )
        return self.templates.TemplateResponse(
            request, template, context, status_code=status, headers=_NO_STORE
        )

    def is_admin(self, user: str | None) -> bool:
        account = self.accounts.get(user) if user else None
        return account is not None and account.admin

    # -- pages -----------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        ex = _exchange(request)
        headers = list(self.warden.headers.always)
        if ex.https:
            headers += list(self.warden.headers.https_only)
        return self.render(
            request,
            "home.html",
            comments=self.comments.list() if ex.user else [],
            headers=headers,
            csp=self.warden.headers.csp.enforced,
            is_admin=self.is_admin(ex.user),
        )

    async def login_form(self, request: Request) -> Response:
        ex = _exchange(request)
        return (
            self.render(
                request,
                "login.html",
                error=None,
                name="",
                next=_local(request.query_params.get("next")),
            )
            if ex.user is None
            else RedirectResponse("/", 303)
        )

    async def login(self, request: Request) -> Response:
        ex = _exchange(request)
        form = await request.form(max_files=0, max_fields=10)
        name = _field(form, "username").strip().lower()[:64]
        password = _field(form, "password")[: MAX_PASSWORD + 1]
        target = _local(_field(form, "next"))
        counter = f"{_FAIL_PREFIX}{ex.origin.client or 'unknown'}"
        if self.store.incr(counter, 0, ttl=_LOGIN_WINDOW) >= LOGIN_FAILURES_ALLOWED:
            return self.render(
                request,
                "login.html",
                status=429,
                error="Too many failed sign-ins from your address; try again in 15 minutes.",
                name=name,
                next=target,
            )
        account = await run_in_threadpool(self.accounts.verify, name, password)
        if account is None:
            self.store.incr(counter, 1, ttl=_LOGIN_WINDOW)
            return self.render(
                request, "login.html", status=400, error=BAD_LOGIN, name=name, next=target
            )
        ex.login(account.name)  # a new session cookie: no session fixation
        return RedirectResponse(target, 303)

    async def logout(self, request: Request) -> Response:
        _exchange(request).logout()  # clears the cookie and sends Clear-Site-Data
        return RedirectResponse("/", 303)

    async def logout_everywhere(self, request: Request) -> Response:
        _exchange(request).logout(everywhere=True)  # every device's cookie stops working
        return RedirectResponse("/", 303)

    async def add_comment(self, request: Request) -> Response:
        ex = _exchange(request)
        if ex.user is None:
            return self.render(request, "error.html", status=403, message="Sign in to comment.")
        form = await request.form(max_files=0, max_fields=10)
        text = _field(form, "text").replace("\r\n", "\n").strip()
        if not text or len(text) > MAX_COMMENT:
            return self.render(
                request,
                "error.html",
                status=400,
                message=f"A comment has 1 to {MAX_COMMENT} characters.",
            )
        self.comments.add(ex.user, text)  # stored as typed; escaped when shown
        return RedirectResponse("/#comments", 303)

    async def manage(self, request: Request) -> Response:
        denied = self._manage_denied(request)
        if denied is not None:
            return denied
        return self._manage_page(request, created=None)

    async def add_user(self, request: Request) -> Response:
        denied = self._manage_denied(request)
        if denied is not None:
            return denied
        form = await request.form(max_files=0, max_fields=10)
        name = _field(form, "username").strip().lower()
        password = new_password()
        try:
            made = await run_in_threadpool(self.accounts.create, name, password)
        except ValueError as exc:
            return self._manage_page(request, created=None, error=str(exc), status=400)
        if not made:
            return self._manage_page(
                request, created=None, error=f"{name!r} exists already.", status=400
            )
        return self._manage_page(request, created=(name, password))

    def _manage_denied(self, request: Request) -> Response | None:
        # sitewarden has already refused /manage on any other host or network (404).
        ex = _exchange(request)
        if ex.user is None:
            return RedirectResponse("/login?next=/manage", 303)
        if not self.is_admin(ex.user):
            return self.render(
                request, "error.html", status=403, message="The admin area is for admins only."
            )
        return None

    def _manage_page(
        self,
        request: Request,
        created: tuple[str, str] | None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        keys = self.warden.keys
        names = keys.names()
        rings = [
            (name, keys.stored_ring(name).fingerprints())
            for name in names
            if not name.startswith(USER_RING_PREFIX)
        ]
        user_rings = sum(1 for name in names if name.startswith(USER_RING_PREFIX))
        accounts = [a for a in (self.accounts.get(n) for n in self.accounts.names()) if a]
        return self.render(
            request,
            "manage.html",
            status=status,
            reports=list_reports(self.store, 50),
            rings=rings,
            user_rings=user_rings,
            accounts=accounts,
            created=created,
            error=error,
            store_url=self.store.url,
        )

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def _isotime(value: object) -> str:
    """Format a Unix time as ISO 8601 UTC (the page script shows it in local time)."""
    if not isinstance(value, int | float):
        return ""
    return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(timespec="seconds")


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _local(target: str | None) -> str:
    """Return *target* if it is a path on this site, else ``/`` (no open redirect)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\\\r\n\t")
    ):
        return "/"
    return target
