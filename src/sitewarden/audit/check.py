"""The rules of ``sitewarden check``: a deploy audit of a :class:`~sitewarden.policy.Policy`.

Every rule is one small function, registered in :data:`CHECKS` under a stable id
(``SW001``…) that never changes meaning; its docstring states the threat. The policy rules
are pure (:func:`audit_policy`); :func:`audit_keyring` looks at rings already read, and
:func:`audit_store` at a store URL and, for SQLite, the file's permissions.

Secrets are never put in a finding: only their fingerprints
(:func:`sitewarden.keyring.fingerprint`).

A finding whose id (or keyword, see :data:`UPSTREAM_KEYWORDS`) is listed in the policy's
``handled_upstream`` is not dropped: it is reported with severity ``info`` and the note
"declared handled upstream", so the declaration stays visible in every audit.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal
from urllib.parse import urlsplit

from sitewarden.keyring import DEFAULT_ROTATE_AFTER, SECRET_BYTES, Keyring, fingerprint
from sitewarden.policy import Policy

__all__ = [
    "CHECKS",
    "DEPLOY_ONLY",
    "SEVERITIES",
    "UPSTREAM_KEYWORDS",
    "Check",
    "Finding",
    "at_or_above",
    "audit_keyring",
    "audit_policy",
    "audit_store",
    "counts",
]

Severity = Literal["critical", "high", "medium", "low", "info"]
#: Severities, most severe first.
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "info")
_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
UPSTREAM_NOTE = "declared handled upstream"


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One weakness: its stable *id*, *severity*, the *setting* at fault, what and the fix."""

    id: str
    severity: Severity
    setting: str
    message: str
    fix: str
    #: True when the policy's ``handled_upstream`` covers it (severity is then ``info``).
    upstream: bool = False

    def as_dict(self) -> dict[str, object]:
        """Return the finding as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """A registered rule: id, the worst severity it reports, the kind of input it audits."""

    id: str
    severity: Severity
    kind: Literal["policy", "keyring", "store"]
    deploy_only: bool
    threat: str
    func: Callable[..., Iterable[Finding]]


#: Every rule by id, in id order.
CHECKS: dict[str, Check] = {}


def _rule(
    id: str,
    severity: Severity,
    *,
    kind: Literal["policy", "keyring", "store"] = "policy",
    deploy_only: bool = False,
) -> Callable[[Callable[..., Iterable[Finding]]], Callable[..., Iterable[Finding]]]:
    def register(func: Callable[..., Iterable[Finding]]) -> Callable[..., Iterable[Finding]]:
        assert id not in CHECKS, id
        threat = " ".join((func.__doc__ or "").partition("\n\n")[2].split())
        CHECKS[id] = Check(id, severity, kind, deploy_only, threat, func)
        return func

    return register


#: Keywords ``handled_upstream`` accepts besides finding ids, and the ids each covers.
UPSTREAM_KEYWORDS: dict[str, tuple[str, ...]] = {
    "allowed_hosts": ("SW001",),
    "https_redirect": ("SW002",),
    "hsts": ("SW003", "SW004", "SW005"),
    "csp": ("SW010", "SW011", "SW012", "SW013", "SW014", "SW015"),
    "frame_ancestors": ("SW015",),
    "manage_paths": ("SW050", "SW051"),
    "rate_limits": ("SW060",),
    "lockout": ("SW061",),
}
#: Keywords that say a proxy or CDN sits in front of the site (TLS ends there).
_PROXY_KEYWORDS = ("hsts", "https_redirect")


# -- policy rules ----------------------------------------------------------------------

_LOGIN_PATTERNS = (
    "login", "log-in", "log_in", "signin", "sign-in", "sign_in", "logon", "acl_users",
    "@@login", "login_form", "authenticate", "auth", "session", "sessions", "token",
)  # fmt: skip
_HSTS_MINIMUM = 15_552_000  # 180 days
_OPEN_NETWORKS = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def _networks(values: Iterable[str]) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    for value in values:
        yield ipaddress.ip_network(value, strict=False)


def _is_public(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return not (net.is_private or net.is_loopback or net.is_link_local)


def _csp_sources(p: Policy, directive: str) -> list[str] | None:
    """Return the sources that apply to *directive* (its own, else default-src), or None."""
    csp = p.csp or {}
    if directive in csp:
        return csp[directive]
    if directive.endswith("-src") and "default-src" in csp:
        return csp["default-src"]
    return None


@_rule("SW001", "high", deploy_only=True)
def _allowed_hosts(p: Policy) -> Iterator[Finding]:
    """Flag allowed hosts.

    Any Host accepted: password-reset links and cache keys built from a forged Host
    header (Host header poisoning).
    """
    if not p.allowed_hosts:
        yield Finding(
            "SW001", "high", "allowed_hosts", "allowed_hosts is empty: every request is refused "
            "or the check is bypassed by a misconfigured proxy",
            'list the site\'s host names: allowed_hosts = ["example.org"]',
        )  # fmt: skip
    elif "*" in p.allowed_hosts:
        yield Finding(
            "SW001", "high", "allowed_hosts", "allowed_hosts contains '*': any Host header is "
            "accepted (Host header poisoning of links and caches)",
            'list the site\'s host names instead: allowed_hosts = ["example.org", '
            '"*.example.org"]',
        )  # fmt: skip


@_rule("SW002", "high", deploy_only=True)
def _https_redirect(p: Policy) -> Iterator[Finding]:
    """Flag https redirect.

    Plain HTTP served: pages and cookies readable and changeable on the network.
    """
    if not p.https_redirect:
        yield Finding(
            "SW002", "high", "https_redirect", "plain HTTP is not redirected to HTTPS",
            "set https_redirect = true, or declare handled_upstream = [\"https_redirect\"] if "
            "your proxy or CDN redirects",
        )  # fmt: skip


@_rule("SW003", "high", deploy_only=True)
def _hsts_age(p: Policy) -> Iterator[Finding]:
    """Flag hsts age.

    No or short HSTS: the first request of each visit can be downgraded (SSL stripping).
    """
    if p.hsts_max_age == 0:
        yield Finding(
            "SW003", "high", "hsts_max_age", "HSTS is off (hsts_max_age = 0)",
            "set hsts_max_age = 31536000 (one year) or more, or declare "
            'handled_upstream = ["hsts"] if your proxy sends it',
        )  # fmt: skip
    elif p.hsts_max_age < _HSTS_MINIMUM:
        yield Finding(
            "SW003", "medium", "hsts_max_age",
            f"HSTS max-age {p.hsts_max_age} s is under six months (15552000 s)",
            "set hsts_max_age = 31536000 (one year) or more",
        )  # fmt: skip


@_rule("SW004", "low", deploy_only=True)
def _hsts_subdomains(p: Policy) -> Iterator[Finding]:
    """Flag hsts subdomains.

    HSTS without includeSubDomains: a plain-HTTP subdomain can set cookies for the site.
    """
    if p.hsts_max_age > 0 and not p.hsts_include_subdomains:
        yield Finding(
            "SW004", "low", "hsts_include_subdomains", "HSTS does not cover subdomains",
            "set hsts_include_subdomains = true once every subdomain serves HTTPS",
        )  # fmt: skip


@_rule("SW005", "medium", deploy_only=True)
def _hsts_preload(p: Policy) -> Iterator[Finding]:
    """Flag hsts preload.

    Preload asked for without the HTTP→HTTPS redirect the preload list requires.
    """
    if p.hsts_preload and not p.https_redirect:
        yield Finding(
            "SW005", "medium", "hsts_preload",
            "hsts_preload is set but plain HTTP is not redirected (hstspreload.org refuses it)",
            "set https_redirect = true, or declare handled_upstream = [\"https_redirect\"]",
        )  # fmt: skip


@_rule("SW006", "critical")
def _proxies_everywhere(p: Policy) -> Iterator[Finding]:
    """Flag proxies everywhere.

    Forwarded headers believed from anyone: every client picks its own address (defeats
    lockout, rate limits, bans and management networks) and its own scheme and host.
    """
    for net in _networks(p.trusted_proxies):
        if net in _OPEN_NETWORKS or net.prefixlen < (8 if net.version == 4 else 16):
            yield Finding(
                "SW006", "critical", "trusted_proxies",
                f"trusted_proxies includes {net}: X-Forwarded-For/-Proto/-Host are believed "
                "from (almost) everywhere",
                "list only your proxies' addresses (e.g. 10.0.0.5/32 or your CDN's published "
                "ranges)",
            )  # fmt: skip


@_rule("SW007", "medium")
def _proxies_public(p: Policy) -> Iterator[Finding]:
    """Flag proxies public.

    A public network trusted as a proxy: if no proxy of yours is there, any client in it
    can forge its address and scheme.
    """
    for net in _networks(p.trusted_proxies):
        if net in _OPEN_NETWORKS or net.prefixlen < (8 if net.version == 4 else 16):
            continue  # SW006
        if _is_public(net):
            yield Finding(
                "SW007", "medium", "trusted_proxies",
                f"trusted_proxies includes the public network {net}",
                "check that a proxy of yours (or your CDN) really sits there; remove it "
                "otherwise",
            )  # fmt: skip


@_rule("SW008", "medium", deploy_only=True)
def _proxy_untrusted(p: Policy) -> Iterator[Finding]:
    """Flag proxy untrusted.

    A proxy declared upstream but not trusted: every request seems to come from the
    proxy, so one client's lockout, rate limit or ban hits everyone.
    """
    if not p.trusted_proxies and any(k in p.handled_upstream for k in _PROXY_KEYWORDS):
        yield Finding(
            "SW008", "medium", "trusted_proxies",
            "handled_upstream says a proxy or CDN is in front, but trusted_proxies is empty",
            "list the proxy's addresses in trusted_proxies so client addresses are known",
        )  # fmt: skip


@_rule("SW010", "high")
def _csp_missing(p: Policy) -> Iterator[Finding]:
    """Flag csp missing.

    No Content-Security-Policy: an injected script runs unhindered (XSS).
    """
    if not p.csp:
        yield Finding(
            "SW010", "high", "csp", "no Content-Security-Policy is sent",
            "use a preset's csp (remove csp = false), or declare handled_upstream = [\"csp\"]",
        )  # fmt: skip


_UNSAFE_SCRIPT = ("'unsafe-inline'", "'unsafe-eval'", "*", "http:", "https:", "data:", "blob:")


@_rule("SW011", "high")
def _csp_unsafe_script(p: Policy) -> Iterator[Finding]:
    """Flag csp unsafe script.

    Unsafe script sources: 'unsafe-inline', 'unsafe-eval', wildcards or schemes let an
    injected script run, which is what CSP is there to stop.
    """
    if not p.csp:
        return
    sources = _csp_sources(p, "script-src")
    if sources is None:
        return
    nonce_or_hash = any(s.startswith(("'nonce-", "'sha")) for s in sources)
    dynamic = "'strict-dynamic'" in sources
    bad = [
        s
        for s in sources
        if s in _UNSAFE_SCRIPT
        and not (s == "'unsafe-inline'" and nonce_or_hash)  # ignored by CSP2+ browsers
        and not (s in ("https:", "http:", "*") and dynamic)  # ignored with strict-dynamic
    ]
    if bad:
        yield Finding(
            "SW011", "high", "csp", f"script sources allow {' '.join(bad)}",
            "remove them from script-src (and default-src); use nonces (csp_nonce) or "
            "hashes for inline scripts",
        )  # fmt: skip


@_rule("SW012", "low")
def _csp_unsafe_style(p: Policy) -> Iterator[Finding]:
    """Flag csp unsafe style.

    'unsafe-inline' styles: injected CSS can exfiltrate data (attribute selectors).
    """
    sources = _csp_sources(p, "style-src") if p.csp else None
    if sources and "'unsafe-inline'" in sources:
        yield Finding(
            "SW012", "low", "csp", "style sources allow 'unsafe-inline'",
            "move inline styles to files, or use nonces (csp_nonce) or hashes",
        )  # fmt: skip


def _missing(p: Policy, directive: str) -> bool:
    return bool(p.csp) and directive not in (p.csp or {})


@_rule("SW013", "medium")
def _csp_object_src(p: Policy) -> Iterator[Finding]:
    """Flag csp object src.

    No object-src 'none': plugins (<object>, <embed>) can run script-like content.
    """
    sources = _csp_sources(p, "object-src") if p.csp else None
    if p.csp and sources != ["'none'"]:
        yield Finding(
            "SW013", "medium", "csp",
            "object-src is missing" if sources is None else "object-src is not 'none'",
            "add object-src 'none' to csp",
        )  # fmt: skip


@_rule("SW014", "medium")
def _csp_base_uri(p: Policy) -> Iterator[Finding]:
    """Flag csp base uri.

    No base-uri: an injected <base> tag redirects every relative script to the attacker,
    bypassing nonces.
    """
    if _missing(p, "base-uri"):
        yield Finding(
            "SW014", "medium", "csp", "base-uri is missing (it does not fall back to default-src)",
            "add base-uri 'none' (or 'self') to csp",
        )  # fmt: skip


@_rule("SW015", "high")
def _csp_frame_ancestors(p: Policy) -> Iterator[Finding]:
    """Flag csp frame ancestors.

    No frame-ancestors: the site can be framed by another one (clickjacking).
    """
    if p.csp and "frame-ancestors" in p.csp:
        return
    if p.frame_options is None:
        yield Finding(
            "SW015", "high", "csp",
            "neither frame-ancestors nor X-Frame-Options: any site can frame these pages",
            "add frame-ancestors 'none' (or 'self') to csp",
        )  # fmt: skip
    elif p.csp:
        yield Finding(
            "SW015", "low", "csp",
            "frame-ancestors is missing (only the older X-Frame-Options protects)",
            "add frame-ancestors 'none' (or 'self') to csp",
        )  # fmt: skip


@_rule("SW020", "high", deploy_only=True)
def _session_secure(p: Policy) -> Iterator[Finding]:
    """Flag session secure.

    A session cookie without Secure is sent over plain HTTP and can be stolen there.
    """
    if not p.session_cookie_secure:
        yield Finding(
            "SW020", "high", "session_cookie_secure",
            "the session cookie is not Secure (and gets no __Host- prefix)",
            "set session_cookie_secure = true (false is for plain-HTTP development only)",
        )  # fmt: skip


@_rule("SW021", "medium")
def _harden_cookies(p: Policy) -> Iterator[Finding]:
    """Flag harden cookies.

    The app's own cookies left without HttpOnly/Secure/SameSite: readable by injected
    scripts, sent over HTTP and on cross-site requests.
    """
    if not p.harden_cookies:
        yield Finding(
            "SW021", "medium", "harden_cookies", "the app's cookies are not hardened",
            "set harden_cookies = true; list cookies scripts must read in "
            "harden_cookies_except",
        )  # fmt: skip


@_rule("SW022", "medium")
def _samesite_none(p: Policy) -> Iterator[Finding]:
    """Flag samesite none.

    SameSite=None: cookies go with every cross-site request (CSRF, cross-site leaks).
    """
    if p.session_samesite == "None":
        yield Finding(
            "SW022", "medium", "session_samesite", "the session cookie is SameSite=None",
            'set session_samesite = "Lax" (or "Strict")',
        )  # fmt: skip
    if p.cookie_samesite == "None":
        yield Finding(
            "SW022", "low", "cookie_samesite", "the app's cookies are given SameSite=None",
            'set cookie_samesite = "Lax"',
        )  # fmt: skip


@_rule("SW023", "low")
def _cookie_prefix(p: Policy) -> Iterator[Finding]:
    """Flag cookie prefix.

    A session cookie without the __Host- prefix can be overwritten by a subdomain or a
    plain-HTTP response (cookie tossing, session fixation).
    """
    name = p.session_cookie_name
    if p.session_cookie_secure and not name.startswith("__Host-"):
        yield Finding(
            "SW023", "low", "session_cookie", f"the session cookie {name!r} has no __Host- "
            "prefix", "give session_cookie a name without a '__' prefix (sitewarden adds "
            "__Host-) or start it with __Host-",
        )  # fmt: skip


@_rule("SW030", "medium")
def _cors_wildcard(p: Policy) -> Iterator[Finding]:
    """Flag cors wildcard.

    CORS '*': any site's scripts read the responses (fine only for public data).
    """
    if "*" in p.cors_origins:
        yield Finding(
            "SW030", "medium", "cors_origins",
            "cors_origins contains '*': every site can read these responses",
            "list the origins that need access, or limit cors_paths to public resources",
        )  # fmt: skip


@_rule("SW031", "high")
def _cors_credentials(p: Policy) -> Iterator[Finding]:
    """Flag cors credentials.

    CORS with credentials and wildcard or plain-HTTP origins: a site on any subdomain,
    or anyone on the network, reads signed-in users' data.
    """
    if not p.cors_allow_credentials:
        return
    bad = [o for o in p.cors_origins if "*" in o or o.startswith("http://")]
    if bad:
        yield Finding(
            "SW031", "high", "cors_allow_credentials",
            f"credentials are allowed for wildcard or plain-HTTP origins: {' '.join(bad)}",
            "list exact https:// origins when cors_allow_credentials is true",
        )  # fmt: skip


@_rule("SW032", "medium")
def _cors_http(p: Policy) -> Iterator[Finding]:
    """Flag cors http.

    A plain-HTTP CORS origin: anyone on the network can act as that origin.
    """
    bad = [o for o in p.cors_origins if o.startswith("http://")]
    if bad and not p.cors_allow_credentials:
        yield Finding(
            "SW032", "medium", "cors_origins", f"plain-HTTP CORS origins: {' '.join(bad)}",
            "use https:// origins",
        )  # fmt: skip


@_rule("SW040", "critical")
def _csrf_mode(p: Policy) -> Iterator[Finding]:
    """Flag csrf mode.

    CSRF protection off or only logging: other sites can post forms as the user.
    """
    if p.csrf == "off":
        yield Finding(
            "SW040", "critical", "csrf", "CSRF protection is off",
            'set csrf = "enforce"; exempt webhooks with csrf_exempt_paths',
        )  # fmt: skip
    elif p.csrf == "log-only":
        yield Finding(
            "SW040", "high", "csrf", "CSRF protection only logs (rollout mode)",
            'set csrf = "enforce" once the log shows no false refusals',
        )  # fmt: skip


@_rule("SW041", "high")
def _csrf_http_origins(p: Policy) -> Iterator[Finding]:
    """Flag csrf http origins.

    A plain-HTTP trusted origin: anyone on the network can forge requests from it.
    """
    bad = [o for o in p.csrf_trusted_origins if o.startswith("http://")]
    if bad:
        yield Finding(
            "SW041", "high", "csrf_trusted_origins",
            f"plain-HTTP trusted origins: {' '.join(bad)}", "use https:// origins",
        )  # fmt: skip


@_rule("SW050", "high")
def _manage_open(p: Policy) -> Iterator[Finding]:
    """Flag manage open.

    Management screens reachable from anywhere: one stolen or guessed password away.
    """
    if not p.manage_paths:
        return
    for net in _networks(p.manage_networks):
        if net in _OPEN_NETWORKS:
            yield Finding(
                "SW050", "high", "manage_networks",
                f"management paths are served to every address ({net})",
                "limit manage_networks to your office or VPN, and use manage_hosts",
            )  # fmt: skip


@_rule("SW051", "medium")
def _manage_public(p: Policy) -> Iterator[Finding]:
    """Flag manage public.

    Management screens served to a public network larger than one office.
    """
    if not p.manage_paths:
        return
    for net in _networks(p.manage_networks):
        if net not in _OPEN_NETWORKS and _is_public(net) and net.num_addresses > 256:
            yield Finding(
                "SW051", "medium", "manage_networks",
                f"management paths are served to the public network {net}",
                "narrow manage_networks to the addresses that administer the site",
            )  # fmt: skip


def _is_login_route(route: str) -> bool:
    path = route.split()[-1].lower()
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        for pattern in _LOGIN_PATTERNS:
            if segment == pattern or fnmatch.fnmatchcase(segment, pattern):
                return True
            if segment.startswith(("login", "signin", "sign-in", "logon", "@@login")):
                return True
    return path in ("/*", "/")


@_rule("SW060", "medium", deploy_only=True)
def _login_rate_limit(p: Policy) -> Iterator[Finding]:
    """Flag login rate limit.

    No rate limit on sign-in: passwords can be guessed or sprayed at full speed.
    """
    if not any(_is_login_route(route) for route in p.rate_limits):
        yield Finding(
            "SW060", "medium", "rate_limits",
            "no rate limit covers a sign-in path (/login, /signin, /acl_users, @@login…)",
            'add rate_limits = {"POST /login" = "10/minute"}; the policy cannot see whether '
            "the login view calls warden.lockout — make sure it does (docs/lockout.md)",
        )  # fmt: skip


@_rule("SW061", "low")
def _lockout_weak(p: Policy) -> Iterator[Finding]:
    """Flag lockout weak.

    A lockout threshold so high that online guessing goes on for long.
    """
    if p.lockout_threshold > 10 or p.lockout_address_threshold > 100:
        yield Finding(
            "SW061", "low", "lockout_threshold",
            f"lockout after {p.lockout_threshold} failures per account and "
            f"{p.lockout_address_threshold} per address is lenient",
            "keep lockout_threshold ≤ 10 and lockout_address_threshold ≤ 100",
        )  # fmt: skip


@_rule("SW070", "medium")
def _password_length(p: Policy) -> Iterator[Finding]:
    """Flag password length.

    Short passwords without a second factor fall to online and offline guessing.
    """
    if p.password_min_length < 15:
        yield Finding(
            "SW070", "medium", "password_min_length",
            f"password_min_length {p.password_min_length} is below 15, the NIST/OWASP "
            "minimum without two-factor sign-in",
            "set password_min_length = 15 (password_min_length_2fa can stay at 8)",
        )  # fmt: skip


@_rule("SW071", "low")
def _password_strength(p: Policy) -> Iterator[Finding]:
    """Flag password strength.

    No strength estimate: long but predictable passwords ("aaaaaaaaaaaaaaa") pass.
    """
    if p.password_min_score < 2:
        yield Finding(
            "SW071", "low", "password_min_score",
            f"password_min_score {p.password_min_score} accepts predictable passwords",
            "set password_min_score = 3",
        )  # fmt: skip


@_rule("SW080", "medium")
def _store_failure_open(p: Policy) -> Iterator[Finding]:
    """Flag store failure open.

    Failing open: while the store is down, lockout, rate limits, bans and sessions' "log
    out everywhere" stop working — an attacker who can overload the store turns them
    off.
    """
    if p.on_store_failure == "open":
        yield Finding(
            "SW080", "medium", "on_store_failure", "protections are skipped while the store "
            "is unreachable", 'set on_store_failure = "closed"',
        )  # fmt: skip


@_rule("SW081", "low")
def _headers_off(p: Policy) -> Iterator[Finding]:
    """Flag headers off.

    Debug-style header settings: MIME sniffing allowed, server software advertised.
    """
    if not p.x_content_type_options:
        yield Finding(
            "SW081", "low", "x_content_type_options", "X-Content-Type-Options is off",
            "set x_content_type_options = true",
        )  # fmt: skip
    if not p.remove_headers:
        yield Finding(
            "SW081", "low", "remove_headers",
            "no fingerprint header (Server, X-Powered-By…) is removed",
            "remove the remove_headers setting to use the OWASP list",
        )  # fmt: skip


@_rule("SW082", "low")
def _session_long(p: Policy) -> Iterator[Finding]:
    """Flag session long.

    Long sessions: a stolen or forgotten session stays usable for long.
    """
    if p.session_idle_timeout > 4 * 3600 or p.session_absolute_timeout > 24 * 3600:
        yield Finding(
            "SW082", "low", "session_idle_timeout",
            f"sessions last {p.session_idle_timeout} s idle and "
            f"{p.session_absolute_timeout} s in all",
            "keep session_idle_timeout ≤ 4 hours and session_absolute_timeout ≤ 24 hours",
        )  # fmt: skip


def _upstream(finding: Finding, handled: tuple[str, ...]) -> Finding:
    covered = finding.id in handled or any(
        finding.id in UPSTREAM_KEYWORDS.get(word, ()) for word in handled
    )
    if not covered:
        return finding
    return dataclasses.replace(
        finding, severity="info", message=f"{finding.message} ({UPSTREAM_NOTE})", upstream=True
    )


def audit_policy(policy: Policy, *, deploy: bool = True) -> list[Finding]:
    """Return the findings of every policy rule (deploy-only ones only with *deploy*)."""
    findings: list[Finding] = []
    for check in CHECKS.values():
        if check.kind != "policy" or (check.deploy_only and not deploy):
            continue
        findings.extend(_upstream(f, policy.handled_upstream) for f in check.func(policy))
    return findings


# -- keyring rules ---------------------------------------------------------------------


def _weak(secret: bytes) -> bool:
    return len(secret) < SECRET_BYTES or len(set(secret)) < 8


@_rule("SW090", "high", kind="keyring")
def _weak_secrets(rings: Mapping[str, Keyring]) -> Iterator[Finding]:
    """Flag weak secrets.

    A short or low-entropy secret can be guessed, and with it tickets and tokens forged.
    """
    for name, ring in rings.items():
        for secret in ring.secrets:
            if _weak(secret):
                yield Finding(
                    "SW090", "high", f"keyring:{name}",
                    f"ring {name!r} holds a weak secret ({fingerprint(secret)}): shorter than "
                    f"{SECRET_BYTES} bytes or little entropy",
                    f"sitewarden keyring rotate --ring {name} --reset (signs its users out)",
                )  # fmt: skip


@_rule("SW091", "high", kind="keyring")
def _reused_secrets(rings: Mapping[str, Keyring]) -> Iterator[Finding]:
    """Flag reused secrets.

    The same secret in two rings (or twice in one): a value signed for one purpose is
    accepted for another (a form token as a session ticket).
    """
    seen: dict[bytes, list[str]] = {}
    for name, ring in rings.items():
        for secret in ring.secrets:
            seen.setdefault(secret, []).append(name)
    for secret, names in seen.items():
        if len(names) > 1:
            where = ", ".join(sorted(set(names)))
            yield Finding(
                "SW091", "high", f"keyring:{names[0]}",
                f"secret {fingerprint(secret)} is reused in {len(names)} places ({where})",
                f"sitewarden keyring rotate --ring {names[-1]} --reset for all but one ring",
            )  # fmt: skip


@_rule("SW092", "medium", kind="keyring")
def _stale_rings(
    rings: Mapping[str, Keyring], now: float, rotate_after: Mapping[str, float | None]
) -> Iterator[Finding]:
    """Flag stale rings.

    A ring never rotated, or not for twice its interval: a leaked secret stays valid.
    """
    for name, ring in rings.items():
        interval = rotate_after.get(name)
        if interval is None:
            continue  # never rotated automatically (totp, user rings)
        if not ring.last_rotation:
            yield Finding(
                "SW092", "medium", f"keyring:{name}", f"ring {name!r} was never rotated",
                f"sitewarden keyring rotate --ring {name}",
            )  # fmt: skip
        elif now - ring.last_rotation > 2 * interval:
            days = (now - ring.last_rotation) / 86400
            yield Finding(
                "SW092", "medium", f"keyring:{name}",
                f"ring {name!r} was last rotated {days:.1f} days ago (interval "
                f"{interval / 86400:g} days): rotation is not happening",
                f"sitewarden keyring rotate --ring {name}; check that the site runs and uses "
                "this store",
            )  # fmt: skip


def audit_keyring(
    keys: Mapping[str, Keyring],
    *,
    now: float | None = None,
    rotate_after: Mapping[str, float | None] | None = None,
) -> list[Finding]:
    """Return weak, reused and stale-ring findings for *keys* (ring name → ring).

    *rotate_after* (default :data:`~sitewarden.keyring.DEFAULT_ROTATE_AFTER`) gives each
    ring's interval. Findings name secrets by fingerprint only.
    """
    now = time.time() if now is None else now
    intervals = dict(DEFAULT_ROTATE_AFTER if rotate_after is None else rotate_after)
    return [
        *_weak_secrets(keys),
        *_reused_secrets(keys),
        *_stale_rings(keys, now, intervals),
    ]


# -- store rules -----------------------------------------------------------------------


@_rule("SW100", "high", kind="store")
def _sqlite_readable(path: str) -> Iterator[Finding]:
    """Flag sqlite readable.

    An SQLite store others can read: every secret of the keyring, hence forged sessions
    and CSRF tokens for every user.
    """
    targets = [(p, "file") for p in (path, path + "-wal", path + "-shm") if os.path.exists(p)]
    for target, what in (*targets, (os.path.dirname(path) or ".", "directory")):
        try:
            mode = os.stat(target).st_mode
        except OSError:
            continue
        if what == "file" and mode & (stat.S_IROTH | stat.S_IWOTH):
            severity: Severity = "high"
        elif what == "file" and mode & (stat.S_IRGRP | stat.S_IWGRP):
            severity = "medium"
        elif what == "directory" and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            severity = "high"  # anyone can replace the file
        else:
            continue
        yield Finding(
            "SW100", severity, "store",
            f"the store {what} {target} is {stat.filemode(mode)}: other accounts can read "
            "or replace the keyring",
            f"chmod {'600' if what == 'file' else '700'} {target} (owned by the site's user)",
        )  # fmt: skip


_LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


@_rule("SW101", "high", kind="store")
def _redis_password(url: str) -> Iterator[Finding]:
    """Flag redis password.

    A Redis store without a password on the network: anyone who reaches it reads the
    secrets and writes sessions, bans and locks.
    """
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK and not parts.password and "password=" not in parts.query:
        yield Finding(
            "SW101", "high", "store", f"Redis on {parts.hostname} is used without a password",
            "set requirepass (or an ACL user) and put it in the URL: "
            "rediss://:PASSWORD@host:6380/0",
        )  # fmt: skip


@_rule("SW102", "medium", kind="store")
def _redis_tls(url: str) -> Iterator[Finding]:
    """Flag redis tls.

    Redis without TLS on the network: secrets and session data cross it in clear.
    """
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK and parts.scheme.lower() == "redis":
        yield Finding(
            "SW102", "medium", "store", f"Redis on {parts.hostname} is reached without TLS",
            "use rediss:// with TLS on the server, or keep Redis on a private link",
        )  # fmt: skip


@_rule("SW103", "medium", kind="store", deploy_only=True)
def _memory_store(url: str) -> Iterator[Finding]:
    """Flag memory store.

    A memory store in production: secrets change at each restart (everyone signed out)
    and no state is shared between processes (limits per process only).
    """
    if url.lower().startswith("memory:"):
        yield Finding(
            "SW103", "medium", "store", "the store is memory://: nothing survives a restart "
            "or is shared between processes", "use sqlite:///… or redis://…",
        )  # fmt: skip


def audit_store(url: str, *, deploy: bool = True) -> list[Finding]:
    """Return findings for the store at *url*: file permissions (SQLite), Redis access."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from sitewarden.store import sqlite_path_from_url

        return list(_sqlite_readable(sqlite_path_from_url(url)))
    if scheme in ("redis", "rediss"):
        return [*_redis_password(url), *_redis_tls(url)]
    if scheme == "memory" and deploy:
        return list(_memory_store(url))
    return []


# -- helpers ---------------------------------------------------------------------------


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Count findings per severity (every severity present, most severe first)."""
    result: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for finding in findings:
        result[finding.severity] += 1
    return result


def at_or_above(findings: Iterable[Finding], level: str) -> list[Finding]:
    """Return the findings at *level* or more severe."""
    return [f for f in findings if _RANK[f.severity] <= _RANK[level]]


#: Ids of the rules skipped without ``--deploy`` (they only matter in production).
DEPLOY_ONLY: tuple[str, ...] = tuple(c.id for c in CHECKS.values() if c.deploy_only)
CHECKS = dict(sorted(CHECKS.items()))
