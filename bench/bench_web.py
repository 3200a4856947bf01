"""Web middleware benchmark: sitewarden's ASGI middleware against bare apps and peers.

Everything runs in ONE process. Every application is called directly through ASGI or WSGI
with a pre-built scope or environ (copied per request, as a server builds a new one) and
trivial ``receive``/``send``/``start_response`` callables: no server, no client, no
``httpx.ASGITransport`` (its ~140 µs round trip would hide every difference). ASGI
coroutines are driven without an event loop: ``coro.send(None)`` once, which must raise
``StopIteration`` (nothing in these paths awaits real I/O; the sanity checks prove it).

Cases (all in one interleaved schedule, so machine load hits every case alike):

ASGI, Starlette ``Starlette(routes=[Route("/", endpoint)])``, async endpoint returning a
small ``PlainTextResponse``; https, ``Host: example.org``, a few browser headers:

  bare Starlette                 GET and POST
  sitewarden                     ``Warden(preset="balanced", store="memory://",
                                 allowed_hosts=["example.org"]).asgi(app)``:
                                 GET with a valid session cookie (gated), GET anonymous;
                                 POST with the session and ``X-CSRF-Token`` but no
                                 Sec-Fetch-Site/Origin/Referer, so the token is verified
                                 (gated); POST as a browser sends it (Sec-Fetch-Site:
                                 same-origin, Origin), reported
  secure.py                      ``SecureASGIMiddleware`` (default headers) around the app
  hand-written                   a pure ASGI middleware appending static headers (floor)

WSGI, Django ``WSGIHandler`` (one URL, one view returning ``HttpResponse``), called
directly, with and without ``SecurityMiddleware`` + ``CsrfViewMiddleware`` +
``XFrameOptionsMiddleware``: GET, and POST with a valid CSRF cookie + ``X-CSRFToken``.

Each case is a ``timeit`` statement calibrated so one repeat lasts about ``--target-time``
seconds; rounds run every case once, in an order rotated each round; the figure kept is
the best per-request time. Added time = case - its bare app, both from the same run.

Targets (exit status 1 if one is missed):

1. sitewarden GET with a session          ≤ 1.6 x bare Starlette GET
2. sitewarden POST, token verified        ≤ 2.0 x bare Starlette POST
3. sitewarden added time                  ≤ 0.3 x the added time of Django's three middleware
                                          (GET; POST with a valid token)
4. sitewarden added time (GET, session)   < secure.py's added time

Run::

    uv run --group bench python bench/bench_web.py            # full (~20 s)
    uv run --group bench python bench/bench_web.py --quick    # smoke run (~3 s)
    uv run --group bench python bench/bench_web.py --json     # machine-readable
"""

from __future__ import annotations

import gc
import io
import json
import logging
import sys
import time
import types
from typing import Any

from harness import Case, parse_options, run_interleaved
from harness import machine_info as harness_machine_info

# -- shared inputs ------------------------------------------------------------------

SITE = "example.org"
ORIGIN = f"https://{SITE}"
USER = "alice"
CLIENT = ("203.0.113.7", 50123)
RESPONSE_TEXT = "Hello, world"
#: What a browser sends on every request besides Host and Cookie (same for every case).
BROWSER_HEADERS = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.5"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
]
#: Security headers every sitewarden response must carry (sanity check).
SW_REQUIRED_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
)
#: What the hand-written middleware adds: a typical static set, precomputed as bytes.
STATIC_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]

#: Without "peer" the ratio is case / base; with one it is the ratio of added times,
#: (case - base) / (peer - peer_base). "strict" makes the comparison "<" instead of "≤".
TARGETS: list[dict[str, Any]] = [
    {
        "name": "1 GET+session ÷ bare",
        "case": "sw.get",
        "base": "bare.get",
        "limit": 1.6,
        "gating": True,
    },
    {
        "name": "2 POST+token ÷ bare",
        "case": "sw.post_token",
        "base": "bare.post",
        "limit": 2.0,
        "gating": True,
    },
    {
        "name": "  POST same-origin ÷ bare",
        "case": "sw.post_browser",
        "base": "bare.post",
        "limit": 2.0,
        "gating": False,
    },
    {
        "name": "3 added GET ÷ Django",
        "case": "sw.get",
        "base": "bare.get",
        "peer": "django.mw_get",
        "peer_base": "django.bare_get",
        "limit": 0.3,
        "gating": True,
    },
    {
        "name": "3 added POST ÷ Django",
        "case": "sw.post_token",
        "base": "bare.post",
        "peer": "django.mw_post",
        "peer_base": "django.bare_post",
        "limit": 0.3,
        "gating": True,
    },
    {
        "name": "4 added GET ÷ secure",
        "case": "sw.get",
        "base": "bare.get",
        "peer": "secure.get",
        "peer_base": "bare.get",
        "limit": 1.0,
        "strict": True,
        "gating": True,
    },
    {
        "name": "  added GET anon ÷ secure",
        "case": "sw.get_anon",
        "base": "bare.get",
        "peer": "secure.get",
        "peer_base": "bare.get",
        "limit": 1.0,
        "strict": True,
        "gating": False,
    },
]


# -- measurement (the same machinery as bench_core.py) ------------------------------


# -- calling applications directly --------------------------------------------------


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def call_asgi(app: Any, scope: dict[str, Any]) -> None:
    """One request through *app*, driven without an event loop (a copy of *scope*)."""
    coro = app(dict(scope), _receive, _send)
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()
    raise RuntimeError("the application awaited real I/O: it cannot be driven without a loop")


def capture_asgi(app: Any, scope: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """The same call, recording the response: (status, headers as text, body)."""
    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    coro = app(dict(scope), _receive, send)
    try:
        coro.send(None)
    except StopIteration:
        pass
    else:
        coro.close()
        raise RuntimeError("the application awaited real I/O: it cannot be driven without a loop")
    start = next(m for m in messages if m["type"] == "http.response.start")
    headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in start["headers"]]
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], headers, body


def _write(data: bytes) -> None:
    return None


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def call_wsgi(app: Any, environ: dict[str, Any]) -> None:
    """One request through a WSGI *app*: call, drain the body, close (as a server does)."""
    result = app(dict(environ), _start_response)
    for _chunk in result:
        pass
    close = getattr(result, "close", None)
    if close is not None:
        close()


def capture_wsgi(app: Any, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return _write

    result = app(dict(environ), start_response)
    body = b"".join(result)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    headers = [(n.lower(), v) for n, v in seen["headers"]]
    return int(seen["status"].split()[0]), headers, body


def asgi_scope(method: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn builds it, for https://example.org/."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": (SITE, 443),
        "client": CLIENT,
        "scheme": "https",
        "method": method,
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        "state": {},
    }


def wsgi_environ(method: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    """A WSGI environ for https://example.org/ with *headers* (no body)."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": SITE,
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": CLIENT[0],
        "REMOTE_PORT": str(CLIENT[1]),
        "CONTENT_LENGTH": "0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),  # never read: no body, Content-Length 0
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = value
    return environ


# -- the applications ---------------------------------------------------------------

#: Set to a list during the sanity checks: the endpoint records the user sitewarden saw.
#: ``None`` while timing (one global load and compare per request, in every ASGI case).
_record: list[Any] | None = None


def build_starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def endpoint(request: Any) -> Any:
        if _record is not None:
            _record.append(request.scope.get("sitewarden.user"))
        return PlainTextResponse(RESPONSE_TEXT)

    return Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"])])


class StaticHeadersMiddleware:
    """The floor: a hand-written pure ASGI middleware appending precomputed headers."""

    def __init__(self, app: Any, headers: list[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_wrapper)


def build_secure(app: Any) -> Any:
    from secure import Secure
    from secure.middleware import SecureASGIMiddleware

    return SecureASGIMiddleware(app, secure=Secure.with_default_headers())


DJANGO_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


def build_django() -> dict[str, Any]:
    """A minimal Django project in-process: one URL, one view, two handlers."""
    from django.conf import settings

    urls = types.ModuleType("bench_web_urls")
    sys.modules[urls.__name__] = urls
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY=bytes(range(32)).hex(),
            ALLOWED_HOSTS=[SITE],
            ROOT_URLCONF=urls.__name__,
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
            # Security headers comparable to sitewarden's (HSTS is off by default).
            SECURE_HSTS_SECONDS=63072000,
            SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
        )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.middleware import csrf
    from django.urls import path

    def view(request: Any) -> Any:
        return HttpResponse(RESPONSE_TEXT, content_type="text/plain; charset=utf-8")

    urls.urlpatterns = [path("", view)]  # type: ignore[attr-defined]
    # Each handler loads settings.MIDDLEWARE once, when it is built.
    settings.MIDDLEWARE = []
    bare = WSGIHandler()
    settings.MIDDLEWARE = list(DJANGO_MIDDLEWARE)
    full = WSGIHandler()
    secret = csrf._get_new_csrf_string()
    return {
        "bare": bare,
        "full": full,
        "cookie_name": settings.CSRF_COOKIE_NAME,
        "secret": secret,
        "token": csrf._mask_cipher_secret(secret),  # what get_token() gives a page
        "bad_token": csrf._mask_cipher_secret(csrf._get_new_csrf_string()),
    }


def build_warden(app: Any) -> dict[str, Any]:
    from sitewarden import Warden

    warden = Warden(preset="balanced", store="memory://", allowed_hosts=[SITE])
    return {"warden": warden, "app": warden.asgi(app)}


# -- the cases ----------------------------------------------------------------------


def build_cases() -> tuple[list[Case], dict[str, Any]]:
    starlette = build_starlette()
    sw = build_warden(starlette)
    warden = sw["warden"]
    dj = build_django()

    # A returning, signed-in visitor: the cookie is issued now, far inside the idle
    # timeout and before the refresh point (the checks after timing confirm it).
    session = f"{warden.sessions.cookie_name}={warden.sessions.issue(USER)}"
    token = warden.csrf.token(USER)
    cookie = f"theme=dark; {session}"
    host = [("host", SITE), *BROWSER_HEADERS]
    get_headers = [*host, ("cookie", cookie)]
    post_token = [*host, ("cookie", cookie), (warden.csrf.header.lower(), token)]
    post_browser = [
        *host,
        ("cookie", cookie),
        ("origin", ORIGIN),
        ("sec-fetch-site", "same-origin"),
    ]
    dj_cookie = f"theme=dark; {dj['cookie_name']}={dj['secret']}"
    dj_get = [*host, ("cookie", dj_cookie)]
    # Django refuses an https POST without Origin or Referer before it looks at the
    # token; with Origin it checks the Origin, then the token, as for a browser's POST.
    dj_post = [*host, ("cookie", dj_cookie), ("origin", ORIGIN), ("x-csrftoken", dj["token"])]

    ns: dict[str, Any] = {
        "call_asgi": call_asgi,
        "call_wsgi": call_wsgi,
        "bare": starlette,
        "sw": sw["app"],
        "secure": build_secure(starlette),
        "hand": StaticHeadersMiddleware(starlette, STATIC_HEADERS),
        "dj_bare": dj["bare"],
        "dj_full": dj["full"],
        "get": asgi_scope("GET", get_headers),
        "get_anon": asgi_scope("GET", [*host, ("cookie", "theme=dark")]),
        "post_token": asgi_scope("POST", post_token),
        "post_browser": asgi_scope("POST", post_browser),
        "dj_get": wsgi_environ("GET", dj_get),
        "dj_post": wsgi_environ("POST", dj_post),
    }
    a, w = "ASGI (Starlette app, driven without an event loop)", "WSGI (Django WSGIHandler)"
    specs = [
        ("bare.get", a, "bare Starlette, GET", "call_asgi(bare, get)"),
        ("sw.get", a, "sitewarden balanced, GET + session", "call_asgi(sw, get)"),
        ("sw.get_anon", a, "sitewarden balanced, GET anonymous", "call_asgi(sw, get_anon)"),
        ("secure.get", a, "secure.py SecureASGIMiddleware, GET", "call_asgi(secure, get)"),
        ("hand.get", a, "hand-written static headers, GET", "call_asgi(hand, get)"),
        ("bare.post", a, "bare Starlette, POST", "call_asgi(bare, post_token)"),
        (
            "sw.post_token",
            a,
            "sitewarden, POST + session + X-CSRF-Token",
            "call_asgi(sw, post_token)",
        ),
        (
            "sw.post_browser",
            a,
            "sitewarden, POST + session, same-origin",
            "call_asgi(sw, post_browser)",
        ),
        ("django.bare_get", w, "Django, no middleware, GET", "call_wsgi(dj_bare, dj_get)"),
        ("django.mw_get", w, "Django Security+Csrf+XFrame, GET", "call_wsgi(dj_full, dj_get)"),
        ("django.bare_post", w, "Django, no middleware, POST", "call_wsgi(dj_bare, dj_post)"),
        (
            "django.mw_post",
            w,
            "Django Security+Csrf+XFrame, POST + token",
            "call_wsgi(dj_full, dj_post)",
        ),
    ]
    cases = [Case(key, label, stmt, ns, section=section) for key, section, label, stmt in specs]
    extra = {"warden": warden, "dj": dj, "ns": ns, "session_cookie": session}
    sanity_check(cases, extra)
    return cases, extra


# -- sanity checks ------------------------------------------------------------------


class SanityError(Exception):
    pass


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SanityError(message)


def sanity_check(cases: list[Case], extra: dict[str, Any]) -> None:
    """Run every case once, un-timed, and check it takes the path it is meant to."""
    global _record
    ns = extra["ns"]
    for case in cases:  # each statement runs as timed (raises if the app awaits I/O)
        exec(case.stmt, dict(case.namespace))

    _record = []
    events = logging.getLogger("sitewarden.events")
    events_disabled, events.disabled = events.disabled, True  # the refusals below are expected
    try:
        for key, app, scope, user in (
            ("sw.get", "sw", "get", USER),
            ("sw.get_anon", "sw", "get_anon", None),
            ("sw.post_token", "sw", "post_token", USER),
            ("sw.post_browser", "sw", "post_browser", USER),
        ):
            _record.clear()
            status, headers, body = capture_asgi(ns[app], ns[scope])
            names = {n for n, _ in headers}
            _expect(status == 200, f"{key}: status {status}, expected 200 ({body[:80]!r})")
            _expect(body == RESPONSE_TEXT.encode(), f"{key}: unexpected body {body[:80]!r}")
            missing = [h for h in SW_REQUIRED_HEADERS if h not in names]
            _expect(not missing, f"{key}: security headers missing: {missing}")
            _expect(_record == [user], f"{key}: the app saw user {_record}, expected {user!r}")
            # No session refresh or clearing: the cookie was accepted as it is.
            _expect("set-cookie" not in names, f"{key}: unexpected Set-Cookie (refresh?)")
        for key, app, scope in (
            ("bare.get", "bare", "get"),
            ("bare.post", "bare", "post_token"),
            ("secure.get", "secure", "get"),
            ("hand.get", "hand", "get"),
        ):
            _record.clear()
            status, headers, body = capture_asgi(ns[app], ns[scope])
            _expect(status == 200 and body == RESPONSE_TEXT.encode(), f"{key}: {status} {body!r}")
            _expect(_record == [None], f"{key}: endpoint not reached once ({_record})")
            if key in ("secure.get", "hand.get"):
                names = {n for n, _ in headers}
                _expect("x-content-type-options" in names, f"{key}: no security headers")

        # The POST case really verifies the token: the same request with a forged token
        # (or none) is refused and never reaches the app.
        warden = extra["warden"]
        header = warden.csrf.header.lower().encode("latin-1")
        good = dict(ns["post_token"])
        token = next(v for n, v in good["headers"] if n == header).decode()
        _expect(warden.csrf.check(token, USER), "the POST token does not check for alice")
        forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
        bad = dict(good)
        bad["headers"] = [(n, forged.encode() if n == header else v) for n, v in good["headers"]]
        _record.clear()
        status, _, _ = capture_asgi(ns["sw"], bad)
        _expect(status == 403 and not _record, "sitewarden accepted a forged token")
        bad = dict(good)
        bad["headers"] = [(n, v) for n, v in good["headers"] if n != header]
        _record.clear()
        status, _, _ = capture_asgi(ns["sw"], bad)
        _expect(status == 403 and not _record, "sitewarden accepted a POST without any token")
    finally:
        _record = None
        events.disabled = events_disabled

    dj = extra["dj"]
    for key, app, environ in (
        ("django.bare_get", "dj_bare", "dj_get"),
        ("django.mw_get", "dj_full", "dj_get"),
        ("django.bare_post", "dj_bare", "dj_post"),
        ("django.mw_post", "dj_full", "dj_post"),
    ):
        status, headers, body = capture_wsgi(ns[app], ns[environ])
        _expect(status == 200 and body == RESPONSE_TEXT.encode(), f"{key}: {status} {body[:80]!r}")
        names = {n for n, _ in headers}
        if app == "dj_full":
            for name in ("x-frame-options", "strict-transport-security", "x-content-type-options"):
                _expect(name in names, f"{key}: Django middleware did not add {name}")
    forged = dict(ns["dj_post"])
    forged["HTTP_X_CSRFTOKEN"] = dj["bad_token"]
    status, _, _ = capture_wsgi(ns["dj_full"], forged)
    _expect(status == 403, f"Django accepted a forged CSRF token (status {status})")


# -- reporting ----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return harness_machine_info(("sitewarden", "starlette", "django", "secure"))


def evaluate_targets(cases: list[Case]) -> list[dict[str, Any]]:
    best = {c.key: c.best_us for c in cases}
    results = []
    for t in TARGETS:
        mine = best[t["case"]]
        base = best[t["base"]]
        out: dict[str, Any] = {k: v for k, v in t.items() if k != "strict"}
        out["case_us"], out["base_us"] = mine, base
        if "peer" in t:
            added = mine - base
            peer_added = best[t["peer"]] - best[t["peer_base"]]
            out["added_us"], out["peer_added_us"] = added, peer_added
            ratio = added / peer_added if peer_added > 0 else float("inf")
        else:
            ratio = mine / base
        out["ratio"] = ratio
        out["passed"] = ratio < t["limit"] if t.get("strict") else ratio <= t["limit"]
        out["comparison"] = "<" if t.get("strict") else "≤"
        results.append(out)
    return results


BASELINES = {
    "sw.get": "bare.get",
    "sw.get_anon": "bare.get",
    "secure.get": "bare.get",
    "hand.get": "bare.get",
    "sw.post_token": "bare.post",
    "sw.post_browser": "bare.post",
    "django.mw_get": "django.bare_get",
    "django.mw_post": "django.bare_post",
}


def print_report(
    info: dict[str, Any], cases: list[Case], targets: list[dict[str, Any]], args: Any
) -> None:
    v = info["versions"]
    print(
        f"sitewarden web middleware benchmark — {info['date']}\n"
        f"Python {info['python']} ({info['implementation']}), {info['cpu']}, "
        f"nproc={info['nproc']}\n"
        f"sitewarden {v['sitewarden']}, Starlette {v['starlette']}, Django {v['django']}, "
        f"secure {v['secure']}\n"
        f"mode={'quick' if args.quick else 'full'}: best of {args.repeats} interleaved "
        f"repeats, ~{args.target_time:g} s per repeat per case"
    )
    best = {c.key: c.best_us for c in cases}
    section = None
    for case in cases:
        if case.section != section:
            section = case.section
            print(f"\n{section}")
            print(f"  {'case':<44} {'µs/req':>8} {'median':>8} {'added':>8} {'÷ bare':>7}")
        base = BASELINES.get(case.key)
        added = f"{case.best_us - best[base]:+8.2f}" if base else f"{'':>8}"
        ratio = f"{case.best_us / best[base]:7.2f}" if base else f"{'':>7}"
        print(f"  {case.label:<44} {case.best_us:8.2f} {case.median_us:8.2f} {added} {ratio}")
    print("\nTargets:")
    for t in targets:
        verdict = ("PASS" if t["passed"] else "FAIL") if t["gating"] else "info"
        if "peer" in t:
            detail = f"+{t['added_us']:.2f} / +{t['peer_added_us']:.2f} µs added"
        else:
            detail = f"{t['case_us']:.2f} / {t['base_us']:.2f} µs"
        print(
            f"  {verdict}  {t['name']:<26} {detail:<28} = {t['ratio']:.3f}"
            f"  (target {t['comparison']} {t['limit']})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.split("\n\n")[0], argv)

    try:
        cases, extra = build_cases()
    except ImportError as exc:
        print(
            f"missing benchmark dependency ({exc}); run with "
            "`uv run --group bench python bench/bench_web.py`",
            file=sys.stderr,
        )
        return 2
    except SanityError as exc:
        print(f"sanity check failed: {exc}", file=sys.stderr)
        return 1
    info = machine_info()
    started = time.perf_counter()
    gc.collect()
    run_interleaved(cases, args.repeats, args.target_time)
    elapsed = time.perf_counter() - started
    try:  # the session must not have aged into a refresh while timing
        sanity_check(cases, extra)
    except SanityError as exc:
        print(f"sanity check after timing failed: {exc}", file=sys.stderr)
        return 1
    targets = evaluate_targets(cases)
    passed = all(t["passed"] for t in targets if t["gating"])

    if args.json:
        doc = {
            "machine": info,
            "mode": "quick" if args.quick else "full",
            "repeats": args.repeats,
            "target_time": args.target_time,
            "elapsed_s": round(elapsed, 2),
            "cases": {
                c.key: {
                    "label": c.label,
                    "section": c.section,
                    "best_us": c.best_us,
                    "median_us": c.median_us,
                    "baseline": BASELINES.get(c.key),
                    "loops": c.number,
                    "samples_us": [s * 1e6 for s in c.samples],
                }
                for c in cases
            },
            "targets": targets,
            "passed": passed,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print_report(info, cases, targets, args)
        print(f"\n({elapsed:.1f} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
