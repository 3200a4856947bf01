"""The Store protocol, checked identically against memory, SQLite and a real Redis."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from sitewarden.errors import ConfigError
from sitewarden.store import Store, open_store, redact_url
from tests.conftest import store_url_for


def test_get_set_delete(store: Store) -> None:
    assert store.get("k") is None
    store.set("k", b"v1")
    assert store.get("k") == b"v1"
    store.set("k", b"\x00\xffbinary")
    assert store.get("k") == b"\x00\xffbinary"
    assert store.delete("k") is True
    assert store.get("k") is None
    assert store.delete("k") is False


def test_set_with_ttl_expires(store: Store) -> None:
    store.set("short", b"x", ttl=0.15)
    store.set("long", b"y", ttl=60)
    assert store.get("short") == b"x"
    time.sleep(0.3)
    assert store.get("short") is None
    assert store.get("long") == b"y"
    assert "short" not in store.keys("")


def test_add_is_first_writer_wins(store: Store) -> None:
    assert store.add("mark", b"a", ttl=0.15) is True
    assert store.add("mark", b"b") is False
    assert store.get("mark") == b"a"
    time.sleep(0.3)
    assert store.add("mark", b"c") is True  # the expired mark no longer blocks
    assert store.get("mark") == b"c"


def test_update_reads_modifies_writes(store: Store) -> None:
    assert store.update("u", lambda cur: b"1" if cur is None else cur + b"1") == b"1"
    assert store.update("u", lambda cur: b"1" if cur is None else cur + b"1") == b"11"
    # None from the updater leaves the value alone and returns what is stored
    assert store.update("u", lambda cur: None) == b"11"
    assert store.update("absent", lambda cur: None) is None
    assert store.get("absent") is None


def test_update_with_ttl_expires_and_none_keeps_expiry(store: Store) -> None:
    """A record written by ``update(ttl=…)`` cleans itself up; a no-op update keeps its clock."""
    store.update("rec", lambda cur: b"1", ttl=0.2)
    store.update("forever", lambda cur: b"1")
    assert store.update("rec", lambda cur: None) == b"1"  # unchanged, same expiry
    assert store.get("rec") == b"1"
    time.sleep(0.35)
    assert store.get("rec") is None
    assert store.get("forever") == b"1"
    # A rewrite with a ttl sets a fresh expiry; a ttl of zero keeps nothing.
    store.update("rec", lambda cur: b"2", ttl=60)
    assert store.get("rec") == b"2"
    store.update("rec", lambda cur: b"3", ttl=0)
    assert store.get("rec") is None


def test_update_error_aborts_and_keeps_value(store: Store) -> None:
    store.set("u", b"keep")

    def boom(cur: bytes | None) -> bytes:
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        store.update("u", boom)
    assert store.get("u") == b"keep"
    store.set("u", b"still usable")
    assert store.get("u") == b"still usable"


def test_update_is_atomic_across_threads(store: Store) -> None:
    """Eight threads appending at once lose no append."""

    def append(i: int) -> None:
        for j in range(25):
            store.update("log", lambda cur, i=i, j=j: (cur or b"") + b"%d-%d," % (i, j))

    threads = [threading.Thread(target=append, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = (store.get("log") or b"").rstrip(b",").split(b",")
    assert len(entries) == 200
    assert len(set(entries)) == 200


def test_incr_counts_and_keeps_first_ttl(store: Store) -> None:
    assert store.incr("c") == 1
    assert store.incr("c", 5) == 6
    assert store.incr("w", ttl=0.3) == 1
    time.sleep(0.15)
    assert store.incr("w", ttl=10) == 2  # a later ttl does not extend the window
    time.sleep(0.25)
    assert store.incr("w", ttl=0.3) == 1  # the window ended; a new one begins


def test_incr_is_exact_across_threads(store: Store) -> None:
    def hit() -> None:
        for _ in range(50):
            store.incr("hits", ttl=60)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.incr("hits", 0) == 400


def test_sets(store: Store) -> None:
    assert store.set_members("s") == set()
    assert store.set_add("s", b"a", b"b") == 2
    assert store.set_add("s", b"b", b"c") == 1
    assert store.set_members("s") == {b"a", b"b", b"c"}
    assert store.set_remove("s", b"a", b"zz") == 1
    assert store.set_members("s") == {b"b", b"c"}
    assert store.delete("s") is True
    assert store.set_members("s") == set()


def test_keys_by_prefix(store: Store) -> None:
    store.set("keyring:system", b"1")
    store.set("keyring:user:bob", b"2")
    store.incr("lockout:bob")
    store.set_add("keyring:set", b"x")
    store.set("keyring_%_like", b"3")  # LIKE/glob metacharacters must not match
    assert store.keys("keyring:") == ["keyring:set", "keyring:system", "keyring:user:bob"]
    assert store.keys("keyring_%") == ["keyring_%_like"]
    assert store.keys("nothing:") == []


def test_ping_and_repr(store: Store) -> None:
    store.ping()
    assert type(store).__name__ in repr(store)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_state_is_shared_between_handles(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Two handles on one durable store see each other's writes (memory:// is private)."""
    url = store_url_for(kind, request, tmp_path)
    store, other = open_store(url), open_store(url)
    try:
        store.set("shared", b"yes")
        assert other.get("shared") == b"yes"
        other.incr("n")
        assert store.incr("n") == 2
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize(
    "url",
    ["", "postgres://db/x", "sqlite://", "sqlite:///", "sqlite:///x.db?mode=ro", "nonsense"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="store"):
        open_store(url)


def test_default_url_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWARDEN_STORE", "memory://")
    with open_store() as s:
        assert s.url == "memory://"


def test_redact_url_hides_passwords() -> None:
    assert redact_url("redis://:hunter2@h:6379/0") == "redis://:***@h:6379/0"
    assert "hunter2" not in redact_url("redis://user:hunter2@h/0")
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"
    hidden = redact_url("unix:///run/redis.sock?db=0&password=hunter2")
    assert "hunter2" not in hidden
    assert "db=0" in hidden


def test_ttl_of_zero_or_less_keeps_nothing(store: Store) -> None:
    store.set("gone", b"x", ttl=0)
    assert store.get("gone") is None
    assert store.add("gone2", b"x", ttl=-1) is True
    assert store.get("gone2") is None


def test_empty_set_add_creates_nothing(store: Store) -> None:
    assert store.set_add("empty") == 0
    assert store.keys("empty") == []


# -- get_many ------------------------------------------------------------------------------


def test_get_many_reads_several_keys_in_order(store: Store) -> None:
    store.set("a", b"1")
    store.set("b", b"\x00two")
    store.set("gone", b"x", ttl=0.1)
    assert store.get_many([]) == []
    assert store.get_many(["b", "missing", "a", "b"]) == [b"\x00two", None, b"1", b"\x00two"]
    time.sleep(0.2)
    assert store.get_many(["gone", "a"]) == [None, b"1"]
    # As many keys as a big ban list could need: more than SQLite binds in one statement.
    for i in range(1200):
        store.set(f"many:{i}", b"%d" % i)
    keys = [f"many:{i}" for i in range(1200)]
    assert store.get_many(keys) == [b"%d" % i for i in range(1200)]


# -- throttle (GCRA) -----------------------------------------------------------------------


def test_throttle_allows_a_burst_of_exactly_limit(store: Store) -> None:
    results = [store.throttle("t", 5, 60.0) for _ in range(5)]
    assert [r.allowed for r in results] == [True] * 5
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0]
    assert all(r.retry_after == 0.0 and r.limit == 5 for r in results)
    # Each request adds one emission interval (12 s) to the time until the burst is back.
    assert results[0].reset_after == pytest.approx(12.0, abs=0.5)
    assert results[-1].reset_after == pytest.approx(60.0, abs=0.5)
    refused = store.throttle("t", 5, 60.0)
    assert not refused.allowed
    assert refused.remaining == 0
    # The next request fits when one interval has been refilled: 12 s from now.
    assert refused.retry_after == pytest.approx(12.0, abs=0.5)
    assert refused.reset_after == pytest.approx(60.0, abs=0.5)
    # Another key is not affected.
    assert store.throttle("other", 5, 60.0).remaining == 4


def test_throttle_refills_over_time_and_refusals_consume_nothing(store: Store) -> None:
    limit, period = 2, 0.6  # one request back every 0.3 s
    assert store.throttle("r", limit, period).allowed
    assert store.throttle("r", limit, period).allowed
    refused = [store.throttle("r", limit, period) for _ in range(20)]
    assert not any(r.allowed for r in refused)
    wait = refused[-1].retry_after
    assert 0.15 < wait <= 0.3
    # Twenty refused requests did not push the retry time back: one interval later a
    # request is allowed again, and exactly one (no full burst yet).
    time.sleep(wait + 0.05)
    assert store.throttle("r", limit, period).allowed
    again = store.throttle("r", limit, period)
    assert not again.allowed
    assert 0.15 < again.retry_after <= 0.3
    # After the whole period the full burst is back.
    time.sleep(period + 0.05)
    assert [store.throttle("r", limit, period).allowed for _ in range(3)] == [True, True, False]


def test_throttle_cost(store: Store) -> None:
    first = store.throttle("c", 10, 60.0, cost=4)
    assert first.allowed
    assert first.remaining == 6
    assert first.reset_after == pytest.approx(24.0, abs=0.5)
    too_big = store.throttle("c", 10, 60.0, cost=7)
    assert not too_big.allowed
    assert too_big.remaining == 6  # nothing consumed
    assert too_big.retry_after == pytest.approx(6.0, abs=0.5)  # one unit short
    look = store.throttle("c", 10, 60.0, cost=0)  # cost 0: look without consuming
    assert look.allowed
    assert look.remaining == 6
    assert store.throttle("c", 10, 60.0, cost=6).remaining == 0
    assert not store.throttle("c", 10, 60.0).allowed


@pytest.mark.parametrize(
    ("limit", "period", "cost"),
    [
        (0, 60.0, 1),
        (-1, 60.0, 1),
        (2.5, 60.0, 1),
        (5, 0.0, 1),
        (5, -1.0, 1),
        (5, float("nan"), 1),
        (5, float("inf"), 1),
        (5, "60", 1),
        (5, 60.0, -1),
        (5, 60.0, 6),  # more than the burst: could never be allowed
        (10**7, 1.0, 1),  # faster than one request per microsecond
    ],
)
def test_throttle_rejects_rates_that_make_no_sense(
    store: Store, limit: object, period: object, cost: int
) -> None:
    with pytest.raises(ValueError, match="throttle"):
        store.throttle("bad", limit, period, cost)  # type: ignore[arg-type]
    assert store.keys("") == []


def test_throttle_peeks_in_the_same_step(store: Store) -> None:
    store.set("ban:x", b"record")
    store.set("ring:x", b"secrets")
    store.set("short", b"s", ttl=0.1)
    time.sleep(0.2)
    result = store.throttle("t", 1, 60.0, peek=["ban:x", "absent", "ring:x", "short"])
    assert result.allowed
    assert result.peeked == (b"record", None, b"secrets", None)
    refused = store.throttle("t", 1, 60.0, peek=["ban:x"])
    assert not refused.allowed
    assert refused.peeked == (b"record",)
    assert store.throttle("t", 1, 60.0).peeked == ()


def test_throttle_state_expires_by_itself_and_delete_resets(store: Store) -> None:
    assert store.throttle("gone", 1, 0.2).allowed
    assert store.keys("") == ["gone"]
    time.sleep(0.3)
    assert store.keys("") == []  # nothing left once the full burst is available again
    assert store.throttle("kept", 1, 60.0).allowed
    assert not store.throttle("kept", 1, 60.0).allowed
    assert store.delete("kept") is True
    assert store.throttle("kept", 1, 60.0).allowed


def test_throttle_is_exact_across_threads(store: Store) -> None:
    """Eight threads, 200 requests, limit 50: exactly 50 allowed, and none lost."""
    allowed: list[int] = []

    def hit() -> None:
        mine = sum(store.throttle("shared", 50, 86_400.0).allowed for _ in range(25))
        allowed.append(mine)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50
    assert store.throttle("shared", 50, 86_400.0, cost=0).remaining == 0

    # Under the limit, every allowed request is counted: none lost.
    allowed.clear()
    threads = [threading.Thread(target=hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 0  # the burst is spent
    threads = []
    counts: list[int] = []

    def hit_big() -> None:
        counts.append(sum(store.throttle("big", 1000, 86_400.0).allowed for _ in range(25)))

    threads = [threading.Thread(target=hit_big) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 200
    assert store.throttle("big", 1000, 86_400.0, cost=0).remaining == 800


def _throttle_in_process(url: str, limit: int, n: int) -> int:
    with open_store(url) as s:
        return sum(s.throttle("proc", limit, 86_400.0).allowed for _ in range(n))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_throttle_is_exact_across_processes(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Three processes, 120 requests, limit 50: exactly 50 allowed."""
    url = store_url_for(kind, request, tmp_path)
    with open_store(url) as s:
        s.ping()  # create the SQLite file before the children race to
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=ctx) as pool:
        allowed = list(pool.map(_throttle_in_process, [url] * 3, [50] * 3, [40] * 3))
    assert sum(allowed) == 50
    with open_store(url) as s:
        assert s.throttle("proc", 50, 86_400.0, cost=0).remaining == 0


def test_memory_throttle_states_are_swept() -> None:
    """In memory, stale states are forgotten as new keys arrive: the table stays bounded."""
    from sitewarden.store.memory import MemoryStore

    store = MemoryStore()
    for i in range(3000):
        store.throttle(f"old:{i}", 1, 0.05)
    time.sleep(0.1)
    for i in range(3000):
        store.throttle(f"new:{i}", 1, 60.0)
    assert len(store._tats) < 4500  # the 3000 stale states went in a sweep
    assert store.keys("old:") == []
    assert len(store.keys("new:")) == 3000
