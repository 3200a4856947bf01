"""RateLimiter: rule lookup, client keys, decisions, IETF headers, refusals and events."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from sitewarden.errors import ConfigError, StoreUnavailableError
from sitewarden.guards.ratelimit import (
    UNKNOWN_CLIENT,
    ClientKeys,
    RateLimiter,
    RateRule,
    canonical_path,
)
from sitewarden.policy import load_policy
from sitewarden.store import Store, open_store
from sitewarden.store.redis import RedisStore
from tests.redis_server import free_port

RULES = {
    "POST /login": "5/minute",
    "/login": "50/minute",
    "/api/*": "100/minute",
    "/api/admin/*": "10/minute",
    "GET|POST /search": "30/minute",
    "GET /report": "2/minute",
    "/*": "1000/minute",
}


@pytest.fixture
def memory() -> Iterator[Store]:
    with open_store("memory://") as s:
        yield s


def limiter(store: Store, **settings: Any) -> RateLimiter:
    settings.setdefault("rate_limits", RULES)
    return RateLimiter(load_policy(**settings), store)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events_of(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        if record.name == "sitewarden.events":
            doc = json.loads(record.getMessage())
            if doc["event"] == name:
                found.append(doc)
    return found


# -- rule lookup ---------------------------------------------------------------------------


def rule_id(rl: RateLimiter, method: str, path: str) -> str | None:
    rule = rl.rule_for(method, path)
    return None if rule is None else rule.id


def test_precedence(memory: Store) -> None:
    rl = limiter(memory)
    assert rule_id(rl, "POST", "/login") == "POST /login"  # methods beat any-method
    assert rule_id(rl, "GET", "/login") == "/login"  # exact beats prefix
    assert rule_id(rl, "GET", "/api/users") == "/api/*"
    assert rule_id(rl, "GET", "/api/admin/x") == "/api/admin/*"  # the longer prefix
    assert rule_id(rl, "POST", "/search") == "GET|POST /search"
    assert rule_id(rl, "PUT", "/search") == "/*"  # no rule for PUT here: the next pattern
    assert rule_id(rl, "GET", "/report") == "GET /report"
    assert rule_id(rl, "DELETE", "/report") == "/*"
    assert rule_id(rl, "GET", "/anything/else") == "/*"


def test_prefixes_are_literal_but_cover_their_own_root(memory: Store) -> None:
    rl = limiter(memory, rate_limits={"/api/*": "10/minute"})
    assert rule_id(rl, "GET", "/api") == "/api/*"
    assert rule_id(rl, "GET", "/api/") == "/api/*"
    assert rule_id(rl, "GET", "/api/v1/x") == "/api/*"
    assert rule_id(rl, "GET", "/apiary") is None
    assert rule_id(rl, "GET", "/") is None
    assert rule_id(rl, "GET", "/other") is None


def test_head_uses_the_get_rule(memory: Store) -> None:
    rl = limiter(memory)
    assert rule_id(rl, "HEAD", "/report") == "GET /report"
    own = limiter(memory, rate_limits={"GET /r": "1/minute", "HEAD /r": "9/minute"})
    assert rule_id(own, "HEAD", "/r") == "HEAD /r"


@pytest.mark.parametrize(
    "path",
    [
        "/login",
        "/LOGIN",
        "/Login/",
        "//login",
        "/login//",
        "/%6cogin",
        "/%256cogin",  # encoded twice: a proxy may decode it once more
        "/login;jsessionid=abc",
        "\\login",
        "/login%2F",
    ],
)
def test_path_variants_cannot_escape_a_rule(memory: Store, path: str) -> None:
    """Attack: spelling the path differently must not skip the login limit."""
    rl = limiter(memory, rate_limits={"POST /login": "5/minute"})
    assert rule_id(rl, "POST", path) == "POST /login"


def test_canonical_path() -> None:
    assert canonical_path("/") == "/"
    assert canonical_path("") == "/"
    assert canonical_path("/A//b;x=1/c/") == "/a/b/c"
    assert canonical_path("/%2561") == "/a"
    assert canonical_path("/caf%C3%A9") == "/café"


def test_no_rules_means_no_rule(memory: Store) -> None:
    rl = limiter(memory, rate_limits={})
    assert rl.rule_for("POST", "/login") is None
    assert rl.rules == ()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"/a/*/b": "5/minute"}, "only end a prefix"),
        ({"POST /x": "5/minute", "GET|POST /x": "5/minute"}, "both apply"),
        ({"/Login": "5/minute", "/login": "9/minute"}, "both apply"),
        ({"/api/*": "5/minute", "/API/*": "9/minute"}, "both apply"),
    ],
)
def test_ambiguous_rules_are_config_errors(
    memory: Store, rules: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        limiter(memory, rate_limits=rules)


def test_bad_rates_are_config_errors(memory: Store) -> None:
    with pytest.raises(ConfigError):
        limiter(memory, rate_limits={"/x": "often"})
    rl = limiter(memory)
    with pytest.raises(ConfigError, match="not a rate"):
        rl.hit("k", "lots")
    with pytest.raises(ConfigError, match="not a rate"):
        rl.hit("k", "0/minute")


# -- client keys ---------------------------------------------------------------------------


def test_client_keys() -> None:
    keys = ClientKeys(64)
    assert keys("192.0.2.7") == "192.0.2.7"
    assert keys("::ffff:192.0.2.7") == "192.0.2.7"
    assert keys("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert keys("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert keys("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert keys(None) == UNKNOWN_CLIENT
    assert keys("not an address") == UNKNOWN_CLIENT
    assert keys("") == UNKNOWN_CLIENT
    assert ClientKeys(128)("2001:db8::1") == "2001:db8::1"
    assert ClientKeys(48)("2001:db8:1:2::1") == "2001:db8:1::/48"
    with pytest.raises(ConfigError):
        ClientKeys(0)


def test_client_key_cache_is_bounded(memory: Store) -> None:
    rl = limiter(memory)
    for i in range(10_000):
        assert rl.client_key(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}").startswith("10.")
    assert len(rl.client_key._cache) <= 4096


def test_rate_limit_ipv6_prefix_setting(memory: Store) -> None:
    rl = limiter(memory, rate_limit_ipv6_prefix=56)
    assert rl.client_key("2001:db8:0:12ff::1") == "2001:db8:0:1200::/56"


# -- decisions -----------------------------------------------------------------------------


def test_hit_limits_per_client_and_rule(store: Store) -> None:
    rl = limiter(store)
    login = rl.rule_for("POST", "/login")
    assert login is not None
    results = [rl.hit("203.0.113.9", login) for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert results[-1].retry_after == pytest.approx(12.0, abs=0.5)
    # Another client, and the same client on another rule, have their own budgets.
    assert rl.hit("203.0.113.10", login).allowed
    search = rl.rule_for("GET", "/search")
    assert search is not None
    assert rl.hit("203.0.113.9", search).allowed
    assert store.keys("rate:") == [
        "rate:GET|POST /search:203.0.113.9",
        "rate:POST /login:203.0.113.10",
        "rate:POST /login:203.0.113.9",
    ]


def test_rotating_ipv6_addresses_share_one_budget(memory: Store) -> None:
    """Attack: a fresh address from the same /64 for every request gains nothing."""
    rl = limiter(memory)
    rule = rl.rule_for("POST", "/login")
    assert rule is not None
    allowed = [rl.hit(rl.client_key(f"2001:db8:7:7:{i:x}::1"), rule).allowed for i in range(1, 20)]
    assert allowed.count(True) == 5


def test_application_level_limits(memory: Store) -> None:
    rl = limiter(memory)
    results = [rl.hit("login:alice", "3/hour") for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert results[-1].retry_after == pytest.approx(1200.0, abs=1)
    # The same rate written another way is the same rule, hence the same budget.
    assert not rl.hit("login:alice", "3 per hour").allowed
    assert rl.hit("login:bob", "3/hour").allowed
    assert rl.rule("3/hour") is rl.rule("3/hour")
    assert rl.rule("3/hour").id == "3/3600s"
    assert "rate:3/3600s:login:alice" in memory.keys("rate:")


def test_keys_of_different_rules_cannot_collide(memory: Store) -> None:
    """Attack: an attacker-chosen key with ':' must not reach another rule's state."""
    rl = limiter(memory, rate_limits={"/a": "1/hour", "/a:b": "1/hour"})
    rule_a, rule_ab = rl.rule_for("GET", "/a"), rl.rule_for("GET", "/a:b")
    assert rule_a is not None and rule_ab is not None
    assert rl.hit("c", rule_ab).allowed
    assert rl.hit("b:c", rule_a).allowed  # "rate:/a" + "b:c" is not "rate:/a:b" + "c"
    assert len(memory.keys("rate:")) == 2


def test_huge_keys_are_hashed(memory: Store) -> None:
    rl = limiter(memory)
    name = "x" * 10_000
    assert rl.hit("login:" + name, "1/hour").allowed
    assert not rl.hit("login:" + name, "1/hour").allowed
    (key,) = memory.keys("rate:")
    assert len(key) < 100
    assert name not in key


def test_hit_peeks_in_the_same_round_trip(memory: Store) -> None:
    rl = limiter(memory)
    memory.set("ban:203.0.113.9", b"record")
    rule = rl.rule_for("POST", "/login")
    assert rule is not None
    result = rl.hit("203.0.113.9", rule, peek=["ban:203.0.113.9"])
    assert result.peeked == (b"record",)


def test_store_failure_propagates() -> None:
    """The engine turns StoreError into 503 or pass (on_store_failure); never swallowed."""
    with RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0") as dead:
        rl = limiter(dead)
        rule = rl.rule_for("POST", "/login")
        assert rule is not None
        with pytest.raises(StoreUnavailableError):
            rl.hit("203.0.113.9", rule)


# -- headers and refusals ------------------------------------------------------------------


def test_headers_follow_the_ietf_draft(memory: Store) -> None:
    rl = limiter(memory)
    rule = rl.rule_for("POST", "/login")
    assert rule is not None
    first = rl.hit("192.0.2.1", rule)
    assert rl.headers(rule, first) == [
        ("ratelimit-policy", '"POST /login";q=5;w=60'),
        ("ratelimit", '"POST /login";r=4;t=12'),
    ]
    for _ in range(4):
        rl.hit("192.0.2.1", rule)
    refused = rl.hit("192.0.2.1", rule)
    headers = dict(rl.headers(rule, refused))
    assert headers["ratelimit"] == '"POST /login";r=0;t=60'
    assert headers["retry-after"] == "12"


def test_retry_after_is_rounded_up(memory: Store) -> None:
    rl = limiter(memory, rate_limits={"/x": "3/10s"})  # one request back every 3.33 s
    rule = rl.rule_for("GET", "/x")
    assert rule is not None
    for _ in range(3):
        rl.hit("k", rule)
    refused = rl.hit("k", rule)
    assert 3.0 < refused.retry_after < 3.34
    assert dict(rl.headers(rule, refused))["retry-after"] == "4"  # never too early


def test_policy_names_are_valid_structured_field_strings(memory: Store) -> None:
    rl = limiter(memory, rate_limits={'/we"ird\\/caf\u00e9/*': "5/minute"})
    (rule,) = rl.rules
    assert rule.name.startswith('"') and rule.name.endswith('"')
    inner = rule.name[1:-1]
    assert '"' not in inner and "\\" not in inner
    assert inner.isascii() and inner.isprintable()


def test_headers_can_be_turned_off_but_retry_after_stays(memory: Store) -> None:
    rl = limiter(memory, rate_limit_headers=False)
    rule = rl.rule_for("GET", "/report")
    assert rule is not None
    assert rl.headers(rule, rl.hit("k", rule)) == []
    rl.hit("k", rule)
    refused = rl.hit("k", rule)
    assert rl.headers(rule, refused) == [("retry-after", "30")]


def test_refusal_reply(memory: Store) -> None:
    rl = limiter(memory)
    rule = rl.rule_for("GET", "/report")
    assert rule is not None
    rl.hit("k", rule)
    rl.hit("k", rule)
    reply = rl.refusal(rule, rl.hit("k", rule))
    assert reply.status == 429
    assert reply.body == b"Too Many Requests\n"
    headers = dict(reply.headers)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["cache-control"] == "no-store"
    assert headers["retry-after"] == "30"
    assert headers["ratelimit"] == '"GET /report";r=0;t=60'


# -- events --------------------------------------------------------------------------------


def test_a_flood_gives_one_event_per_client_rule_and_window(
    memory: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    rl = RateLimiter(load_policy(rate_limits=RULES), memory, clock=clock)
    rule = rl.rule_for("GET", "/report")
    assert rule is not None
    caplog.set_level(logging.WARNING, logger="sitewarden.events")
    for _ in range(50):
        rl.hit("198.51.100.1", rule, path="/report")
    refused = events_of(caplog, "ratelimit.refused")
    assert len(refused) == 1
    assert refused[0]["client"] == "198.51.100.1"
    assert refused[0]["path"] == "/report"
    assert "GET /report" in refused[0]["reason"]
    rl.hit("198.51.100.2", rule, path="/report")
    rl.hit("198.51.100.2", rule, path="/report")
    rl.hit("198.51.100.2", rule, path="/report")  # another client: its own event
    assert len(events_of(caplog, "ratelimit.refused")) == 2
    clock.now += 61  # the next window (the store's own state is still exhausted)
    for _ in range(5):
        rl.hit("198.51.100.1", rule, path="/report")
    assert len(events_of(caplog, "ratelimit.refused")) == 3


def test_allowed_requests_emit_nothing(memory: Store, caplog: pytest.LogCaptureFixture) -> None:
    rl = limiter(memory)
    caplog.set_level(logging.DEBUG, logger="sitewarden.events")
    rule = rl.rule_for("GET", "/x")
    assert rule is not None
    for _ in range(10):
        rl.hit("k", rule)
    assert events_of(caplog, "ratelimit.refused") == []


def test_rate_rule_build() -> None:
    rule = RateRule.build("/x", 5, 60.0)
    assert rule.key_prefix == "rate:/x:"
    assert rule.policy_field == '"/x";q=5;w=60'
    assert RateRule.build("/x", 1, 0.5).policy_field == '"/x";q=1;w=1'  # w is whole seconds
    # Made directly, a rule still gets its own namespace (never the bare key).
    direct = RateRule("k:y", 5, 60.0, key_prefix="")
    assert direct.key_prefix == "rate:k%3Ay:"
    with pytest.raises(ConfigError):
        RateRule("bad", 0, 60.0)
    with pytest.raises(ConfigError):
        RateRule("bad", 5, 0.0)


def test_event_pacing_memory_is_bounded(memory: Store) -> None:
    rl = limiter(memory)
    rule = rl.rule_for("GET", "/report")
    assert rule is not None
    for i in range(12_000):
        key = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        rl.hit(key, rule)
        rl.hit(key, rule)
        rl.hit(key, rule)  # refused: one event mark per key
    assert len(rl._quiet) <= 10_000
