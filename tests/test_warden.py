"""The engine's own decisions, through the sans-I/O API (no server, no framework)."""

from __future__ import annotations

import json
import logging

import pytest

from sitewarden import Warden
from sitewarden.errors import StoreUnavailableError
from sitewarden.web.request import RequestView

HOST = "example.org"


def view(path: str = "/", method: str = "GET", **headers: str) -> RequestView:
    return RequestView(
        method=method,
        scheme="https",
        host=HOST,
        path=path,
        headers={"host": HOST, **{k.replace("_", "-").lower(): v for k, v in headers.items()}},
        client="127.0.0.1",
    )


@pytest.fixture
def warden() -> Warden:
    return Warden(store="memory://", allowed_hosts=[HOST], manage_hosts=[HOST])


def test_management_path_served_on_its_host_from_loopback(warden: Warden) -> None:
    assert warden.begin(view("/manage_main")).reply is None


def test_management_fails_closed_behind_an_unconfigured_proxy(warden: Warden) -> None:
    """A proxy on the same machine makes every client look like 127.0.0.1: refuse."""
    ex = warden.begin(view("/manage_main", x_forwarded_for="203.0.113.9"))
    assert ex.reply is not None and ex.reply.status == 404
    assert warden.begin(view("/", x_forwarded_for="203.0.113.9")).reply is None


def test_double_encoded_management_path_is_caught(warden: Warden) -> None:
    other = Warden(store="memory://", allowed_hosts=[HOST])  # no manage host at all
    for path in ("/manage_main", "/%6danage_main", "/site/Manage;x=1"):
        ex = other.begin(view(path))
        assert ex.reply is not None and ex.reply.status == 404, path


def test_untrusted_forwarding_is_reported_once(
    warden: Warden, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sitewarden.events")
    for _ in range(3):
        warden.begin(view("/", x_forwarded_proto="https"))
    events = [json.loads(r.message) for r in caplog.records]
    assert [e["event"] for e in events].count("proxy.untrusted_forwarding") == 1


class BrokenStore:
    """Wraps a store and fails every read, as an unreachable Redis would."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> object:
        def fail(*args: object, **kwargs: object) -> object:
            raise StoreUnavailableError("store: down for the test")

        return fail


def test_store_failure_closed_answers_503_with_headers(warden: Warden) -> None:
    cookie = warden.sessions.issue("alice")
    warden.keys.store = BrokenStore(warden.keys.store)  # type: ignore[assignment]
    warden.keys.refresh()
    warden.sessions.revocation_ttl = 0.0  # type: ignore[attr-defined]
    ex = warden.begin(view("/", cookie=f"{warden.sessions.cookie_name}={cookie}"))
    assert ex.reply is not None and ex.reply.status == 503
    names = {n for n, _ in ex.response_headers(ex.reply.headers)}
    assert "content-security-policy" in names  # protections still applied
    assert "strict-transport-security" in names


def test_store_failure_open_treats_the_visitor_as_signed_out() -> None:
    warden = Warden(store="memory://", allowed_hosts=[HOST], on_store_failure="open")
    cookie = warden.sessions.issue("alice")
    warden.keys.store = BrokenStore(warden.keys.store)  # type: ignore[assignment]
    warden.keys.refresh()
    warden.sessions.revocation_ttl = 0.0  # type: ignore[attr-defined]
    ex = warden.begin(view("/", cookie=f"{warden.sessions.cookie_name}={cookie}"))
    assert ex.reply is None
    assert ex.user is None


def test_damaged_user_ring_means_signed_out(warden: Warden) -> None:
    cookie = warden.sessions.issue("alice")
    warden.keys.store.set("keyring:user:alice", b"{damaged")
    warden.keys.refresh()
    warden.sessions.revocation_ttl = 0.0  # type: ignore[attr-defined]
    ex = warden.begin(view("/", cookie=f"{warden.sessions.cookie_name}={cookie}"))
    assert ex.reply is None
    assert ex.user is None


def test_one_vary_header_with_cors() -> None:
    warden = Warden(
        store="memory://", allowed_hosts=[HOST], cors_origins=["https://app.example.org"]
    )
    ex = warden.begin(view("/", "POST", origin="https://example.org", sec_fetch_site="same-origin"))
    assert ex.reply is None
    headers = ex.response_headers([("content-type", "text/plain")])
    varies = [v for n, v in headers if n == "vary"]
    assert len(varies) == 1
    assert "Origin" in varies[0] and "Sec-Fetch-Site" in varies[0]


def test_the_apps_own_csp_headers_win_name_by_name(warden: Warden) -> None:
    ex = warden.begin(view("/"))
    headers = ex.response_headers([("Content-Security-Policy-Report-Only", "default-src 'none'")])
    names = [n.lower() for n, _ in headers]
    assert names.count("content-security-policy-report-only") == 1
    assert names.count("content-security-policy") == 1  # ours, still enforced


def test_nonce_used_means_the_header_carries_it_and_no_caching(warden: Warden) -> None:
    ex = warden.begin(view("/"))
    nonce = ex.csp_nonce
    headers = dict(ex.response_headers([]))
    assert f"'nonce-{nonce}'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    plain = dict(warden.begin(view("/")).response_headers([]))
    assert "nonce-" not in plain["content-security-policy"]
    assert "cache-control" not in plain


def test_login_and_logout_through_the_exchange(warden: Warden) -> None:
    ex = warden.begin(view("/login", "POST", sec_fetch_site="same-origin"))
    ex.login("alice")
    set_cookie = [v for n, v in ex.response_headers([]) if n == "set-cookie"]
    assert len(set_cookie) == 1 and set_cookie[0].startswith("__Host-sw_session=")
    value = set_cookie[0].split(";")[0].split("=", 1)[1]
    signed_in = warden.begin(view("/", cookie=f"__Host-sw_session={value}"))
    assert signed_in.user == "alice"
    signed_in.logout(everywhere=True)
    out = dict(signed_in.response_headers([]))
    assert "Max-Age=0" in out["set-cookie"]
    assert out["clear-site-data"] == '"cache", "cookies", "storage"'
    assert warden.begin(view("/", cookie=f"__Host-sw_session={value}")).user is None


def test_session_cookie_lookalike_names_are_not_taken(warden: Warden) -> None:
    """A sibling subdomain's cookie whose name ends with ours must not pass for it."""
    good = warden.sessions.issue("alice")
    name = warden.sessions.cookie_name
    evil = warden.sessions.issue("mallory")
    for header, user in (
        (f"x{name}={evil}; {name}={good}", "alice"),
        (f"{name}={good}; x{name}={evil}", "alice"),
        (f"theme=dark;{name}={good}", "alice"),
        (f"x{name}={evil}", None),
        (f"{name}=garbage", None),
    ):
        for _ in range(2):  # the second time from the per-header memo
            assert warden.begin(view("/", cookie=header)).user == user, header


def test_first_of_two_session_cookies_wins(warden: Warden) -> None:
    first, second = warden.sessions.issue("alice"), warden.sessions.issue("bob")
    name = warden.sessions.cookie_name
    assert warden.begin(view("/", cookie=f"{name}={first}; {name}={second}")).user == "alice"


def test_a_damaged_user_ring_still_gets_the_csrf_check() -> None:
    """A broken per-user ring signs the user out; it must not also skip CSRF."""
    from sitewarden.keyring import KeyManager

    warden = Warden(store="memory://", allowed_hosts=[HOST], session_revocation_ttl=0)
    cookie = f"{warden.sessions.cookie_name}={warden.sessions.issue('alice')}"
    warden.store.set(KeyManager.store_key("user:alice"), b"{not json")
    ex = warden.begin(view("/transfer", "POST", cookie=cookie, origin="https://evil.example"))
    assert ex.user is None
    assert ex.reply is not None and ex.reply.status == 403


# -- the hot path's shortcuts give the general path's answers -------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("signed_in", [False, True])
def test_byte_headers_fast_path_matches_the_text_path(
    warden: Warden, method: str, signed_in: bool
) -> None:
    """The precomputed byte headers are exactly the text path's, app headers kept as sent."""
    headers = {"sec_fetch_site": "same-origin"}
    if signed_in:
        cookie = warden.sessions.issue("alice")
        headers["cookie"] = f"{warden.sessions.cookie_name}={cookie}"
    app = [(b"content-type", b"text/plain"), (b"Content-Length", b"2")]
    sent = list(app)
    ex = warden.begin(view("/", method, **headers))
    assert ex.reply is None and (ex.user == "alice") is signed_in
    fast = ex.response_headers_bytes(sent)
    assert sent == app  # the application's list is not changed
    text = ex.response_headers([(n.decode(), v.decode()) for n, v in app])
    assert [(n.decode(), v.decode()) for n, v in fast] == text
    assert fast[:2] == app


def test_byte_headers_upper_case_names_are_still_removed_and_merged(warden: Warden) -> None:
    """ASGI names should be lower-case; one that is not still meets every rule."""
    ex = warden.begin(view("/"))
    out = ex.response_headers_bytes(
        iter([(b"Server", b"x"), (b"Cache-Control", b"max-age=60"), (b"X-Powered-By", b"y")])
    )
    names = [n.lower() for n, _ in out]
    assert b"server" not in names and b"x-powered-by" not in names
    assert names.count(b"cache-control") == 1
    assert (b"Cache-Control", b"max-age=60") in out


def test_remembered_ordinary_paths_and_hosts_never_admit_a_refusal(warden: Warden) -> None:
    for _ in range(2):  # the second round answers from the guards' memos
        assert warden.begin(view("/")).reply is None
        ex = warden.begin(RequestView("GET", "https", "evil.example", "/", "", {}, "127.0.0.1"))
        assert ex.reply is not None and ex.reply.status == 400
        ex = warden.begin(view("/manage_main", x_forwarded_for="203.0.113.9"))
        assert ex.reply is not None and ex.reply.status == 404
    other = Warden(store="memory://", allowed_hosts=[HOST])  # no manage host at all
    for _ in range(2):
        assert other.begin(view("/home/manage-not")).reply is None
        ex = other.begin(view("/manage_main"))
        assert ex.reply is not None and ex.reply.status == 404
    assert "/manage_main" not in other._manage.ordinary


def test_a_sessions_rotation_in_this_process_is_seen_at_once(warden: Warden) -> None:
    """The session check reads the key manager's cached ring: a rotation replaces it."""
    cookie = f"{warden.sessions.cookie_name}={warden.sessions.issue('alice')}"
    assert warden.begin(view("/", cookie=cookie)).user == "alice"
    before = warden.keys.ring("sessions")
    warden.keys.rotate("sessions")
    assert warden.keys.ring("sessions") is not before
    ex = warden.begin(view("/", cookie=cookie))
    assert ex.user == "alice" and ex.session is not None and ex.session.refresh
    warden.keys.reset("sessions")
    ex = warden.begin(view("/", cookie=cookie))
    assert ex.user is None and ex.session is None


def test_huge_cookie_headers_are_not_remembered() -> None:
    """The per-Cookie-header memo must stay small whatever clients send."""
    warden = Warden(store="memory://", allowed_hosts=[HOST])
    for i in range(20):
        warden.begin(view("/", cookie=f"junk{i}=" + "x" * 20_000))
    assert all(len(h) <= 8192 for h in warden._cookie_memo)
    warden.begin(view("/", cookie="theme=dark"))
    assert "theme=dark" in warden._cookie_memo
