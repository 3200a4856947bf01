"""Findings of ``sitewarden scan`` beyond the Mozilla HTTP Observatory (sans-I/O).

:func:`extra_findings` looks at the graded chain's final response and at what the scanner's
extra probes brought back (:class:`Probes`) and returns findings with ``"kind": "extra"``.
They never change the grade or the score; each says how to fix it and, where one exists,
which sitewarden setting fixes it (``"setting"``, ``None`` when none does).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sitewarden.audit.observatory import Response

__all__ = [
    "EVIL_ORIGIN",
    "FINGERPRINT_HEADERS",
    "LEGACY_TLS_VERSIONS",
    "MANAGE_PATHS",
    "LegacyTls",
    "Probes",
    "TlsInfo",
    "extra_findings",
]

#: The Origin sent by the CORS reflection probe.
EVIL_ORIGIN = "https://evil.example"
#: Plone's management screens (the ZMI), probed with a GET each.
MANAGE_PATHS: tuple[str, ...] = ("/manage", "/manage_main", "/manage_workspace")
#: Headers that name the server software (``Server`` counts only with a version number).
FINGERPRINT_HEADERS: tuple[str, ...] = (
    "x-powered-by",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-generator",
    "x-php-version",
    "x-runtime",
    "x-version",
    "x-backend-server",
    "x-powered-cms",
    "x-drupal-cache",
    "liferay-portal",
    "x-pingback",
)
#: Certificates expiring sooner than this are flagged.
CERT_WARN_DAYS = 14
_OLD_TLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
#: What the legacy-TLS probe offers, as ``SSLObject.version()`` names them.
LEGACY_TLS_VERSIONS: tuple[str, ...] = ("TLSv1", "TLSv1.1")
_VERSION = re.compile(r"\d+\.\d+|/\s*\d")


@dataclass(frozen=True)
class TlsInfo:
    """The HTTPS connection of the graded site: protocol and certificate expiry."""

    version: str | None
    not_after: dt.datetime | None


@dataclass(frozen=True)
class LegacyTls:
    """The legacy-TLS probe: one handshake offering only TLS 1.0 and 1.1.

    ``accepted`` is the version the server agreed to (``"TLSv1.1"``: the highest legacy
    version it accepts), ``None`` when it refused (an alert, a reset, a timeout, EOF).
    ``skipped`` says why no handshake could be offered at all (this machine's OpenSSL
    cannot speak TLS 1.0/1.1, a proxy is configured, …); ``accepted`` is then ``None`` and
    means nothing: a skipped probe is never an "all good".
    """

    accepted: str | None = None
    skipped: str | None = None


@dataclass
class Probes:
    """What the extra probes got back (``None``: the probe got no answer)."""

    manage: dict[str, int | None] = field(default_factory=dict)  # path → status
    security_txt: Response | None = None
    cors: Response | None = None  # GET with Origin: EVIL_ORIGIN
    tls: TlsInfo | None = None
    tls_legacy: LegacyTls | None = None  # None: not an HTTPS site (nothing to probe)


def _finding(
    test: str, result: str, severity: str, detail: str, fix: str, setting: str | None
) -> dict[str, Any]:
    return {
        "kind": "extra",
        "test": test,
        "result": result,
        "severity": severity,
        "detail": detail,
        "fix": fix,
        "setting": setting,
    }


def _headers(response: Response) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in response.headers:
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _isolation(h: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    coop = h.get("cross-origin-opener-policy", "").split(";")[0].strip().lower()
    if not coop:
        out.append(_finding(
            "cross-origin-opener-policy", "coop-missing", "medium",
            "no Cross-Origin-Opener-Policy: other sites can keep a handle on this window",
            "send Cross-Origin-Opener-Policy: same-origin", "cross_origin_opener_policy",
        ))  # fmt: skip
    elif coop == "unsafe-none":
        out.append(_finding(
            "cross-origin-opener-policy", "coop-weak", "medium",
            "Cross-Origin-Opener-Policy: unsafe-none isolates nothing",
            "send Cross-Origin-Opener-Policy: same-origin", "cross_origin_opener_policy",
        ))  # fmt: skip
    coep = h.get("cross-origin-embedder-policy", "").split(";")[0].strip().lower()
    if not coep or coep == "unsafe-none":
        out.append(_finding(
            "cross-origin-embedder-policy", "coep-missing" if not coep else "coep-weak", "low",
            "no cross-origin isolation: Cross-Origin-Embedder-Policy is "
            + ("missing" if not coep else "unsafe-none"),
            "send Cross-Origin-Embedder-Policy: require-corp (or credentialless)",
            "cross_origin_embedder_policy",
        ))  # fmt: skip
    return out


def _permissions(h: dict[str, str]) -> list[dict[str, Any]]:
    if h.get("permissions-policy", "").strip():
        return []
    return [_finding(
        "permissions-policy", "permissions-policy-missing", "low",
        "no Permissions-Policy: every embedded frame may ask for camera, microphone, …",
        "send a Permissions-Policy that turns off the features the site does not use",
        "permissions_policy",
    )]  # fmt: skip


def _fingerprints(h: dict[str, str]) -> list[dict[str, Any]]:
    found = [f"{name}: {h[name]}" for name in FINGERPRINT_HEADERS if name in h]
    server = h.get("server", "")
    if _VERSION.search(server):
        found.insert(0, f"server: {server}")
    if not found:
        return []
    return [_finding(
        "fingerprint-headers", "fingerprint-headers-present", "low",
        "headers reveal the server software: " + "; ".join(found),
        "remove these headers (and the version from Server)", "remove_headers",
    )]  # fmt: skip


def _manage(manage: dict[str, int | None]) -> list[dict[str, Any]]:
    open_ = {path: status for path, status in manage.items() if status in (200, 401)}
    if not open_:
        return []
    listed = ", ".join(f"{path} ({status})" for path, status in open_.items())
    return [_finding(
        "management-paths", "management-paths-exposed", "high",
        f"management screens answer from outside: {listed} (a 401 is a login prompt: "
        "the ZMI is exposed)",
        "serve manage/manage_* only to the management hosts and networks (404 elsewhere)",
        "manage_paths",
    )]  # fmt: skip


def _parse_expires(value: str) -> dt.datetime | None:
    text = value.strip().replace("Z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _security_txt(reply: Response | None, now: dt.datetime) -> list[dict[str, Any]]:
    fields: dict[str, str] = {}
    if reply is not None and reply.status == 200:
        for line in reply.body.splitlines():
            name, sep, value = line.partition(":")
            if sep and not name.startswith("#"):
                fields.setdefault(name.strip().lower(), value.strip())
    fix = "serve /.well-known/security.txt (RFC 9116) with Contact: and a future Expires:"
    if "contact" not in fields:
        return [_finding(
            "security-txt", "security-txt-missing", "info",
            "no /.well-known/security.txt with a Contact: field", fix, None,
        )]  # fmt: skip
    expires = _parse_expires(fields.get("expires", ""))
    if expires is None:
        return [_finding(
            "security-txt", "security-txt-no-expires", "info",
            "security.txt has no valid Expires: field", fix, None,
        )]  # fmt: skip
    if expires < now:
        return [_finding(
            "security-txt", "security-txt-expired", "low",
            f"security.txt expired on {expires:%Y-%m-%d}", fix, None,
        )]  # fmt: skip
    return []


def _tls(tls: TlsInfo | None, now: dt.datetime) -> list[dict[str, Any]]:
    if tls is None:
        return []
    out = []
    if tls.version in _OLD_TLS:
        out.append(_finding(
            "tls", "tls-version-old", "high", f"the HTTPS connection used {tls.version}",
            "allow TLS 1.2 and 1.3 only (on the TLS terminator)", None,
        ))  # fmt: skip
    if tls.not_after is not None:
        days = (tls.not_after - now).total_seconds() / 86400
        if days < CERT_WARN_DAYS:
            what = "expired" if days < 0 else f"expires in {int(days)} days"
            out.append(_finding(
                "tls", "certificate-expiring", "high" if days < 0 else "medium",
                f"the certificate {what} ({tls.not_after:%Y-%m-%d %H:%M} UTC)",
                "renew the certificate (and automate renewal)", None,
            ))  # fmt: skip
    return out


def _tls_legacy(probe: LegacyTls | None) -> list[dict[str, Any]]:
    if probe is None:
        return []
    if probe.skipped is not None:
        # Said out loud: a scan that could not ask must not read as "TLS 1.0/1.1 refused".
        return [_finding(
            "tls", "tls-legacy-not-probed", "info",
            f"whether the server still accepts TLS 1.0/1.1 was not checked: {probe.skipped}",
            "scan from a machine whose OpenSSL can offer TLS 1.0/1.1 (security level 0), "
            "without a proxy", None,
        )]  # fmt: skip
    if probe.accepted not in LEGACY_TLS_VERSIONS:
        return []
    return [_finding(
        "tls", "tls-legacy-accepted", "high",
        f"the server still accepts {probe.accepted} (a handshake offering only TLS 1.0/1.1 "
        "succeeded); TLS 1.0 and 1.1 are deprecated (RFC 8996)",
        "allow TLS 1.2 and 1.3 only (on the TLS terminator)", None,
    )]  # fmt: skip


def _cookies(chain: list[Response]) -> list[dict[str, Any]]:
    names = []
    for response in chain:
        for name, value in response.headers:
            if name.lower() != "set-cookie":
                continue
            cookie, _, attrs = value.partition(";")
            cookie_name = cookie.partition("=")[0].strip()
            secure = any(a.strip().lower() == "secure" for a in attrs.split(";"))
            if secure and not cookie_name.startswith(("__Host-", "__Secure-")):
                names.append(cookie_name)
    if not names:
        return []
    return [_finding(
        "cookie-prefixes", "cookies-without-prefix", "low",
        "Secure cookies without a __Host-/__Secure- prefix: " + ", ".join(sorted(set(names))),
        "name them __Host-… (host-only, Path=/) or __Secure-…", "session_cookie",
    )]  # fmt: skip


def _cors(reply: Response | None) -> list[dict[str, Any]]:
    if reply is None:
        return []
    h = _headers(reply)
    echoed = h.get("access-control-allow-origin", "").strip() == EVIL_ORIGIN
    if not echoed or h.get("access-control-allow-credentials", "").strip().lower() != "true":
        return []
    return [_finding(
        "cors-reflection", "cors-origin-reflected-with-credentials", "high",
        f"Origin: {EVIL_ORIGIN} is echoed with Access-Control-Allow-Credentials: true: "
        "any site can read signed-in responses",
        "allow only a list of exact trusted origins", "cors_origins",
    )]  # fmt: skip


def extra_findings(
    chain: list[Response], probes: Probes, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Return the extra findings for the graded *chain* (final response last) and *probes*."""
    now = now or dt.datetime.now(dt.UTC)
    h = _headers(chain[-1])
    return [
        *_isolation(h),
        *_permissions(h),
        *_fingerprints(h),
        *_manage(probes.manage),
        *_security_txt(probes.security_txt, now),
        *_tls(probes.tls, now),
        *_tls_legacy(probes.tls_legacy),
        *_cookies(chain),
        *_cors(probes.cors),
    ]
