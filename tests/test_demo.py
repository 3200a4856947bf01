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
from typing import Any, Literal

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from sitewarden.demo import app as demo_app
from sitewarden.demo.accounts import Accounts, password_hasher
from sitewarden.demo.app import BAD_LOGIN, STATIC_DIR, Comments, create_app
from sitewarden.demo.tls import ensure_tls

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # StarletteDeprecationWarning: "install httpx2 instead"
    from starlette.testclient import TestClient

LOOPBACK = ("127.0.0.1", 50000)
TOKEN = re.compile(r'name="_authenticator" value="([^"]+)"')


class Site:
    """One demo site built by create_app, with the admin password it announced."""

    def __init__(self, state_dir: Path, https: bool = True) -> None:
        self.announced: list[tuple[str, str]] = []
        self.app, self.warden = create_app(
            state_dir,
            https,
            https_port=None,
            on_admin_password=lambda name, pw: self.announced.append((name, pw)),
        )
        self.scheme = "https" if https else "http"

    @property
    def store(self) -> Any:
        return self.warden.keys.store

    @property
    def admin_password(self) -> str:
        assert self.announced and self.announced[0][0] == "admin"
        return self.announced[0][1]

    def client(self, host: str = "127.0.0.1", peer: tuple[str, int] = LOOPBACK) -> TestClient:
        return TestClient(self.app, base_url=f"{self.scheme}://{host}", client=peer)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "state")
    yield s
    s.warden.keys.close()


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
    stored = Accounts(site.store).stored_hash("admin")
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
    again.warden.keys.close()


def test_reset_admin_prints_a_new_password_and_ends_old_sessions(
    site: Site, tmp_path: Path
) -> None:
    client = site.client()
    assert login(client, "admin", site.admin_password).status_code == 303
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
        assert login(other, "admin", announced[0][1]).status_code == 303
    finally:
        warden.keys.close()


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


def test_unknown_user_costs_an_argon2_verification(site: Site) -> None:
    calls: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
            calls.append(str(hash))
            return super().verify(hash, password)

    params = password_hasher()
    accounts = Accounts(
        site.store,
        Spy(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            hash_len=params.hash_len,
            salt_len=params.salt_len,
            type=params.type,
        ),
    )
    assert accounts.verify("nobody", "x") is None
    assert accounts.verify("Not A Name!", "x") is None
    assert accounts.verify("admin", "x") is None
    assert len(calls) == 3
    assert all(c.startswith("$argon2id$v=19$m=19456,t=2,p=1$") for c in calls)


def test_failed_sign_ins_are_throttled_per_client(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_app, "LOGIN_FAILURES_ALLOWED", 2)
    client = site.client()
    assert login(client, "admin", "bad1").status_code == 400
    assert login(client, "admin", "bad2").status_code == 400
    blocked = login(client, "admin", site.admin_password)
    assert blocked.status_code == 429
    assert "set-cookie" not in blocked.headers
    other = site.client(peer=("127.0.0.2", 1234))  # another address is not affected
    assert login(other, "admin", site.admin_password).status_code == 303


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
    Accounts(site.store).create("bob", "bob-password-123")
    bob = site.client()
    assert login(bob, "bob", "bob-password-123").status_code == 303
    assert bob.get("/manage").status_code == 403
    token = token_of(bob.get("/").text)
    r = bob.post("/manage/users", data={"_authenticator": token, "username": "mallory"})
    assert r.status_code == 403
    assert Accounts(site.store).get("mallory") is None

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
        site.warden.keys.close()


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
