"""Redis-specific behaviour of RedisStore, against a real redis-server.

The behaviour every backend shares is in test_store_contract.py; here: secrets in URLs,
the server going away and coming back, key prefixes, atomicity across processes, expiry
as Redis does it, and update() cleaning up after a failing function.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.connection

from sitewarden.errors import ConfigError, StoreError, StoreUnavailableError
from sitewarden.store import open_store
from sitewarden.store.redis import DEFAULT_PREFIX, RedisStore
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis

SECRET = "hunter2"


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore.from_url(redis_url) as s:
        yield s


def _raw(redis_server: RedisServer) -> redis.Redis:
    """A plain redis-py client on the test server, to look under the store."""
    return redis.Redis.from_url(redis_server.url)


# -- running work in several processes -------------------------------------------------

# Spawning is slow (each child imports Python, pytest and redis afresh), so one pool of
# WORKERS processes, started once for this module, serves every multi-process test.
WORKERS = 4
_barrier: Any = None  # set in each worker process by _init_worker


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _entry(work: Callable[..., Any], index: int, url: str, args: tuple[Any, ...]) -> Any:
    """In a worker: open our own store, wait for all siblings, then do the work."""
    with RedisStore.from_url(url) as store:
        # All workers start hammering at the same moment. Each worker blocks here on its
        # one task, so WORKERS tasks are sure to land on WORKERS different processes.
        _barrier.wait(30)
        return work(store, index, *args)


@pytest.fixture(scope="module")
def workers() -> Iterator[Any]:
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(WORKERS, initializer=_init_worker, initargs=(ctx.Barrier(WORKERS),))
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _in_processes(pool: Any, work: Callable[..., Any], url: str, *args: Any) -> list[Any]:
    """Run ``work(store, index, *args)`` once in each worker process; return the results."""
    tasks = [(work, i, url, args) for i in range(WORKERS)]
    return list(pool.starmap_async(_entry, tasks, chunksize=1).get(timeout=60))


def _append(entry: str) -> Callable[[bytes | None], bytes]:
    def fn(current: bytes | None) -> bytes:
        items = json.loads(current) if current is not None else []
        items.append(entry)
        return json.dumps(items).encode()

    return fn


def _update_work(store: RedisStore, index: int, count: int) -> None:
    for n in range(count):
        store.update("shared", _append(f"{index}-{n}"))


def _incr_work(store: RedisStore, index: int, count: int) -> None:
    for _ in range(count):
        store.incr("hits")


def _add_work(store: RedisStore, index: int, keys: list[str]) -> list[str]:
    return [k for k in keys if store.add(k, str(index).encode(), ttl=30)]


def _throttle_work(store: RedisStore, index: int, limit: int, count: int) -> int:
    return sum(store.throttle("gcra", limit, 86_400.0, peek=["ban"]).allowed for _ in range(count))


# -- URLs and secrets ------------------------------------------------------------------


def test_password_never_shown() -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:{SECRET}@127.0.0.1:{port}/0?prefix=p:"
    store = RedisStore.from_url(url)
    try:
        assert SECRET not in store.url
        assert SECRET not in repr(store)
        assert store.url == f"redis://:***@127.0.0.1:{port}/0?prefix=p:"
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        message = str(info.value)
        assert SECRET not in message
        assert store.url in message
        assert f"127.0.0.1:{port}" in message
        assert SECRET not in str(info.value.__cause__)
    finally:
        store.close()


def test_password_in_query_never_shown() -> None:
    # redis-py also takes ?password= (the usual form for unix:// sockets).
    store = RedisStore.from_url(f"unix:///nonexistent/redis.sock?password={SECRET}&db=0")
    try:
        assert SECRET not in store.url
        assert SECRET not in repr(store)
        with pytest.raises(StoreUnavailableError) as info:
            store.get("k")
        assert SECRET not in str(info.value)
    finally:
        store.close()


def test_open_store_and_prefix(redis_url: str) -> None:
    with open_store(redis_url) as store:
        assert isinstance(store, RedisStore)
        assert store.prefix.startswith("t-")
        assert store.prefix.endswith(":")
        store.ping()
    with RedisStore.from_url(redis_url.split("?")[0]) as plain:
        assert plain.prefix == DEFAULT_PREFIX


def test_bad_url_is_config_error() -> None:
    with pytest.raises(ConfigError, match="prefx"):
        RedisStore.from_url("redis://127.0.0.1:1/0?prefx=oops")
    with pytest.raises(ConfigError) as info:
        RedisStore.from_url(f"redis://:{SECRET}@127.0.0.1:1/0?socket_timeout=soon")
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError):
        RedisStore.from_url("redis://127.0.0.1:1/0?prefix=a:&prefix=b:")
    with pytest.raises(ConfigError):
        RedisStore.from_url("redis://127.0.0.1:1/0?decode_responses=true")


# -- server down and back --------------------------------------------------------------


def test_server_down_then_recovery(redis_server: RedisServer, redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        store.set("k", b"before")
        assert store.get("k") == b"before"  # the pool now holds a live connection
        redis_server.stop()

        called: list[object] = []

        def fn(current: bytes | None) -> bytes:
            called.append(current)
            return b"x"

        operations: list[Callable[[], object]] = [
            store.ping,
            lambda: store.get("k"),
            lambda: store.set("k", b"v"),
            lambda: store.set("k", b"v", ttl=5),
            lambda: store.add("k", b"v"),
            lambda: store.delete("k"),
            lambda: store.update("k", fn),
            lambda: store.incr("n", ttl=5),
            lambda: store.keys(""),
            lambda: store.set_add("s", b"m"),
            lambda: store.set_remove("s", b"m"),
            lambda: store.set_members("s"),
            lambda: store.get_many(["k", "n"]),
            lambda: store.throttle("t", 5, 60.0, peek=["k"]),
        ]
        started = time.monotonic()
        for op in operations:
            with pytest.raises(StoreUnavailableError) as info:
                op()
            assert not isinstance(info.value, redis.RedisError)
            assert isinstance(info.value.__cause__, redis.RedisError)
            assert store.url in str(info.value)
        assert called == []  # update never got as far as calling fn
        assert time.monotonic() - started < 5  # a refused connection fails fast

        redis_server.start()
        store.ping()  # the same store object works again
        assert store.get("k") is None  # no persistence: the restart emptied Redis
        store.set("k", b"after")
        assert store.get("k") == b"after"
        assert store.update("k", lambda cur: (cur or b"") + b"!") == b"after!"
        assert store.incr("n") == 1
        assert store.throttle("t", 5, 60.0).allowed  # the script is loaded again
    finally:
        store.close()


def test_wrong_type_is_store_error_not_raw(store: RedisStore) -> None:
    store.set("k", b"text")
    with pytest.raises(StoreError) as info:
        store.set_add("k", b"m")
    assert not isinstance(info.value, StoreUnavailableError | redis.RedisError)
    with pytest.raises(StoreError):
        store.incr("k")


# -- prefixes --------------------------------------------------------------------------


def test_prefixes_isolate(redis_server: RedisServer) -> None:
    base = f"{redis_server.url}?prefix=iso-{uuid.uuid4().hex}-"
    with RedisStore.from_url(base + "a:") as a, RedisStore.from_url(base + "b:") as b:
        a.set("k", b"from a")
        b.set("k", b"from b")
        a.incr("n")
        b.set_add("s", b"m")
        assert a.get("k") == b"from a"
        assert b.get("k") == b"from b"
        assert a.keys("") == ["k", "n"]
        assert b.keys("") == ["k", "s"]
        assert a.delete("k")
        assert b.get("k") == b"from b"
        assert a.set_members("s") == set()


def test_keys_treats_glob_characters_literally(redis_server: RedisServer) -> None:
    tag = uuid.uuid4().hex
    with RedisStore.from_url(f"{redis_server.url}?prefix=g-{tag}:") as store:
        for key in ["a*b", "axb", "a[b]", "ab", "a?c", "azc", "a\\d", "a]"]:
            store.set(key, b"1")
        assert store.keys("a*") == ["a*b"]
        assert store.keys("a[") == ["a[b]"]
        assert store.keys("a?") == ["a?c"]
        assert store.keys("a\\") == ["a\\d"]
        assert store.keys("a]") == ["a]"]
        assert store.keys("ax") == ["axb"]
        assert store.keys("") == sorted(["a*b", "axb", "a[b]", "ab", "a?c", "azc", "a\\d", "a]"])
    # A prefix with glob characters must not reach keys of a look-alike prefix.
    star = f"{redis_server.url}?prefix=h-{tag}*:"
    other = f"{redis_server.url}?prefix=h-{tag}zz:"
    with RedisStore.from_url(star) as s, RedisStore.from_url(other) as o:
        o.set("k", b"other")
        assert s.keys("") == []
        s.set("mine", b"1")
        assert s.keys("") == ["mine"]
        assert o.keys("") == ["k"]


# -- atomicity across processes --------------------------------------------------------


def test_update_across_processes_loses_nothing(
    workers: Any, store: RedisStore, redis_url: str
) -> None:
    _in_processes(workers, _update_work, redis_url, 200)
    value = store.get("shared")
    assert value is not None
    items = json.loads(value)
    assert len(items) == 800
    assert set(items) == {f"{i}-{n}" for i in range(4) for n in range(200)}
    assert store.keys("") == ["shared"]


def test_incr_across_processes_is_exact(workers: Any, store: RedisStore, redis_url: str) -> None:
    _in_processes(workers, _incr_work, redis_url, 250)
    assert store.incr("hits", 0) == 1000


def test_add_race_has_exactly_one_winner(workers: Any, store: RedisStore, redis_url: str) -> None:
    keys = [f"mark:{i}" for i in range(100)]
    results = _in_processes(workers, _add_work, redis_url, keys)
    winners: dict[str, list[int]] = {k: [] for k in keys}
    for index, won in enumerate(results):
        for key in won:
            winners[key].append(index)
    assert all(len(w) == 1 for w in winners.values()), winners
    for key, (index,) in winners.items():
        assert store.get(key) == str(index).encode()


def test_update_retries_on_conflict(redis_server: RedisServer, store: RedisStore) -> None:
    raw = _raw(redis_server)
    name = store.prefix + "k"
    raw.set(name, b"0")
    seen: list[bytes | None] = []

    def fn(current: bytes | None) -> bytes:
        seen.append(current)
        if len(seen) == 1:
            raw.set(name, b"10")  # another client writes between our read and our write
        return str(int(current or b"0") + 1).encode()

    try:
        assert store.update("k", fn) == b"11"
        assert seen == [b"0", b"10"]
        assert raw.get(name) == b"11"
    finally:
        raw.close()


# -- expiry ----------------------------------------------------------------------------


def test_incr_ttl_is_a_fixed_window(redis_server: RedisServer, store: RedisStore) -> None:
    raw = _raw(redis_server)
    try:
        assert store.incr("c", ttl=0.3) == 1
        time.sleep(0.15)
        assert store.incr("c", ttl=0.3) == 2  # does not restart the window
        assert store.incr("c") == 3  # nor does an increment without ttl remove it
        remaining = raw.pttl(store.prefix + "c")
        assert 0 < remaining <= 160
        time.sleep(0.2)
        assert store.keys("") == []
        assert store.incr("c", ttl=0.3) == 1  # a new window
        # A counter created without ttl keeps none, even if later calls give one.
        assert store.incr("forever") == 1
        assert store.incr("forever", ttl=0.1) == 2
        assert raw.pttl(store.prefix + "forever") == -1
    finally:
        raw.close()


def test_set_ttl_expires_and_add_after_expiry(store: RedisStore) -> None:
    store.set("v", b"x", ttl=0.2)
    assert store.get("v") == b"x"
    assert store.add("m", b"1", ttl=0.2)
    assert not store.add("m", b"2", ttl=0.2)
    time.sleep(0.25)
    assert store.get("v") is None
    assert store.keys("") == []
    assert store.add("m", b"3", ttl=0.2)
    assert store.get("m") == b"3"


def test_zero_ttl_means_already_expired(store: RedisStore) -> None:
    # Redis refuses PX 0; the store treats ttl <= 0 as "stored and expired at once".
    store.set("v", b"old")
    store.set("v", b"new", ttl=0)
    assert store.get("v") is None
    assert store.add("m", b"1", ttl=0)
    assert store.get("m") is None
    store.set("taken", b"1")
    assert not store.add("taken", b"2", ttl=-1)
    assert store.incr("c", 5, ttl=0) == 5
    assert store.keys("") == ["taken"]


def test_update_writes_without_expiry(redis_server: RedisServer, store: RedisStore) -> None:
    raw = _raw(redis_server)
    try:
        store.set("k", b"a", ttl=30)
        assert store.update("k", lambda cur: (cur or b"") + b"b") == b"ab"
        assert raw.pttl(store.prefix + "k") == -1
        store.set("k", b"a", ttl=30)
        assert store.update("k", lambda cur: None) == b"a"  # no write: ttl untouched
        assert raw.pttl(store.prefix + "k") > 0
        # A tiny ttl is at least 1 ms (Redis refuses 0), and set without ttl clears it.
        store.set("tiny", b"1", ttl=0.0001)
        store.set("k", b"c")
        assert raw.pttl(store.prefix + "k") == -1
    finally:
        raw.close()


# -- update with a failing function ----------------------------------------------------


class Boom(Exception):
    pass


def test_update_fn_exception_propagates_unchanged(store: RedisStore) -> None:
    store.set("k", b"kept")
    error = Boom("no")

    def fn(current: bytes | None) -> bytes:
        raise error

    with pytest.raises(Boom) as info:
        store.update("k", fn)
    assert info.value is error
    assert store.get("k") == b"kept"

    # Even a redis-py exception raised by fn itself is not translated.
    def redis_fn(current: bytes | None) -> bytes:
        raise redis.ConnectionError("raised by fn, not by Redis")

    with pytest.raises(redis.ConnectionError, match="raised by fn"):
        store.update("k", redis_fn)

    # The connection was unwatched and returned: the store keeps working normally.
    for _ in range(3):
        assert store.update("k", lambda cur: (cur or b"") + b"+") is not None
    assert store.get("k") == b"kept+++"
    assert store.incr("n") == 1
    store.ping()


# -- get_many and throttle -------------------------------------------------------------


def _count_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every command sent to Redis from now on (at the socket layer)."""
    sent: list[str] = []
    original = redis.connection.Connection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        data = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        sent.append(data.split(b"\r\n")[2].decode())  # *N, $len, NAME
        return original(self, chunks, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return sent


def test_throttle_and_get_many_are_one_round_trip(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.set("ban:1.2.3.4", b"rec")
    store.throttle("warm", 5, 60.0)  # the first call may load the script
    sent = _count_commands(monkeypatch)
    result = store.throttle("rate:x", 5, 60.0, peek=["ban:1.2.3.4", "keyring:user:bob"])
    assert result.allowed
    assert result.peeked == (b"rec", None)
    assert sent == ["EVALSHA"]
    assert store.get_many(["ban:1.2.3.4", "nothing"]) == [b"rec", None]
    assert sent == ["EVALSHA", "MGET"]
    assert store.get_many([]) == []
    assert len(sent) == 2  # nothing to ask: no round trip


def test_throttle_reloads_the_script_after_a_flush(
    redis_server: RedisServer, store: RedisStore
) -> None:
    assert store.throttle("t", 3, 60.0).remaining == 2
    raw = _raw(redis_server)
    try:
        raw.script_flush()  # what a server restart or failover does to the script cache
    finally:
        raw.close()
    assert store.throttle("t", 3, 60.0).remaining == 1


def test_throttle_state_uses_the_prefix_and_the_server_clock(
    redis_server: RedisServer, store: RedisStore
) -> None:
    raw = _raw(redis_server)
    try:
        result = store.throttle("rate:k", 4, 60.0)
        seconds, micros = raw.time()
        value = raw.get(store.prefix + "rate:k")
        assert value is not None
        tat = int(value)  # whole microseconds of the server's clock
        now = seconds * 1_000_000 + micros
        assert now < tat <= now + 15_000_000  # one interval (15 s) ahead of the server
        pttl = raw.pttl(store.prefix + "rate:k")
        assert 14_000 < pttl <= 15_000  # expires once the burst is full again
        assert result.reset_after == pytest.approx(15.0, abs=0.01)
        assert raw.keys(store.prefix + "*") == [(store.prefix + "rate:k").encode()]
    finally:
        raw.close()


def test_throttle_bad_state_or_peek_is_store_error_and_writes_nothing(
    redis_server: RedisServer, store: RedisStore
) -> None:
    store.set("rate:garbage", b"not a number")
    with pytest.raises(StoreError, match="throttle state") as info:
        store.throttle("rate:garbage", 5, 60.0)
    assert not isinstance(info.value, StoreUnavailableError | redis.RedisError)
    assert store.get("rate:garbage") == b"not a number"
    store.set_add("a-set", b"m")
    with pytest.raises(StoreError):
        store.throttle("rate:fine", 5, 60.0, peek=["a-set"])
    assert store.get("rate:fine") is None  # the peek failed before anything was written


def test_throttle_across_processes_is_exact(
    workers: Any, store: RedisStore, redis_url: str
) -> None:
    allowed = _in_processes(workers, _throttle_work, redis_url, 150, 60)
    assert sum(allowed) == 150  # 240 requests from 4 processes, a burst of 150
    assert store.throttle("gcra", 150, 86_400.0, cost=0).remaining == 0


def test_throttle_keys_and_values_are_binary_safe(store: RedisStore) -> None:
    odd = "rate:/caf\u00e9 x\r\n*3\r\n:k"  # RESP delimiters inside a key must stay data
    store.set("ban:\r\n x", b"line1\nline2 -1 \x00\xff")
    store.set("empty", b"")
    result = store.throttle(odd, 2, 60.0, peek=["ban:\r\n x", "absent", "empty"])
    assert result.allowed
    assert result.peeked == (b"line1\nline2 -1 \x00\xff", None, b"")
    assert store.throttle(odd, 2, 60.0).remaining == 0
    assert odd in store.keys("rate:")
    store.set("after", b"1")  # the connection is still in step with the server
    assert store.get("after") == b"1"


def test_throttle_after_a_restart_reconnects(redis_server: RedisServer, redis_url: str) -> None:
    with RedisStore.from_url(redis_url) as store:
        assert store.throttle("t", 3, 60.0).allowed  # a pooled connection now exists
        redis_server.stop()
        with pytest.raises(StoreUnavailableError):
            store.throttle("t", 3, 60.0)
        redis_server.start()
        # The first call after the restart meets a dead or fresh connection and an empty
        # script cache, and still answers (no persistence: the state is gone too).
        assert store.throttle("t", 3, 60.0).remaining == 2
        # A restart between two calls leaves a dead connection in the pool: retried once.
        redis_server.stop()
        redis_server.start()
        assert store.throttle("t", 3, 60.0).remaining == 2
