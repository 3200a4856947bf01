"""The Mozilla HTTP Observatory's grade for sites protected by sitewarden.

Mozilla's own scanner (``@mdn/mdn-http-observatory``, pinned in
``tests/observatory/package.json``) grades real HTTPS servers on 127.0.0.1 through
``tests/observatory/grade.mjs``, which trusts the servers' local CA through
``NODE_EXTRA_CA_CERTS`` — an untrusted certificate would cost 40 points, so "A+" here also
means "the scanner verified TLS". See ``docs/testing.md``.

* the demo (``sitewarden demo --https``): A+ and at least 135 — the most npm's scanner
  (1.4.8, algorithm 4) gives a site that cannot be on the HSTS preload list;
* a bare Starlette page wrapped by ``Warden(preset="strict")`` and nothing else: A+ with
  the exact result expected of every test — the preset alone earns it;
* the same page without sitewarden, as a control: the harness sees the difference (F).

Node.js and npm are needed; without them the tests are skipped, unless
``SITEWARDEN_REQUIRE_SERVICES=1`` (CI), where they fail. ``tests/observatory/node_modules``
is installed by ``.ci/run``, or here on first use (``npm ci --ignore-scripts``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    DemoProcess,
    Tls,
    UvicornThread,
    free_port,
    make_tls,
    missing,
    start_demo,
    stop_process,
    wait_healthy,
)

HARNESS_DIR = Path(__file__).parent / "observatory"
HARNESS = HARNESS_DIR / "grade.mjs"
SCANNER = HARNESS_DIR / "node_modules" / "@mdn" / "mdn-http-observatory" / "package.json"
SCAN_TIMEOUT = 120
#: The scanner's package.json: "engines": {"node": ">=20.0.0"}.
MIN_NODE = 20

#: What every test of the scanner must say about a page served by Warden("strict") over
#: HTTPS with an HTTP port that redirects (npm 1.4.8, algorithm 4: the X-Frame-Options
#: bonus comes from the CSP's frame-ancestors, and there is no COOP/COEP test yet).
STRICT_EXPECTED = {
    "content-security-policy": "csp-implemented-with-no-unsafe-default-src-none",  # +10
    "cookies": "cookies-secure-with-httponly-sessions-and-samesite",  # +5
    "cross-origin-resource-sharing": "cross-origin-resource-sharing-not-implemented",
    "redirection": "redirection-to-https",
    "referrer-policy": "referrer-policy-private",  # +5
    "strict-transport-security": "hsts-implemented-max-age-at-least-six-months",
    "subresource-integrity": "sri-not-implemented-but-no-scripts-loaded",
    "x-content-type-options": "x-content-type-options-nosniff",
    "x-frame-options": "x-frame-options-implemented-via-csp",  # +5
    "cross-origin-resource-policy": "corp-implemented-with-same-origin",  # +10
}


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` binary, with the scanner installed (``npm ci`` on first use)."""
    node = shutil.which("node")
    if node is None:
        missing("Node.js is not installed (Debian: apt-get install nodejs npm)")
    assert node is not None
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    found = re.match(r"v(\d+)\.", version)
    major = int(found[1]) if found else 0
    if major < MIN_NODE:
        missing(f"Node.js {version or '?'} is too old: the scanner needs {MIN_NODE} or later")
    if not SCANNER.exists():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm is not installed (Debian: apt-get install npm)")
        assert npm is not None
        # --ignore-scripts: the scanner's postinstall downloads the HSTS preload and TLD
        # lists from GitHub, which a closed network cannot; grade.mjs does without them.
        done = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=HARNESS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not SCANNER.exists():
            missing(f"npm ci in {HARNESS_DIR} failed:\n{done.stdout}\n{done.stderr}")
    return node


def grade(node: str, https_port: int, http_port: int | None, ca: Path | None) -> dict[str, Any]:
    """Run the Observatory harness against 127.0.0.1; return its JSON result."""
    cmd = [node, str(HARNESS), "--host", "127.0.0.1", "--https-port", str(https_port)]
    if http_port is not None:
        cmd += ["--http-port", str(http_port)]
    env = {k: v for k, v in os.environ.items() if k != "NODE_EXTRA_CA_CERTS"}
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=SCAN_TIMEOUT, env=env, check=False
    )
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(
            f"the harness printed no JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    assert "error" not in result, result
    scan = result["scan"]
    print(
        f"Observatory ({result['scanner']['package']}@{result['scanner']['version']}): "
        f"{scan['grade']} {scan['score']}, "
        f"{scan['testsPassed']}/{scan['testsQuantity']} tests passed"
    )
    for name, test in result["tests"].items():
        print(f"  {name}: {test['result']} ({test['scoreModifier']:+d})")
    return result


def summary(result: dict[str, Any]) -> dict[str, str]:
    return {name: test["result"] for name, test in result["tests"].items()}


# -- the demo --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoProcess]:
    """``sitewarden demo --https`` on free ports with a fresh state directory."""
    proc = start_demo(tmp_path_factory.mktemp("observatory-demo"))
    try:
        yield proc
    finally:
        stop_process(proc.proc)


def test_demo_grades_a_plus(node: str, demo_https: DemoProcess) -> None:
    """The demo site gets A+ and at least 135 points from Mozilla's scanner.

    The scanner fetches ``http://127.0.0.1:<http-port>/`` (must redirect to HTTPS) and
    ``https://127.0.0.1:<port>/`` (TLS verified against the demo's CA), then grades
    headers, cookies, the redirect chain, CORS and the page's scripts (SRI).
    """
    result = grade(node, demo_https.port, demo_https.http_port, demo_https.tls.ca)
    assert result["target"]["httpsVerified"] is True, "TLS was not verified"
    failed = {n: t["result"] for n, t in result["tests"].items() if not t["pass"]}
    assert result["scan"]["grade"] == "A+", (result["scan"], failed)
    assert result["scan"]["score"] >= 135, (result["scan"]["score"], summary(result))
    assert not failed, failed
    assert result["tests"]["redirection"]["result"] == "redirection-to-https"


# -- a bare page behind Warden("strict") ---------------------------------------------


PAGE = b"<!doctype html><html lang=en><title>bare</title><p>Nothing but text.</p></html>"


def bare_app(*, cookie: bool) -> Any:
    """One HTML page, no scripts; with *cookie* it sets a plain ``app_session`` cookie."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse, Response
    from starlette.routing import Route

    async def home(request: Request) -> Response:
        response = HTMLResponse(PAGE)
        if cookie:
            # As an application sends it: no Secure, no HttpOnly, no SameSite.
            response.headers.append("set-cookie", "app_session=abc123; Path=/")
        return response

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/", home, methods=["GET"]), Route("/healthz", healthz, methods=["GET"])]
    )


@dataclass
class Served:
    https_port: int
    http_port: int
    tls: Tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("observatory-tls"))


def serve(app: Any, tls: Tls, https_port: int) -> Iterator[Served]:
    """Serve *app* on an HTTPS port and an HTTP port (the same app on both)."""
    http_port = free_port()
    servers = [UvicornThread(app, https_port, tls).start(), UvicornThread(app, http_port).start()]
    try:
        wait_healthy(f"https://127.0.0.1:{https_port}/healthz", tls.client_context())
        yield Served(https_port, http_port, tls)
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(params=[True, False], ids=["app-cookie", "no-cookie"])
def strict_site(
    request: pytest.FixtureRequest, tls: Tls, tmp_path: Path
) -> Iterator[tuple[Served, bool]]:
    """The bare page behind ``Warden("strict")``; its HTTP port redirects to HTTPS."""
    from sitewarden.warden import Warden

    https_port = free_port()
    warden = Warden(
        preset="strict",
        store=f"sqlite:///{tmp_path / 'state.db'}",
        allowed_hosts=["127.0.0.1"],
        https_port=https_port,
    )
    for served in serve(warden.asgi(bare_app(cookie=request.param)), tls, https_port):
        yield served, request.param


def test_strict_preset_alone_grades_a_plus(node: str, strict_site: tuple[Served, bool]) -> None:
    """A page with no security code of its own gets A+ from ``Warden(preset="strict")``.

    Every one of the scanner's tests gets the best result a script-free page on 127.0.0.1
    can get (:data:`STRICT_EXPECTED`). With ``app-cookie`` the page sets
    ``app_session=abc123; Path=/`` as a careless application would; the scanner counts
    it as a session cookie (its name contains ``sess``), which would cost 40 points
    unhardened — sitewarden's cookie hardening turns it into +5: 135. Without a cookie the
    cookie test is neutral (``cookies-not-found``): 130.
    """
    served, cookie = strict_site
    result = grade(node, served.https_port, served.http_port, served.tls.ca)
    expected = dict(STRICT_EXPECTED)
    if not cookie:
        expected["cookies"] = "cookies-not-found"
    assert result["target"]["httpsVerified"] is True
    assert summary(result) == expected
    assert result["scan"]["grade"] == "A+"
    assert result["scan"]["score"] == (135 if cookie else 130)


def test_unprotected_page_fails(node: str, tls: Tls) -> None:
    """Control: the same page without sitewarden gets F — the harness measures something.

    No CSP (-25), no X-Frame-Options (-20), no HSTS (-20), no redirect from HTTP (-20),
    no X-Content-Type-Options (-5), and its ``app_session`` cookie without Secure (-40).
    """
    https_port = free_port()
    for served in serve(bare_app(cookie=True), tls, https_port):
        result = grade(node, served.https_port, served.http_port, served.tls.ca)
    assert result["scan"]["grade"] == "F", result["scan"]
    assert summary(result)["content-security-policy"] == "csp-not-implemented"
    assert summary(result)["redirection"] == "redirection-missing"
