"""The signed-in user's own page, ``/account``: two-factor sign-in and the password.

Two-factor enrolment (TOTP, RFC 6238):

1. *Turn on* creates a fresh secret, seals it (``warden.totp.seal``: AES-256-GCM, bound to
   the user) and keeps the sealed text for :data:`ENROL_TTL` seconds under
   ``demo:enrol:<user>`` — not on the account yet.
2. The page shows the QR code as inline SVG (drawn locally, never by a chart service; it
   is markup, not a script, so the strict CSP lets it show) and the secret as text for
   manual entry.
3. A first code from the app confirms it (``warden.totp.verify``): only then is the sealed
   secret stored on the account, and ten recovery codes are shown — **once**; the store
   keeps only their hashes.

Turning it off, and making new recovery codes, need a current code (or a recovery code):
a stolen session alone can neither remove the second factor nor mint fresh codes.

Changing the password needs the current one (wrong guesses count against the lockout like
wrong sign-ins) and the new one must pass the policy's verdict
(``warden.passwords.check``: every problem is shown). A change signs the user out on every
other device. ``POST /account/password-strength`` gives the page's script the same verdict
and a strength score as JSON, for the live meter.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sitewarden.demo.accounts import MAX_PASSWORD, Account
from sitewarden.demo.pages import NO_STORE, PageGroup, client_of, field
from sitewarden.demo.signin import locked_message, looks_like_totp
from sitewarden.errors import TotpError
from sitewarden.web.starlette import exchange

__all__ = ["ENROL_PREFIX", "ENROL_TTL", "MAX_STRENGTH_BODY", "AccountPages"]

#: Store key prefix of enrolments awaiting their first code (followed by the user name).
ENROL_PREFIX = "demo:enrol:"
#: Seconds an enrolment may wait for its first code.
ENROL_TTL = 600
#: Largest JSON body the strength endpoint reads.
MAX_STRENGTH_BODY = 4096

_WRONG_CODE = "That code is wrong, was used already, or too many codes were tried; try again."


class AccountPages(PageGroup):
    """The routes under ``/account``."""

    def routes(self) -> list[Route]:
        """Return this group's routes."""
        return [
            Route("/account", self.page, methods=["GET"]),
            Route("/account/2fa/start", self.start, methods=["POST"]),
            Route("/account/2fa/confirm", self.confirm, methods=["POST"]),
            Route("/account/2fa/disable", self.disable, methods=["POST"]),
            Route("/account/2fa/recovery-codes", self.recovery_codes, methods=["POST"]),
            Route("/account/password", self.change_password, methods=["POST"]),
            Route("/account/password-strength", self.strength, methods=["POST"]),
        ]

    # -- the page --------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """Show the account page (sign-in required)."""
        account = self._account(request)
        if account is None:
            return RedirectResponse("/login?next=/account", 303)
        return self._render(request, account)

    # -- two-factor ------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        """Begin enrolment: a new secret, sealed and parked until a first code confirms it."""
        account = self._account(request)
        if account is None:
            return self._sign_in_first(request)
        if account.two_factor:
            return self._render(request, account, status=400, tfa_error="Already on.")
        totp = self.warden.totp
        secret = totp.new_secret()
        sealed = totp.seal(secret, account.name)
        self.store.set(ENROL_PREFIX + account.name, sealed.encode(), ttl=ENROL_TTL)
        return self._render(request, account, enrol=self._enrolment(account.name, secret))

    async def confirm(self, request: Request) -> Response:
        """Finish enrolment with a first code; show the recovery codes once."""
        account = self._account(request)
        if account is None:
            return self._sign_in_first(request)
        form = await request.form(max_files=0, max_fields=10)
        code = field(form, "code")[:64]
        raw = self.store.get(ENROL_PREFIX + account.name)
        if account.two_factor or raw is None:
            return self._render(
                request,
                account,
                status=400,
                tfa_error="No enrolment is waiting (it lasts ten minutes); start again.",
            )
        sealed = raw.decode()
        totp = self.warden.totp
        try:
            secret = totp.unseal(sealed, account.name)
            ok = await run_in_threadpool(totp.verify, account.name, sealed, code)
        except TotpError:
            self.store.delete(ENROL_PREFIX + account.name)  # unreadable: start over
            return self._render(
                request, account, status=400, tfa_error="The enrolment failed; start again."
            )
        if not ok:
            return self._render(
                request,
                account,
                status=400,
                tfa_error=_WRONG_CODE,
                enrol=self._enrolment(account.name, secret),
            )
        # The delete is atomic: of two confirmations racing, only one switches 2FA on.
        if not self.store.delete(ENROL_PREFIX + account.name):
            return self._render(request, account, status=400, tfa_error="Already confirmed.")
        self.accounts.set_totp(account.name, sealed)
        codes = totp.new_recovery_codes(account.name)
        return self._render(
            request,
            self._refresh(account),
            codes=codes,
            tfa_notice="Two-factor sign-in is on. Save these recovery codes now.",
        )

    async def disable(self, request: Request) -> Response:
        """Turn two-factor sign-in off (needs a current code or a recovery code)."""
        account = self._account(request)
        if account is None:
            return self._sign_in_first(request)
        form = await request.form(max_files=0, max_fields=10)
        if not account.two_factor:
            return self._render(request, account, status=400, tfa_error="It is off already.")
        if not await run_in_threadpool(self._code_ok, account.name, field(form, "code")[:64]):
            return self._render(request, account, status=400, tfa_error=_WRONG_CODE)
        self.accounts.set_totp(account.name, None)
        self.warden.totp.disable(account.name)  # replay marks, attempts, recovery codes
        return self._render(
            request, self._refresh(account), tfa_notice="Two-factor sign-in is off."
        )

    async def recovery_codes(self, request: Request) -> Response:
        """Replace the recovery codes (needs a current code); show the new ones once."""
        account = self._account(request)
        if account is None:
            return self._sign_in_first(request)
        form = await request.form(max_files=0, max_fields=10)
        if not account.two_factor:
            return self._render(request, account, status=400, tfa_error="Two-factor is off.")
        if not await run_in_threadpool(self._code_ok, account.name, field(form, "code")[:64]):
            return self._render(request, account, status=400, tfa_error=_WRONG_CODE)
        codes = self.warden.totp.new_recovery_codes(account.name)
        return self._render(
            request,
            account,
            codes=codes,
            tfa_notice="New recovery codes; the old ones no longer work. Save these now.",
        )

    def _code_ok(self, name: str, code: str) -> bool:
        sealed = self.accounts.sealed_totp(name)
        if sealed is None:
            return False
        totp = self.warden.totp
        try:
            if looks_like_totp(code, self.warden.policy.totp_digits):
                return totp.verify(name, sealed, code)
            return totp.use_recovery_code(name, code)
        except TotpError:
            return False

    def _enrolment(self, name: str, secret: str) -> dict[str, Any]:
        totp = self.warden.totp
        return {
            # segno's SVG of our own otpauth URI: paths and attributes only, no script, no
            # style attribute — trusted markup, inserted as is.
            "qr": Markup(totp.qr_svg(secret, name)),  # noqa: S704
            "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "digits": self.warden.policy.totp_digits,
            "period": self.warden.policy.totp_period,
        }

    # -- password --------------------------------------------------------------------

    async def change_password(self, request: Request) -> Response:
        """Change the password: the current one, then a new one that passes the policy."""
        ex = exchange(request)
        account = self._account(request)
        if account is None:
            return self._sign_in_first(request)
        form = await request.form(max_files=0, max_fields=10)
        current = field(form, "current_password")
        new = field(form, "new_password")
        client = client_of(request)
        lockout = self.warden.lockout
        status = lockout.status(account.name, client)
        if status.locked:
            return self._render(request, account, status=429, pw_error=locked_message(status))
        if await run_in_threadpool(self.accounts.verify, account.name, current) is None:
            # A stolen session guessing the password it does not know: counted like sign-ins.
            status = lockout.failure(account.name, client, current)
            error = locked_message(status) if status.locked else "Your current password is wrong."
            return self._render(request, account, status=400, pw_error=error)
        problems = await run_in_threadpool(self._problems, account, new)
        if problems:
            return self._render(
                request,
                account,
                status=400,
                pw_error="The new password was not accepted:",
                pw_problems=problems,
            )
        await run_in_threadpool(self.accounts.set_password, account.name, new)
        lockout.success(account.name, client)
        # Whoever else holds a session of this account is signed out; this browser gets a
        # new session cookie (issued after the rotation, so it stays valid).
        self.warden.sessions.logout_everywhere(account.name)
        ex.login(account.name)
        return self._render(
            request,
            account,
            pw_notice="Password changed. Your sessions on other devices have been ended.",
        )

    async def strength(self, request: Request) -> Response:
        """Return the policy's verdict on a candidate password as JSON (signed-in users)."""
        account = self._account(request)
        if account is None:
            return JSONResponse({"error": "sign in first"}, 403, headers=NO_STORE)
        body = await _read_limited(request, MAX_STRENGTH_BODY)
        try:
            data = json.loads(body) if body is not None else None
        except ValueError:
            data = None
        password = data.get("password") if isinstance(data, dict) else None
        if not isinstance(password, str):
            return JSONResponse(
                {"error": 'expected {"password": "..."} (at most 4 KiB)'}, 400, headers=NO_STORE
            )
        verdict = await run_in_threadpool(self._verdict, account, password)
        return JSONResponse(verdict, headers=NO_STORE)

    def _problems(self, account: Account, password: str) -> list[str]:
        if len(password) > MAX_PASSWORD:  # the store's own limit, before normalisation
            return [f"Use at most {MAX_PASSWORD} characters."]
        found = self.warden.passwords.check(
            password, (account.name,), two_factor=account.two_factor
        )
        return [problem.message for problem in found]

    def _verdict(self, account: Account, password: str) -> dict[str, Any]:
        problems = self._problems(account, password)
        score = None
        if password and len(password) <= self.warden.policy.password_max_length:
            score = int(self.warden.passwords.strength(password, (account.name,)).score)
        return {"ok": not problems, "score": score, "problems": problems}

    # -- helpers ---------------------------------------------------------------------

    def _account(self, request: Request) -> Account | None:
        user = exchange(request).user
        return self.accounts.get(user) if user else None

    def _refresh(self, account: Account) -> Account:
        return self.accounts.get(account.name) or account

    def _sign_in_first(self, request: Request) -> Response:
        return self.pages.render(
            request, "error.html", status=403, message="Sign in to change your account."
        )

    def _render(
        self, request: Request, account: Account, status: int = 200, **context: Any
    ) -> Response:
        policy = self.warden.policy
        values: dict[str, Any] = {
            "account": account,
            "enrol": None,
            "codes": None,
            "codes_left": (
                self.warden.totp.recovery_codes_left(account.name) if account.two_factor else 0
            ),
            "tfa_error": None,
            "tfa_notice": None,
            "pw_error": None,
            "pw_problems": [],
            "pw_notice": None,
            "min_length": (
                policy.password_min_length_2fa if account.two_factor else policy.password_min_length
            ),
            "min_length_2fa": policy.password_min_length_2fa,
            "max_length": policy.password_max_length,
            "csrf_header": self.warden.csrf.header,
        }
        values.update(context)
        return self.pages.render(request, "account.html", status=status, **values)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """Read the request body, or return ``None`` once it grows past *limit* bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body
