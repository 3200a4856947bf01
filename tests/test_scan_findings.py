"""``sitewarden scan``'s findings beyond the Observatory: the sans-I/O rules and local sites.

Every extra finding has ``"kind": "extra"``, a fix and the sitewarden setting (or ``None``),
and never changes the grade or the score.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sitewarden.audit.findings import EVIL_ORIGIN, LegacyTls, Probes, TlsInfo, extra_findings
from sitewarden.audit.observatory import Response
from sitewarden.audit.scan import (
    Scanner,
    ScanOptions,
    legacy_tls_context,
    probe_legacy_tls,
    retrieve,
    run_sync,
    scan_site,
)
from tests.browser.conftest import Tls, UvicornThread, free_port, make_tls, wait_healthy

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FUTURE = "2030-01-01T00:00:00Z"
SECURE = [
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("permissions-policy", "camera=()"),
    ("server", "nginx"),
]


def results(headers: list[tuple[str, str]], **probes: Any) -> set[str]:
    chain = [Response("https://example.com/", 200, headers)]
    probes.setdefault(
        "security_txt",
        Response("x", 200, [], f"Contact: mailto:a@example.com\nExpires: {FUTURE}\n"),
    )
    found = extra_findings(chain, Probes(**probes), now=NOW)
    for f in found:
        assert f["kind"] == "extra" and f["fix"] and "setting" in f and f["severity"]
    return {f["result"] for f in found}


def test_secure_site_has_no_extra_findings() -> None:
    assert results(SECURE) == set()


def test_isolation_and_permissions_policy() -> None:
    assert results([]) >= {"coop-missing", "coep-missing", "permissions-policy-missing"}
    weak = [("cross-origin-opener-policy", "unsafe-none"), ("cross-origin-embedder-policy",
            "unsafe-none"), ("permissions-policy", "camera=()")]  # fmt: skip
    assert results(weak) == {"coop-weak", "coep-weak"}


@pytest.mark.parametrize(
    ("header", "flagged"),
    [(("server", "Apache/2.4.58 (Unix)"), True), (("server", "nginx/1.25"), True),
     (("server", "cloudflare"), False), (("x-powered-by", "PHP/8.3"), True),
     (("x-aspnet-version", "4.0.30319"), True), (("x-generator", "Drupal 10"), True)],
)  # fmt: skip
def test_fingerprint_headers(header: tuple[str, str], flagged: bool) -> None:
    headers = [h for h in SECURE if h[0] != "server"] + [header]
    assert ("fingerprint-headers-present" in results(headers)) is flagged


def test_management_paths() -> None:
    assert results(SECURE, manage={"/manage": 404, "/manage_main": 403}) == set()
    assert results(SECURE, manage={"/manage": 401}) == {"management-paths-exposed"}
    assert results(SECURE, manage={"/manage_main": 200}) == {"management-paths-exposed"}


def test_security_txt() -> None:
    assert results(SECURE, security_txt=None) == {"security-txt-missing"}
    assert results(SECURE, security_txt=Response("x", 404)) == {"security-txt-missing"}
    body = "Contact: mailto:a@example.com\n"
    assert results(SECURE, security_txt=Response("x", 200, [], body)) == {"security-txt-no-expires"}
    body += "Expires: 2025-06-01T00:00:00Z\n"
    assert results(SECURE, security_txt=Response("x", 200, [], body)) == {"security-txt-expired"}


def test_tls_version_and_expiry() -> None:
    soon = NOW + dt.timedelta(days=5)
    later = NOW + dt.timedelta(days=90)
    assert results(SECURE, tls=TlsInfo("TLSv1.3", later)) == set()
    assert results(SECURE, tls=TlsInfo("TLSv1.1", later)) == {"tls-version-old"}
    assert results(SECURE, tls=TlsInfo("TLSv1.2", soon)) == {"certificate-expiring"}
    past = NOW - dt.timedelta(days=1)
    chain = [Response("https://example.com/", 200, SECURE)]
    found = extra_findings(chain, Probes(tls=TlsInfo("TLSv1.3", past)), now=NOW)
    assert any("expired" in f["detail"] for f in found)


def test_legacy_tls_accepted_is_a_finding_of_its_own() -> None:
    found = extra_findings(
        [Response("https://example.com/", 200, SECURE)],
        Probes(tls_legacy=LegacyTls(accepted="TLSv1.1")),
        now=NOW,
    )
    legacy = [f for f in found if f["result"] == "tls-legacy-accepted"]
    assert len(legacy) == 1
    assert legacy[0]["severity"] == "high" and legacy[0]["setting"] is None
    assert "accepts TLSv1.1" in legacy[0]["detail"]
    assert legacy[0]["fix"] == "allow TLS 1.2 and 1.3 only (on the TLS terminator)"
    assert results(SECURE, tls_legacy=LegacyTls(accepted="TLSv1")) == {"tls-legacy-accepted"}
    # Kept apart from the graded connection's own protocol: both can fire.
    both = {"tls": TlsInfo("TLSv1.1", None), "tls_legacy": LegacyTls(accepted="TLSv1.1")}
    assert results(SECURE, **both) == {"tls-version-old", "tls-legacy-accepted"}


def test_legacy_tls_refused_or_not_applicable_is_no_finding() -> None:
    assert results(SECURE, tls_legacy=LegacyTls()) == set()
    assert results(SECURE, tls_legacy=None) == set()  # no https:// side to probe
    # Only TLS 1.0/1.1 count: anything else the probe might report is not "legacy".
    assert results(SECURE, tls_legacy=LegacyTls(accepted="TLSv1.2")) == set()


def test_legacy_tls_not_probed_is_said() -> None:
    probe = LegacyTls(skipped="OpenSSL 9 was built without TLS 1.0 and 1.1")
    found = extra_findings([Response("https://example.com/", 200, SECURE)],
                           Probes(tls_legacy=probe), now=NOW)  # fmt: skip
    legacy = [f for f in found if f["test"] == "tls"]
    assert [f["result"] for f in legacy] == ["tls-legacy-not-probed"]
    assert legacy[0]["severity"] == "info"
    assert "not checked: OpenSSL 9 was built without" in legacy[0]["detail"]


def test_cookie_prefixes() -> None:
    cookies = [("set-cookie", "__Host-sid=1; Secure; Path=/"), ("set-cookie", "pref=1")]
    assert results([*SECURE, *cookies]) == set()
    assert results([*SECURE, ("set-cookie", "sid=1; Secure; HttpOnly")]) == {
        "cookies-without-prefix"
    }


def test_cors_reflection() -> None:
    echo = [("access-control-allow-origin", EVIL_ORIGIN)]
    assert results(SECURE, cors=Response("x", 200, echo)) == set()
    creds = [*echo, ("access-control-allow-credentials", "true")]
    assert results(SECURE, cors=Response("x", 200, creds)) == {
        "cors-origin-reflected-with-credentials"
    }


# -- local sites ------------------------------------------------------------------------

GOOD = [
    ("content-type", "text/html"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("strict-transport-security", "max-age=63072000"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
]


def make_app(bad: bool) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        origin = dict(scope["headers"]).get(b"origin", b"").decode()
        status, headers, body = 200, list(GOOD), b"<p>x"
        if bad:
            headers += [("server", "Apache/2.4.1"), ("x-powered-by", "PHP/8.3"),
                        ("set-cookie", "sid=1; Secure; HttpOnly")]  # fmt: skip
            if origin:
                headers += [("access-control-allow-origin", origin),
                            ("access-control-allow-credentials", "true")]  # fmt: skip
            if path == "/manage":
                status, body = 401, b""
                headers.append(("www-authenticate", 'Basic realm="Zope"'))
            elif path in ("/.well-known/security.txt", "/manage_workspace"):
                status, body = 404, b""
        else:
            headers += [*SECURE, ("set-cookie", "__Host-sid=1; Secure; HttpOnly; Path=/")]
            if path.startswith("/manage"):
                status, body = 404, b""
            elif path == "/.well-known/security.txt":
                body = f"Contact: mailto:sec@example.com\nExpires: {FUTURE}\n".encode()
        raw = [(k.encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app


def short_lived(directory: Path, days: int) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    (directory / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Tls(directory / "c.pem", directory / "c.pem", directory / "k.pem")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("findings-tls"))


@pytest.fixture(scope="module")
def sites(tls: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    expiring = short_lived(tmp_path_factory.mktemp("short"), 3)
    ports = {"good": free_port(), "bad": free_port(), "expiring": free_port()}
    servers = [
        UvicornThread(make_app(False), ports["good"], tls).start(),
        UvicornThread(make_app(True), ports["bad"], tls).start(),
        UvicornThread(make_app(False), ports["expiring"], expiring).start(),
    ]
    try:
        wait_healthy(f"https://127.0.0.1:{ports['good']}/", tls.client_context())
        yield ports
    finally:
        for s in servers:
            s.stop()


def scan(port: int, tls: Tls, timeout: float = 10.0) -> dict[str, Any]:
    opts = ScanOptions(ca=tls.ca, http_port=1, timeout=timeout)
    return run_sync(scan_site(f"https://127.0.0.1:{port}/", opts))


def extras(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["result"]: f for f in result["findings"] if f.get("kind") == "extra"}


def test_good_local_site(tls: Tls, sites: dict[str, int]) -> None:
    result = scan(sites["good"], tls)
    assert extras(result) == {}
    assert result["grade"] == "A+"


def test_bad_local_site(tls: Tls, sites: dict[str, int]) -> None:
    good, bad = scan(sites["good"], tls), scan(sites["bad"], tls)
    found = extras(bad)
    assert set(found) == {
        "coop-missing", "coep-missing", "permissions-policy-missing",
        "fingerprint-headers-present", "management-paths-exposed", "security-txt-missing",
        "cookies-without-prefix", "cors-origin-reflected-with-credentials",
    }  # fmt: skip
    assert "/manage (401)" in found["management-paths-exposed"]["detail"]
    assert "/manage_main (200)" in found["management-paths-exposed"]["detail"]
    assert "/manage_workspace" not in found["management-paths-exposed"]["detail"]
    assert found["management-paths-exposed"]["setting"] == "manage_paths"
    assert found["fingerprint-headers-present"]["setting"] == "remove_headers"
    assert "Apache/2.4.1" in found["fingerprint-headers-present"]["detail"]
    # The extra findings never change the score.
    assert (bad["grade"], bad["score"]) == (good["grade"], good["score"])


def test_tls_of_the_connection(tls: Tls, sites: dict[str, int]) -> None:
    seen: list[TlsInfo] = []
    url = f"https://127.0.0.1:{sites['good']}/"
    run_sync(retrieve(url, ScanOptions(ca=tls.ca, http_port=1), tls=seen))
    assert seen[0].version in ("TLSv1.2", "TLSv1.3")
    assert seen[0].not_after is not None
    assert seen[0].not_after > dt.datetime.now(dt.UTC) + dt.timedelta(days=14)
    # A self-signed certificate expiring in 3 days: graded unverified, and flagged.
    result = scan(sites["expiring"], tls)
    assert result["tests"]["strict-transport-security"]["result"] == "hsts-invalid-cert"
    assert "certificate-expiring" in extras(result)
    assert "expires in 2 days" in extras(result)["certificate-expiring"]["detail"]


# -- batch mode -------------------------------------------------------------------------


@pytest.fixture
def broken_tls() -> Iterator[int]:
    """A port that accepts TCP and answers garbage to the TLS handshake."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Nope\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_url_file() -> None:
    from sitewarden.cli_scan import read_url_file

    text = "# sites\nhttps://a.example/\n\n  b.example  # the shop\n#c.example\n"
    assert read_url_file(text) == ["https://a.example/", "b.example"]


def test_batch_mixed_sites(
    capsys: pytest.CaptureFixture[str],
    tls: Tls,
    sites: dict[str, int],
    broken_tls: int,
    tmp_path: Path,
) -> None:
    import json

    from sitewarden.cli import main

    good = f"https://127.0.0.1:{sites['good']}/"
    bad = f"https://127.0.0.1:{sites['bad']}/"
    down = f"https://127.0.0.1:{free_port()}/"
    broken = f"https://127.0.0.1:{broken_tls}/"
    listing = tmp_path / "sites.txt"
    listing.write_text(f"# a mix\n{good}\n{down}\n\n{broken}  # TLS garbage\n{bad}\n")
    common = ("--ca", str(tls.ca), "--http-port", "1", "--timeout", "3")
    code = main(["scan", "--from", str(listing), *common, "--concurrency", "3", "--format", "json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 1  # two sites could not be scanned
    assert [r["url"] for r in results] == [good, down, broken, bad]
    assert [("error" in r) for r in results] == [False, True, True, False]
    assert results[0]["grade"] == results[3]["grade"] == "A+"
    # Text: a summary table (the progress bar went to stderr).
    code = main(["scan", good, "--from", str(listing), *common])
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert code == 1
    assert "5 sites: 3 graded, 2 errors" in out
    assert out.count("The site") == 2  # the error column (folded in a narrow terminal)
    assert "0 + 8 extra" in out
    assert good not in captured.err


def test_batch_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sitewarden.cli import main

    assert main(["scan"]) == 2
    assert main(["scan", "--from", str(tmp_path / "missing.txt")]) == 2
    (tmp_path / "empty.txt").write_text("# nothing\n")
    assert main(["scan", "--from", str(tmp_path / "empty.txt")]) == 2
    assert "no URL" in capsys.readouterr().err


def test_single_site_text_lists_extra_findings(
    capsys: pytest.CaptureFixture[str], tls: Tls, sites: dict[str, int]
) -> None:
    from sitewarden.cli import main

    url = f"https://127.0.0.1:{sites['bad']}/"
    assert main(["scan", url, "--ca", str(tls.ca), "--http-port", "1"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "beyond the Observatory (not scored)" in out
    assert "manage_paths" in out and "remove_headers" in out


# -- TLS 1.0/1.1 still accepted ---------------------------------------------------------


#: The server names (SNI) the legacy server was sent, in order (None: no SNI).
LEGACY_SNI: list[str | None] = []


def legacy_server(app: Any, port: int, tls: Tls) -> UvicornThread:
    """Uvicorn serving TLS 1.0 to 1.3 (security level 0: OpenSSL 3 needs it for 1.0/1.1)."""
    server = UvicornThread(app, port, tls)

    def record_sni(sslobj: Any, name: str | None, context: ssl.SSLContext) -> None:
        LEGACY_SNI.append(name)

    def factory(config: Any, default: Any) -> ssl.SSLContext:
        context: ssl.SSLContext = default()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.sni_callback = record_sni
        return context

    server.server.config.ssl_context_factory = factory
    return server.start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class LegacyBlackhole:
    """A TCP proxy to a modern HTTPS site that never answers a ClientHello offering ≤ 1.1.

    Like a middlebox that drops legacy handshakes: the TCP connection is accepted, the
    ClientHello read, then nothing (until the test ends). Modern handshakes pass through.
    """

    def __init__(self, backend: int) -> None:
        self.backend = backend
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        while len(head) < 11:  # record header (5), handshake header (4), client_version (2)
            chunk = conn.recv(11 - len(head))
            if not chunk:
                conn.close()
                return
            head += chunk
        if head[0] == 0x16 and head[5] == 0x01 and head[9:11] < b"\x03\x03":
            self.held.append(conn)  # a ClientHello of TLS 1.1 or older: never answered
            return
        upstream = socket.create_connection(("127.0.0.1", self.backend))
        upstream.sendall(head)
        threading.Thread(target=_pump, args=(upstream, conn), daemon=True).start()
        _pump(conn, upstream)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(scope="module")
def legacy_site(tls: Tls) -> Iterator[int]:
    """The good site's app on a server that also accepts TLS 1.0 and 1.1."""
    port = free_port()
    server = legacy_server(make_app(False), port, tls)
    try:
        wait_healthy(f"https://127.0.0.1:{port}/", tls.client_context())
        yield port
    finally:
        server.stop()


@pytest.fixture(scope="module")
def blackhole(sites: dict[str, int]) -> Iterator[LegacyBlackhole]:
    """The good site behind a proxy that swallows legacy ClientHellos."""
    proxy = LegacyBlackhole(sites["good"])
    try:
        yield proxy
    finally:
        proxy.close()


def probe_now(port: int, host: str = "127.0.0.1", **opts: Any) -> LegacyTls:
    async def go() -> LegacyTls:
        return await probe_legacy_tls(f"https://{host}:{port}/", Scanner(ScanOptions(**opts)))

    return run_sync(go())


def test_legacy_context_is_made_once_and_quietly() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        context, why = legacy_tls_context()
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert context is not None, why  # this machine's OpenSSL 3 offers TLS 1.0/1.1
    assert context.maximum_version == ssl.TLSVersion.TLSv1_1
    assert context.minimum_version == ssl.TLSVersion.TLSv1
    assert context.verify_mode == ssl.CERT_NONE
    # Every site of a scan shares the scan's contexts, the legacy one too.
    scanner = Scanner()
    site = scanner.for_site()
    assert site.legacy_context is scanner.legacy_context is not None
    assert site.context is scanner.context


def test_legacy_probe_answers(
    sites: dict[str, int], legacy_site: int, blackhole: LegacyBlackhole, broken_tls: int
) -> None:
    LEGACY_SNI.clear()
    assert probe_now(legacy_site) == LegacyTls(accepted="TLSv1.1")
    assert probe_now(legacy_site, "localhost") == LegacyTls(accepted="TLSv1.1")
    assert LEGACY_SNI == [None, "localhost"]  # SNI for a host name, not for an address
    assert probe_now(sites["good"]) == LegacyTls()  # uvicorn's default: TLS 1.2 and up
    assert probe_now(broken_tls) == LegacyTls()  # garbage instead of a ServerHello
    assert probe_now(free_port()) == LegacyTls()  # nothing listens
    held = len(blackhole.held)
    start = time.monotonic()
    assert probe_now(blackhole.port, timeout=1) == LegacyTls()
    assert 0.9 < time.monotonic() - start < 3
    assert len(blackhole.held) == held + 1  # it did get there, and was left hanging


def test_legacy_probe_skipped_behind_a_proxy(
    legacy_site: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe connects directly; with a proxy configured that might reach nothing, and
    # a refusal it never got must not read as "TLS 1.0/1.1 refused".
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:1")
    result = probe_now(legacy_site)
    assert result.accepted is None
    assert result.skipped is not None and "proxy" in result.skipped


def test_site_accepting_tls_1_1_is_flagged(tls: Tls, legacy_site: int) -> None:
    result = scan(legacy_site, tls)
    found = extras(result)
    assert set(found) == {"tls-legacy-accepted"}
    assert "accepts TLSv1.1" in found["tls-legacy-accepted"]["detail"]
    assert found["tls-legacy-accepted"]["severity"] == "high"
    # The graded connection itself used modern TLS, and the grade is the good site's.
    assert "tls-version-old" not in found
    assert result["grade"] == "A+"


def test_site_dropping_legacy_hellos_still_grades(tls: Tls, blackhole: LegacyBlackhole) -> None:
    held = len(blackhole.held)
    start = time.monotonic()
    result = scan(blackhole.port, tls, timeout=2)
    elapsed = time.monotonic() - start
    assert len(blackhole.held) == held + 1  # the probe's ClientHello got there, unanswered
    assert "error" not in result
    assert result["grade"] == "A+"
    assert extras(result) == {}  # a probe that timed out is a refusal, not a finding
    assert 1.9 < elapsed < 2 + 3  # it waited out the timeout once, alongside the rest


def test_legacy_tls_not_probed_when_openssl_cannot(
    tls: Tls, legacy_site: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssl, "HAS_TLSv1", False)
    monkeypatch.setattr(ssl, "HAS_TLSv1_1", False)
    context, why = legacy_tls_context()
    assert context is None and why is not None and "without TLS 1.0 and 1.1" in why
    # Even the server that accepts TLS 1.1 is not reported as fine: it is "not probed".
    found = extras(scan(legacy_site, tls))
    assert set(found) == {"tls-legacy-not-probed"}
    assert "without TLS 1.0 and 1.1" in found["tls-legacy-not-probed"]["detail"]
    # A site graded over plain HTTP has no TLS to probe: nothing is said.
    plain = free_port()
    server = UvicornThread(make_app(False), plain).start()
    try:
        opts = ScanOptions(https_port=1, timeout=5)
        result = run_sync(scan_site(f"http://127.0.0.1:{plain}/", opts))
    finally:
        server.stop()
    assert "grade" in result
    assert not [f for f in result["findings"] if f["result"].startswith("tls-legacy")]
