"""What every group of the demo's routes shares: the warden, the accounts, page rendering.

:class:`Pages` is built once per site by :func:`sitewarden.demo.app.create_app` and handed
to the route groups (:mod:`~sitewarden.demo.signin`, :mod:`~sitewarden.demo.account`,
:mod:`~sitewarden.demo.admin`). Templates are Jinja2 with autoescaping on for every file,
whatever its name: anything a visitor typed (a comment, a user name, a login tried by an
attacker and shown in the admin's event list) is shown as text, never as markup.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from sitewarden.demo.accounts import Accounts
from sitewarden.sri import integrity_for_file
from sitewarden.warden import Warden
from sitewarden.web.starlette import exchange, install_jinja

__all__ = [
    "NO_STORE",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "PageGroup",
    "Pages",
    "client_of",
    "duration",
    "field",
    "isotime",
    "local_path",
]

#: Where the templates and static files are (package data).
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

#: Pages carry one-time form authenticators, personal data, codes: never cached.
NO_STORE = {"cache-control": "no-store"}


class Pages:
    """The site's shared parts and :meth:`render`, used by every route group."""

    def __init__(self, warden: Warden, accounts: Accounts, *, https: bool) -> None:
        """Set up the templates for *warden*'s site; *https* says whether it is served so."""
        self.warden = warden
        self.store = warden.store
        self.accounts = accounts
        self.https = https
        env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=True,  # every template, whatever its name
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters["isotime"] = isotime
        env.filters["duration"] = duration
        self.templates = Jinja2Templates(env=env)
        install_jinja(self.templates, warden)  # csrf_input(), csrf_token(), csp_nonce(), …
        # Subresource Integrity of the page assets, computed once at start-up.
        self.assets = {
            name: integrity_for_file(STATIC_DIR / name) for name in ("app.js", "style.css")
        }

    def render(
        self,
        request: Request,
        template: str,
        status: int = 200,
        extra_headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        """Render *template* with the signed-in user, the assets' integrity and *context*.

        The response is ``no-store``, plus any *extra_headers* (such as ``Retry-After``).
        """
        ex = exchange(request)
        context.update(user=ex.user, assets=self.assets, https=self.https)
        return self.templates.TemplateResponse(
            request,
            template,
            context,
            status_code=status,
            headers={**NO_STORE, **(extra_headers or {})},
        )

    def is_admin(self, user: str | None) -> bool:
        """Return whether *user* is signed in and an admin."""
        account = self.accounts.get(user) if user else None
        return account is not None and account.admin


def client_of(request: Request) -> str | None:
    """Return the client address sitewarden resolved for *request* (proxies considered)."""
    return exchange(request).origin.client


def field(form: Any, name: str) -> str:
    """Return form field *name* as text (``""`` when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def local_path(target: str | None) -> str:
    """Return *target* if it is a path on this site, else ``/`` (no open redirect)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(c in target for c in "\\\r\n\t")
    ):
        return "/"
    return target


def isotime(value: object) -> str:
    """Format a Unix time as ISO 8601 UTC (the page script shows it in local time)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return ""
    try:
        when = datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return when.isoformat(timespec="seconds")


def duration(seconds: object) -> str:
    """Say how long *seconds* is in words: ``"45 seconds"``, ``"5 minutes"``, ``"2 hours"``.

    Rounded up, so a visitor told "1 minute" is not refused again after 59 seconds.
    """
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        return "a moment"
    total = math.ceil(seconds)
    if total < 60:
        return _plural(total, "second")
    minutes = math.ceil(total / 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, rest = divmod(minutes, 60)
    text = _plural(hours, "hour")
    return f"{text} {_plural(rest, 'minute')}" if rest else text


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


class PageGroup:
    """A group of routes sharing the site's :class:`Pages` (warden, accounts, store)."""

    def __init__(self, pages: Pages) -> None:
        """Use *pages*' warden, accounts, store and templates."""
        self.pages = pages
        self.warden = pages.warden
        self.accounts = pages.accounts
        self.store = pages.store
