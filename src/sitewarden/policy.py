"""The policy: every setting of the web layer, its presets, TOML loading and validation.

One :class:`Policy` configures everything. It is built from a preset (``basic``,
``balanced`` — the default — or ``strict``) and overrides given as keywords or in a
``sitewarden.toml`` file, and is validated completely at start-up: a wrong setting stops
start-up with a :class:`~sitewarden.errors.ConfigError` that names it. ``sitewarden check``
(:mod:`sitewarden.audit`) audits the same object.

The presets are documented header by header in ``docs/presets.md``; the values below are
the single source of truth.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from sitewarden.errors import ConfigError

__all__ = [
    "ARGON2_OWASP_MINIMUMS",
    "CSP",
    "FINGERPRINT_HEADERS",
    "PRESETS",
    "Policy",
    "load_policy",
    "parse_rate",
]

#: A Content-Security-Policy as directive → sources (``[]`` for a directive without value).
CSP = dict[str, list[str]]

#: Response headers that reveal the server software (the OWASP Secure Headers Project's
#: removal list, the common part); removed from every response.
FINGERPRINT_HEADERS: tuple[str, ...] = (
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-php-version",
    "x-redirect-by",
    "x-runtime",
    "x-version",
    "x-backend-server",
    "x-server",
    "x-drupal-cache",
    "x-drupal-dynamic-cache",
    "x-varnish",
    "x-served-by",
    "x-powered-cms",
    "x-turbo-charged-by",
    "x-nextjs-cache",
    "x-envoy-upstream-service-time",
    "x-kong-upstream-latency",
    "x-kong-proxy-latency",
    "x-sourcemap",
    "sourcemap",
    "liferay-portal",
    "x-atmosphere-first-request",
    "x-pingback",
    "via",
)

#: Plone's management screens: ``manage`` and ``manage_*`` as any path segment.
DEFAULT_MANAGE_PATHS: tuple[str, ...] = ("manage", "manage_*")

_PERMISSIONS_POLICY_OFF = (
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "encrypted-media",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "usb",
    "xr-spatial-tracking",
    "browsing-topics",
)


def _csp(text: str, setting: str = "csp") -> CSP:
    """Parse ``"directive src src; directive2 …"``; a repeated directive is an error.

    Browsers obey the first of two repeated directives, so silently keeping either one
    would send a policy other than the one written.
    """
    policy: CSP = {}
    for part in text.split(";"):
        words = part.split()
        if not words:
            continue
        name = words[0].lower()
        if name in policy:
            raise ConfigError(f"{setting}: directive {name!r} is given twice")
        policy[name] = words[1:]
    return policy


#: The presets: each maps every setting it fixes to its value. ``balanced`` is the default.
PRESETS: dict[str, dict[str, Any]] = {
    "basic": {
        "hsts_max_age": 15_552_000,  # 180 days: the Observatory's "at least six months"
        "hsts_include_subdomains": False,
        "csp": _csp(
            "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
            "frame-ancestors 'self'"
        ),
        "frame_options": "SAMEORIGIN",
        "referrer_policy": "strict-origin-when-cross-origin",
        "permissions_policy": {"browsing-topics": []},
        "cross_origin_opener_policy": "same-origin-allow-popups",
        "cross_origin_resource_policy": "same-site",
        "session_samesite": "Lax",
        "session_idle_timeout": 3600,
        "session_absolute_timeout": 12 * 3600,
    },
    "balanced": {
        "hsts_max_age": 31_536_000,  # one year
        "hsts_include_subdomains": True,
        "csp": _csp(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
        ),
        "frame_options": "SAMEORIGIN",
        "referrer_policy": "strict-origin-when-cross-origin",
        "permissions_policy": {name: [] for name in _PERMISSIONS_POLICY_OFF},
        "cross_origin_opener_policy": "same-origin",
        "cross_origin_resource_policy": "same-origin",
        "session_samesite": "Lax",
        "session_idle_timeout": 1800,
        "session_absolute_timeout": 8 * 3600,
    },
    "strict": {
        "hsts_max_age": 63_072_000,  # two years
        "hsts_include_subdomains": True,
        "csp": _csp(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "font-src 'self'; connect-src 'self'; manifest-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        "frame_options": "DENY",
        "referrer_policy": "no-referrer",
        "permissions_policy": {name: [] for name in _PERMISSIONS_POLICY_OFF},
        "cross_origin_opener_policy": "same-origin",
        "cross_origin_resource_policy": "same-origin",
        "session_samesite": "Strict",
        "session_idle_timeout": 900,
        "session_absolute_timeout": 4 * 3600,
    },
}

_FRAME_OPTIONS = ("DENY", "SAMEORIGIN")
_REFERRER_POLICIES = (
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
)
_COOP = ("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")
_CORP = ("same-origin", "same-site", "cross-origin")
_COEP = ("require-corp", "credentialless", "unsafe-none")
_SAMESITE = ("Strict", "Lax", "None")
_CSRF_MODES = ("enforce", "log-only", "off")
_STORE_FAILURE = ("closed", "open")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token (header/cookie names)
_CSP_DIRECTIVE = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """Every setting of the web layer, validated. Build it with :func:`load_policy`.

    Each field is documented in ``docs/settings.md``; the preset decides the values of the
    header and session fields that are not given.
    """

    preset: Literal["basic", "balanced", "strict"] = "balanced"
    store: str | None = None

    # -- hosts, proxies, HTTPS ---------------------------------------------------------
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    trusted_proxies: tuple[str, ...] = ()
    https_redirect: bool = True
    https_port: int | None = None

    # -- headers -----------------------------------------------------------------------
    hsts_max_age: int = 31_536_000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False
    csp: CSP | None = None
    csp_report_only: CSP | None = None
    csp_nonce: bool = True
    csp_report_path: str | None = "/.sitewarden/csp-report"
    csp_report_max_bytes: int = 16_384
    csp_report_rate: int = 60  # reports per client address per minute
    frame_options: str | None = "SAMEORIGIN"
    referrer_policy: str | None = "strict-origin-when-cross-origin"
    permissions_policy: dict[str, list[str]] | None = None
    cross_origin_opener_policy: str | None = "same-origin"
    cross_origin_resource_policy: str | None = "same-origin"
    cross_origin_embedder_policy: str | None = None
    x_content_type_options: bool = True
    x_permitted_cross_domain_policies: str | None = "none"
    remove_headers: tuple[str, ...] = FINGERPRINT_HEADERS
    no_store_when_signed_in: bool = True
    clear_site_data_on_logout: bool = True
    harden_cookies: bool = True
    harden_cookies_except: tuple[str, ...] = ()  # cookie names scripts must read
    cookie_samesite: str = "Lax"

    # -- management paths --------------------------------------------------------------
    manage_paths: tuple[str, ...] = DEFAULT_MANAGE_PATHS
    manage_hosts: tuple[str, ...] = ()
    manage_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    # -- sessions ----------------------------------------------------------------------
    session_cookie: str = "sw_session"
    session_cookie_secure: bool = True
    session_samesite: str = "Lax"
    session_idle_timeout: int = 1800
    session_absolute_timeout: int = 8 * 3600
    session_refresh_after: int | None = None  # default: a quarter of the idle timeout
    session_revocation_ttl: float | None = None  # default: 0 on Redis (at once), else 1 s

    # -- CSRF --------------------------------------------------------------------------
    csrf: str = "enforce"
    csrf_trusted_origins: tuple[str, ...] = ()
    csrf_exempt_paths: tuple[str, ...] = ()
    csrf_field: str = "_authenticator"
    csrf_header: str = "X-CSRF-Token"

    # -- CORS --------------------------------------------------------------------------
    cors_origins: tuple[str, ...] = ()
    cors_allow_credentials: bool = False
    cors_allow_methods: tuple[str, ...] = ("GET", "HEAD", "POST")
    cors_allow_headers: tuple[str, ...] = ()
    cors_expose_headers: tuple[str, ...] = ()
    cors_max_age: int = 600
    cors_paths: tuple[str, ...] = ("/*",)

    # -- login lockout -----------------------------------------------------------------
    lockout_threshold: int = 5  # failures per account within the window
    lockout_address_threshold: int = 20  # failures per client address within the window
    lockout_window: int = 900
    lockout_duration: int = 300  # the first lock; each further lock doubles it
    lockout_max_duration: int = 86_400
    lockout_extend_on_attempt: bool = False
    lockout_allow_networks: tuple[str, ...] = ()

    # -- rate limits and bans ----------------------------------------------------------
    rate_limits: dict[str, str] = dataclasses.field(default_factory=dict)
    rate_limit_ipv6_prefix: int = 64
    rate_limit_headers: bool = True
    ban_after: int = 5  # rate-limit breaches within ban_window before a ban
    ban_window: int = 600
    ban_duration: int = 600  # the first ban; each further ban doubles it
    ban_max_duration: int = 7 * 86_400
    block_networks: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()

    # -- passwords ---------------------------------------------------------------------
    password_min_length: int = 15  # NIST/OWASP: 15 without a second factor
    password_min_length_2fa: int = 8  # 8 with one
    password_max_length: int = 128
    password_min_score: int = 3  # zxcvbn-style strength 0 to 4; 0 turns the estimate off
    password_rules: dict[str, str] = dataclasses.field(default_factory=dict)
    password_breach_check: bool = False
    password_breach_url: str = "https://api.pwnedpasswords.com/range/"  # noqa: S105 (a URL)
    argon2_memory_kib: int = 19_456
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1

    # -- two-factor (TOTP) -------------------------------------------------------------
    totp_issuer: str = "sitewarden"
    totp_digits: int = 6
    totp_period: int = 30
    totp_window: int = 1
    totp_max_attempts: int = 5
    totp_attempt_window: int = 300

    # -- security events ---------------------------------------------------------------
    events_keep: int = 1000  # recent events kept in the store for `sitewarden events`
    metrics_path: str | None = None  # Prometheus text served to manage_networks only

    # -- store failures ----------------------------------------------------------------
    on_store_failure: str = "closed"

    # -- deploy audit (`sitewarden check`) ---------------------------------------------
    handled_upstream: tuple[str, ...] = ()  # finding ids or keywords a proxy/CDN handles

    def __post_init__(self) -> None:
        """Validate every field; raise :class:`ConfigError` naming the first bad one."""
        _validate(self)

    @property
    def session_cookie_name(self) -> str:
        """The session cookie's name: ``__Host-`` prefixed whenever it is Secure."""
        if self.session_cookie_secure and not self.session_cookie.startswith("__"):
            return "__Host-" + self.session_cookie
        return self.session_cookie

    @property
    def refresh_after(self) -> int:
        """Seconds after which a session ticket is re-issued on the next request."""
        if self.session_refresh_after is not None:
            return self.session_refresh_after
        return max(1, self.session_idle_timeout // 4)


#: Settings whose ``None`` means "send no such header" (spelled ``false``/``"off"`` in TOML).
_OPTIONAL = frozenset(
    (
        "csp", "csp_report_only", "csp_report_path", "frame_options", "referrer_policy",
        "permissions_policy", "cross_origin_opener_policy", "cross_origin_resource_policy",
        "cross_origin_embedder_policy", "x_permitted_cross_domain_policies", "metrics_path",
    )
)  # fmt: skip
_SAFE_TEXT = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces: nothing to inject

_TUPLE_FIELDS = {f.name for f in dataclasses.fields(Policy) if str(f.type).startswith("tuple[")}
_FIELD_NAMES = {f.name for f in dataclasses.fields(Policy)}


def load_policy(
    preset: str = "balanced", file: str | Path | None = None, **settings: Any
) -> Policy:
    """Build a :class:`Policy` from *preset*, then *file* (TOML), then keyword *settings*.

    Later sources win. Unknown settings and wrong values raise :class:`ConfigError` naming
    the setting (and the file).
    """
    merged: dict[str, Any] = {}
    source = "keyword"
    if file is not None:
        path = Path(file)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the settings file ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
        table = data.get("sitewarden", data)
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [sitewarden] must be a table")
        preset = table.pop("preset", preset)
        for name in table:
            if name not in _FIELD_NAMES:
                raise ConfigError(f"{path}: unknown setting {name!r}{_suggest(name)}")
        merged.update(table)
        source = str(path)
    preset = settings.pop("preset", preset)
    for name in settings:
        if name not in _FIELD_NAMES:
            raise ConfigError(f"unknown setting {name!r}{_suggest(name)}")
    merged.update(settings)
    if preset not in PRESETS:
        raise ConfigError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    values: dict[str, Any] = {**PRESETS[preset], **merged, "preset": preset}
    for name in list(values):
        value = values[name]
        if name in _TUPLE_FIELDS:
            if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
                raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
            values[name] = tuple(value)
        elif name in _OPTIONAL and (value is False or value == "off"):
            values[name] = None  # TOML has no null: `false` or "off" turns a header off
        elif name in ("csp", "csp_report_only") and isinstance(value, str):
            values[name] = _csp(value, name)
    try:
        return Policy(**values)
    except ConfigError as exc:
        if source != "keyword":
            raise ConfigError(f"{source}: {exc}") from None
        raise


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(_FIELD_NAMES), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- validation ------------------------------------------------------------------------


def _fail(name: str, message: str) -> ConfigError:
    return ConfigError(f"{name}: {message}")


def _check_type(policy: Policy, name: str, kinds: type | tuple[type, ...]) -> None:
    value = getattr(policy, name)
    bad_bool = isinstance(value, bool) and bool not in (
        kinds if isinstance(kinds, tuple) else (kinds,)
    )
    if not isinstance(value, kinds) or bad_bool:
        raise _fail(name, f"expected {_kind_name(kinds)}, got {value!r}")


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = [k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,))]
    return " or ".join("nothing (None)" if n == "NoneType" else n for n in names)


def _check_choice(policy: Policy, name: str, choices: tuple[str, ...], optional: bool) -> None:
    value = getattr(policy, name)
    if value is None and optional:
        return
    if value not in choices:
        allowed = ", ".join(choices) + (", or None to send none" if optional else "")
        raise _fail(name, f"expected one of {allowed}; got {value!r}")


def _check_strings(policy: Policy, name: str) -> None:
    for item in getattr(policy, name):
        if not isinstance(item, str) or not item:
            raise _fail(name, f"expected non-empty strings, got {item!r}")


def _check_networks(policy: Policy, name: str) -> None:
    for item in getattr(policy, name):
        try:
            ipaddress.ip_network(item, strict=False)
        except (ValueError, TypeError):
            raise _fail(name, f"{item!r} is not an IP network (CIDR such as 10.0.0.0/8)") from None


def _check_csp(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not value:
        raise _fail(name, "expected a table of directive = [sources], or None")
    for directive, sources in value.items():
        if not isinstance(directive, str) or not _CSP_DIRECTIVE.match(directive):
            raise _fail(name, f"invalid directive name {directive!r}")
        if not isinstance(sources, list | tuple) or not all(
            isinstance(s, str) and _SAFE_TEXT.match(s) and not any(c in s for c in ";,")
            for s in sources
        ):
            raise _fail(
                name, f"{directive}: sources must be printable ASCII without spaces, ';' or ','"
            )
        for source in sources:
            bare = source.strip("'")
            if bare in (
                "self",
                "none",
                "unsafe-inline",
                "unsafe-eval",
                "strict-dynamic",
                "unsafe-hashes",
                "report-sample",
                "wasm-unsafe-eval",
            ) and not (source.startswith("'") and source.endswith("'")):
                raise _fail(name, f"{directive}: the keyword {bare} must be quoted: '{bare}'")


def _validate(p: Policy) -> None:
    _check_choice(p, "preset", tuple(PRESETS), optional=False)
    if p.store is not None and not isinstance(p.store, str):
        raise _fail("store", f"expected a store URL, got {p.store!r}")
    for name in _TUPLE_FIELDS:
        if not isinstance(getattr(p, name), tuple):
            raise _fail(name, "expected a list of strings")
        _check_strings(p, name)
    for host in p.allowed_hosts:
        if host != "*" and (not re.match(r"^(\*\.)?[A-Za-z0-9.:\[\]-]+$", host) or ".." in host):
            raise _fail("allowed_hosts", f"{host!r} is not a host name or '*.domain' pattern")
    _check_networks(p, "trusted_proxies")
    _check_networks(p, "manage_networks")
    for name in (
        "https_redirect",
        "hsts_include_subdomains",
        "hsts_preload",
        "csp_nonce",
        "x_content_type_options",
        "no_store_when_signed_in",
        "clear_site_data_on_logout",
        "harden_cookies",
        "session_cookie_secure",
        "cors_allow_credentials",
    ):
        _check_type(p, name, bool)
    for name in (
        "hsts_max_age",
        "csp_report_max_bytes",
        "csp_report_rate",
        "session_idle_timeout",
        "session_absolute_timeout",
        "cors_max_age",
    ):
        _check_type(p, name, int)
        if getattr(p, name) < 0:
            raise _fail(name, "must not be negative")
    if p.https_port is not None and (
        isinstance(p.https_port, bool)
        or not isinstance(p.https_port, int)
        or not 0 < p.https_port < 65536
    ):
        raise _fail("https_port", f"expected a port number, got {p.https_port!r}")
    if p.hsts_preload and (p.hsts_max_age < 31_536_000 or not p.hsts_include_subdomains):
        raise _fail(
            "hsts_preload",
            "the preload list requires hsts_max_age ≥ 31536000 and hsts_include_subdomains",
        )
    _check_csp("csp", p.csp)
    _check_csp("csp_report_only", p.csp_report_only)
    if p.csp_report_path is not None and (
        not isinstance(p.csp_report_path, str)
        or not re.match(r"^/[A-Za-z0-9._~/-]*$", p.csp_report_path)
    ):
        raise _fail(
            "csp_report_path", "expected a path of letters, digits and ._~-/ starting with '/'"
        )
    _check_choice(p, "frame_options", _FRAME_OPTIONS, optional=True)
    _check_choice(p, "referrer_policy", _REFERRER_POLICIES, optional=True)
    _check_choice(p, "cross_origin_opener_policy", _COOP, optional=True)
    _check_choice(p, "cross_origin_resource_policy", _CORP, optional=True)
    _check_choice(p, "cross_origin_embedder_policy", _COEP, optional=True)
    _check_choice(
        p,
        "x_permitted_cross_domain_policies",
        ("none", "master-only", "by-content-type", "all"),
        optional=True,
    )
    if p.permissions_policy is not None:
        if not isinstance(p.permissions_policy, dict):
            raise _fail("permissions_policy", "expected a table of feature = [origins]")
        for feature, allow in p.permissions_policy.items():
            if not isinstance(feature, str) or not _CSP_DIRECTIVE.match(feature):
                raise _fail("permissions_policy", f"invalid feature name {feature!r}")
            if not isinstance(allow, list | tuple) or not all(
                isinstance(a, str) and _SAFE_TEXT.match(a) and not any(c in a for c in '";,()')
                for a in allow
            ):
                raise _fail(
                    "permissions_policy",
                    f"{feature}: expected a list of origins (self, *, or https://host)",
                )
    for name in ("remove_headers",):
        for header in getattr(p, name):
            if not _TOKEN.match(header):
                raise _fail(name, f"{header!r} is not a header name")
    _check_choice(p, "cookie_samesite", _SAMESITE, optional=False)
    _check_choice(p, "session_samesite", _SAMESITE, optional=False)
    if not isinstance(p.session_cookie, str) or not _TOKEN.match(p.session_cookie):
        raise _fail("session_cookie", f"{p.session_cookie!r} is not a valid cookie name")
    if p.session_samesite == "None" and not p.session_cookie_secure:
        raise _fail("session_samesite", "SameSite=None needs session_cookie_secure = true")
    if p.session_idle_timeout == 0 or p.session_absolute_timeout == 0:
        raise _fail(
            "session_idle_timeout" if p.session_idle_timeout == 0 else "session_absolute_timeout",
            "must be positive: a session that never expires is refused",
        )
    if p.session_idle_timeout > p.session_absolute_timeout:
        raise _fail("session_idle_timeout", "must not exceed session_absolute_timeout")
    if p.session_refresh_after is not None and (
        isinstance(p.session_refresh_after, bool)
        or not isinstance(p.session_refresh_after, int)
        or not 0 < p.session_refresh_after < p.session_idle_timeout
    ):
        raise _fail("session_refresh_after", "expected seconds between 1 and the idle timeout")
    if p.session_revocation_ttl is not None and (
        isinstance(p.session_revocation_ttl, bool)
        or not isinstance(p.session_revocation_ttl, int | float)
        or not 0 <= p.session_revocation_ttl <= 60
    ):
        raise _fail("session_revocation_ttl", "expected seconds between 0 and 60")
    _check_choice(p, "csrf", _CSRF_MODES, optional=False)
    for origin in p.csrf_trusted_origins + tuple(o for o in p.cors_origins if o != "*"):
        if not re.match(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d+)?$", origin):
            which = "csrf_trusted_origins" if origin in p.csrf_trusted_origins else "cors_origins"
            raise _fail(which, f"{origin!r} is not an origin such as https://example.org")
    for name in ("csrf_field", "csrf_header"):
        _check_type(p, name, str)
        if not _TOKEN.match(getattr(p, name)):
            raise _fail(name, f"{getattr(p, name)!r} is not a valid field/header name")
    for path in p.csrf_exempt_paths + p.cors_paths:
        if not path.startswith("/"):
            which = "csrf_exempt_paths" if path in p.csrf_exempt_paths else "cors_paths"
            raise _fail(which, f"{path!r} must start with '/'")
    for name in ("cors_allow_methods", "cors_allow_headers", "cors_expose_headers"):
        for item in getattr(p, name):
            if not _TOKEN.match(item) or (item == "*" and p.cors_allow_credentials):
                raise _fail(name, f"{item!r} is not a header/method name (no '*' with credentials)")
    for host in p.manage_hosts:
        if not re.match(r"^[A-Za-z0-9.:\[\]-]+$", host) or ".." in host:
            raise _fail("manage_hosts", f"{host!r} is not a host name")
    for pattern in p.manage_paths:
        if "/" in pattern:
            raise _fail("manage_paths", f"{pattern!r}: patterns match one path segment, no '/'")
    if p.cors_allow_credentials and "*" in p.cors_origins:
        raise _fail("cors_allow_credentials", "credentials are never allowed with origin '*'")
    _check_choice(p, "on_store_failure", _STORE_FAILURE, optional=False)
    _validate_login_defence(p)
    _validate_handled_upstream(p)


def _validate_handled_upstream(p: Policy) -> None:
    """Each entry must be a finding id of ``sitewarden check`` or one of its keywords."""
    from sitewarden.audit.check import CHECKS, UPSTREAM_KEYWORDS  # the audit imports Policy

    for entry in p.handled_upstream:
        if entry not in CHECKS and entry not in UPSTREAM_KEYWORDS:
            raise _fail(
                "handled_upstream",
                f"{entry!r} is neither a finding id (SW001…) nor one of "
                f"{', '.join(sorted(UPSTREAM_KEYWORDS))}",
            )


#: OWASP's Argon2id minimums: (memory KiB, iterations) pairs of equal strength, p = 1.
ARGON2_OWASP_MINIMUMS: tuple[tuple[int, int], ...] = (
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
)
_RATE = re.compile(
    r"^\s*(\d+)\s*(?:/|per)\s*(\d+\s*)?(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$",
    re.IGNORECASE,
)
_RATE_ROUTE = re.compile(r"^(?:([A-Z]+(?:\|[A-Z]+)*)\s+)?(/[^\s]*)$")


def _validate_login_defence(p: Policy) -> None:
    """Check the lockout, rate-limit, password, TOTP and event settings."""
    for name in (
        "lockout_threshold", "lockout_address_threshold", "lockout_window", "lockout_duration",
        "lockout_max_duration", "ban_after", "ban_window", "ban_duration", "ban_max_duration",
        "password_min_length", "password_min_length_2fa", "password_max_length",
        "argon2_memory_kib", "argon2_time_cost", "argon2_parallelism", "totp_max_attempts",
        "totp_attempt_window", "totp_period",
    ):  # fmt: skip
        _check_type(p, name, int)
        if getattr(p, name) < 1:
            raise _fail(name, "must be at least 1")
    for name in ("lockout_extend_on_attempt", "rate_limit_headers", "password_breach_check"):
        _check_type(p, name, bool)
    for name in ("password_min_score", "events_keep", "totp_window", "totp_digits"):
        _check_type(p, name, int)
        if getattr(p, name) < 0:
            raise _fail(name, "must not be negative")
    _check_networks(p, "lockout_allow_networks")
    _check_networks(p, "block_networks")
    _check_networks(p, "allow_networks")
    if p.lockout_max_duration < p.lockout_duration:
        raise _fail("lockout_max_duration", "must not be shorter than lockout_duration")
    if p.ban_max_duration < p.ban_duration:
        raise _fail("ban_max_duration", "must not be shorter than ban_duration")
    _check_type(p, "rate_limit_ipv6_prefix", int)
    if not 1 <= p.rate_limit_ipv6_prefix <= 128:
        raise _fail("rate_limit_ipv6_prefix", "expected a prefix length between 1 and 128")
    if not isinstance(p.rate_limits, dict):
        raise _fail("rate_limits", 'expected a table of route = "N/period", e.g. "5/minute"')
    for route, rate in p.rate_limits.items():
        if not isinstance(route, str) or not _RATE_ROUTE.match(route):
            raise _fail(
                "rate_limits",
                f"{route!r}: expected a path such as /login or /api/*, optionally after "
                'methods ("POST /login")',
            )
        if not isinstance(rate, str) or parse_rate(rate) is None:
            raise _fail("rate_limits", f"{route}: {rate!r} is not a rate such as 5/minute")
    if not 64 <= p.password_max_length <= 1024:
        # at least 64 (NIST, OWASP); at most 1024, so no one posts megabytes to be hashed
        raise _fail("password_max_length", "expected 64 to 1024 characters (NIST: at least 64)")
    if not p.password_min_length_2fa <= p.password_min_length <= p.password_max_length:
        raise _fail(
            "password_min_length",
            "expected password_min_length_2fa ≤ password_min_length ≤ password_max_length",
        )
    if p.password_min_length_2fa < 8:
        raise _fail("password_min_length_2fa", "must be at least 8 (NIST, OWASP)")
    if p.password_min_score > 4:
        raise _fail("password_min_score", "expected a strength from 0 (off) to 4")
    if not isinstance(p.password_rules, dict):
        raise _fail("password_rules", 'expected a table of "regular expression" = "message"')
    for pattern, message in p.password_rules.items():
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise _fail(
                "password_rules", f"{pattern!r} is not a regular expression ({exc})"
            ) from None
        if not isinstance(message, str) or not message:
            raise _fail("password_rules", f"{pattern!r}: expected a message to show")
    _check_type(p, "password_breach_url", str)
    if not re.match(r"^https?://[^\s]+/$", p.password_breach_url):
        raise _fail("password_breach_url", "expected an http(s) URL ending in '/'")
    if not any(
        p.argon2_memory_kib >= memory and p.argon2_time_cost >= passes
        for memory, passes in ARGON2_OWASP_MINIMUMS
    ):
        raise _fail(
            "argon2_memory_kib",
            f"Argon2id with {p.argon2_memory_kib} KiB and {p.argon2_time_cost} passes is "
            "below OWASP's minimum (19456 KiB with 2 passes, or an equivalent pair)",
        )
    _check_type(p, "totp_issuer", str)
    if not p.totp_issuer or ":" in p.totp_issuer:
        raise _fail("totp_issuer", "expected a non-empty name without ':'")
    if p.totp_digits not in (6, 7, 8):
        raise _fail("totp_digits", "expected 6, 7 or 8")
    if p.totp_window > 2:
        raise _fail("totp_window", "more than 2 steps either side weakens the code; use 0 to 2")
    if p.metrics_path is not None and (
        not isinstance(p.metrics_path, str) or not re.match(r"^/[A-Za-z0-9._~/-]*$", p.metrics_path)
    ):
        raise _fail(
            "metrics_path", "expected a path of letters, digits and ._~-/ starting with '/'"
        )


_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_rate(text: str) -> tuple[int, float] | None:
    """Parse a rate such as ``"5/minute"``, ``"100 per hour"`` or ``"10/30s"``.

    Returns ``(count, period_seconds)``, or ``None`` if *text* is not a rate (or allows no
    request at all).
    """
    match = _RATE.match(text)
    if match is None:
        return None
    count = int(match.group(1))
    multiple = int(match.group(2)) if match.group(2) else 1
    period = multiple * _UNIT_SECONDS[match.group(3)[0].lower()]
    if count < 1 or period < 1:
        return None
    return count, float(period)
