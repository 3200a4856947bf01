"""The demo site (``sitewarden demo``): pages, accounts, TLS files, and one real run."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from markupsafe import escape

from sitewarden.accounts.totp import TOTP
from sitewarden.demo import signin
from sitewarden.demo.accounts import Accounts
from sitewarden.demo.app import BAD_LOGIN, STATIC_DIR, Comments, create_app
from sitewarden.demo.signin import BAD_CODE, EXPIRED
from sitewarden.demo.tls import ensure_tls
from sitewarden.errors import ConfigError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # StarletteDeprecationWarning: "install httpx2 instead"
    from starlette.testclient import TestClient

LOOPBACK = ("127.0.0.1", 50000)
TOKEN = re.compile(r'name="_authenticator" value="([^"]+)"')


class Site:
    """One demo site built by create_app, with the admin password it announced."""

    def __init__(self, state_dir: Path, https: bool = True, **settings: Any) -> None:
        self.announced: list[tuple[str, str]] = []
        self.app, self.warden = create_app(
            state_dir,
            https,
            https_port=None,
            on_admin_password=lambda name, pw: self.announced.append((name, pw)),
            settings=settings,
        )
        self.scheme = "https" if https else "http"

    @property
    def store(self) -> Any:
        return self.warden.keys.store

    @property
    def accounts(self) -> Accounts:
        return Accounts(self.store, self.warden.passwords)

    @property
    def admin_password(self) -> str:
        assert self.announced and self.announced[0][0] == "admin"
        return self.announced[0][1]

    def client(self, host: str = "127.0.0.1", peer: tuple[str, int] = LOOPBACK) -> TestClient:
        return TestClient(self.app, base_url=f"{self.scheme}://{host}", client=peer)

    def close(self) -> None:
        self.warden.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "state")
    yield s
    s.close()


def token_of(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "no CSRF authenticator in the page"
    return match.group(1)


def login(client: TestClient, name: str, password: str, **extra: str) -> httpx.Response:
    page = client.get("/login")
    assert page.status_code == 200
    form = {"_authenticator": token_of(page.text), "username": name, "password": password}
    form.update(extra)
    return client.post("/login", data=form, follow_redirects=False)


def signed_in_as(client: TestClient) -> str | None:
    match = re.search(r"Signed in as <strong>([^<]+)</strong>", client.get("/").text)
    return match.group(1) if match else None


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


# -- accounts and sign-in --------------------------------------------------------------


def test_first_run_admin_password_works_and_is_stored_as_argon2id(
    site: Site, tmp_path: Path
) -> None:
    stored = site.accounts.stored_hash("admin")
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert site.admin_password not in stored
    raw = site.store.get("demo:user:admin")
    assert site.admin_password.encode() not in raw

    client = site.client()
    r = login(client, "admin", site.admin_password)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-sw_session=")
    flags = [f.strip().lower() for f in cookie.split(";")[1:]]
    assert {"secure", "httponly", "path=/", "samesite=strict"} <= set(flags)
    assert not any(f.startswith("domain") for f in flags)
    assert signed_in_as(client) == "admin"

    # A restart on the same state directory announces nothing: the password is not kept.
    again = Site(tmp_path / "state")
    assert again.announced == []
    again.close()


def test_reset_admin_prints_a_new_password_and_ends_old_sessions(
    site: Site, tmp_path: Path
) -> None:
    client = site.client()
    assert login(client, "admin", site.admin_password).status_code == 303
    guesser = site.client(peer=("192.0.2.1", 1000))
    statuses = [login(guesser, "admin", f"guess-{i}").status_code for i in range(5)]
    assert statuses[-1] == 429  # admin locked out
    announced: list[tuple[str, str]] = []
    app, warden = create_app(
        tmp_path / "state",
        True,
        reset_admin=True,
        on_admin_password=lambda n, p: announced.append((n, p)),
    )
    try:
        assert len(announced) == 1 and announced[0][1] != site.admin_password
        other = TestClient(app, base_url="https://127.0.0.1", client=LOOPBACK)
        other.cookies = client.cookies
        assert signed_in_as(other) is None  # the old cookie no longer works
        assert login(other, "admin", site.admin_password).status_code == 400
        assert login(other, "admin", announced[0][1]).status_code == 303  # lock lifted
    finally:
        warden.close()


def test_wrong_password_and_unknown_user_get_the_same_answer(site: Site) -> None:
    client = site.client()
    wrong = login(client, "admin", "not-the-password")
    unknown = login(client, "nobody", "not-the-password")
    malformed = login(client, "<b>x</b>", "whatever")
    for r in (wrong, unknown, malformed):
        assert r.status_code == 400
        assert BAD_LOGIN in r.text
        assert "set-cookie" not in r.headers
    alert = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
    assert alert.findall(wrong.text) == alert.findall(unknown.text) == [BAD_LOGIN]
    assert "&lt;b&gt;x&lt;/b&gt;" in malformed.text  # the name is echoed escaped
    assert signed_in_as(client) is None


# -- passwords through warden.passwords --------------------------------------------------


def test_unknown_user_costs_a_password_verification(site: Site) -> None:
    calls: list[str | None] = []
    real = site.warden.passwords

    class Spy:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, stored: str | None, password: str) -> Any:
            calls.append(stored)
            return real.verify(stored, password)

    accounts = Accounts(site.store, Spy())  # type: ignore[arg-type]
    assert accounts.verify("nobody", "x") is None
    assert accounts.verify("Not A Name!", "x") is None
    assert accounts.verify("admin", "x") is None
    assert accounts.verify("admin", "y" * 5000) is None  # overlong: refused, still verified
    # Unknown and malformed names go to the dummy-hash verification: same work, no hint.
    assert calls[:2] == [None, None]
    assert len(calls) == 4
    assert all(c and c.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for c in calls[2:])


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(site: Site) -> None:
    old = PasswordHasher(time_cost=3, memory_cost=12_288, parallelism=1).hash("old-params-pw")
    record = json.loads(site.store.get("demo:user:admin"))
    record["hash"] = old
    site.store.set("demo:user:admin", json.dumps(record).encode())
    assert login(site.client(), "admin", "old-params-pw").status_code == 303
    upgraded = site.accounts.stored_hash("admin")
    assert upgraded is not None and upgraded != old
    assert upgraded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert login(site.client(), "admin", "old-params-pw").status_code == 303


# -- lockout and rate limits -------------------------------------------------------------

ALERT = re.compile(r'<p class="error" role="alert">([^<]*)</p>')
NOTICE = re.compile(r'<p class="notice" role="status">([^<]*)</p>')
#: Per-address limits out of the way, for tests about the lockout itself.
LENIENT: dict[str, Any] = {
    "rate_limits": {"POST /login": "1000/minute", "POST /login/code": "1000/minute"}
}


def messages(r: httpx.Response) -> tuple[list[str], list[str]]:
    """The page's error and notice paragraphs (what the person at the keyboard reads)."""
    return ALERT.findall(r.text), NOTICE.findall(r.text)


def left(n: int) -> str:
    s = "" if n == 1 else "s"
    return f"{n} attempt{s} left before sign-in is paused for this user name and your address."


def locked_for(minutes: int, scope: str = "for this user name") -> str:
    return f"Too many failed sign-ins {scope}. Try again in {minutes} minutes."


@pytest.fixture
def lenient(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "lenient", **LENIENT)
    yield s
    s.close()


def test_lockout_after_wrong_passwords_says_the_same_for_unknown_users(lenient: Site) -> None:
    site = lenient
    known = site.client(peer=("127.0.0.2", 1000))
    unknown = site.client(peer=("127.0.0.3", 1000))
    threshold = site.warden.policy.lockout_threshold
    for attempt in range(1, threshold):
        a = login(known, "admin", f"wrong-{attempt}")
        b = login(unknown, "nobody", f"wrong-{attempt}")
        assert a.status_code == b.status_code == 400
        assert messages(a) == messages(b) == ([BAD_LOGIN], [left(threshold - attempt)])
    # Retyping the same wrong password is no new guess: it costs no attempt.
    a = login(known, "admin", "wrong-1")
    b = login(unknown, "nobody", "wrong-1")
    assert messages(a) == messages(b) == ([BAD_LOGIN], [left(1)])

    a = login(known, "admin", "wrong-last")
    b = login(unknown, "nobody", "wrong-last")
    assert a.status_code == b.status_code == 429
    assert messages(a) == messages(b) == ([locked_for(5)], [])
    assert 295 <= int(a.headers["retry-after"]) <= 300
    # During the lock even the right password is refused, unchecked, from any address.
    for client in (known, site.client(peer=("127.0.0.4", 1000))):
        r = login(client, "admin", site.admin_password)
        assert r.status_code == 429
        assert messages(r) == ([locked_for(5)], [])
        assert "set-cookie" not in r.headers
        assert signed_in_as(client) is None


def test_one_address_guessing_many_names_is_locked_by_address(tmp_path: Path) -> None:
    site = Site(tmp_path / "s", lockout_address_threshold=6, **LENIENT)
    try:
        sprayer = site.client(peer=("127.0.0.7", 1000))
        for i in range(5):
            assert login(sprayer, f"user{i}", "Summer2024!").status_code == 400
        r = login(sprayer, "user5", "Summer2024!")
        assert r.status_code == 429
        assert messages(r) == ([locked_for(5, "from your address")], [])
        assert login(sprayer, "admin", site.admin_password).status_code == 429
        # Another address signs in as usual.
        assert (
            login(site.client(peer=("127.0.0.8", 1000)), "admin", site.admin_password).status_code
            == 303
        )
    finally:
        site.close()


def test_sitewarden_rate_limits_sign_in_posts_per_address(site: Site) -> None:
    client = site.client()
    for i in range(10):  # LOGIN_RATE: 10/minute
        assert login(client, f"user{i}", "wrong").status_code == 400
    r = login(client, "admin", site.admin_password)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert "set-cookie" not in r.headers
    assert signed_in_as(client) is None
    # Refused before the application ran: the password was never looked at.
    assert site.warden.lockout.status("admin", LOOPBACK[0]).failures == 0
    other = site.client(peer=("127.0.0.9", 1000))
    assert login(other, "admin", site.admin_password).status_code == 303


def test_guesses_at_one_name_from_many_addresses_are_rate_limited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signin, "LOGIN_NAME_RATE", "3/hour")
    site = Site(tmp_path / "s", lockout_threshold=10)
    try:
        for i in range(3):
            bot = site.client(peer=(f"203.0.113.{i + 1}", 1000))
            assert login(bot, "admin", f"guess-{i}").status_code == 400
        r = login(site.client(peer=("203.0.113.99", 1000)), "admin", site.admin_password)
        assert r.status_code == 429
        assert messages(r)[0] == [
            "Too many sign-in attempts for this user name. Try again in 20 minutes."
        ]
        assert "set-cookie" not in r.headers
        # Other names are not affected.
        assert login(site.client(peer=("203.0.113.99", 1)), "nobody", "x").status_code == 400
    finally:
        site.close()


# -- two-factor sign-in ----------------------------------------------------------------

SECRET = re.compile(r'<code id="totp-secret" class="secret">([A-Z2-7 ]+)</code>')
CODES = re.compile(r"<li><code>([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})</code></li>")


class Clock:
    """A TOTP clock the test moves (each code must be of a later step: replay protection)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def code(self, secret: str, step: int = 1) -> str:
        self.now += 30 * step
        return str(pyotp.TOTP(secret).at(self.now))


@pytest.fixture
def clock(site: Site) -> Clock:
    c = Clock()
    w = site.warden
    w.totp = TOTP(w.policy, w.store, w.keys, clock=c)  # type: ignore[misc]
    return c


def form_post(browser: TestClient, path: str, page: httpx.Response, **data: str) -> httpx.Response:
    return browser.post(
        path, data={"_authenticator": token_of(page.text), **data}, follow_redirects=False
    )


def enrol(client: TestClient, clock: Clock) -> tuple[str, list[str]]:
    """Switch 2FA on through the account page; return the secret and the recovery codes."""
    page = form_post(client, "/account/2fa/start", client.get("/account"))
    assert page.status_code == 200
    found = SECRET.search(page.text)
    assert found, page.text
    secret = found.group(1).replace(" ", "")
    r = form_post(client, "/account/2fa/confirm", page, code=clock.code(secret, 0))
    assert r.status_code == 200, messages(r)
    codes = CODES.findall(r.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def sign_out(client: TestClient) -> None:
    r = form_post(client, "/logout", client.get("/"))
    assert r.status_code == 303
    assert signed_in_as(client) is None


def wrong_code(secret: str, clock: Clock) -> str:
    valid = {pyotp.TOTP(secret).at(clock.now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def test_two_factor_enrolment_and_two_step_sign_in(site: Site, clock: Clock) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    account = client.get("/account")
    assert account.status_code == 200
    assert "Set up two-factor sign-in" in account.text

    page = form_post(client, "/account/2fa/start", account)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert re.search(r'<figure class="qr" id="totp-qr"><svg ', page.text)  # inline SVG
    assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []  # no inline script ...
    assert " style=" not in page.text and "<style" not in page.text  # ... nor style: CSP
    secret = SECRET.search(page.text).group(1).replace(" ", "")  # type: ignore[union-attr]
    assert len(secret) == 32
    assert not site.accounts.get("admin").two_factor  # type: ignore[union-attr]
    parked = site.store.get("demo:enrol:admin")
    assert parked.startswith(b"swtotp1:") and secret.encode() not in parked

    # A wrong first code does not switch it on; the same secret is shown again.
    r = form_post(client, "/account/2fa/confirm", page, code=wrong_code(secret, clock))
    assert r.status_code == 400
    assert SECRET.search(r.text).group(1).replace(" ", "") == secret  # type: ignore[union-attr]
    assert not site.accounts.get("admin").two_factor  # type: ignore[union-attr]

    r = form_post(client, "/account/2fa/confirm", r, code=clock.code(secret, 0))
    assert r.status_code == 200
    codes = CODES.findall(r.text)
    assert len(codes) == 10
    assert site.accounts.get("admin").two_factor  # type: ignore[union-attr]
    sealed = site.accounts.sealed_totp("admin")
    assert sealed is not None and sealed.startswith("swtotp1:")
    # Neither the secret nor a recovery code is in the store in clear text.
    for key in site.store.keys("demo:") + site.store.keys("totp:recovery:"):
        value = site.store.get(key) or b""
        assert secret.encode() not in value
        assert not any(c.encode() in value or c.replace("-", "").encode() in value for c in codes)
    # Shown once: the account page now only counts them.
    again = client.get("/account")
    assert CODES.findall(again.text) == []
    assert '<span id="codes-left">10</span>' in again.text

    sign_out(client)
    r = login(client, "admin", site.admin_password)
    assert r.status_code == 303 and r.headers["location"] == "/login/code"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("__Host-sw_pending=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path=/", "samesite=strict", "max-age=300"} <= flags
    assert "sw_session" not in cookie
    # Password right, code pending: not signed in, may not comment.
    assert signed_in_as(client) is None
    assert form_post(client, "/comments", client.get("/login"), text="x").status_code == 403

    form = client.get("/login/code")
    assert form.status_code == 200 and 'name="code"' in form.text
    code = clock.code(secret)
    r = form_post(client, "/login/code", form, code=code)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "__Host-sw_session=" in r.headers["set-cookie"]
    assert signed_in_as(client) == "admin"
    assert client.cookies.get("__Host-sw_pending") is None

    # The same code again (a replay, e.g. by someone who watched it being typed): refused.
    sign_out(client)
    assert login(client, "admin", site.admin_password).status_code == 303
    r = form_post(client, "/login/code", client.get("/login/code"), code=code)
    assert r.status_code == 400
    assert messages(r)[0] == [BAD_CODE]
    assert signed_in_as(client) is None
    r = form_post(client, "/login/code", client.get("/login/code"), code=clock.code(secret))
    assert r.status_code == 303
    assert signed_in_as(client) == "admin"


def test_a_recovery_code_works_once(site: Site, clock: Clock) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    _secret, codes = enrol(client, clock)
    sign_out(client)
    login(client, "admin", site.admin_password)
    typed = codes[0].upper().replace("-", " ")  # case and separators do not matter
    r = form_post(client, "/login/code", client.get("/login/code"), code=typed)
    assert r.status_code == 303
    assert signed_in_as(client) == "admin"
    assert '<span id="codes-left">9</span>' in client.get("/account").text

    sign_out(client)
    login(client, "admin", site.admin_password)
    r = form_post(client, "/login/code", client.get("/login/code"), code=codes[0])
    assert r.status_code == 400 and messages(r)[0] == [BAD_CODE]
    r = form_post(client, "/login/code", client.get("/login/code"), code=codes[1])
    assert r.status_code == 303


def test_wrong_codes_count_against_the_lockout(site: Site, clock: Clock) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    secret, _codes = enrol(client, clock)
    sign_out(client)
    login(client, "admin", site.admin_password)
    threshold = site.warden.policy.lockout_threshold
    for attempt in range(1, threshold):
        r = form_post(
            client, "/login/code", client.get("/login/code"), code=wrong_code(secret, clock)
        )
        assert r.status_code == 400
        assert messages(r) == ([BAD_CODE], [left(threshold - attempt)])
    r = form_post(client, "/login/code", client.get("/login/code"), code=clock.code(secret, 0))
    # The lock falls on the threshold-th wrong code; here the code was right but the
    # TOTP guard (5 wrong codes per 5 minutes) already refuses every code: still wrong.
    assert r.status_code == 429
    assert messages(r) == ([locked_for(5)], [])
    # The lock ended the pending sign-in, and the password alone no longer gets in.
    assert client.get("/login/code", follow_redirects=False).headers["location"] == "/login"
    assert login(client, "admin", site.admin_password).status_code == 429
    assert signed_in_as(client) is None


def test_second_step_needs_a_live_pending_sign_in(site: Site, clock: Clock) -> None:
    client = site.client()
    token = token_of(client.get("/login").text)
    r = client.post("/login/code", data={"_authenticator": token, "code": "123456"})
    assert r.status_code == 400 and messages(r)[0] == [EXPIRED]
    client.cookies.set("__Host-sw_pending", "A" * 43, domain="127.0.0.1")
    r = client.post("/login/code", data={"_authenticator": token, "code": "123456"})
    assert r.status_code == 400 and messages(r)[0] == [EXPIRED]
    assert client.get("/login/code", follow_redirects=False).headers["location"] == "/login"
    assert signed_in_as(client) is None


def test_new_recovery_codes_and_turning_2fa_off_need_a_code(site: Site, clock: Clock) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    secret, codes = enrol(client, clock)
    account = client.get("/account")
    r = form_post(client, "/account/2fa/recovery-codes", account, code=wrong_code(secret, clock))
    assert r.status_code == 400 and CODES.findall(r.text) == []
    r = form_post(client, "/account/2fa/recovery-codes", account, code=clock.code(secret))
    assert r.status_code == 200
    fresh = CODES.findall(r.text)
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    r = form_post(client, "/account/2fa/disable", r, code=wrong_code(secret, clock))
    assert r.status_code == 400
    assert site.accounts.get("admin").two_factor  # type: ignore[union-attr]
    r = form_post(client, "/account/2fa/disable", r, code=fresh[0])  # a recovery code works too
    assert r.status_code == 200
    assert not site.accounts.get("admin").two_factor  # type: ignore[union-attr]
    assert site.accounts.sealed_totp("admin") is None
    assert site.warden.totp.recovery_codes_left("admin") == 0
    sign_out(client)
    assert login(client, "admin", site.admin_password).headers["location"] == "/"


# -- the password form -----------------------------------------------------------------

GOOD_PASSWORD = "violet tractor sings under copper moon"


def test_password_change_shows_the_policy_verdict_and_refuses_weak_ones(site: Site) -> None:
    passwords = site.warden.passwords
    assert passwords.check(GOOD_PASSWORD, ("admin",)) == []
    client = site.client()
    phone = site.client()
    login(client, "admin", site.admin_password)
    login(phone, "admin", site.admin_password)
    before = site.accounts.stored_hash("admin")
    for weak in ("password1234567", "admin-admin-admin-1", "short"):
        expected = [p.message for p in passwords.check(weak, ("admin",))]
        assert expected, weak  # the policy does refuse it
        r = form_post(
            client,
            "/account/password",
            client.get("/account"),
            current_password=site.admin_password,
            new_password=weak,
        )
        assert r.status_code == 400
        shown = re.findall(r"<li>([^<]*)</li>", r.text.split('id="password-problems"')[1])
        assert shown[: len(expected)] == [str(escape(m)) for m in expected]
    assert site.accounts.stored_hash("admin") == before

    r = form_post(
        client,
        "/account/password",
        client.get("/account"),
        current_password="not-my-password",
        new_password=GOOD_PASSWORD,
    )
    assert r.status_code == 400 and messages(r)[0] == ["Your current password is wrong."]
    assert site.warden.lockout.status("admin", LOOPBACK[0]).failures == 1  # counted

    r = form_post(
        client,
        "/account/password",
        client.get("/account"),
        current_password=site.admin_password,
        new_password=GOOD_PASSWORD,
    )
    assert r.status_code == 200
    assert "Password changed." in r.text
    assert signed_in_as(client) == "admin"  # this browser stays signed in ...
    assert signed_in_as(phone) is None  # ... every other session ended
    assert login(site.client(), "admin", site.admin_password).status_code == 400
    assert login(site.client(), "admin", GOOD_PASSWORD).status_code == 303


def test_password_strength_endpoint_for_the_live_meter(site: Site) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    page = client.get("/account")
    assert 'data-strength-url="/account/password-strength"' in page.text
    assert 'data-csrf-header="X-CSRF-Token"' in page.text
    token = token_of(page.text)
    weak = "password1234567"
    r = client.post(
        "/account/password-strength", json={"password": weak}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    verdict = r.json()
    assert verdict["ok"] is False
    assert verdict["problems"] == [p.message for p in site.warden.passwords.check(weak, ("admin",))]
    assert verdict["score"] in range(5)
    r = client.post(
        "/account/password-strength",
        json={"password": GOOD_PASSWORD},
        headers={"X-CSRF-Token": token},
    )
    assert r.json() == {"ok": True, "score": r.json()["score"], "problems": []}
    assert r.json()["score"] >= site.warden.policy.password_min_score
    # Without the CSRF header (and no Fetch Metadata): refused by sitewarden.
    assert client.post("/account/password-strength", json={"password": weak}).status_code == 403
    r = client.post(
        "/account/password-strength",
        content=b"{" + b" " * 5000 + b"}",
        headers={"X-CSRF-Token": token, "content-type": "application/json"},
    )
    assert r.status_code == 400
    anonymous = site.client()
    anon_token = token_of(anonymous.get("/login").text)
    r = anonymous.post(
        "/account/password-strength", json={"password": weak}, headers={"X-CSRF-Token": anon_token}
    )
    assert r.status_code == 403


# -- the admin's lists -------------------------------------------------------------------


def test_admin_sees_locks_bans_and_events_and_can_lift_them(tmp_path: Path) -> None:
    site = Site(tmp_path / "s", rate_limits={"POST /login": "2/minute"}, ban_after=1)
    try:
        site.accounts.create("bob", "bob-password-123")
        # Five addresses guess bob's password once each: the account is locked.
        for i in range(5):
            login(site.client(peer=(f"192.0.2.{i + 1}", 1000)), "bob", f"guess-{i}")
        evil = "<script>alert(1)</script>"
        login(site.client(peer=("192.0.2.77", 1000)), evil, "x")
        # One address keeps posting: the rate limit refuses it, and the breach bans it.
        flooder = site.client(peer=("198.51.100.7", 1000))
        statuses = [login(flooder, "nobody", "x").status_code for _ in range(3)]
        assert statuses == [400, 400, 429]
        assert flooder.get("/healthz").status_code == 403  # banned now, every path

        admin = site.client()
        assert login(admin, "admin", site.admin_password).status_code == 303
        page = admin.get("/manage")
        assert page.status_code == 200
        locks = page.text.split('id="locks"')[1].split("</section>")[0]
        assert "<code>bob</code>" in locks and 'value="bob"' in locks
        bans = page.text.split('id="bans"')[1].split("</section>")[0]
        assert "<code>198.51.100.7</code>" in bans
        listed = page.text.split('id="events"')[1].split("</section>")[0]
        for name in ("login.failure", "lockout.locked", "ratelimit.refused", "ban.added"):
            assert f"<code>{name}</code>" in listed, name
        assert "192.0.2.77" in listed
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed  # attacker text: escaped
        assert "<script>alert" not in page.text
        assert len(re.findall(r"<tr>\s*<td><time", listed)) <= 50

        bob = site.client(peer=("192.0.2.50", 1000))
        assert login(bob, "bob", "bob-password-123").status_code == 429  # locked
        r = form_post(admin, "/manage/unlock", page, scope="account", name="bob")
        assert r.status_code == 303
        after = admin.get(r.headers["location"])
        assert "Lock lifted." in after.text and "Nothing is locked." in after.text
        assert login(bob, "bob", "bob-password-123").status_code == 303

        r = form_post(admin, "/manage/unban", after, client="198.51.100.7")
        assert r.status_code == 303
        assert "No client is banned." in admin.get(r.headers["location"]).text
        assert flooder.get("/healthz").status_code == 200

        # Nothing to lift, or an unknown kind: a clean refusal, not a traceback.
        page = admin.get("/manage")
        assert (
            form_post(admin, "/manage/unlock", page, scope="account", name="bob").status_code == 400
        )
        assert form_post(admin, "/manage/unlock", page, scope="x", name="bob").status_code == 400
        assert (
            form_post(admin, "/manage/unlock", page, scope="address", name="nope").status_code
            == 400
        )
        # A non-admin cannot lift anything.
        bob_local = site.client(peer=("127.0.0.20", 1000))
        login(bob_local, "bob", "bob-password-123")
        token = token_of(bob_local.get("/").text)
        r = bob_local.post(
            "/manage/unlock", data={"_authenticator": token, "scope": "account", "name": "admin"}
        )
        assert r.status_code == 403
    finally:
        site.close()


def test_login_redirects_only_to_local_paths(site: Site) -> None:
    client = site.client()
    r = login(client, "admin", site.admin_password, next="//evil.example/x")
    assert r.headers["location"] == "/"
    client = site.client()
    r = login(client, "admin", site.admin_password, next="/manage")
    assert r.headers["location"] == "/manage"


# -- comments and CSRF ---------------------------------------------------------------


def test_comment_with_markup_is_stored_as_typed_and_shown_escaped(site: Site) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    home = client.get("/")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    r = client.post(
        "/comments",
        data={"_authenticator": token_of(home.text), "text": evil},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert Comments(site.store).list()[0]["text"] == evil
    page = client.get("/").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert" not in page and "<img" not in page


def test_cross_site_comment_post_is_refused_and_stores_nothing(site: Site) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    token = token_of(client.get("/").text)
    attacks = [
        {"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
        {"origin": "https://evil.example"},  # an older browser: no Fetch Metadata
        {"sec-fetch-site": "same-site", "origin": "https://sub.127.0.0.1.nip.io"},
    ]
    for headers in attacks:
        r = client.post(
            "/comments",
            data={"_authenticator": token, "text": "forged"},
            headers=headers,
            follow_redirects=False,
        )
        assert r.status_code == 403, headers
    # no header and no (or a forged) authenticator: refused too
    r = client.post("/comments", data={"text": "forged"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(
        "/comments", data={"_authenticator": "x" * 64, "text": "forged"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert Comments(site.store).list() == []
    # the same form from the site itself goes through
    r = client.post(
        "/comments",
        data={"text": "fine"},
        headers={"sec-fetch-site": "same-origin", "origin": "https://127.0.0.1"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert [c["text"] for c in Comments(site.store).list()] == ["fine"]


def test_comments_need_a_signed_in_user(site: Site) -> None:
    client = site.client()
    token = token_of(client.get("/login").text)
    r = client.post("/comments", data={"_authenticator": token, "text": "anon"})
    assert r.status_code == 403
    assert Comments(site.store).list() == []
    assert "Post comment" not in client.get("/").text


# -- logout ------------------------------------------------------------------------


def test_logout_clears_the_cookie_and_site_data(site: Site) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    token = token_of(client.get("/").text)
    r = client.post("/logout", data={"_authenticator": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "max-age=0" in r.headers["set-cookie"].lower()
    assert r.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert signed_in_as(client) is None


def test_logout_everywhere_invalidates_other_cookies(site: Site) -> None:
    laptop, phone = site.client(), site.client()
    login(laptop, "admin", site.admin_password)
    login(phone, "admin", site.admin_password)
    old_cookie = dict(laptop.cookies)
    assert signed_in_as(laptop) == "admin" and signed_in_as(phone) == "admin"
    token = token_of(phone.get("/").text)
    r = phone.post("/logout-everywhere", data={"_authenticator": token}, follow_redirects=False)
    assert r.status_code == 303
    assert "clear-site-data" in r.headers
    stale = site.client()
    stale.cookies.update(old_cookie)
    assert signed_in_as(stale) is None
    assert signed_in_as(laptop) is None
    # signing in again works
    assert login(laptop, "admin", site.admin_password).status_code == 303
    assert signed_in_as(laptop) == "admin"


# -- the admin area --------------------------------------------------------------------


def _post_report(client: TestClient) -> None:
    report = {
        "csp-report": {
            "document-uri": "https://127.0.0.1/",
            "violated-directive": "script-src-elem",
            "effective-directive": "script-src-elem",
            "blocked-uri": "https://evil.example/<x>.js",
            "original-policy": "default-src 'none'",
        }
    }
    r = client.post(
        "/.sitewarden/csp-report",
        content=json.dumps(report),
        headers={"content-type": "application/csp-report"},
    )
    assert r.status_code == 204


def test_manage_lists_reports_and_fingerprints_for_the_admin(site: Site) -> None:
    client = site.client()
    _post_report(client)
    assert client.get("/manage", follow_redirects=False).headers["location"] == (
        "/login?next=/manage"
    )
    login(client, "admin", site.admin_password)
    r = client.get("/manage")
    assert r.status_code == 200
    assert "https://evil.example/&lt;x&gt;.js" in r.text
    assert "script-src-elem" in r.text
    keys = site.warden.keys
    for name in ("system", "sessions", "forms"):
        for fp in keys.ring(name).fingerprints():
            assert fp is not None and fp in r.text
        for secret in keys.ring(name).secrets:
            assert secret.hex() not in r.text
            assert base64.b64encode(secret).decode() not in r.text


def test_manage_refuses_non_admins_and_other_hosts(site: Site) -> None:
    site.accounts.create("bob", "bob-password-123")
    bob = site.client()
    assert login(bob, "bob", "bob-password-123").status_code == 303
    assert bob.get("/manage").status_code == 403
    token = token_of(bob.get("/").text)
    r = bob.post("/manage/users", data={"_authenticator": token, "username": "mallory"})
    assert r.status_code == 403
    assert site.accounts.get("mallory") is None

    # Another allowed host name, or a client that is not on loopback: 404 from sitewarden.
    assert site.client(host="localhost").get("/manage").status_code == 404
    admin_elsewhere = site.client(peer=("192.0.2.7", 40000))
    login(admin_elsewhere, "admin", site.admin_password)
    assert admin_elsewhere.get("/manage").status_code == 404
    assert admin_elsewhere.get("/MANAGE/").status_code == 404
    assert admin_elsewhere.get("/%6danage").status_code == 404


def test_admin_creates_an_account_with_a_one_time_password(site: Site) -> None:
    client = site.client()
    login(client, "admin", site.admin_password)
    token = token_of(client.get("/manage").text)
    r = client.post("/manage/users", data={"_authenticator": token, "username": "carol"})
    assert r.status_code == 200
    password = re.search(r"with the password\s+<code>([^<]+)</code>", r.text)
    assert password
    assert site.warden.passwords.check(password.group(1), ("carol",)) == []  # passes the policy
    assert r.headers["cache-control"] == "no-store"
    carol = site.client()
    assert login(carol, "carol", password.group(1)).status_code == 303
    assert signed_in_as(carol) == "carol"
    assert "Post comment" in carol.get("/").text


# -- page content and headers ----------------------------------------------------------


def test_home_page_loads_its_assets_with_matching_sri(site: Site) -> None:
    client = site.client()
    html = client.get("/").text
    script = re.search(
        r'<script src="/static/app.js" integrity="([^"]+)" crossorigin="anonymous" defer>', html
    )
    assert script, html[:600]
    assert script.group(1) == sri((STATIC_DIR / "app.js").read_bytes())
    assert script.group(1) == sri(client.get("/static/app.js").content)
    style = re.search(r'<link rel="stylesheet" href="/static/style.css" integrity="([^"]+)"', html)
    assert style and style.group(1) == sri(client.get("/static/style.css").content)


def test_home_page_headers_and_no_inline_code(site: Site) -> None:
    r = site.client().get("/")
    csp = r.headers["content-security-policy"]
    assert csp.startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in csp
    html = r.text
    # A nonce only when the page uses one; this page has no inline code at all.
    assert ("'nonce-" in csp) == ("nonce=" in html)
    assert "nonce=" not in html
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None  # no inline event handlers
    assert r.headers["strict-transport-security"].startswith("max-age=63072000")
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cross-origin-resource-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "server" not in r.headers


def test_every_page_is_free_of_inline_code(site: Site, clock: Clock) -> None:
    client = site.client()
    pages = [client.get("/login")]
    login(client, "admin", site.admin_password)
    pages += [client.get("/"), client.get("/account"), client.get("/manage")]
    pages.append(form_post(client, "/account/2fa/start", pages[-2]))
    for r in pages:
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-store"
        assert "'nonce-" not in r.headers["content-security-policy"]
        html = r.text
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], r.url
        assert "<style" not in html and " style=" not in html, r.url
        assert re.search(r"\son[a-z]+=", html) is None, r.url


def test_a_bad_setting_is_refused_before_anything_serves(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rate_limits"):
        create_app(tmp_path / "bad", True, settings={"rate_limits": {"POST /login": "lots"}})


def test_healthz_and_unknown_host(site: Site) -> None:
    r = site.client().get("/healthz")
    assert (r.status_code, r.text) == (200, "ok")
    assert site.client(host="evil.example").get("/healthz").status_code == 400


def test_plain_http_dev_mode(tmp_path: Path) -> None:
    site = Site(tmp_path / "dev", https=False)
    try:
        client = site.client()
        assert client.get("/", follow_redirects=False).status_code == 200
        r = login(client, "admin", site.admin_password)
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("sw_session=")
        assert "secure" not in cookie.lower()
        assert "strict-transport-security" not in client.get("/").headers
        assert "Development mode" in client.get("/").text
    finally:
        site.close()


# -- TLS files -------------------------------------------------------------------------


def _handshake(files: Any, name: str) -> None:
    """A TLS handshake in memory: server with the cert, client trusting only the CA."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, obj in (("client", client), ("server", server)):
            if done[side]:
                continue
            try:
                obj.do_handshake()
                done[side] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_tls_creates_a_ca_and_a_server_cert_that_verifies(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path / "tls")
    assert files.created_ca and files.created_cert
    assert files.ca_cert == tmp_path / "tls" / "ca.pem"
    for key in (files.ca_key, files.key):
        assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "tls").st_mode & 0o777 == 0o700

    for name in ("127.0.0.1", "localhost", "::1"):
        _handshake(files, name)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(files, "example.org")

    # cryptography's RFC 5280 / CA-B Forum verifier (what browsers enforce) agrees.
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    verifier = PolicyBuilder().store(Store([ca]))
    chain = verifier.build_server_verifier(
        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    ).verify(leaf, [])
    assert chain[-1] == ca
    verifier.build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])
    with pytest.raises(VerificationError):
        verifier.build_server_verifier(x509.DNSName("example.org")).verify(leaf, [])

    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert datetime.timedelta(days=360) < lifetime < datetime.timedelta(days=370)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical  # the CA can vouch for loopback names only


def test_tls_files_are_reused_and_a_missing_cert_is_reissued(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path / "tls")
    before = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.cert, first.key)}
    second = ensure_tls(tmp_path / "tls")
    assert not second.created_ca and not second.created_cert
    assert {p: p.read_bytes() for p in before} == before

    first.cert.unlink()
    third = ensure_tls(tmp_path / "tls")
    assert not third.created_ca and third.created_cert
    assert third.ca_cert.read_bytes() == before[first.ca_cert]  # the trusted CA stays
    _handshake(third, "127.0.0.1")


# -- the real thing: `python -m sitewarden.demo.cli --https` ---------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def httpx_login(base: str, context: ssl.SSLContext, password: str) -> str | None:
    """Sign in as admin over real HTTPS; return who the home page says is signed in."""
    with httpx.Client(base_url=base, verify=context, timeout=10) as client:
        page = client.get("/login")
        form = {"_authenticator": token_of(page.text), "username": "admin", "password": password}
        headers = {"origin": base, "sec-fetch-site": "same-origin"}
        r = client.post("/login", data=form, headers=headers)
        assert r.status_code == 303, r.text
        assert r.cookies.get("__Host-sw_session")
        match = re.search(r"Signed in as <strong>([^<]+)</strong>", client.get("/").text)
        return match.group(1) if match else None


def test_demo_serves_https_and_redirects_http(tmp_path: Path) -> None:
    https_port, http_port = _free_port(), _free_port()
    while http_port == https_port:
        http_port = _free_port()
    state = tmp_path / "state"
    log_path = tmp_path / "demo.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "sitewarden.demo.cli",
        "--https",
        "--port",
        str(https_port),
        "--http-port",
        str(http_port),
        "--state-dir",
        str(state),
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env
        )
    base = f"https://127.0.0.1:{https_port}"
    try:
        ca = state / "tls" / "ca.pem"
        deadline = time.monotonic() + 30
        health: httpx.Response | None = None
        while health is None:
            if proc.poll() is not None:
                pytest.fail(f"the demo exited early ({proc.returncode}):\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no answer from {base}/healthz:\n{log_path.read_text()}")
            if ca.exists():
                try:
                    context = ssl.create_default_context(cafile=str(ca))
                    health = httpx.get(f"{base}/healthz", verify=context, timeout=2)
                except (httpx.TransportError, ssl.SSLError, OSError):
                    health = None
            if health is None:
                time.sleep(0.1)
        assert (health.status_code, health.text) == (200, "ok")

        redirect = httpx.get(
            f"http://127.0.0.1:{http_port}/healthz?probe=1", follow_redirects=False, timeout=5
        )
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"{base}/healthz?probe=1"

        home = httpx.get(f"{base}/", verify=context, timeout=5)
        assert home.status_code == 200
        assert home.headers["content-security-policy"].startswith("default-src 'none'")
        assert "strict-transport-security" in home.headers
        assert "server" not in home.headers
        assert 'integrity="sha384-' in home.text

        output = log_path.read_text()
        assert f"sitewarden demo: {base}/" in output
        assert "5 wrong passwords for one user name: its sign-in pauses for 5 minutes" in output
        assert "beyond 10/minute: 429" in output
        created = re.search(r"Admin account created: user 'admin', password '([\w-]+)'", output)
        assert created, output
        assert httpx_login(base, context, created.group(1)) == "admin"
        assert str(ca) in output
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # proc.terminate(), spelled out
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    assert proc.returncode == 0, log_path.read_text()
    assert "sitewarden demo stopped." in log_path.read_text()
