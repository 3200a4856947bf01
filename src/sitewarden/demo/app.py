"""The demo site: a small Starlette application protected by sitewarden.

:func:`create_app` builds the application and its :class:`~sitewarden.warden.Warden` and
returns ``(warden.asgi(app), warden)``. Everything the site keeps — sitewarden's keyring,
the accounts, the comments, the CSP reports, lockout records, rate-limit state, bans, TOTP
replay marks and the recent security events — lives in one SQLite store,
``<state_dir>/state.db``.

The application itself contains no security code beyond what any site has (who may see
the admin area, what a password is): host checks, the HTTPS redirect, CSRF, security
headers, the session cookie, "log out everywhere", rate limits, bans, lockout, password
hashing and policy, TOTP and the ``/manage`` restrictions are sitewarden's. Pages use no
inline script or style, so the strict Content-Security-Policy needs no nonce; the one
script is loaded with Subresource Integrity.

The routes are grouped by purpose: :mod:`~sitewarden.demo.signin` (``/login``),
:mod:`~sitewarden.demo.account` (``/account``), :mod:`~sitewarden.demo.admin`
(``/manage``); this module has the home page, comments and sign-out.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sitewarden.demo.account import AccountPages
from sitewarden.demo.accounts import ADMIN_NAME, Accounts
from sitewarden.demo.admin import AdminPages, policy_password
from sitewarden.demo.pages import STATIC_DIR, TEMPLATES_DIR, Pages, field
from sitewarden.demo.signin import BAD_LOGIN, SignIn
from sitewarden.keyring import KeyManager
from sitewarden.store import open_store
from sitewarden.store.base import Store
from sitewarden.warden import Warden
from sitewarden.web.starlette import exchange

__all__ = [
    "BAD_LOGIN",
    "COMMENTS_KEY",
    "DEFAULT_HOSTS",
    "LOGIN_RATE",
    "MAX_COMMENT",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "Comments",
    "create_app",
]

#: Host names the demo answers to (plus ``--host`` when it names one).
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
#: The store key holding the comments (one JSON list, newest last).
COMMENTS_KEY = "demo:comments"
#: Longest comment accepted (characters), and how many comments are kept.
MAX_COMMENT = 2000
MAX_COMMENTS = 100
#: Sign-in posts allowed per client address (sitewarden's rate limit; 429 beyond).
LOGIN_RATE = "10/minute"


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
    settings: Mapping[str, Any] | None = None,
) -> tuple[Any, Warden]:
    """Build the demo site; return ``(asgi_app, warden)``.

    *state_dir* holds the SQLite store (created ``0700``). With *https* the policy is the
    ``strict`` preset; *https_port* is where plain HTTP is redirected to (``None``: 443).
    Without it the site is the loosened development mode: no HTTPS redirect and a session
    cookie without ``Secure`` (the rest of the strict preset is kept). *hosts* are extra
    Host names to answer to; ``/manage`` is served only on *manage_host* from loopback.
    *settings* are further policy settings that win over the demo's (tests use them for
    lower thresholds or other rates).

    The first run creates the account ``admin`` with a random password and hands it to
    *on_admin_password* (default: printed to standard output) — the only place it ever
    appears. *reset_admin* gives the existing admin a new random password the same way
    and ends its sessions everywhere. The warden records the site's security events in the
    store (``events_keep``) for the admin area; ``warden.close()`` ends that and closes the
    store when the site is done.
    """
    state = Path(state_dir)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{(state / 'state.db').resolve()}")
    allowed = list(DEFAULT_HOSTS)
    allowed += [h for h in hosts if h and h not in allowed]
    if manage_host not in allowed:
        allowed.append(manage_host)
    policy: dict[str, Any] = {
        "allowed_hosts": allowed,
        "manage_hosts": [manage_host],
        "manage_networks": ["127.0.0.0/8", "::1/128"],
        # Per client address, applied by sitewarden before the application is called. The
        # per-login-name limit and the lockout are in sitewarden.demo.signin.
        "rate_limits": {
            "POST /login": LOGIN_RATE,
            "POST /login/code": LOGIN_RATE,
            "POST /account/password": LOGIN_RATE,
            "POST /account/password-strength": "120/minute",
        },
    }
    if https:
        policy["https_port"] = https_port
    else:
        # Loosened development mode for plain http://127.0.0.1: no redirect to HTTPS and
        # a session cookie that the browser sends over HTTP. Never run a site like this.
        policy["https_redirect"] = False
        policy["session_cookie_secure"] = False
    policy.update(settings or {})
    warden: Warden | None = None
    try:
        keys = KeyManager.open(store)
        warden = Warden("strict", keys=keys, **policy)
        pages = Pages(warden, Accounts(store, warden.passwords), https=https)
        _ensure_admin(pages, reset_admin, on_admin_password or _print_admin)
    except BaseException:
        if warden is not None:
            warden.close()  # its event recording too, not only the store
        else:
            store.close()
        raise
    site = _Site(pages)
    return warden.asgi(site.app), warden


def _ensure_admin(pages: Pages, reset: bool, announce: Callable[[str, str], None]) -> None:
    """Create the admin account on the first run (or give it a new password on *reset*)."""
    accounts = pages.accounts
    if accounts.get(ADMIN_NAME) is None:
        password = policy_password(pages, ADMIN_NAME)
        if accounts.create(ADMIN_NAME, password, admin=True):
            announce(ADMIN_NAME, password)
    elif reset:
        password = policy_password(pages, ADMIN_NAME)
        accounts.set_password(ADMIN_NAME, password)
        pages.warden.sessions.logout_everywhere(ADMIN_NAME)
        pages.warden.lockout.unlock(ADMIN_NAME)  # a locked-out admin gets back in
        announce(ADMIN_NAME, password)


class _Site:
    """The routes; one instance per :func:`create_app` call."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.warden = pages.warden
        self.comments = Comments(pages.store)
        self.app = Starlette(
            routes=[
                Route("/", self.home, methods=["GET"]),
                *SignIn(pages).routes(),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/logout-everywhere", self.logout_everywhere, methods=["POST"]),
                Route("/comments", self.add_comment, methods=["POST"]),
                *AccountPages(pages).routes(),
                *AdminPages(pages).routes(),
                Route("/healthz", self.healthz, methods=["GET"]),
                Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
            ]
        )

    async def home(self, request: Request) -> Response:
        ex = exchange(request)
        headers = list(self.warden.headers.always)
        if ex.https:
            headers += list(self.warden.headers.https_only)
        return self.pages.render(
            request,
            "home.html",
            comments=self.comments.list() if ex.user else [],
            headers=headers,
            csp=self.warden.headers.csp.enforced,
            is_admin=self.pages.is_admin(ex.user),
        )

    async def logout(self, request: Request) -> Response:
        exchange(request).logout()  # clears the cookie and sends Clear-Site-Data
        return RedirectResponse("/", 303)

    async def logout_everywhere(self, request: Request) -> Response:
        exchange(request).logout(everywhere=True)  # every device's cookie stops working
        return RedirectResponse("/", 303)

    async def add_comment(self, request: Request) -> Response:
        ex = exchange(request)
        if ex.user is None:
            return self.pages.render(
                request, "error.html", status=403, message="Sign in to comment."
            )
        form = await request.form(max_files=0, max_fields=10)
        text = field(form, "text").replace("\r\n", "\n").strip()
        if not text or len(text) > MAX_COMMENT:
            return self.pages.render(
                request,
                "error.html",
                status=400,
                message=f"A comment has 1 to {MAX_COMMENT} characters.",
            )
        self.comments.add(ex.user, text)  # stored as typed; escaped when shown
        return RedirectResponse("/#comments", 303)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")
