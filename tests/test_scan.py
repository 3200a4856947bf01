"""``sitewarden scan``: the sans-I/O grader's rules, the retriever's failures, the command.

Parity with the npm Observatory over a large corpus is in test_scan_parity.py; these tests
need no Node: they check what that corpus cannot reach (the HSTS preload list, the
extra-credit rule at its boundary) and that every failure of a site is a clean error.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sitewarden.audit.observatory import (
    Fetch,
    Response,
    Retrieved,
    grade,
    grade_for_score,
    node_headers,
    parse_csp,
)
from sitewarden.audit.scan import ScanOptions, run_sync, scan_site
from sitewarden.cli import main
from tests.browser.conftest import Tls, UvicornThread, free_port, make_tls, wait_healthy

GOOD = [
    ("content-type", "text/html"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("strict-transport-security", "max-age=63072000"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
]


def site(headers: list[tuple[str, str]], body: str = "<p>x</p>", **kw: Any) -> Retrieved:
    url = "https://example.com/"
    https = Fetch(url, [Response(url, 200, headers, body)], verified=kw.pop("verified", True))
    http = Fetch(
        "http://example.com/",
        [
            Response("http://example.com/", 301, [("location", url)]),
            Response(url, 200, headers, body),
        ],
    )
    return Retrieved("example.com", http=http, https=https, **kw)


# -- the grader -------------------------------------------------------------------------


def test_best_site_scores_130() -> None:
    result = grade(site(GOOD))
    assert (result["grade"], result["score"]) == ("A+", 130)
    assert all(t["pass"] for t in result["tests"].values())


def test_extra_credit_only_with_at_most_ten_points_lost() -> None:
    # -10 (HSTS under six months): the bonuses still count.
    short = [h for h in GOOD if h[0] != "strict-transport-security"]
    result = grade(site([*short, ("strict-transport-security", "max-age=60")]))
    assert result["score"] == 120
    # -15 (no XCTO, -5; HSTS short, -10): no bonus at all: 100 - 15.
    no_xcto = [h for h in short if h[0] != "x-content-type-options"]
    result = grade(site([*no_xcto, ("strict-transport-security", "max-age=60")]))
    assert (result["grade"], result["score"]) == ("A-", 85)


def test_grade_chart() -> None:
    assert grade_for_score(-30) == (0, "F")
    assert grade_for_score(87) == (87, "A-")
    assert grade_for_score(135) == (135, "A+")
    assert grade_for_score(64)[1] == "C+"


def test_preloaded_host() -> None:
    result = grade(site([], preload={"example.com": True}))
    assert result["tests"]["strict-transport-security"]["result"] == "hsts-preloaded"
    assert result["tests"]["redirection"]["result"] == "redirection-all-redirects-preloaded"


def test_unverified_certificate_costs_hsts() -> None:
    result = grade(site(GOOD, verified=False))
    assert result["tests"]["strict-transport-security"]["result"] == "hsts-invalid-cert"


def test_refused_statuses() -> None:
    url = "https://example.com/"
    down = Retrieved("example.com", http=None, https=None)
    with pytest.raises(ValueError, match="down"):
        grade(down)
    gone = Retrieved("example.com", http=None, https=Fetch(url, [Response(url, 500)]))
    with pytest.raises(ValueError, match="500"):
        grade(gone)


def test_node_header_merging() -> None:
    merged = node_headers(
        [("X-A", "1"), ("x-a", "2"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2"),
         ("Content-Type", "text/html"), ("content-type", "text/plain")]
    )  # fmt: skip
    assert merged == {"x-a": "1, 2", "set-cookie": ["a=1", "b=2"], "content-type": "text/html"}


def test_csp_parser() -> None:
    assert parse_csp(["default-src 'self' https://a.com https://a.com/x"]) == {
        "default-src": {"'self'", "https://a.com"}
    }
    assert parse_csp(["script-src"]) == {"script-src": {"'none'"}}
    with pytest.raises(ValueError):
        parse_csp(["a b"])
    with pytest.raises(ValueError):
        parse_csp(["img-src a; img-src b"])


# -- the retriever against local servers ------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    status, headers, body = 200, [*GOOD, ("set-cookie", "sid=1; Secure; HttpOnly")], b"<p>x"
    if path == "/loop":
        status, headers, body = 302, [("location", "/loop")], b""
    elif path == "/huge":
        body = b"x" * 200_000
    elif path == "/missing":
        status, body = 404, b"no"
    elif path == "/xfo":  # framing stopped by X-Frame-Options alone: +5 in 1.6.3 only
        headers = [h for h in headers if h[0] != "content-security-policy"]
        headers += [("content-security-policy", "default-src 'none'"), ("x-frame-options", "DENY")]
    raw = [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("scan-tls"))


@pytest.fixture(scope="module")
def server(tls: Tls) -> Iterator[tuple[int, int]]:
    https_port, http_port = free_port(), free_port()
    servers = [UvicornThread(app, https_port, tls).start(), UvicornThread(app, http_port).start()]
    try:
        wait_healthy(f"https://127.0.0.1:{https_port}/", tls.client_context())
        yield https_port, http_port
    finally:
        for s in servers:
            s.stop()


def scan(url: str, **kw: Any) -> dict[str, Any]:
    return run_sync(scan_site(url, ScanOptions(**kw)))


def test_scan_local_site(tls: Tls, server: tuple[int, int]) -> None:
    https_port, http_port = server
    result = scan(f"https://127.0.0.1:{https_port}/", ca=tls.ca, http_port=http_port)
    assert result["tests"]["strict-transport-security"]["result"] == (
        "hsts-implemented-max-age-at-least-six-months"
    )
    # The HTTP port serves the page instead of redirecting.
    assert result["tests"]["redirection"]["result"] == "redirection-missing"
    assert {f["test"] for f in result["findings"] if "kind" not in f} == {"redirection"}
    assert result["tests"]["cookies"]["result"] == "cookies-secure-with-httponly-sessions"


def test_untrusted_certificate_is_graded_unverified(server: tuple[int, int]) -> None:
    result = scan(f"https://127.0.0.1:{server[0]}/", http_port=1)
    assert result["tests"]["strict-transport-security"]["result"] == "hsts-invalid-cert"


def test_site_down_is_an_error() -> None:
    result = scan(f"https://127.0.0.1:{free_port()}/", http_port=free_port(), timeout=2)
    assert result["error"] == "The site seems to be down."


def test_huge_body_is_an_error(tls: Tls, server: tuple[int, int]) -> None:
    result = scan(f"https://127.0.0.1:{server[0]}/huge", ca=tls.ca, http_port=1, max_body=1000)
    assert "larger than 1000 bytes" in result["error"]


def test_redirect_loop_is_graded_with_a_finding(tls: Tls, server: tuple[int, int]) -> None:
    result = scan(f"https://127.0.0.1:{server[0]}/loop", ca=tls.ca, http_port=1)
    assert "error" not in result
    assert {"test": "redirection", "result": "redirect-limit-reached", "score_modifier": 0} in (
        result["findings"]
    )


def test_error_status_is_an_error(tls: Tls, server: tuple[int, int]) -> None:
    result = scan(f"https://127.0.0.1:{server[0]}/missing", ca=tls.ca, http_port=1)
    assert "404" in result["error"]


def test_malformed_response_is_an_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(4):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"this is not HTTP\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = scan(f"http://127.0.0.1:{port}/", https_port=1, timeout=2)
    finally:
        listener.close()
    assert result == {"url": f"http://127.0.0.1:{port}/", "error": "The site seems to be down."}


def test_not_a_url() -> None:
    assert "not an http(s) URL" in scan("ftp://example.com/")["error"]


# -- the command ------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_cli_json_one_site(
    capsys: pytest.CaptureFixture[str], tls: Tls, server: tuple[int, int]
) -> None:
    https_port, http_port = server
    url = f"https://127.0.0.1:{https_port}/"
    code, out = run(
        capsys, "scan", url, "--ca", str(tls.ca), "--http-port", str(http_port), "--format", "json"
    )
    result = json.loads(out)
    assert code == 0
    assert result["url"] == url
    assert set(result) == {
        "url", "grade", "score", "tests", "findings", "observatory", "algorithm_version"
    }  # fmt: skip
    assert (result["observatory"], result["algorithm_version"]) == ("1.6.3", 5)
    assert set(result["tests"]["cookies"]) == {"result", "score_modifier", "pass"}


def test_cli_observatory_version(
    capsys: pytest.CaptureFixture[str], tls: Tls, server: tuple[int, int]
) -> None:
    url = f"https://127.0.0.1:{server[0]}/xfo"
    args = ("scan", url, "--ca", str(tls.ca), "--http-port", "1", "--format", "json")
    code, out = run(capsys, *args)
    new = json.loads(out)
    code_old, out = run(capsys, *args, "--observatory-version", "1.4.8")
    old = json.loads(out)
    assert (code, code_old) == (0, 0)
    assert (new["observatory"], new["algorithm_version"]) == ("1.6.3", 5)
    assert (old["observatory"], old["algorithm_version"]) == ("1.4.8", 4)
    xfo = "x-frame-options"
    assert (
        new["tests"][xfo]["result"]
        == old["tests"][xfo]["result"]
        == ("x-frame-options-sameorigin-or-deny")
    )
    assert (new["tests"][xfo]["score_modifier"], old["tests"][xfo]["score_modifier"]) == (5, 0)
    assert new["score"] == old["score"] + 5
    code, out = run(capsys, "scan", url, "--ca", str(tls.ca), "--http-port", "1")
    assert "graded as HTTP Observatory 1.6.3" in out
    code, out = run(capsys, "scan", url, "--ca", str(tls.ca), "--observatory-version", "1.4.8")
    assert "graded as HTTP Observatory 1.4.8" in out


def test_cli_observatory_version_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["scan", "https://example.com/", "--observatory-version", "1.5.0"])
    assert exit_.value.code == 2
    assert "invalid choice: '1.5.0'" in capsys.readouterr().err


def test_scan_options_version_reaches_the_grader(tls: Tls, server: tuple[int, int]) -> None:
    url = f"https://127.0.0.1:{server[0]}/xfo"
    old = scan(url, ca=tls.ca, http_port=1, observatory_version="1.4.8")
    assert (old["observatory"], old["tests"]["x-frame-options"]["score_modifier"]) == ("1.4.8", 0)
    bad = scan(url, ca=tls.ca, http_port=1, observatory_version="9.9")
    assert bad == {"url": url, "error": "unknown Observatory version '9.9' (known: 1.6.3, 1.4.8)"}


def test_cli_fail_under_and_several_sites(
    capsys: pytest.CaptureFixture[str], tls: Tls, server: tuple[int, int]
) -> None:
    good = f"https://127.0.0.1:{server[0]}/"
    down = f"https://127.0.0.1:{free_port()}/"
    code, out = run(
        capsys, "scan", good, down, "--ca", str(tls.ca), "--http-port", "1", "--format", "json"
    )
    results = json.loads(out)
    assert code == 1  # one site is down
    assert [r["url"] for r in results] == [good, down]
    assert "error" in results[1]
    args = ("scan", good, "--ca", str(tls.ca), "--http-port", "1")
    assert run(capsys, *args, "--fail-under", "B")[0] == 0
    assert run(capsys, *args, "--fail-under", "A+")[0] == (
        0 if json.loads(run(capsys, *args, "--format", "json")[1])["grade"] == "A+" else 1
    )


def test_cli_text_and_missing_ca(
    capsys: pytest.CaptureFixture[str], tls: Tls, server: tuple[int, int], tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{server[0]}/"
    code, out = run(capsys, "scan", url, "--ca", str(tls.ca), "--http-port", "1")
    assert code == 0
    assert "strict-transport-security" in out
    code, out = run(capsys, "scan", url, "--ca", str(tmp_path / "nope.pem"))
    assert code == 1
    assert "does not exist" in " ".join(out.split())


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["scan", "https://example.com/", "--fail-under", "E"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        main(["scan", "https://example.com/", "--https-port", "70000"])
