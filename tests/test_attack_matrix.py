"""The attack matrix: every attack, on every stack, protected and unprotected.

"The attack tests fail against an unprotected app and pass with sitewarden, through ASGI,
WSGI and each adapter." Each attack is a function that returns ``True`` when the attack
*succeeded*. Both variants run the very same assertion (``check``): the protected site must
withstand the attack, and the unprotected site is marked ``xfail(strict=True,
raises=AttackSucceeded)`` — it must fail, and fail because the attack worked, which proves
each test can fail. The site and its test clients are in :mod:`tests.attack_apps`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.attack_apps import (
    APP_COOKIE,
    HOST,
    NAIVE_SESSION,
    SITE,
    STACKS,
    Response,
    Target,
    target,
)

EVIL = "evil.example"
EVIL_ORIGIN = f"https://{EVIL}"
FORM = {"content-type": "application/x-www-form-urlencoded"}
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "origin": SITE}
TRANSFER = "to=mallory&amount=1000"


class AttackSucceeded(AssertionError):
    """The attack worked against the site (the only failure an unprotected case may show)."""


# -- helpers ------------------------------------------------------------------------------


def cookie_attributes(set_cookie: str) -> tuple[str, set[str], dict[str, str]]:
    """Split a ``Set-Cookie`` value into its name, its flags and its ``key=value`` attributes."""
    first, *attrs = set_cookie.split(";")
    name = first.partition("=")[0].strip()
    flags: set[str] = set()
    values: dict[str, str] = {}
    for attr in attrs:
        key, eq, value = attr.partition("=")
        key = key.strip().lower()
        if eq:
            values[key] = value.strip()
        elif key:
            flags.add(key)
    return name, flags, values


def find_cookie(r: Response, match: Callable[[str], bool]) -> str:
    found = [c for c in r.get_all("set-cookie") if match(cookie_attributes(c)[0])]
    assert len(found) == 1, f"precondition: expected one such cookie, got {r.get_all('set-cookie')}"
    return found[0]


def unhardened(set_cookie: str) -> bool:
    """Whether a cookie lacks Secure, HttpOnly or SameSite."""
    _, flags, values = cookie_attributes(set_cookie)
    return "secure" not in flags or "httponly" not in flags or "samesite" not in values


def csp_directives(r: Response) -> list[dict[str, list[str]]]:
    """Each enforced ``Content-Security-Policy`` (not report-only) as directive → sources."""
    policies = []
    for header in r.get_all("content-security-policy"):
        for policy in header.split(","):  # a combined header holds several policies
            directives: dict[str, list[str]] = {}
            for part in policy.split(";"):
                words = part.split()
                if words and words[0].lower() not in directives:
                    directives[words[0].lower()] = [w.lower() for w in words[1:]]
            if directives:
                policies.append(directives)
    return policies


def sign_in(t: Target) -> Response:
    """The victim signs in from the site's own page."""
    r = t.request("POST", "/login", headers={**SAME_ORIGIN, **FORM}, body="user=alice")
    assert r.status == 200, f"precondition: login failed\n{t.transcript()}"
    return r


# -- the attacks: each returns True when it SUCCEEDED --------------------------------------


def csrf_cross_site(t: Target) -> bool:
    """A form on another site posts to /transfer with the victim's cookies."""
    sign_in(t)
    before = len(t.site.transfers)
    t.request(
        "POST",
        "/transfer",
        headers={"sec-fetch-site": "cross-site", "origin": EVIL_ORIGIN, **FORM},
        body=TRANSFER,
    )
    return len(t.site.transfers) > before


def csrf_legacy(t: Target) -> bool:
    """An old browser (no Fetch Metadata, Origin or Referer) posts without a token."""
    sign_in(t)
    before = len(t.site.transfers)
    t.request("POST", "/transfer", headers=FORM, body=TRANSFER)
    return len(t.site.transfers) > before


def host_injection(t: Target) -> bool:
    """A request for a host the site does not serve (cache poisoning, reset-link forging)."""
    r = t.request("GET", "/", host=EVIL)
    return r.status == 200 or bool(t.site.calls)


def clickjacking(t: Target) -> bool:
    """Another site frames the page: no X-Frame-Options and no CSP frame-ancestors."""
    r = t.request("GET", "/")
    xfo = (r.get("x-frame-options") or "").strip().upper()
    framed = any("frame-ancestors" in policy for policy in csp_directives(r))
    return xfo not in ("DENY", "SAMEORIGIN") and not framed


def session_cookie_theft(t: Target) -> bool:
    """The session cookie is readable by scripts, sent over HTTP or sent cross-site."""
    r = sign_in(t)
    cookie = find_cookie(r, lambda name: name.endswith(NAIVE_SESSION[0]))
    return unhardened(cookie)


def app_cookie_hardening(t: Target) -> bool:
    """The application's own cookie goes out without Secure, HttpOnly or SameSite."""
    r = t.request("GET", "/")
    assert r.status == 200, f"precondition: the page failed\n{t.transcript()}"
    return unhardened(find_cookie(r, lambda name: name == APP_COOKIE[0]))


def fingerprinting(t: Target) -> bool:
    """The response names the server software and its version."""
    r = t.request("GET", "/")
    server = r.get_all("server")
    return any(re.search(r"\d|/", s) for s in server) or bool(r.get_all("x-powered-by"))


def management_exposure(t: Target) -> bool:
    """The management screen answers on the public host."""
    return t.request("GET", "/manage_main").status == 200


def plain_http(t: Target) -> bool:
    """The page is served over plain HTTP instead of redirecting to HTTPS."""
    r = t.request("GET", "/", scheme="http")
    location = r.get("location") or ""
    return not (300 <= r.status < 400 and location.startswith(f"https://{HOST}/"))


def xss_mitigation(t: Target) -> bool:
    """No CSP that forbids inline scripts and plugins."""
    r = t.request("GET", "/")
    for policy in csp_directives(r):
        default = policy.get("default-src")
        scripts = policy.get("script-src", default)
        objects = policy.get("object-src", default)
        if scripts is None or objects is None:
            continue  # this policy does not restrict scripts or plugins
        inline = "'unsafe-inline'" in scripts and not any(
            s.startswith(("'nonce-", "'sha")) for s in scripts
        )
        wildcard = any(s in ("*", "data:", "http:", "https:") for s in scripts)
        if not inline and not wildcard and objects == ["'none'"]:
            return False
    return True


ATTACKS: dict[str, Callable[[Target], bool]] = {
    "csrf-cross-site": csrf_cross_site,
    "csrf-legacy-no-token": csrf_legacy,
    "host-injection": host_injection,
    "clickjacking": clickjacking,
    "session-cookie-theft": session_cookie_theft,
    "app-cookie-hardening": app_cookie_hardening,
    "fingerprinting": fingerprinting,
    "management-exposure": management_exposure,
    "plain-http": plain_http,
    "xss-mitigation": xss_mitigation,
}

#: Protected cases where sitewarden does not hold: (attack, stack) → reason (xfail strict).
KNOWN_GAPS: dict[tuple[str, str], str] = {}


def _cases() -> Iterator[object]:
    unprotected = pytest.mark.xfail(
        strict=True,
        raises=AttackSucceeded,
        reason="unprotected site: the attack must succeed (proves the test can fail)",
    )
    for attack in ATTACKS:
        for stack in STACKS:
            gap = KNOWN_GAPS.get((attack, stack))
            marks = [pytest.mark.xfail(strict=True, raises=AttackSucceeded, reason=gap)]
            yield pytest.param(
                attack,
                stack,
                True,
                marks=marks if gap else [],
                id=f"{attack}[{stack}-protected]",
            )
            yield pytest.param(
                attack, stack, False, marks=[unprotected], id=f"{attack}[{stack}-unprotected]"
            )


@pytest.mark.parametrize(("attack", "stack", "protected"), list(_cases()))
def test_attack(attack: str, stack: str, protected: bool) -> None:
    with target(stack, protected) as t:
        succeeded = ATTACKS[attack](t)
        if succeeded:
            variant = "protected" if protected else "unprotected"
            raise AttackSucceeded(
                f"{attack} succeeded against {stack} ({variant}):\n{t.transcript()}"
            )
