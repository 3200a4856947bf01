"""The engine's bans and rate limits: order, answers, headers, store failures, round trips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sitewarden import Warden
from sitewarden.errors import StoreUnavailableError
from sitewarden.store import Store, open_store
from sitewarden.web.request import RequestView

HOST = "example.org"


def view(
    path: str = "/", method: str = "GET", client: str = "203.0.113.7", **headers: str
) -> RequestView:
    return RequestView(
        method=method,
        scheme="https",
        host=HOST,
        path=path,
        headers={"host": HOST, **{k.replace("_", "-").lower(): v for k, v in headers.items()}},
        client=client,
    )


def make(store: str | Store = "memory://", **settings: Any) -> Warden:
    if isinstance(store, Store):
        from sitewarden.keyring import KeyManager

        return Warden(keys=KeyManager.open(store), allowed_hosts=[HOST], **settings)
    return Warden(store=store, allowed_hosts=[HOST], **settings)


def test_no_limits_configured_costs_no_store_call() -> None:
    counting = CountingStore(open_store("memory://"))
    warden = make(counting)
    counting.calls.clear()
    for _ in range(5):
        assert warden.begin(view("/login")).reply is None
    assert counting.calls == []


def test_a_limited_route_answers_429_with_retry_after_and_ratelimit_fields() -> None:
    warden = make(rate_limits={"POST /login": "3/minute"}, ban_after=100)
    answers = [warden.begin(view("/login", "POST", origin=f"https://{HOST}")) for _ in range(5)]
    assert [ex.reply is None for ex in answers] == [True, True, True, False, False]
    refused = answers[3].reply
    assert refused is not None and refused.status == 429
    headers = dict(refused.headers)
    assert int(headers["retry-after"]) >= 1
    assert headers["ratelimit-policy"].endswith(";q=3;w=60")
    assert ";r=0;" in headers["ratelimit"]
    # Allowed responses carry the fields too, merged into the final headers.
    ok = answers[0]
    final = dict(ok.response_headers([("content-type", "text/html")]))
    assert ";r=2;" in final["ratelimit"]
    assert "content-security-policy" in final  # the usual headers are still there


def test_other_routes_and_methods_are_not_limited() -> None:
    warden = make(rate_limits={"POST /login": "1/minute"})
    for _ in range(5):
        assert warden.begin(view("/login")).reply is None  # GET: not limited
        assert warden.begin(view("/")).reply is None


def test_clients_are_counted_separately_and_ipv6_by_its_64() -> None:
    warden = make(rate_limits={"/api/*": "2/minute"}, ban_after=100)
    for client in ("198.51.100.1", "198.51.100.2"):
        assert [warden.begin(view("/api/x", client=client)).reply is None for _ in range(3)] == [
            True,
            True,
            False,
        ]
    # Hopping inside one /64 does not reset the count.
    hops = [
        warden.begin(view("/api/x", client=f"2001:db8:1:2::{i}")).reply is None for i in range(3)
    ]
    assert hops == [True, True, False]
    assert warden.begin(view("/api/x", client="2001:db8:1:3::1")).reply is None


def test_repeated_breaches_ban_the_client_from_the_whole_site() -> None:
    warden = make(rate_limits={"/login": "1/minute"}, ban_after=2, ban_duration=600)
    for _ in range(3):
        warden.begin(view("/login"))  # one allowed, two breaches: banned
    banned = warden.begin(view("/"))  # any page now
    assert banned.reply is not None and banned.reply.status == 403
    assert int(dict(banned.reply.headers)["retry-after"]) > 500
    assert warden.begin(view("/", client="198.51.100.9")).reply is None  # others unaffected
    assert warden.bans.unban("203.0.113.7")
    assert warden.begin(view("/")).reply is None


def test_block_and_allow_networks() -> None:
    warden = make(
        rate_limits={"/login": "1/minute"},
        block_networks=["192.0.2.0/24"],
        allow_networks=["198.51.100.0/24"],
        ban_after=1,
    )
    blocked = warden.begin(view("/", client="192.0.2.5"))
    assert blocked.reply is not None and blocked.reply.status == 403
    for _ in range(5):  # monitoring from the allowed network is never limited or banned
        assert warden.begin(view("/login", client="198.51.100.5")).reply is None


def test_one_store_call_per_request_even_when_signed_in(store_url: str) -> None:
    """Ban check + rate limit (+ the user's ring on Redis) in one store operation."""
    counting = CountingStore(open_store(store_url))
    warden = make(
        counting,
        rate_limits={"/limited": "100/minute"},
        session_cookie_secure=False,
        session_revocation_ttl=0,
    )
    cookie = f"{warden.sessions.cookie_name}={warden.sessions.issue('alice')}"
    for path in ("/limited", "/other"):
        counting.calls.clear()
        ex = warden.begin(view(path, cookie=cookie))
        assert ex.reply is None and ex.user == "alice"
        expected = "throttle" if path == "/limited" else "get_many"
        if counting.remote:
            assert counting.calls == [expected], counting.calls  # the ring rode along
        else:
            assert counting.calls[0] == expected
    counting.close()


@pytest.mark.parametrize(("policy", "status"), [("closed", 503), ("open", None)])
def test_store_failure_while_limiting(policy: str, status: int | None) -> None:
    failing = CountingStore(open_store("memory://"))
    warden = make(failing, rate_limits={"/login": "5/minute"}, on_store_failure=policy)
    failing.fail = True
    ex = warden.begin(view("/login"))
    if status is None:
        assert ex.reply is None  # open: served without limits, as chosen
    else:
        assert ex.reply is not None and ex.reply.status == status
        assert b"store cannot be reached" in ex.reply.body
    failing.fail = False
    assert warden.begin(view("/login")).reply is None


def test_unverifiable_csrf_token_is_refused_even_when_failing_open() -> None:
    """'open' keeps pages readable; it never accepts a state change it cannot check."""
    failing = CountingStore(open_store("memory://"))
    warden = make(failing, on_store_failure="open")
    token = warden.csrf.token(None)
    warden.keys.refresh()  # the next keyring read goes to the (failing) store
    failing.fail = True
    ex = warden.begin(view("/form", "POST", x_csrf_token=token))
    assert ex.reply is not None and ex.reply.status == 503


class CountingStore(Store):
    """A store wrapper recording which operations reach the backend (and able to fail)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.remote = inner.remote
        self.calls: list[str] = []
        self.fail = False

    def _do(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise StoreUnavailableError("store: test outage")
        self.calls.append(name)
        return getattr(self.inner, name)(*args, **kwargs)

    def get(self, key: str) -> bytes | None:
        return self._do("get", key)  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return self._do("get_many", keys)  # type: ignore[no-any-return]

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._do("set", key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return self._do("add", key, value, ttl)  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        return self._do("delete", key)  # type: ignore[no-any-return]

    def update(self, key: str, fn: Any, ttl: float | None = None) -> bytes | None:
        return self._do("update", key, fn, ttl)  # type: ignore[no-any-return]

    def keys(self, prefix: str) -> list[str]:
        return self._do("keys", prefix)  # type: ignore[no-any-return]

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return self._do("incr", key, amount, ttl)  # type: ignore[no-any-return]

    def throttle(self, *args: Any, **kwargs: Any) -> Any:
        return self._do("throttle", *args, **kwargs)

    def set_add(self, key: str, *members: bytes) -> int:
        return self._do("set_add", key, *members)  # type: ignore[no-any-return]

    def set_remove(self, key: str, *members: bytes) -> int:
        return self._do("set_remove", key, *members)  # type: ignore[no-any-return]

    def set_members(self, key: str) -> set[bytes]:
        return self._do("set_members", key)  # type: ignore[no-any-return]

    def ping(self) -> None:
        self._do("ping")

    def close(self) -> None:
        self.inner.close()


def test_two_sites_in_one_process_keep_their_events_apart() -> None:
    """A request's events reach only the site that handled it (stored and counted)."""
    from sitewarden.events_store import recent

    a = make(metrics_path="/metrics")
    b = make(metrics_path="/metrics")
    assert b.begin(view("/form", "POST", origin="https://evil.example")).reply is not None
    b.lockout.failure("alice@b", "192.0.2.9", "x")  # the app's call, inside b's request
    names_b = {e["event"] for e in recent(b.store, 10)}
    assert {"csrf.refused", "login.failure"} <= names_b
    assert recent(a.store, 10) == []
    assert a.metrics is not None and a.metrics.count("csrf.refused") == 0
    assert b.metrics is not None and b.metrics.count("csrf.refused") == 1


def test_metrics_only_for_management_networks_and_never_behind_an_unknown_proxy() -> None:
    warden = make(metrics_path="/metrics")
    ok = warden.begin(view("/metrics", client="127.0.0.1"))
    assert ok.reply is not None and ok.reply.status == 200
    assert b"sitewarden_events_total" in ok.reply.body
    outside = warden.begin(view("/metrics", client="198.51.100.9"))
    assert outside.reply is not None and outside.reply.status == 404
    proxied = warden.begin(view("/metrics", client="127.0.0.1", x_forwarded_for="198.51.100.9"))
    assert proxied.reply is not None and proxied.reply.status == 404


@pytest.mark.parametrize("rate", ["2000000/second", "1/400d"])
def test_a_rate_the_stores_cannot_keep_stops_start_up(rate: str) -> None:
    from sitewarden.errors import ConfigError

    with pytest.raises(ConfigError, match="rate"):
        make(rate_limits={"/x": rate})


def test_log_only_csrf_lets_requests_through_when_the_store_is_down() -> None:
    failing = CountingStore(open_store("memory://"))
    warden = make(failing, on_store_failure="open", csrf="log-only")
    token = warden.csrf.token(None)
    warden.keys.refresh()
    failing.fail = True
    assert warden.begin(view("/form", "POST", x_csrf_token=token)).reply is None


def test_an_over_limit_request_stays_refused_when_ban_bookkeeping_fails() -> None:
    class BanWritesFail(CountingStore):
        def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
            raise StoreUnavailableError("store: test outage")

    store = BanWritesFail(open_store("memory://"))
    warden = make(store, rate_limits={"/x": "1/minute"}, on_store_failure="open")
    assert warden.begin(view("/x")).reply is None
    for _ in range(2):
        refused = warden.begin(view("/x")).reply
        assert refused is not None and refused.status == 429
