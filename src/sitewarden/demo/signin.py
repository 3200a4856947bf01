"""Sign-in: the password step, the second factor, and the defences in front of both.

What a sign-in attempt goes through, in order (each line names the attack it stops):

1. **Per-address rate limit** — the policy's ``rate_limits`` entry for ``POST /login``
   (and ``POST /login/code``), applied by sitewarden's engine before this code runs: one
   address cannot hammer the form (429 with ``Retry-After``).
2. **Per-login-name rate limit** — ``warden.ratelimit.hit("login:" + name,``
   :data:`LOGIN_NAME_RATE` ``)``: guesses at one account spread over many addresses (a
   botnet) are slowed as well.
3. **Lockout status** (``warden.lockout.status``) *before* the password is looked at: a
   locked account or address is refused without verifying anything, so a right guess during
   a lock teaches the attacker nothing.
4. **Password verification** (``warden.passwords`` through :class:`Accounts`): an unknown
   user name is verified against a dummy hash, so timing does not reveal which accounts
   exist; the answer is the same :data:`BAD_LOGIN` for both.
5. **Lockout accounting**: a failure is counted per account and per address
   (``lockout.failure``); the page says how many attempts are left and, when locked, for
   how long — in the same words whether or not the account exists.
6. **Second factor**, for accounts with TOTP: the password step creates a short-lived
   *pending* sign-in (:class:`PendingSignIns`, :data:`PENDING_TTL` seconds); the visitor is
   not signed in until a code from the authenticator app (or a recovery code) is accepted.
   Wrong codes count against the lockout like wrong passwords, and the pending state does
   not survive a lock.

**Why the pending id travels in a cookie, not a hidden form field.** The id is a bearer
credential for "this password was right". In an ``HttpOnly`` cookie (``__Host-`` prefixed
and ``Secure`` over HTTPS, ``SameSite=Strict``, ``Max-Age`` of five minutes) no script on
the page can read it — an injected script could read a hidden field — it is not part of
the HTML (which could end up in a cache, a screenshot or a saved page), and a cross-site
page cannot make the browser send it. The store keeps only its SHA-256, so whoever reads
the store cannot finish anybody's sign-in.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sitewarden.demo.accounts import MAX_PASSWORD
from sitewarden.demo.pages import Pages, client_of, duration, field, local_path
from sitewarden.errors import TotpError
from sitewarden.store.base import Store
from sitewarden.web.starlette import exchange

if TYPE_CHECKING:
    from sitewarden.guards.lockout import LockoutStatus

__all__ = [
    "BAD_CODE",
    "BAD_LOGIN",
    "EXPIRED",
    "LOGIN_NAME_RATE",
    "PENDING_PREFIX",
    "PENDING_TTL",
    "Pending",
    "PendingSignIns",
    "SignIn",
    "locked_message",
    "looks_like_totp",
]

#: The one message for a wrong password and an unknown user.
BAD_LOGIN = "Unknown user name or wrong password."
#: The message for a wrong, malformed or replayed second-factor code.
BAD_CODE = "Wrong code, or a code that was used already."
#: The message when the second step comes without a live pending sign-in.
EXPIRED = "This sign-in has expired or was finished already; please sign in again."
#: Sign-in attempts allowed per login name, from all addresses together.
LOGIN_NAME_RATE = "30/hour"
#: Seconds a visitor has to enter the second factor after the right password.
PENDING_TTL = 300
#: Store key prefix of pending sign-ins (followed by the SHA-256 of the id).
PENDING_PREFIX = "demo:pending:"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in whose password was right and whose second factor is awaited."""

    user: str
    next: str
    started: float


class PendingSignIns:
    """Pending two-step sign-ins in the store: random ids, bound to a user, short-lived."""

    def __init__(self, store: Store, ttl: float = PENDING_TTL) -> None:
        """Keep pending sign-ins in *store* for *ttl* seconds."""
        self.store = store
        self.ttl = ttl

    @staticmethod
    def key(token: str) -> str:
        """Return the store key of *token* (its SHA-256: the store never holds the id)."""
        return PENDING_PREFIX + hashlib.sha256(token.encode()).hexdigest()

    def start(self, user: str, next_path: str) -> str:
        """Record a pending sign-in of *user*; return its new random id (256 bits)."""
        token = secrets.token_urlsafe(32)
        record = {"user": user, "next": next_path, "started": time.time()}
        self.store.set(self.key(token), json.dumps(record).encode(), ttl=self.ttl)
        return token

    def get(self, token: str | None) -> Pending | None:
        """Return the live pending sign-in of *token*, or ``None``."""
        if not token or not _TOKEN.match(token):
            return None  # not one of ours: not even hashed and looked up
        raw = self.store.get(self.key(token))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            return Pending(str(record["user"]), str(record["next"]), float(record["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def finish(self, token: str) -> bool:
        """End the pending sign-in *token*; return whether it was still there.

        The delete is the atomic "first one wins": of two requests finishing the same
        sign-in at once, only one gets ``True``.
        """
        return bool(_TOKEN.match(token)) and self.store.delete(self.key(token))


def locked_message(status: LockoutStatus) -> str:
    """Say what is locked and for how long (the same words for every user name)."""
    what = "from your address" if status.scope == "address" else "for this user name"
    return f"Too many failed sign-ins {what}. Try again in {duration(status.retry_after)}."


def _attempts_left(status: LockoutStatus) -> str:
    left = status.attempts_left
    return (
        f"{left} attempt{'' if left == 1 else 's'} left before sign-in is paused "
        "for this user name and your address."
    )


class SignIn:
    """The routes ``/login`` (password) and ``/login/code`` (second factor)."""

    def __init__(self, pages: Pages) -> None:
        """Use *pages*' warden, accounts and templates."""
        self.pages = pages
        self.warden = pages.warden
        self.accounts = pages.accounts
        self.pending = PendingSignIns(pages.store)
        # __Host-: only this exact origin can set or overwrite it (needs Secure, so HTTPS).
        self.cookie = "__Host-sw_pending" if pages.https else "sw_pending"

    def routes(self) -> list[Route]:
        """Return this group's routes."""
        return [
            Route("/login", self.form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/login/code", self.code_form, methods=["GET"]),
            Route("/login/code", self.code, methods=["POST"]),
        ]

    # -- step one: the password ------------------------------------------------------

    async def form(self, request: Request) -> Response:
        """Show the sign-in form (signed-in visitors go home)."""
        if exchange(request).user is not None:
            return RedirectResponse("/", 303)
        target = local_path(request.query_params.get("next"))
        return self._login_page(request, 200, None, None, "", target)

    async def login(self, request: Request) -> Response:
        """Check the password; sign in, or start the second step, or refuse."""
        ex = exchange(request)
        form = await request.form(max_files=0, max_fields=10)
        name = field(form, "username").strip().lower()[:64]
        password = field(form, "password")[: MAX_PASSWORD + 1]
        target = local_path(field(form, "next"))
        client = ex.origin.client

        limited = self._name_limited(name)
        if limited is not None:
            return self._login_page(request, 429, limited[0], None, name, target, limited[1])
        lockout = self.warden.lockout
        status = lockout.status(name, client)
        if status.locked:  # nothing is verified during a lock: a right guess teaches nothing
            return self._login_page(
                request, 429, locked_message(status), None, name, target, _retry(status)
            )
        account = await run_in_threadpool(self.accounts.verify, name, password)
        if account is None:
            status = lockout.failure(name, client, password)
            if status.locked:
                return self._login_page(
                    request, 429, locked_message(status), None, name, target, _retry(status)
                )
            return self._login_page(request, 400, BAD_LOGIN, _attempts_left(status), name, target)
        earlier = request.cookies.get(self.cookie)
        if earlier:
            self.pending.finish(earlier)  # a sign-in started over: the old one is void
        if account.two_factor:
            # Not signed in yet: only a pending sign-in, bound to this user, for 5 minutes.
            token = self.pending.start(account.name, target)
            response = RedirectResponse("/login/code", 303)
            self._set_pending(response, token)
            return response
        status = lockout.success(name, client)
        if status.locked:  # parallel guesses locked it meanwhile: a right one must not pass
            return self._login_page(
                request, 429, locked_message(status), None, name, target, _retry(status)
            )
        ex.login(account.name)  # a new session cookie: no session fixation
        response = RedirectResponse(target, 303)
        self._clear_pending(response, request)
        return response

    # -- step two: the code ----------------------------------------------------------

    async def code_form(self, request: Request) -> Response:
        """Show the second-factor form while a pending sign-in is live."""
        if self.pending.get(request.cookies.get(self.cookie)) is None:
            response = RedirectResponse("/login", 303)
            self._clear_pending(response, request)
            return response
        return self._code_page(request, 200, None, None)

    async def code(self, request: Request) -> Response:
        """Check the TOTP or recovery code of a pending sign-in; sign in or refuse."""
        ex = exchange(request)
        token = request.cookies.get(self.cookie) or ""
        pending = self.pending.get(token)
        if pending is None:
            response = self._login_page(request, 400, EXPIRED, None, "", "/")
            self._clear_pending(response, request)
            return response
        form = await request.form(max_files=0, max_fields=10)
        code = field(form, "code")[:64]
        name = pending.user
        client = client_of(request)

        limited = self._name_limited(name)
        if limited is not None:
            return self._code_page(request, 429, limited[0], None, limited[1])
        lockout = self.warden.lockout
        status = lockout.status(name, client)
        if status.locked:
            return self._locked_out(request, token, status)
        if not await run_in_threadpool(self._second_factor, name, code):
            status = lockout.failure(name, client)  # wrong codes count like wrong passwords
            if status.locked:
                return self._locked_out(request, token, status)
            return self._code_page(request, 400, BAD_CODE, _attempts_left(status))
        if not self.pending.finish(token):  # finished by a parallel request meanwhile
            response = self._login_page(request, 400, EXPIRED, None, "", "/")
            self._clear_pending(response, request)
            return response
        status = lockout.success(name, client)
        if status.locked:  # parallel wrong codes locked it meanwhile
            return self._locked_out(request, token, status)
        ex.login(name)
        response = RedirectResponse(pending.next, 303)
        self._clear_pending(response, request)
        return response

    def _second_factor(self, name: str, code: str) -> bool:
        """Accept a current TOTP code or an unused recovery code of *name*."""
        sealed = self.accounts.sealed_totp(name)
        if sealed is None:
            return False  # 2FA switched off meanwhile: the pending sign-in is void
        totp = self.warden.totp
        try:
            if looks_like_totp(code, self.warden.policy.totp_digits):
                return totp.verify(name, sealed, code)
            return totp.use_recovery_code(name, code)
        except TotpError:
            return False  # a damaged sealed secret: refuse (fail closed)

    # -- helpers ---------------------------------------------------------------------

    def _name_limited(self, name: str) -> tuple[str, dict[str, str]] | None:
        """Apply the per-login-name rate limit: ``None``, or the refusal's text and headers."""
        throttle = self.warden.ratelimit.hit("login:" + name, LOGIN_NAME_RATE)
        if throttle.allowed:
            return None
        wait = throttle.retry_after
        message = f"Too many sign-in attempts for this user name. Try again in {duration(wait)}."
        return message, {"retry-after": str(max(1, math.ceil(wait)))}

    def _locked_out(self, request: Request, token: str, status: LockoutStatus) -> Response:
        self.pending.finish(token)  # a lock ends the pending sign-in too
        response = self._login_page(
            request, 429, locked_message(status), None, "", "/", _retry(status)
        )
        self._clear_pending(response, request)
        return response

    def _login_page(
        self,
        request: Request,
        status: int,
        error: str | None,
        notice: str | None,
        name: str,
        target: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self.pages.render(
            request,
            "login.html",
            status=status,
            extra_headers=headers,
            error=error,
            notice=notice,
            name=name,
            next=target,
        )

    def _code_page(
        self,
        request: Request,
        status: int,
        error: str | None,
        notice: str | None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return self.pages.render(
            request,
            "login_code.html",
            status=status,
            extra_headers=headers,
            error=error,
            notice=notice,
            digits=self.warden.policy.totp_digits,
        )

    def _set_pending(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.cookie,
            token,
            max_age=PENDING_TTL,
            path="/",
            secure=self.pages.https,
            httponly=True,
            samesite="strict",
        )

    def _clear_pending(self, response: Response, request: Request) -> None:
        if self.cookie not in request.cookies:
            return  # nothing to clear: no needless Set-Cookie
        response.delete_cookie(
            self.cookie, path="/", secure=self.pages.https, httponly=True, samesite="strict"
        )


def looks_like_totp(code: str, digits: int) -> bool:
    """Return whether *code* is shaped like a TOTP code (else it is a recovery code)."""
    typed = code.replace(" ", "")
    return len(typed) == digits and typed.isascii() and typed.isdigit()


def _retry(status: LockoutStatus) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(status.retry_after)))}
