"""Parity of ``sitewarden scan`` with Mozilla's HTTP Observatory on a corpus of sites.

One local site (HTTPS with a local CA, plus an HTTP port) serves every case of
:data:`CASES` under ``/c/<id>``: header sets, cookies, redirect chains, pages with meta CSP,
meta referrer policies and scripts. Each case is graded twice:

* by the real npm scanner (``@mdn/mdn-http-observatory``, ``tests/observatory/grade_many.mjs``:
  the package's own ``retrieve()`` and the body of its ``scan()``, one Node process for all);
* by sitewarden: :func:`sitewarden.audit.scan.retrieve` over the network, then the sans-I/O
  grader :func:`sitewarden.audit.observatory.grade`.

Grade, score and every test's result name, modifier and pass flag must be identical (or both
sides must refuse the site with the same error). Node.js is needed: without it the test is
skipped, unless ``SITEWARDEN_REQUIRE_SERVICES=1`` (CI) — the pattern of test_observatory.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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
    content_type: str = "text/html; charset=utf-8"
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
def actual_untrusted(site: Site) -> dict[str, Any]:
    return run_sync(_ours(site, [BY_ID[i] for i in UNTRUSTED], None))


async def _ours(site: Site, cases: list[Case], ca: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    sem = asyncio.Semaphore(8)

    preload = parse_preload(json.dumps(PRELOAD), "the corpus list")

    async def one(case: Case) -> None:
        opts = ScanOptions(ca=ca, http_port=_http_port(case, site) or 1, hsts_preload=preload)
        async with sem:
            url = f"https://{case.host}:{site.https_port}/c/{case.id}"
            retrieved = await retrieve(url, opts)
        try:
            out[case.id] = py_grade(retrieved)
        except ValueError as exc:
            out[case.id] = {"error": str(exc)}

    await asyncio.gather(*(one(c) for c in cases))
    return out


@pytest.fixture(scope="module")
def actual(site: Site) -> dict[str, Any]:
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
    }


def test_corpus_is_large() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_parity(case_id: str, expected: dict[str, Any], actual: dict[str, Any]) -> None:
    """sitewarden's grade of the case equals the npm Observatory's, test by test."""
    assert _normalise(expected[case_id]) == actual[case_id]


@pytest.mark.parametrize("case_id", UNTRUSTED)
def test_parity_untrusted_certificate(
    case_id: str, expected_untrusted: dict[str, Any], actual_untrusted: dict[str, Any]
) -> None:
    """Also equal when TLS cannot be verified (the scanners' unverified fallback)."""
    assert _normalise(expected_untrusted[case_id]) == actual_untrusted[case_id]


def test_corpus_covers_many_results(expected: dict[str, Any]) -> None:
    """The corpus reaches many distinct results and grades (it exercises the grader)."""
    results = {t["result"] for r in expected.values() if "tests" in r for t in r["tests"].values()}
    grades = {r["grade"] for r in expected.values() if "grade" in r}
    assert len(results) >= 45, sorted(results)
    assert len(grades) >= 5, sorted(grades)
