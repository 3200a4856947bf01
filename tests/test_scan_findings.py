"""``sitewarden scan``'s findings beyond the Observatory: the sans-I/O rules and local sites.

Every extra finding has ``"kind": "extra"``, a fix and the sitewarden setting (or ``None``),
and never changes the grade or the score.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sitewarden.audit.findings import EVIL_ORIGIN, Probes, TlsInfo, extra_findings
from sitewarden.audit.observatory import Response
from sitewarden.audit.scan import ScanOptions, retrieve, run_sync, scan_site
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


def scan(port: int, tls: Tls) -> dict[str, Any]:
    return run_sync(scan_site(f"https://127.0.0.1:{port}/", ScanOptions(ca=tls.ca, http_port=1)))


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
