"""The admin area, ``/manage``: reports, keyring, accounts, locks, bans and recent events.

sitewarden serves ``/manage`` only on the management host to clients on loopback (404
elsewhere, before the application is called); these routes then require an admin account.
Every change is a CSRF-protected POST (the middleware checks the form's authenticator).

Locked accounts and addresses (``warden.lockout.locked()``) and active bans
(``warden.bans.list()``) each get a button that lifts them. The recent security events are
read from the store (:func:`sitewarden.events_store.recent`); their fields — logins,
paths, reasons — are attacker-controlled text and are shown escaped (Jinja2 autoescape).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sitewarden.demo.accounts import new_password
from sitewarden.demo.pages import PageGroup, Pages, field
from sitewarden.events_store import recent
from sitewarden.keyring import USER_RING_PREFIX
from sitewarden.reports import list_reports
from sitewarden.web.starlette import exchange

__all__ = ["EVENTS_SHOWN", "AdminPages", "policy_password"]

#: How many recent security events the admin area lists.
EVENTS_SHOWN = 50
#: The event fields shown in their own columns (the rest go under "details").
_COLUMNS = ("event", "time", "client", "user", "login", "path", "reason")


class AdminPages(PageGroup):
    """The routes under ``/manage``."""

    def routes(self) -> list[Route]:
        """Return this group's routes."""
        return [
            Route("/manage", self.manage, methods=["GET"]),
            Route("/manage/users", self.add_user, methods=["POST"]),
            Route("/manage/unlock", self.unlock, methods=["POST"]),
            Route("/manage/unban", self.unban, methods=["POST"]),
        ]

    async def manage(self, request: Request) -> Response:
        """Show the admin area."""
        denied = self._denied(request)
        return denied if denied is not None else self._page(request)

    async def add_user(self, request: Request) -> Response:
        """Create an account with a random password that passes the policy; show it once."""
        denied = self._denied(request)
        if denied is not None:
            return denied
        form = await request.form(max_files=0, max_fields=10)
        name = field(form, "username").strip().lower()
        try:
            password = await run_in_threadpool(policy_password, self.pages, name)
            made = await run_in_threadpool(self.accounts.create, name, password)
        except (ValueError, RuntimeError) as exc:
            return self._page(request, error=str(exc), status=400)
        if not made:
            return self._page(request, error=f"{name!r} exists already.", status=400)
        return self._page(request, created=(name, password))

    async def unlock(self, request: Request) -> Response:
        """Lift the lock of an account or an address."""
        denied = self._denied(request)
        if denied is not None:
            return denied
        form = await request.form(max_files=0, max_fields=10)
        scope = field(form, "scope")
        name = field(form, "name")[:256]
        lockout = self.warden.lockout
        try:
            if scope == "account":
                lifted = lockout.unlock(name)
            elif scope == "address":
                lifted = lockout.unlock_address(name)
            else:
                return self._page(request, error="Unknown kind of lock.", status=400)
        except ValueError as exc:
            return self._page(request, error=str(exc), status=400)
        if not lifted:
            return self._page(request, error=f"{name!r} was not locked.", status=400)
        return RedirectResponse("/manage?done=unlocked#locks", 303)

    async def unban(self, request: Request) -> Response:
        """Lift the ban of a client address."""
        denied = self._denied(request)
        if denied is not None:
            return denied
        form = await request.form(max_files=0, max_fields=10)
        client = field(form, "client")[:256]
        try:
            lifted = self.warden.bans.unban(client)
        except ValueError as exc:
            return self._page(request, error=str(exc), status=400)
        if not lifted:
            return self._page(request, error=f"{client!r} was not banned.", status=400)
        return RedirectResponse("/manage?done=unbanned#bans", 303)

    # -- helpers ---------------------------------------------------------------------

    def _denied(self, request: Request) -> Response | None:
        # sitewarden has already refused /manage on any other host or network (404).
        ex = exchange(request)
        if ex.user is None:
            return RedirectResponse("/login?next=/manage", 303)
        if not self.pages.is_admin(ex.user):
            return self.pages.render(
                request, "error.html", status=403, message="The admin area is for admins only."
            )
        return None

    def _page(
        self,
        request: Request,
        created: tuple[str, str] | None = None,
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
        done = {"unlocked": "Lock lifted.", "unbanned": "Ban lifted."}.get(
            request.query_params.get("done", "")
        )
        return self.pages.render(
            request,
            "manage.html",
            status=status,
            reports=list_reports(self.store, 50),
            rings=rings,
            user_rings=user_rings,
            accounts=accounts,
            created=created,
            error=error,
            done=done,
            store_url=self.store.url,
            now=time.time(),
            locks=self.warden.lockout.locked(),
            bans=self.warden.bans.list(),
            events=[_event_row(e) for e in recent(self.store, EVENTS_SHOWN)],
        )


def policy_password(pages: Pages, name: str) -> str:
    """Return a random password for account *name* that passes the site's password policy.

    24 random URL-safe characters (144 bits) always pass the length and strength rules; the
    check still runs, so a policy with extra rules (``password_rules``) is honoured or the
    failure is visible at once instead of an account with a password its owner could never
    choose themselves.
    """
    passwords = pages.warden.passwords
    for _ in range(20):
        password = new_password()
        if not passwords.check(password, (name,) if name else ()):
            return password
    raise RuntimeError("no random password passes password_rules: check the policy's rules")


def _event_row(record: dict[str, Any]) -> dict[str, Any]:
    """Split an event into its common columns and the remaining details (as text)."""
    row = {name: record.get(name) for name in _COLUMNS}
    row["details"] = ", ".join(
        f"{key}={value}" for key, value in record.items() if key not in _COLUMNS
    )
    return row
