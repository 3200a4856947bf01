"""Parity of ``sitewarden scan`` with Mozilla's HTTP Observatory on a corpus of sites.

One local site (HTTPS with a local CA, plus an HTTP port) serves every case of
:data:`CASES` under ``/c/<id>``: header sets, cookies, redirect chains, pages with meta CSP,
meta referrer policies and scripts. Each case is graded:

* by the real npm scanner (``@mdn/mdn-http-observatory`` 1.4.8,
  ``tests/observatory/grade_many.mjs``: the package's own ``retrieve()`` and the body of its
  ``scan()``, one Node process for all) — the referee;
* by sitewarden: :func:`sitewarden.audit.scan.retrieve` over the network, then the sans-I/O
  grader :func:`sitewarden.audit.observatory.grade`, as release 1.4.8 and as 1.6.3.

As 1.4.8, grade, score and every test's result name, modifier and pass flag must be those of
the referee (or both sides must refuse the site with the same error). Production's 1.6.3
cannot be run here (it is not on the npm registry): sitewarden's 1.6.3 grade must be the
referee's, moved by the documented differences only — :data:`XFO_1_6` and
:data:`CHANGED_IN_1_6`, applied by :func:`as_1_6` with a score and chart of its own.

Node.js is needed: without it the tests are skipped, unless ``SITEWARDEN_REQUIRE_SERVICES=1``
(CI) — the pattern of test_observatory.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sitewarden.audit.observatory import OBSERVATORY_VERSIONS
from sitewarden.audit.observatory import grade as py_grade
from sitewarden.audit.preload import parse_preload
from sitewarden.audit.scan import ScanOptions, retrieve, run_sync
from tests.browser.conftest import Tls, UvicornThread, free_port, wait_healthy
from tests.test_observatory import HARNESS_DIR, node  # noqa: F401 - the fixture

HARNESS = HARNESS_DIR / "grade_many.mjs"

PAGE = "<!doctype html><html><head><title>t</title>{head}</head><body>{body}</body></html>"

STRICT: list[tuple[str, str]] = [
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("strict-transport-security", "max-age=63072000"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
]


@dataclass
class Case:
    """One site: what its HTTPS (and HTTP) side answers."""

    id: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    head: str = ""
    body: str = "<p>text</p>"
    #: None: the page is served without a Content-Type header.
    content_type: str | None = "text/html; charset=utf-8"
    status: int = 200
    #: "redirect" (HTTP → HTTPS), "serve" (HTTP serves the page), "http-hop" (HTTP → HTTP →
    #: HTTPS), "elsewhere" (HTTP → https://localhost), "closed" (no HTTP port), "to-http"
    #: (HTTP → HTTP page).
    http: str = "redirect"
    #: Cookies set by an HTTPS redirect hop before the page.
    hop_cookies: list[str] = field(default_factory=list)
    #: Headers of the answer to OPTIONS.
    cors: list[tuple[str, str]] = field(default_factory=list)
    #: The host name the site is scanned as (:data:`NAMES` resolve it to 127.0.0.1).
    host: str = "127.0.0.1"


def _cases() -> list[Case]:
    cases: list[Case] = []

    def without(name: str) -> list[tuple[str, str]]:
        return [h for h in STRICT if h[0] != name]

    csp_variants = {
        "none": None,
        "default-none": "default-src 'none'",
        "self": "default-src 'self'",
        "unsafe-inline": "default-src 'self'; script-src 'self' 'unsafe-inline'",
        "unsafe-eval": "default-src 'self'; script-src 'self' 'unsafe-eval'",
        "broad": "default-src https:",
        "passive-http": "default-src 'self'; img-src http://img.example.com",
        "active-http": "default-src 'self'; script-src http://cdn.example.com",
        "style-inline": "default-src 'self'; style-src 'self' 'unsafe-inline'",
        "nonce-inline": "default-src 'self'; script-src 'nonce-abc' 'unsafe-inline'",
        "strict-dynamic": "script-src 'nonce-abc' 'strict-dynamic' https: 'self'; "
        "object-src 'none'",
        "strict-dynamic-bad": "default-src 'self'; script-src 'strict-dynamic'",
        "duplicate": "default-src 'self'; default-src 'none'",
        "dup-report": "default-src 'none'; report-uri /a; report-uri /b",
        "short": "a b",
        "object-star": "default-src 'self'; object-src *",
        "empty-src": "default-src; script-src",
        "data-script": "default-src 'self'; script-src 'self' data:",
        "ftp": "default-src 'self' ftp://files.example.com",
        "uppercase": "DEFAULT-SRC 'NONE'; FRAME-ANCESTORS 'SELF'",
    }
    for name, csp in csp_variants.items():
        headers = without("content-security-policy")
        if csp is not None:
            headers.append(("content-security-policy", csp))
        cases.append(Case(f"csp-{name}", headers))
        bare = [] if csp is None else [("content-security-policy", csp)]
        cases.append(Case(f"bare-csp-{name}", bare, http="serve"))
    cases += [
        Case(
            "csp-two-headers",
            [
                *without("content-security-policy"),
                ("content-security-policy", "default-src 'self'"),
                ("content-security-policy", "script-src 'none'"),
            ],
        ),
        Case(
            "csp-report-only",
            [
                *without("content-security-policy"),
                ("content-security-policy-report-only", "default-src 'none'"),
            ],
        ),
        Case(
            "csp-meta",
            without("content-security-policy"),
            head='<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">',
        ),
        Case(
            "csp-meta-frame-ancestors",
            without("content-security-policy"),
            head="<meta http-equiv=content-security-policy content=\"frame-ancestors 'none'\">",
        ),
        Case(
            "csp-header-and-meta",
            [*without("content-security-policy"), ("content-security-policy", "default-src *")],
            head='<meta http-equiv="content-security-policy" content="script-src \'self\'">',
        ),
        Case(
            "csp-meta-in-template",
            without("content-security-policy"),
            head="<template><meta http-equiv=content-security-policy "
            "content=\"default-src 'none'\"></template>",
        ),
    ]
    cookie_variants = {
        "session-plain": ["app_session=abc; Path=/"],
        "session-good": ["sessionid=abc; Path=/; Secure; HttpOnly; SameSite=Lax"],
        "session-no-samesite": ["sessionid=abc; Path=/; Secure; HttpOnly"],
        "session-no-httponly": ["login=abc; Path=/; Secure; SameSite=Strict"],
        "csrf-no-samesite": ["csrftoken=abc; Path=/; Secure"],
        "csrf-samesite": ["csrftoken=abc; Path=/; Secure; SameSite=Strict"],
        "samesite-bogus": ["prefs=1; Secure; SameSite=Bogus"],
        "samesite-empty": ["prefs=1; Secure; SameSite"],
        "samesite-none-insecure": ["prefs=1; SameSite=None"],
        "plain-insecure": ["theme=dark"],
        "host-prefix-insecure": ["__Host-sess=1; Path=/"],
        "foreign-domain": ["sess=1; Domain=example.com"],
        "two": ["theme=dark; Secure; SameSite=Lax", "sess=1; Secure; HttpOnly; SameSite=Lax"],
        "heroku": ["heroku-session-affinity=1"],
    }
    for name, cookies in cookie_variants.items():
        set_cookies = [("set-cookie", c) for c in cookies]
        cases.append(Case(f"cookie-{name}", [*STRICT, *set_cookies]))
        cases.append(
            Case(f"cookie-nohsts-{name}", [*without("strict-transport-security"), *set_cookies])
        )
    cases.append(Case("cookie-on-hop", list(STRICT), hop_cookies=["usersession=1; Path=/"]))
    hsts_variants = {
        "none": None,
        "short": "max-age=100",
        "six-months": "max-age=15552000",
        "nan": "max-age=abc",
        "no-max-age": "includeSubDomains",
        "preload": "max-age=63072000; includeSubDomains; preload",
        "negative": "max-age=-5",
    }
    for name, hsts in hsts_variants.items():
        headers = without("strict-transport-security")
        if hsts is not None:
            headers.append(("strict-transport-security", hsts))
        cases.append(Case(f"hsts-{name}", headers))
    cases.append(
        Case(
            "hsts-twice",
            [*STRICT, ("strict-transport-security", "max-age=63072000")],
        )
    )
    no_fa = [*without("content-security-policy"), ("content-security-policy", "default-src 'none'")]
    for name, xfo in {
        "deny": "DENY",
        "sameorigin": "sameorigin",
        "allow-from": "ALLOW-FROM https://example.com",
        "bogus": "yes please",
    }.items():
        headers = [h for h in no_fa if h[0] != "x-frame-options"] + [("x-frame-options", xfo)]
        cases.append(Case(f"xfo-{name}", headers))
    cases.append(Case("xfo-none", [h for h in no_fa if h[0] != "x-frame-options"]))
    cases.append(Case("xfo-twice", [*no_fa, ("x-frame-options", "DENY")]))
    for name, xcto in {"bogus": "sniff", "none": None, "upper": "NoSniff"}.items():
        headers = without("x-content-type-options")
        if xcto is not None:
            headers.append(("x-content-type-options", xcto))
        cases.append(Case(f"xcto-{name}", headers))
    for policy in (
        "same-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
        "origin",
        "bogus",
        "no-referrer, unsafe-url",
        "unsafe-url, bogus",
    ):
        headers = [*without("referrer-policy"), ("referrer-policy", policy)]
        cases.append(Case(f"referrer-{policy.replace(', ', '+')}", headers))
    cases += [
        Case("referrer-none", without("referrer-policy")),
        Case(
            "referrer-meta",
            without("referrer-policy"),
            head='<meta name="referrer" content="unsafe-url">',
        ),
        Case(
            "referrer-header-and-meta",
            list(STRICT),
            head='<meta name="referrer" content="origin">',
        ),
    ]
    for corp in ("same-site", "cross-origin", "bogus", None):
        headers = without("cross-origin-resource-policy")
        if corp is not None:
            headers.append(("cross-origin-resource-policy", corp))
        cases.append(Case(f"corp-{corp}", headers))
    sha = "sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC"
    scripts = {
        "relative": '<script src="/app.js"></script>',
        "relative-sri": f'<script src="/app.js" integrity="{sha}"></script>',
        "foreign-https": '<script src="https://cdn.example.com/a.js"></script>',
        "foreign-sri": f'<script src="https://cdn.example.com/a.js" integrity="{sha}" '
        'crossorigin="anonymous"></script>',
        "foreign-http": '<script src="http://cdn.example.com/a.js"></script>',
        "foreign-http-sri": f'<script src="http://cdn.example.com/a.js" integrity="{sha}">'
        "</script>",
        "protocol-relative": '<script src="//cdn.example.com/a.js"></script>',
        "same-ip": '<script src="https://127.0.0.1/a.js"></script>',
        "inline": "<script>var a = '<script src=http://x.org/a.js></script>';</script>",
        "mixed": f'<script src="/a.js"></script><script src="https://cdn.example.com/b.js" '
        f'integrity="{sha}"></script><script src="https://cdn2.example.org/c.js"></script>',
        "template": '<template><script src="http://cdn.example.com/a.js"></script></template>',
        "comment": '<!-- <script src="http://cdn.example.com/a.js"></script> -->',
        "uppercase-url": '<script src="HTTPS://CDN.EXAMPLE.COM/a.js"></script>',
    }
    for name, body in scripts.items():
        cases.append(Case(f"sri-{name}", list(STRICT), body=body))
    cases += [
        Case("type-json", list(STRICT), content_type="application/json", body='{"a": 1}'),
        Case("type-text", list(STRICT), content_type="text/plain", body="hello"),
        Case("type-xhtml", list(STRICT), content_type="application/xhtml+xml"),
        Case("status-403", list(STRICT), status=403),
        Case("status-404", list(STRICT), status=404),
        Case("redirect-serve", list(STRICT), http="serve"),
        Case("redirect-http-hop", list(STRICT), http="http-hop"),
        Case("redirect-closed", list(STRICT), http="closed"),
        Case("redirect-to-http", list(STRICT), http="to-http"),
        Case("redirect-elsewhere", list(STRICT), http="elsewhere"),
        Case("cors-public", list(STRICT), cors=[("access-control-allow-origin", "*")]),
        Case(
            "cors-echo-credentials",
            list(STRICT),
            cors=[
                ("access-control-allow-origin", "https://http-observatory.security.mozilla.org"),
                ("access-control-allow-credentials", "true"),
            ],
        ),
        Case(
            "cors-restricted",
            list(STRICT),
            cors=[("access-control-allow-origin", "https://example.com")],
        ),
        Case("bare", [], http="serve"),
        Case("bare-redirect", []),
    ]
    cases += _named_cases()
    cases += _release_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


#: The HSTS preload list of the corpus, in the Observatory's conf/hsts-preload.json format
#: (both scanners get it: the npm one in its Map, sitewarden through parse_preload).
PRELOAD: dict[str, dict[str, Any]] = {
    "preloaded.test": {"includeSubDomains": False, "mode": "force-https"},
    "parent.test": {"includeSubDomains": True, "mode": "force-https"},
    "flat.test": {"includeSubDomains": False, "mode": "force-https"},
    "pinned.test": {"includeSubDomains": True, "mode": ""},  # pinning only: not preloaded
}
#: Host names of the corpus (resolved to 127.0.0.1 by both scanners, without DNS).
NAMES = (
    "preloaded.test", "www.parent.test", "deep.www.parent.test", "www.flat.test",
    "www.pinned.test", "www.example.co.uk", "a.github.io", "www.example.test",
)  # fmt: skip


def _named_cases() -> list[Case]:
    """Sites scanned by name: the HSTS preload list, and registrable domains for SRI."""
    no_script = "<p>no scripts</p>"
    cases = [
        Case("preload-exact", list(STRICT), host="preloaded.test"),
        Case("preload-exact-hop", list(STRICT), host="preloaded.test", http="http-hop"),
        Case(
            "preload-exact-no-hsts",
            without_hsts := [h for h in STRICT if h[0] != "strict-transport-security"],
            host="preloaded.test",
        ),
        Case("preload-parent", list(STRICT), host="www.parent.test"),
        Case("preload-parent-deep", list(STRICT), host="deep.www.parent.test"),
        Case("preload-parent-no-subdomains", list(STRICT), host="www.flat.test"),
        Case("preload-pinning-only", list(STRICT), host="www.pinned.test"),
        Case("preload-elsewhere", list(STRICT), host="preloaded.test", http="elsewhere"),
        Case("preload-no-hsts-serve", without_hsts, host="www.parent.test", http="serve"),
        Case("psl-no-scripts", list(STRICT), body=no_script, host="www.example.co.uk"),
    ]
    scripts = {
        # other.co.uk is another registrable domain under the public suffix co.uk
        "psl-foreign": '<script src="https://cdn.other.co.uk/a.js"></script>',
        "psl-same": '<script src="https://static.example.co.uk/a.js"></script>',
        "psl-suffix-only": '<script src="https://co.uk/a.js"></script>',
        "psl-foreign-http": '<script src="http://cdn.other.co.uk/a.js"></script>',
    }
    for name, body in scripts.items():
        cases.append(Case(name, list(STRICT), body=body, host="www.example.co.uk"))
    # github.io is a private-section suffix: tldts ignores that section by default
    cases.append(
        Case(
            "psl-private-suffix",
            list(STRICT),
            host="a.github.io",
            body='<script src="https://b.github.io/a.js"></script>',
        )
    )
    # an unknown top-level label is its own public suffix
    cases.append(
        Case(
            "psl-unknown-tld",
            list(STRICT),
            host="www.example.test",
            body='<script src="https://cdn.example.test/a.js"></script>',
        )
    )
    cases.append(
        Case(
            "psl-unknown-tld-foreign",
            list(STRICT),
            host="www.example.test",
            body='<script src="https://cdn.other.test/a.js"></script>',
        )
    )
    return cases  # fmt: skip


def _release_cases() -> list[Case]:
    """Sites that 1.4.8 and 1.6.3 grade differently (or might): see :data:`CHANGED_IN_1_6`."""
    no_csp = [h for h in STRICT if h[0] != "content-security-policy"]
    no_framing = [h for h in no_csp if h[0] != "x-frame-options"]
    meta = '<meta http-equiv="content-security-policy" content="{}">'
    return [
        # CSP (#496): two header lines (Node joins them with ", "), commas in one value.
        Case(
            "csp-lines-frame-ancestors",
            [
                *no_framing,
                ("content-security-policy", "default-src 'none'"),
                ("content-security-policy", "frame-ancestors 'none'"),
            ],
        ),
        Case("csp-trailing-comma", [*no_csp, ("content-security-policy", "default-src 'none',")]),
        Case(
            "csp-comma-inside",
            [
                *no_csp,
                (
                    "content-security-policy",
                    "default-src 'self'; script-src 'self', 'unsafe-inline'",
                ),
            ],
        ),
        Case("csp-meta-comma", no_csp, head=meta.format("default-src 'none', script-src 'self'")),
        # The HTML parser (#419): what JSDOM hides or reads differently.
        Case(
            "csp-meta-in-noscript",
            no_csp,
            head="<noscript>" + meta.format("default-src 'none'") + "</noscript>",
        ),
        Case(
            "sri-svg",
            list(STRICT),
            body='<svg><script src="http://cdn.example.com/a.js"></script></svg>',
        ),
        Case(
            "sri-self-closing",
            list(STRICT),
            body='<script src="/a.js"/><script src="http://cdn.example.com/b.js"></script>',
        ),
        Case(
            "sri-src-space",
            list(STRICT),
            body='<script src=" https://cdn.example.com/a.js"></script>',
        ),
        Case(
            "sri-noscript",
            list(STRICT),
            body='<noscript><script src="http://cdn.example.com/a.js"></script></noscript>',
        ),
        Case(
            "sri-textarea",
            list(STRICT),
            body='<textarea><script src="http://cdn.example.com/a.js"></script></textarea>',
        ),
        Case(
            "sri-iframe",
            list(STRICT),
            body='<iframe><script src="http://cdn.example.com/a.js"></script></iframe>',
        ),
        # SRI: a page without a Content-Type.
        Case(
            "type-missing-scripts",
            list(STRICT),
            content_type=None,
            body='<script src="http://cdn.example.com/a.js"></script>',
        ),
        Case(
            "type-missing-meta-csp",
            no_csp,
            content_type=None,
            head=meta.format("default-src 'none'"),
        ),
    ]


CASES = _cases()
BY_ID = {c.id: c for c in CASES}


def corpus_app(https_port: int) -> Any:
    """One ASGI app for both ports: ``/c/<id>[/<step>]`` answers as case *id* says."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope["path"]
        scheme: str = scope["scheme"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        status, headers, body = 404, [("content-type", "text/plain")], b"not found"
        if path == "/healthz":
            status, body = 200, b"ok"
        elif path == "/robots.txt" and method == "GET":
            # A cookie the scanner keeps only after an unverified-TLS fallback.
            status, body = 200, b"User-agent: *\n"
            headers = [*headers, ("set-cookie", "robots_session=1; Path=/")]
        elif len(parts) >= 2 and parts[0] == "c" and parts[1] in BY_ID:
            case = BY_ID[parts[1]]
            step = parts[2] if len(parts) > 2 else ""
            status, headers, body = answer(case, scheme, method, step, https_port)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app


def answer(
    case: Case, scheme: str, method: str, step: str, https_port: int
) -> tuple[int, list[tuple[str, str]], bytes]:
    base = f"/c/{case.id}"
    https_page = f"https://{case.host}:{https_port}{base}"
    if method == "OPTIONS":
        return 204, list(case.cors), b""
    if scheme == "http" and case.http != "serve":
        if case.http == "http-hop" and step == "":
            return 301, [("location", f"{base}/hop")], b""
        if case.http == "to-http":
            if step == "":
                return 302, [("location", f"{base}/plain")], b""
            return 200, [("content-type", "text/html")], b"<p>plain</p>"
        if case.http == "elsewhere":
            return 301, [("location", f"https://localhost:{https_port}{base}")], b""
        return 301, [("location", https_page)], b""
    if scheme == "https" and case.hop_cookies and step == "":
        headers = [("location", f"{base}/final")] + [("set-cookie", c) for c in case.hop_cookies]
        return 302, headers, b""
    page = PAGE.format(head=case.head, body=case.body)
    if case.content_type is None:
        return case.status, list(case.headers), page.encode()
    if not case.content_type.startswith(("text/html", "application/xhtml")):
        page = case.body
    return case.status, [("content-type", case.content_type), *case.headers], page.encode()


@dataclass
class Site:
    https_port: int
    http_port: int
    tls: Tls


def _named_tls(directory: Path) -> Tls:
    """A CA of the test's own, and a server certificate for 127.0.0.1 and :data:`NAMES`.

    (The demo's CA is name-constrained to the loopback names, as a local CA should be.)
    """
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str,
        issuer: x509.Name | None,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in ("localhost", *NAMES)]
            sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("sitewarden parity test CA", None, ca_key, ca_key, True)
    cert = build("parity corpus", ca.subject, key, ca_key, False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Tls(*paths)  # fmt: skip


@contextlib.contextmanager
def _resolving_names() -> Iterator[None]:
    """Resolve :data:`NAMES` to 127.0.0.1 in this process (what grade_many.mjs does)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode("ascii")
        return real("127.0.0.1" if host in NAMES else host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tls = _named_tls(tmp_path_factory.mktemp("parity-tls"))
    https_port, http_port = free_port(), free_port()
    app = corpus_app(https_port)
    servers = [UvicornThread(app, https_port, tls).start(), UvicornThread(app, http_port).start()]
    try:
        wait_healthy(f"https://127.0.0.1:{https_port}/healthz", tls.client_context())
        yield Site(https_port, http_port, tls)
    finally:
        for server in servers:
            server.stop()


def _http_port(case: Case, site: Site) -> int | None:
    return None if case.http == "closed" else site.http_port


@pytest.fixture(scope="module")
def expected(node: str, site: Site) -> dict[str, Any]:  # noqa: F811 - the node fixture
    """The npm Observatory's verdict on every case (one Node process)."""
    return _npm(node, site, CASES, site.tls.ca)


#: Cases also graded without trusting the CA: both scanners fall back to unverified TLS.
UNTRUSTED = (
    "bare",
    "csp-self",
    "cookie-two",
    "cookie-nohsts-plain-insecure",
    "cors-public",
    "redirect-http-hop",
    "redirect-serve",
    "redirect-closed",
    "sri-foreign-https",
)


def _npm(node_bin: str, site: Site, cases: list[Case], ca: Path | None) -> dict[str, Any]:
    entries = []
    for case in cases:
        entry: dict[str, Any] = {
            "id": case.id,
            "path": f"/c/{case.id}",
            "httpsPort": str(site.https_port),
            "host": case.host,
        }
        port = _http_port(case, site)
        if port is not None:
            entry["httpPort"] = str(port)
        entries.append(entry)
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    done = subprocess.run(
        [node_bin, str(HARNESS)],
        input=json.dumps(
            {
                "host": "127.0.0.1",
                "cases": entries,
                "resolve": dict.fromkeys(NAMES, "127.0.0.1"),
                "preload": PRELOAD,
            }
        ),
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"grade_many.mjs printed no JSON (exit {done.returncode}):\n{done.stderr}")
    return result


@pytest.fixture(scope="module")
def expected_untrusted(node: str, site: Site) -> dict[str, Any]:  # noqa: F811
    """The npm Observatory's verdict on :data:`UNTRUSTED` when the CA is not trusted."""
    return _npm(node, site, [BY_ID[i] for i in UNTRUSTED], None)


@pytest.fixture(scope="module")
def actual_untrusted(site: Site) -> dict[str, dict[str, Any]]:
    return run_sync(_ours(site, [BY_ID[i] for i in UNTRUSTED], None))


async def _ours(site: Site, cases: list[Case], ca: Path | None) -> dict[str, dict[str, Any]]:
    """Sitewarden's grade of every case, by release: each site is fetched once."""
    out: dict[str, dict[str, Any]] = {version: {} for version in OBSERVATORY_VERSIONS}
    sem = asyncio.Semaphore(8)

    preload = parse_preload(json.dumps(PRELOAD), "the corpus list")

    async def one(case: Case) -> None:
        opts = ScanOptions(ca=ca, http_port=_http_port(case, site) or 1, hsts_preload=preload)
        async with sem:
            url = f"https://{case.host}:{site.https_port}/c/{case.id}"
            retrieved = await retrieve(url, opts)
        for version, graded in out.items():
            try:
                graded[case.id] = py_grade(retrieved, version)
            except ValueError as exc:
                graded[case.id] = {"error": str(exc)}

    await asyncio.gather(*(one(c) for c in cases))
    return out


@pytest.fixture(scope="module")
def actual(site: Site) -> dict[str, dict[str, Any]]:
    with _resolving_names():
        return run_sync(_ours(site, CASES, site.tls.ca))


def _normalise(npm: dict[str, Any]) -> dict[str, Any]:
    if "error" in npm:
        return npm
    return {
        "grade": npm["grade"],
        "score": npm["score"],
        "tests": {
            name: {"result": t["result"], "score_modifier": t["scoreModifier"], "pass": t["pass"]}
            for name, t in npm["tests"].items()
        },
        "observatory": npm["version"],
        "algorithm_version": npm["algorithmVersion"],
    }


def test_corpus_is_large() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_parity(case_id: str, expected: dict[str, Any], actual: dict[str, Any]) -> None:
    """sitewarden's grade as 1.4.8 equals the npm Observatory's, test by test."""
    assert _normalise(expected[case_id]) == actual["1.4.8"][case_id]


@pytest.mark.parametrize("case_id", UNTRUSTED)
def test_parity_untrusted_certificate(
    case_id: str, expected_untrusted: dict[str, Any], actual_untrusted: dict[str, Any]
) -> None:
    """Also equal when TLS cannot be verified (the scanners' unverified fallback)."""
    assert _normalise(expected_untrusted[case_id]) == actual_untrusted["1.4.8"][case_id]


def test_corpus_covers_many_results(expected: dict[str, Any]) -> None:
    """The corpus reaches many distinct results and grades (it exercises the grader)."""
    results = {t["result"] for r in expected.values() if "tests" in r for t in r["tests"].values()}
    grades = {r["grade"] for r in expected.values() if "grade" in r}
    assert len(results) >= 45, sorted(results)
    assert len(grades) >= 5, sorted(grades)


# -- production (1.6.3): the referee's verdict, moved by the documented differences only ----

#: Rule 1 (#332, v1.5.0): X-Frame-Options DENY or SAMEORIGIN earns +5 (it was 0).
XFO_1_6 = {"x-frame-options-sameorigin-or-deny": 5}
#: Rule 2: the release and ALGORITHM_VERSION a 1.6.3 grade reports.
RELEASE_1_6 = {"observatory": "1.6.3", "algorithm_version": 5}
#: Rule 3: the cases the 1.4.8 referee cannot speak for — every case :func:`touched_by_1_6`
#: flags — with each test whose result changes, as read in the v1.6.3 source (csp.js
#: ``splitCspHeaders``; utils/html-parser.js, htmlparser2's tokenizer;
#: subresource-integrity.js). ``{}``: the case could change, and does not.
CHANGED_IN_1_6: dict[str, dict[str, str]] = {
    # CSP: each comma starts a policy of its own, and the policies are intersected.
    # "default-src 'self'" ∩ "script-src 'none'": default-src 'self' stays, +5 as before.
    "csp-two-headers": {},
    # Two policies: default-src 'none' (+10, it was "'none'," +5) and a frame-ancestors key,
    # so X-Frame-Options is implemented via CSP (it was not implemented).
    "csp-lines-frame-ancestors": {
        "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none",
        "x-frame-options": "x-frame-options-implemented-via-csp",
    },
    # The empty piece after the comma is shorter than "img-sr": the parser throws.
    "csp-trailing-comma": {"content-security-policy": "csp-header-invalid"},
    # "'unsafe-inline'" becomes a policy (an unknown directive) instead of a script source.
    "csp-comma-inside": {"content-security-policy": "csp-implemented-with-no-unsafe"},
    # The meta value is split too: default-src 'none' ∩ script-src 'self'.
    "csp-meta-comma": {
        "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none"
    },
    # htmlparser2 sees <template> content: the meta CSP and the http:// script count.
    "csp-meta-in-template": {
        "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none"
    },
    "sri-template": {
        "subresource-integrity": "sri-not-implemented-and-external-scripts-not-loaded-securely"
    },
    # JSDOM read <noscript> as text for the metas; htmlparser2 finds the meta.
    "csp-meta-in-noscript": {
        "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none"
    },
    # Scripts in <noscript> were found by both.
    "sri-noscript": {},
    # An SVG <script> had no `src` in JSDOM; htmlparser2 gives its attribute.
    "sri-svg": {
        "subresource-integrity": "sri-not-implemented-and-external-scripts-not-loaded-securely"
    },
    # htmlparser2 leaves script text at "/>": the second, http:// script is a script.
    "sri-self-closing": {
        "subresource-integrity": "sri-not-implemented-and-external-scripts-not-loaded-securely"
    },
    # Still text in htmlparser2's tokenizer (from v12; an older one parsed <iframe> content).
    "sri-iframe": {},
    # The src attribute as written, not JSDOM's URL: "HTTPS://…" and " https://…" do not
    # match /^https?:\/\//, so they count as relative, same-origin scripts.
    "sri-uppercase-url": {
        "subresource-integrity": "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
    },
    "sri-src-space": {
        "subresource-integrity": "sri-not-implemented-but-all-scripts-loaded-from-secure-origin"
    },
    # No Content-Type: SRI reads the page as HTML (meta tags still need an HTML type).
    "type-missing-scripts": {
        "subresource-integrity": "sri-not-implemented-and-external-scripts-not-loaded-securely"
    },
    "type-missing-meta-csp": {"subresource-integrity": "sri-not-implemented-but-no-scripts-loaded"},
}


def touched_by_1_6(case: Case) -> list[str]:
    """The documented differences besides rule 1 that could move *case*'s grade."""
    reasons = []
    csp = [v for k, v in case.headers if k == "content-security-policy"]
    if len(csp) > 1 or any("," in v for v in csp):
        reasons.append("CSP header split on commas")
    if re.search(r"content-security-policy[^>]*,", case.head, re.I):
        reasons.append("meta CSP split on commas")
    markup = case.head + case.body
    if re.search(r"<(template|noscript|svg|math|iframe|noembed|noframes|plaintext)\b", markup):
        reasons.append("HTML parser: hidden or foreign content")
    if re.search(r"<script[^>]*/>", markup):
        reasons.append("HTML parser: self-closing script")
    for src in re.findall(r'<script[^>]*\bsrc="([^"]*)"', markup):
        # JSDOM gave the URL (trimmed, scheme and host lower-cased); 1.6.3 the text.
        absolute = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", src)
        if src != src.strip() or (absolute and src != src.lower()):
            reasons.append("SRI: the src attribute as written")
    if case.content_type is None:
        reasons.append("SRI: no Content-Type")
    return reasons


#: Grade chart of the Observatory (charts.js), lowest score of each grade.
CHART = [
    (100, "A+"), (90, "A"), (85, "A-"), (80, "B+"), (70, "B"), (65, "B-"), (60, "C+"),
    (50, "C"), (45, "C-"), (40, "D+"), (30, "D"), (25, "D-"), (0, "F"),
]  # fmt: skip


def referee_tables(expected: dict[str, Any]) -> tuple[dict[str, int], dict[str, bool]]:
    """Each result's modifier and pass flag, as the 1.4.8 referee gave them on the corpus."""
    modifiers: dict[str, int] = {}
    passes: dict[str, bool] = {}
    for graded in expected.values():
        for test in graded.get("tests", {}).values():
            assert (
                modifiers.setdefault(test["result"], test["scoreModifier"])
                == (test["scoreModifier"])
            )
            assert passes.setdefault(test["result"], test["pass"]) == test["pass"]
    return modifiers, passes


def as_1_6(
    case_id: str, npm: dict[str, Any], referee: tuple[dict[str, int], dict[str, bool]]
) -> dict[str, Any]:
    """The 1.4.8 referee's grade of *case_id*, moved to 1.6.3 by rules 1-3."""
    if "error" in npm:
        return npm
    modifiers, passes = referee
    tests = {}
    for name, test in npm["tests"].items():
        result = CHANGED_IN_1_6.get(case_id, {}).get(name, test["result"])
        modifier, passed = modifiers[result], passes[result]
        tests[name] = {
            "result": result,
            "score_modifier": XFO_1_6.get(result, modifier),
            "pass": passed,
        }
    total = sum(t["score_modifier"] for t in tests.values())
    penalties = sum(t["score_modifier"] for t in tests.values() if t["score_modifier"] < 0)
    score = max(100 + (total if penalties >= -10 else penalties), 0)
    letter = next(grade for floor, grade in CHART if score >= floor)
    return {"grade": letter, "score": score, "tests": tests, **RELEASE_1_6}


@pytest.fixture(scope="module")
def referee(expected: dict[str, Any]) -> tuple[dict[str, int], dict[str, bool]]:
    return referee_tables(expected)


def test_every_case_the_differences_touch_is_reasoned() -> None:
    """A case is in CHANGED_IN_1_6 exactly when a documented difference could move it."""
    touched = {c.id: touched_by_1_6(c) for c in CASES}
    assert {i for i, why in touched.items() if why} == set(CHANGED_IN_1_6)


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_production_grade_is_the_referees_moved_by_the_documented_differences(
    case_id: str,
    expected: dict[str, Any],
    actual: dict[str, Any],
    referee: tuple[dict[str, int], dict[str, bool]],
) -> None:
    """sitewarden's 1.6.3 grade = the 1.4.8 referee's, moved by rules 1-3 and nothing else."""
    assert actual["1.6.3"][case_id] == as_1_6(case_id, _normalise(expected[case_id]), referee)


def test_the_releases_differ_on_the_corpus(actual: dict[str, Any]) -> None:
    """The delta is not empty: many cases grade differently as 1.6.3 (XFO, CSP, HTML, SRI)."""
    old, new = actual["1.4.8"], actual["1.6.3"]
    moved = {i for i in old if "tests" in old[i] and old[i]["tests"] != new[i]["tests"]}
    assert len(moved) >= 20, sorted(moved)
    assert {i for i in CHANGED_IN_1_6 if CHANGED_IN_1_6[i]} <= moved
