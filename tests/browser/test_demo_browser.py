"""Attacks on the demo, in a real browser (Debian's Chromium, driven by Playwright).

Each test runs one attack against three sites (see ``conftest.py``):

* ``demo`` — ``sitewarden demo --https``, the real thing;
* ``mirror-protected`` — a few-line app with the demo's routes behind ``Warden("strict")``;
* ``mirror-unprotected`` — the same app without sitewarden: **the control**. There the
  attack must succeed, so the test must fail — and fail exactly at its "the attack was
  stopped" check, which raises :class:`AttackSucceeded`. The control is marked
  ``xfail(strict=True, raises=AttackSucceeded)``: if the test ever passed against the
  unprotected app (it would no longer detect the attack), or failed for any other reason
  (a harness error), the run fails.

What a test proves is in its docstring; ``docs/testing.md`` has the overview.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.parse
from typing import Any

import pytest


class AttackSucceeded(AssertionError):
    """The attack worked: the site is not protected against it."""


def stopped(condition: bool, message: str) -> None:
    """Assert that an attack was stopped; raise :class:`AttackSucceeded` if it was not."""
    if not condition:
        raise AttackSucceeded(message)


CONTROL = pytest.mark.xfail(
    strict=True,
    raises=AttackSucceeded,
    reason="control: without sitewarden the same attack succeeds",
)
SITES = [
    pytest.param("demo", id="demo"),
    pytest.param("mirror-protected", id="mirror-protected"),
    pytest.param("mirror-unprotected", id="mirror-unprotected", marks=CONTROL),
]
MIRRORS = [p for p in SITES if p.id != "demo"]
ORIGINS = ["same-site", "cross-site"]


# -- helpers ---------------------------------------------------------------------------


def sign_in(page: Any, site: Any) -> Any:
    """Sign in through the site's login form; return the login POST's response."""
    page.goto(site.url("/login"))
    page.fill("input[name=username]", site.username)
    page.fill("input[name=password]", site.password)
    with page.expect_response(
        lambda r: r.url == site.url("/login") and r.request.method == "POST"
    ) as login:
        page.click("form:has(input[name=password]) button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("textarea[name=text]").count() == 1, (
        f"sign-in as {site.username!r} failed: no comment form on {page.url}"
    )
    return login.value


def attacker_origin(attacker: Any, kind: str) -> str:
    return attacker.same_site if kind == "same-site" else attacker.cross_site


def wait_for_report(site: Any, marker: str, timeout: float = 15.0) -> dict[str, Any] | None:
    """Poll the site's report store for a CSP report about a page whose URL has *marker*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for report in site.reports():
            if marker in (report.get("document_uri") or ""):
                return report
        time.sleep(0.2)
    return None


INJECT = """(marker) => new Promise((resolve) => {
    let violation = null;
    document.addEventListener("securitypolicyviolation",
        (e) => { violation = e.effectiveDirective; }, { once: true });
    const s = document.createElement("script");
    s.textContent = "window.__swInjected = " + JSON.stringify(marker);
    document.body.appendChild(s);
    setTimeout(() => resolve({ ran: window.__swInjected === marker, violation }), 300);
})"""


# -- CSP -------------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES, indirect=True)
def test_injected_inline_script_does_not_run_and_is_reported(site: Any, context: Any) -> None:
    """An inline script injected into a page does not run, and the violation is reported.

    The demo escapes everything it shows, so no input of ours reaches its HTML as markup;
    the injection is made the way DOM-based XSS does it: a ``<script>`` element with inline
    code is added to the live page (``page.evaluate`` itself is exempt from CSP, like an
    extension; the *inserted element* is not). With sitewarden's ``script-src 'self'`` (no
    ``'unsafe-inline'``, no nonce given out) Chromium refuses to run it, fires
    ``securitypolicyviolation`` and sends a report to ``/.sitewarden/csp-report``, which must
    arrive in the site's store (the records ``sitewarden reports`` and ``/manage`` list).

    Against the unprotected control there is no CSP: the script runs (``ran`` is true) and
    the test fails at its first check.
    """
    marker = f"csp-dom-{secrets.token_hex(6)}"
    page = context.new_page()
    page.goto(site.url(f"/?probe={marker}"))
    result = page.evaluate(INJECT, marker)
    stopped(not result["ran"], f"the injected inline script ran on {site.name}")
    assert result["violation"] in ("script-src-elem", "script-src"), result
    report = wait_for_report(site, marker)
    assert report is not None, f"no CSP report about ?probe={marker} reached {site.name}'s store"
    assert report["effective_directive"] in ("script-src-elem", "script-src"), report
    assert report["disposition"] == "enforce", report
    print(f"{site.name}: blocked ({result['violation']}); report: {json.dumps(report)}")


@pytest.mark.parametrize("site", MIRRORS, indirect=True)
def test_reflected_script_does_not_run_and_is_reported(site: Any, context: Any) -> None:
    """A script reflected unescaped by the server does not run under sitewarden's CSP.

    The mirror's ``/reflect?q=`` writes ``q`` into its HTML unescaped — a classic reflected
    XSS, which the demo does not have. Behind ``Warden("strict")`` the CSP comes from the
    server's response header, so the browser refuses the ``<script>`` that the parser
    meets in the page and reports it. The unprotected control runs the script.
    """
    marker = f"csp-reflect-{secrets.token_hex(6)}"
    payload = f"<script>window.__swReflected = '{marker}'</script>"
    page = context.new_page()
    page.goto(site.url("/reflect?" + urllib.parse.urlencode({"marker": marker, "q": payload})))
    ran = page.evaluate("(m) => window.__swReflected === m", marker)
    stopped(not ran, f"the reflected script ran on {site.name}")
    report = wait_for_report(site, marker)
    assert report is not None, f"no CSP report about {marker} reached {site.name}'s store"
    assert report["effective_directive"] in ("script-src-elem", "script-src"), report


# -- framing ---------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("site", SITES, indirect=True)
def test_other_origin_cannot_frame_the_site(
    site: Any, context: Any, attacker: Any, origin: str
) -> None:
    """A page on another origin cannot show the site in a frame (clickjacking).

    The attacker's page holds ``<iframe src=site>``. With ``frame-ancestors`` and
    ``X-Frame-Options`` Chromium replaces the frame's document with an error page
    (``chrome-error://``); the test reads the frame's URL and title and requires that they
    are not the site's page. Both a cross-site (``http://localhost``) and a same-site
    (``https://127.0.0.1``, other port) attacker are tried. The unprotected control sends
    no framing headers, so the frame holds the site's page and the test fails.
    """
    page = context.new_page()
    page.goto(site.url("/"))
    own_title = page.title()
    assert own_title, "the site's home page has no title to recognise it by"
    url = attacker.put(
        attacker_origin(attacker, origin),
        "<!doctype html><title>attacker</title><p>Win a prize! Click below.</p>"
        f'<iframe id="victim" src="{site.url("/")}" width="800" height="600" '
        "onload=\"this.dataset.loaded='1'\"></iframe>",
    )
    page.goto(url)
    page.wait_for_function("() => document.getElementById('victim').dataset.loaded === '1'")
    frames = [f for f in page.frames if f.parent_frame == page.main_frame]
    assert len(frames) == 1, [f.url for f in page.frames]
    frame = frames[0]
    try:
        framed_title = frame.evaluate("() => document.title")
    except Exception:  # an error page may not be scriptable
        framed_title = None
    print(f"{site.name}: {origin} frame at {frame.url!r}, title {framed_title!r}")
    stopped(
        not frame.url.startswith(site.base_url) and framed_title != own_title,
        f"{site.name} was framed by {origin} page: frame at {frame.url!r}, title {framed_title!r}",
    )


# -- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ORIGINS)
@pytest.mark.parametrize("site", SITES, indirect=True)
def test_cross_origin_form_post_is_refused(
    site: Any, context: Any, attacker: Any, origin: str
) -> None:
    """A form on another origin that auto-posts a comment as the signed-in victim is refused.

    The victim signs in, posts one comment through the site's own form (the positive
    control: comments do work and do appear), then opens the attacker's page, whose form
    posts ``text=<marker>`` to ``/comments`` as soon as it loads. The POST must get 403,
    the victim must still be signed in, and the marker must not be among the comments.

    ``same-site`` (``https://127.0.0.1:<other port>``): the browser sends even the
    ``SameSite=Strict`` session cookie, so SameSite does not help — only sitewarden's CSRF
    check (``Sec-Fetch-Site: same-site`` is another origin) refuses it. ``cross-site``
    (``http://localhost:<port>``): the cookie stays home and ``Sec-Fetch-Site: cross-site``
    is refused too. The unprotected control accepts both (its cookie is ``SameSite=None``,
    as sites that need cross-site sign-in set it) and shows the attacker's comment.
    """
    page = context.new_page()
    sign_in(page, site)
    own = f"own-comment-{secrets.token_hex(6)}"
    page.fill("textarea[name=text]", own)
    with page.expect_navigation():
        page.click("form[action='/comments'] button[type=submit]")
    assert own in page.content(), "the site's own comment form did not work"

    evil = f"csrf-comment-{secrets.token_hex(6)}"
    action = site.url("/comments")
    url = attacker.put(
        attacker_origin(attacker, origin),
        "<!doctype html><title>attacker</title>"
        f'<form id="f" method="post" action="{action}">'
        f'<input type="hidden" name="text" value="{evil}"></form>'
        "<script>document.getElementById('f').submit()</script>",
    )
    with page.expect_response(lambda r: r.url == action and r.request.method == "POST") as post:
        page.goto(url)
    status = post.value.status
    page.wait_for_load_state()

    print(f"{site.name}: {origin} forged POST answered {status}")
    page.goto(site.url("/"))
    assert page.locator("textarea[name=text]").count() == 1, "the victim was signed out"
    appeared = evil in page.content()
    stopped(
        status == 403 and not appeared,
        f"{site.name} accepted a {origin} forged POST: status {status}, "
        f"comment {'appeared' if appeared else 'absent'}",
    )


# -- cookies ---------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES, indirect=True)
def test_session_cookie_is_hidden_from_scripts_and_hardened(site: Any, context: Any) -> None:
    """The session cookie is invisible to JavaScript and carries Secure, HttpOnly, SameSite.

    After signing in, ``document.cookie`` (what an injected script could steal) must not
    contain the session cookie; the browser's own record of it (``context.cookies()``) must
    say HttpOnly, Secure and SameSite Lax or Strict, and the raw ``Set-Cookie`` of the
    sign-in response must carry the three attributes itself (not rely on browser
    defaults) and the ``__Host-`` prefix (no Domain, Path=/, Secure: no subdomain can
    overwrite it). The unprotected control's cookie is readable by scripts.
    """
    page = context.new_page()
    login = sign_in(page, site)
    cookies = [c for c in context.cookies(site.url("/")) if "sess" in c["name"].lower()]
    assert cookies, f"signing in set no session cookie: {context.cookies()}"
    visible = page.evaluate("() => document.cookie")
    raw = [h["value"] for h in login.headers_array() if h["name"].lower() == "set-cookie"]
    for cookie in cookies:
        name = cookie["name"]
        readable = any(part.strip().startswith(name + "=") for part in visible.split(";") if part)
        stopped(not readable, f"{site.name}: scripts can read {name} (document.cookie)")
        stopped(
            cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] in ("Lax", "Strict"),
            f"{site.name}: {name} is {json.dumps(cookie)}",
        )
        header = next((v for v in raw if v.startswith(name + "=")), None)
        assert header is not None, f"the sign-in response did not set {name}: {raw}"
        attrs = {a.strip().split("=")[0].lower(): a.strip() for a in header.split(";")[1:]}
        stopped(
            "secure" in attrs
            and "httponly" in attrs
            and attrs.get("samesite", "").lower() in ("samesite=lax", "samesite=strict"),
            f"{site.name}: Set-Cookie {header!r}",
        )
        stopped(name.startswith("__Host-"), f"{site.name}: {name} has no __Host- prefix")


# -- two-factor sign-in, through the real pages ----------------------------------------


def test_two_factor_enrolment_and_sign_in_in_chromium(demo: Any, browsers: Any) -> None:
    """A user enrols TOTP on the demo's account page in Chromium and signs in with a code.

    Not an attack but the defence's own path, end to end in a real browser under the
    strict CSP: the admin creates an account (random password shown once, read from the
    page); its owner opens ``/account``, starts enrolment, sees the QR code drawn as
    inline SVG (it must render: the CSP forbids inline *scripts and styles*, not markup),
    reads the manual-entry secret from the page, confirms with the current code computed
    by ``pyotp`` and gets ten recovery codes. After signing out, the password alone leads
    only to the code form (no session); the next code signs in. Then the password form's
    live strength meter (``app.js`` posting to the JSON endpoint with the CSRF header)
    shows the policy's verdict. No CSP violation may occur on any of these pages.
    """
    import pyotp

    ctx = browsers.get([demo.tls.spki]).new_context()
    ctx.set_default_timeout(15_000)
    violations: list[str] = []
    try:
        page = ctx.new_page()
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )

        def sign_in(name: str, password: str) -> None:
            page.goto(demo.base_url + "/login")
            page.fill("#username", name)
            page.fill("#password", password)
            with page.expect_navigation():
                page.click("form[action='/login'] button[type=submit]")

        def sign_out() -> None:
            with page.expect_navigation():
                page.click("form[action='/logout'] button[type=submit]")
            assert page.locator(".who").count() == 0

        # The admin creates the account (the admin keeps its password-only sign-in).
        user = f"totp-{secrets.token_hex(3)}"
        sign_in(demo.admin_user, demo.admin_password)
        page.goto(demo.base_url + "/manage")
        page.fill("#new-user", user)
        with page.expect_navigation():
            page.click("form[action='/manage/users'] button[type=submit]")
        password = page.locator(".created code").inner_text()
        assert len(password) >= 15
        sign_out()

        sign_in(user, password)
        assert page.locator(".who strong").inner_text() == user
        page.goto(demo.base_url + "/account")
        with page.expect_navigation():
            page.click("form[action='/account/2fa/start'] button[type=submit]")
        qr = page.locator("#totp-qr svg")
        assert qr.is_visible()
        box = qr.bounding_box()
        assert box is not None and box["width"] > 50 and box["height"] > 50
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        assert len(secret) == 32
        page.fill("#confirm-code", pyotp.TOTP(secret).now())
        with page.expect_navigation():
            page.click("form[action='/account/2fa/confirm'] button[type=submit]")
        codes = page.locator("#recovery-codes code").all_inner_texts()
        assert len(codes) == 10, page.content()[:2000]
        sign_out()

        # Password first: only the second step, no session yet.
        sign_in(user, password)
        assert page.url == demo.base_url + "/login/code"
        assert page.locator(".who").count() == 0
        cookies = {c["name"]: c for c in ctx.cookies(demo.base_url)}
        pending = cookies["__Host-sw_pending"]
        assert pending["httpOnly"] and pending["secure"] and pending["sameSite"] == "Strict"
        assert page.evaluate("() => document.cookie") == ""
        # The enrolment's time step is spent (replay protection): the next one is fresh.
        page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        with page.expect_navigation():
            page.click("form[action='/login/code'] button[type=submit]")
        assert page.url == demo.base_url + "/"
        assert page.locator(".who strong").inner_text() == user
        assert "__Host-sw_pending" not in {c["name"] for c in ctx.cookies(demo.base_url)}

        # The live strength meter: app.js asks the site's JSON endpoint (CSRF header).
        page.goto(demo.base_url + "/account")
        page.fill("#new-password", "password1234567")
        page.wait_for_selector("[data-strength-problems] li")
        assert page.locator("[data-strength-label]").inner_text().startswith("Not accepted")
        page.fill("#new-password", "violet tractor sings under copper moon")
        page.wait_for_function(
            "() => document.querySelector('[data-strength-label]').textContent"
            ".startsWith('Acceptable')"
        )
        assert page.locator("[data-strength-problems] li").count() == 0
        assert violations == []
    finally:
        ctx.close()
