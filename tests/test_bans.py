"""BanList: static block/allow lists, breaches, escalating bans, unban, and the guard flow."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sitewarden.guards.bans import BanList, BanRecord
from sitewarden.guards.ratelimit import RateLimiter
from sitewarden.policy import load_policy
from sitewarden.store import Store, open_store
from sitewarden.web.request import Reply
from tests.conftest import store_url_for


@pytest.fixture
def memory() -> Iterator[Store]:
    with open_store("memory://") as s:
        yield s


def bans(store: Store, **settings: Any) -> BanList:
    return BanList(load_policy(**settings), store)


def events_of(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    found = []
    for record in caplog.records:
        if record.name == "sitewarden.events":
            doc = json.loads(record.getMessage())
            if doc["event"] == name:
                found.append(doc)
    return found


# -- static lists --------------------------------------------------------------------------


def test_empty_lists_decide_nothing(memory: Store) -> None:
    b = bans(memory)
    assert b.static_verdict("203.0.113.9") is None
    assert b.static_verdict(None) is None


def test_block_and_allow(memory: Store) -> None:
    b = bans(
        memory,
        block_networks=("198.51.100.0/24", "2001:db8:bad::/48"),
        allow_networks=("192.0.2.10", "2001:db8:900d::/48"),
    )
    assert b.static_verdict("198.51.100.77") == "block"
    assert b.static_verdict("::ffff:198.51.100.77") == "block"  # mapped IPv6 is the same host
    assert b.static_verdict("2001:db8:bad:1::5") == "block"
    assert b.static_verdict("192.0.2.10") == "allow"
    assert b.static_verdict("192.0.2.11") is None
    assert b.static_verdict("2001:db8:900d::1") == "allow"
    assert b.static_verdict("2001:db8:beef::1") is None
    assert b.static_verdict("garbage") is None
    assert b.static_verdict(None) is None


def test_the_most_specific_network_wins_and_ties_block(memory: Store) -> None:
    carve_out = bans(memory, block_networks=("10.0.0.0/8",), allow_networks=("10.1.2.0/24",))
    assert carve_out.static_verdict("10.1.2.3") == "allow"
    assert carve_out.static_verdict("10.1.3.3") == "block"
    inside = bans(memory, allow_networks=("10.0.0.0/8",), block_networks=("10.66.0.0/16",))
    assert inside.static_verdict("10.66.0.1") == "block"
    assert inside.static_verdict("10.65.0.1") == "allow"
    both = bans(memory, allow_networks=("10.0.0.0/8",), block_networks=("10.0.0.0/8",))
    assert both.static_verdict("10.9.9.9") == "block"  # fail closed


def test_verdict_cache_is_bounded(memory: Store) -> None:
    b = bans(memory, block_networks=("10.0.0.0/8",))
    for i in range(6000):
        assert b.static_verdict(f"10.0.{i >> 8}.{i & 255}") == "block"
    assert len(b._verdicts) <= 4096


# -- ban records ---------------------------------------------------------------------------


def test_remaining_reads_records(memory: Store) -> None:
    b = bans(memory)
    record = json.dumps({"v": 1, "client": "k", "until": 1000.0, "level": 1, "reason": "r"})
    assert b.remaining(None) is None
    assert b.remaining(record.encode(), now=940.0) == pytest.approx(60.0)
    assert b.remaining(record.encode(), now=1000.0) is None
    assert b.remaining(record.encode(), now=2000.0) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"client": "k", "level": 1}',
        b'{"client": "k", "until": "soon", "level": 1}',
        b'{"client": "k", "until": 1e999, "level": 1}',
        b'{"client": "k", "until": 5, "level": true}',
        b'{"client": 7, "until": 5, "level": 1}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
)
def test_malformed_records_are_no_ban_and_reported_once(
    memory: Store, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sitewarden.events")
    b = bans(memory)
    for _ in range(3):
        assert b.remaining(raw, now=0.0) is None
    assert len(events_of(caplog, "ban.malformed")) == 1


def test_check_reads_the_ban_of_the_clients_key(memory: Store) -> None:
    b = bans(memory, ban_after=1)
    assert b.check("2001:db8:1:2::1") is None
    ban = b.breach(b.client_key("2001:db8:1:2::1"))
    assert ban is not None
    assert ban.client == "2001:db8:1:2::/64"
    # Attack: another address of the same /64 is the same client.
    left = b.check("2001:db8:1:2:ffff::9")
    assert left == pytest.approx(600, abs=2)
    assert b.check("2001:db8:1:3::1") is None


def test_allowed_networks_are_never_banned(memory: Store) -> None:
    b = bans(memory, ban_after=1, allow_networks=("192.0.2.0/24",))
    b.breach("192.0.2.5")  # the engine would not even call this; check() still says no
    assert b.check("192.0.2.5") is None


# -- breaches and bans ---------------------------------------------------------------------


def test_ban_after_breaches(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sitewarden.events")
    b = bans(store, ban_after=3, ban_duration=600)
    before = time.time()
    assert b.breach("203.0.113.9") is None
    assert b.breach("203.0.113.9") is None
    assert b.check("203.0.113.9") is None
    ban = b.breach("203.0.113.9")
    assert ban is not None
    assert (ban.client, ban.level, ban.duration) == ("203.0.113.9", 1, 600)
    assert before + 600 <= ban.until <= time.time() + 600
    assert b.check("203.0.113.9") == pytest.approx(600, abs=2)
    assert b.check("203.0.113.10") is None
    (record,) = b.list()
    assert record == BanRecord("203.0.113.9", pytest.approx(ban.until, abs=0.01), 1, ban.reason)
    assert "3 rate-limit breaches within 600 s" in record.reason
    (added,) = events_of(caplog, "ban.added")
    assert added["client"] == "203.0.113.9"
    assert added["ban_level"] == 1
    assert "600 s" in added["reason"]


def test_bans_escalate_and_are_capped(memory: Store) -> None:
    b = bans(memory, ban_after=2, ban_duration=600, ban_max_duration=2000)
    durations = []
    for _ in range(4):
        assert b.breach("k") is None
        ban = b.breach("k")
        assert ban is not None
        durations.append((ban.level, ban.duration))
    assert durations == [(1, 600), (2, 1200), (3, 2000), (4, 2000)]


def test_the_level_is_forgotten_after_ban_max_duration(memory: Store) -> None:
    b = bans(memory, ban_after=1, ban_duration=1, ban_max_duration=1)
    assert [b.breach("k").level for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    time.sleep(1.1)
    ban = b.breach("k")
    assert ban is not None
    assert ban.level == 1


def test_breaches_outside_the_window_do_not_add_up(memory: Store) -> None:
    b = bans(memory, ban_after=3, ban_window=1)
    b.breach("k")
    b.breach("k")
    time.sleep(1.1)
    assert b.breach("k") is None
    assert b.breach("k") is None
    assert b.breach("k") is not None


def test_bans_expire_by_themselves(memory: Store) -> None:
    b = bans(memory, ban_after=1, ban_duration=1, ban_max_duration=1)
    assert b.breach("203.0.113.9") is not None
    assert b.check("203.0.113.9") is not None
    assert [r.client for r in b.list()] == ["203.0.113.9"]
    time.sleep(1.1)
    assert b.check("203.0.113.9") is None
    assert b.list() == []
    assert memory.keys("ban:") == []


def test_concurrent_breaches_ban_once(store: Store) -> None:
    """Ten workers reporting the tenth breach at once make one ban, not ten."""
    b = bans(store, ban_after=10)
    barrier = threading.Barrier(10)
    made: list[object] = []

    def breach() -> None:
        barrier.wait(10)
        ban = b.breach("198.51.100.1")
        if ban is not None:
            made.append(ban)

    threads = [threading.Thread(target=breach) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert len(b.list()) == 1


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_ban_is_seen_by_every_worker(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = store_url_for(kind, request, tmp_path)
    with open_store(url) as one, open_store(url) as two:
        bans(one, ban_after=1).breach("203.0.113.9")
        assert bans(two).check("203.0.113.9") == pytest.approx(600, abs=2)


# -- unban ---------------------------------------------------------------------------------


def test_unban(memory: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sitewarden.events")
    b = bans(memory, ban_after=1)
    b.breach("203.0.113.9")
    b.breach("203.0.113.9")  # level 2
    assert b.unban("203.0.113.9") is True
    assert b.check("203.0.113.9") is None
    assert b.unban("203.0.113.9") is False
    (removed,) = events_of(caplog, "ban.removed")
    assert removed["client"] == "203.0.113.9"
    ban = b.breach("203.0.113.9")
    assert ban is not None
    assert ban.level == 1  # unban forgives: the level starts again


def test_unban_ipv6_by_address_network_or_other_prefix(memory: Store) -> None:
    b = bans(memory, ban_after=1)
    b.breach(b.client_key("2001:db8:1:2::1"))
    assert b.unban("2001:db8:1:2::99") is True  # any address of the network
    b.breach(b.client_key("2001:db8:1:2::1"))
    assert b.unban("2001:db8:1:2::/64") is True  # the network itself
    wide = bans(memory, ban_after=1, rate_limit_ipv6_prefix=48)
    wide.breach(wide.client_key("2001:db8:5:6::1"))
    assert wide.check("2001:db8:5:7::1") is not None
    # A BanList with the default /64 (the CLI's) still finds the /48 ban.
    assert b.unban("2001:db8:5:6::1") is True
    assert wide.check("2001:db8:5:7::1") is None
    assert b.unban("unknown") is False


# -- replies -------------------------------------------------------------------------------


def test_refusals() -> None:
    banned = BanList.refusal(12.2)
    assert banned.status == 403
    headers = dict(banned.headers)
    assert headers["retry-after"] == "13"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    blocked = BanList.refusal(None)
    assert blocked.status == 403
    assert "retry-after" not in dict(blocked.headers)
    assert BanList.refusal(0.01).headers[-1] == ("retry-after", "1")


# -- the guard flow, as the engine runs it ------------------------------------------------


def guard(
    limiter: RateLimiter, banlist: BanList, method: str, path: str, address: str
) -> Reply | None:
    """One request: static lists, rule, one throttle that peeks at the ban record."""
    verdict = banlist.static_verdict(address)
    if verdict == "block":
        return banlist.refusal(None)
    if verdict == "allow":
        return None
    rule = limiter.rule_for(method, path)
    client = limiter.client_key(address)
    if rule is None:
        left = banlist.check(address)
        return None if left is None else banlist.refusal(left)
    result = limiter.hit(client, rule, peek=[banlist.ban_key(client)], path=path)
    left = banlist.remaining(result.peeked[0])
    if left is not None:
        return banlist.refusal(left)
    if not result.allowed:
        banlist.breach(client)
        return limiter.refusal(rule, result)
    return None


def test_a_flooding_client_is_limited_then_banned(store: Store) -> None:
    """Attack: a client that ignores 429 is banned everywhere; others are untouched."""
    policy = load_policy(
        rate_limits={"POST /login": "5/minute"},
        ban_after=3,
        block_networks=("198.51.100.0/24",),
        allow_networks=("192.0.2.1",),
    )
    limiter, banlist = RateLimiter(policy, store), BanList(policy, store)
    statuses = [guard(limiter, banlist, "POST", "/login", "203.0.113.9") for _ in range(10)]
    codes = [None if r is None else r.status for r in statuses]
    assert codes[:5] == [None] * 5
    assert codes[5:8] == [429, 429, 429]  # the third refusal is the third breach: banned
    assert codes[8:] == [403, 403]
    # Banned on every path, not just the limited one.
    elsewhere = guard(limiter, banlist, "GET", "/", "203.0.113.9")
    assert elsewhere is not None and elsewhere.status == 403
    assert dict(elsewhere.headers)["retry-after"] == "600"
    # Another client is not affected; the allow list is never limited; the block list is.
    assert guard(limiter, banlist, "POST", "/login", "203.0.113.10") is None
    assert all(guard(limiter, banlist, "POST", "/login", "192.0.2.1") is None for _ in range(20))
    blocked = guard(limiter, banlist, "GET", "/", "198.51.100.7")
    assert blocked is not None and blocked.status == 403
