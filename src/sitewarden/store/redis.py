"""A Redis-backed store (``redis://``, ``rediss://``, ``unix://``), shared by many machines.

Data layout
-----------
Every store key is exactly one Redis key, namespaced by a prefix (``?prefix=`` in the
URL, default ``sitewarden:``), so ``keyring:forms`` lives at ``sitewarden:keyring:forms``
and several sites or test runs can share one Redis database without seeing each other:

* values (:meth:`~RedisStore.get`, :meth:`~RedisStore.set`, :meth:`~RedisStore.add`,
  :meth:`~RedisStore.update`) are Redis strings holding the bytes as given, with a
  ``PX`` expiry when a ttl is asked for;
* counters (:meth:`~RedisStore.incr`) are Redis integers (``INCRBY``), given a
  ``PEXPIRE`` when they are created;
* sets (:meth:`~RedisStore.set_add` and friends) are Redis sets;
* throttle states (:meth:`~RedisStore.throttle`) are Redis strings holding the
  theoretical arrival time in whole microseconds of the server's clock, expiring when it
  is reached.

Why native types rather than one serialised blob per key: the features built on the
store — login lockout counters and rate limits (fixed windows that expire), bans and
revocations (sets), TOTP replay marks (``SET NX`` with expiry) — then map one-to-one onto
atomic Redis commands, expiry is enforced by Redis itself with no sweeping on our side,
and an operator can inspect or fix any of it with ``redis-cli``.

Failures: every connection problem (server down, timeout, wrong password) is raised as
:class:`~sitewarden.errors.StoreUnavailableError`, any other Redis error as
:class:`~sitewarden.errors.StoreError`; no redis-py exception escapes, and no message
carries the password.
"""

from __future__ import annotations

import builtins
import inspect
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.exceptions import NoScriptError
from redis.retry import Retry

from sitewarden.errors import ConfigError, StoreError, StoreUnavailableError
from sitewarden.store import redact_url
from sitewarden.store.base import Store, Throttle, Updater, check_throttle_args, new_throttle

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

#: The key namespace used when the URL has no ``?prefix=``.
DEFAULT_PREFIX = "sitewarden:"

# Connect quickly or fail: a web request waiting on a dead Redis should get a clear
# StoreUnavailableError within seconds, not hang. Reads get a little longer than the
# connect, since a busy server may be slow to answer but is still there.
_SOCKET_CONNECT_TIMEOUT = 2.0
_SOCKET_TIMEOUT = 5.0
# PING a pooled connection before use when it has been idle this long (seconds), so a
# connection the server dropped (restart, idle timeout) is replaced instead of failing.
_HEALTH_CHECK_INTERVAL = 30
# One immediate retry after a connection error: enough to reconnect a pooled connection
# that died since its last use, without stretching a real outage into a long stall.
_RETRIES = 1
# update() retries on WATCH conflicts. Optimistic locking always lets one writer through,
# so this only bounds one unlucky caller's starvation under extreme contention.
_MAX_UPDATE_ATTEMPTS = 1000
# SCAN batch size: large enough that keys() takes few round trips on a big database.
_SCAN_COUNT = 1000

# INCRBY and, only if this call created the counter, PEXPIRE — atomically and in one
# round trip. Checking EXISTS first (rather than "result == amount") is exact even for
# amount 0 or a counter that went back to zero. ARGV[2] is the ttl in ms, or "" for none;
# a ttl of 0 makes PEXPIRE delete the new counter at once, as an already-expired ttl should.
_INCR_SCRIPT = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and ARGV[2] ~= '' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return count
"""

# GCRA in one atomic step and one round trip. KEYS[1] is the throttle state, KEYS[2..] the
# keys to peek at (read first, so a wrong type fails before anything is written). ARGV[1]:
# "interval capacity cost", the emission interval and the capacity (limit x interval) in
# microseconds and the cost (one argument: redis-py packs each argument at some expense).
# Time comes from the server (TIME), so every machine sharing this Redis agrees on it.
# Lua numbers are doubles: integers are exact up to 2^53 us (285 years), and '%d' writes
# them without the rounding tostring() would do.
#
# The reply is ONE bulk string, "allowed remaining retry_us reset_us len1 len2 ...\n"
# followed by the peeked values end to end (length -1: absent). redis-py parses a reply
# array element by element in Python, several microseconds each; one string is one read.
_THROTTLE_SCRIPT = """
local lengths = {}
local values = {}
for i = 2, #KEYS do
    local value = redis.call('GET', KEYS[i])
    if value then
        lengths[i - 1] = string.format('%d', #value)
        values[#values + 1] = value
    else
        lengths[i - 1] = '-1'
    end
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval, capacity, cost = string.match(ARGV[1], '^(%d+) (%d+) (%d+)$')
interval = tonumber(interval)
capacity = tonumber(capacity)
local increment = interval * tonumber(cost)
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
    tat = tonumber(stored)
    if not tat then
        return redis.error_reply('sitewarden: the key does not hold a throttle state')
    end
    if tat < now then
        tat = now
    end
end
local debt = tat + increment - now
local head
if debt <= capacity then
    if increment > 0 then
        redis.call('SET', KEYS[1], string.format('%d', now + debt), 'PX', math.ceil(debt / 1000))
    end
    head = string.format('1 %d 0 %d', math.floor((capacity - debt) / interval), debt)
else
    local held = tat - now
    head = string.format(
        '0 %d %d %d', math.floor((capacity - held) / interval), debt - capacity, held)
end
return head .. ' ' .. table.concat(lengths, ' ') .. '\\n' .. table.concat(values)
"""


def _parse_throttle_reply(raw: bytes) -> tuple[bool, int, int, int, tuple[bytes | None, ...]]:
    """Split the throttle script's reply (see ``_THROTTLE_SCRIPT``)."""
    head, _, body = raw.partition(b"\n")
    fields = head.split()
    peeked: list[bytes | None] = []
    offset = 0
    for length in map(int, fields[4:]):
        if length < 0:
            peeked.append(None)
        else:
            peeked.append(body[offset : offset + length])
            offset += length
    return (
        fields[0] == b"1",
        int(fields[1]),
        int(fields[2]),
        int(fields[3]),
        tuple(peeked),
    )


# Characters that are special in Redis glob patterns (SCAN MATCH); backslash escapes them.
_GLOB_SPECIAL = frozenset("*?[]\\")


def _replace_query(url: str, query: str) -> str:
    """Return *url* with its query string replaced by *query* (dropped if empty).

    Done by hand because ``urlunsplit`` turns ``unix:///path`` into ``unix:/path``.
    """
    rest, hash_mark, fragment = url.partition("#")
    base = rest.partition("?")[0]
    return base + ("?" + query if query else "") + hash_mark + fragment


def _split_prefix(url: str) -> tuple[str, str]:
    """Return (*url* without the ``prefix`` query parameter, the prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if len(prefixes) > 1:
        raise ConfigError(f"store: {redact_url(url)!r} gives 'prefix' more than once")
    prefix = prefixes[0] if prefixes else DEFAULT_PREFIX
    rest = [(name, value) for name, value in query if name != "prefix"]
    return _replace_query(url, urlencode(rest)), prefix


def _ttl_ms(ttl: float) -> int:
    """Convert a ttl in seconds to whole milliseconds.

    A positive ttl gives at least 1 ms, so that a tiny ttl still means "expires soon"
    rather than "never". A ttl of zero or less gives 0: already expired, which callers
    handle without asking Redis (``SET … PX 0`` is an error there).
    """
    if not math.isfinite(ttl):
        raise ValueError(f"ttl must be a finite number of seconds, not {ttl!r}")
    return 0 if ttl <= 0 else max(1, round(ttl * 1000))


def _escape_glob(text: str) -> str:
    """Escape *text* so that a Redis glob pattern matches it literally."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


class RedisStore(Store):
    """A :class:`~sitewarden.store.base.Store` kept in Redis; see the module docstring."""

    remote = True

    def __init__(self, client: redis.Redis, *, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        """Use *client* (which this store now owns and closes), namespacing keys by *prefix*.

        *url* is only for display and is redacted here in any case. Nothing is sent to
        the server yet: the first operation connects (use :meth:`ping` to check early).
        """
        self.url = redact_url(url)
        self.prefix = prefix
        self._client = client
        # Registering only computes the script's SHA locally; redis-py loads it on the
        # server on first use (and again after a server restart empties the script cache).
        self._incr_script = client.register_script(_INCR_SCRIPT)
        self._throttle_script = client.register_script(_THROTTLE_SCRIPT)
        # redis-py >= 5.3 takes no arguments here (and warns about them); older needs one.
        get_connection = inspect.signature(client.connection_pool.get_connection)
        command_name = get_connection.parameters.get("command_name")
        self._conn_args: tuple[str, ...] = (
            () if command_name is None or command_name.default is None else ("EVALSHA",)
        )

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Open the Redis store named by *url* (redis-py's URL syntax plus ``?prefix=``).

        Raises :class:`~sitewarden.errors.ConfigError` for a URL redis-py rejects.
        """
        redis_url, prefix = _split_prefix(url)
        shown = redact_url(url)
        try:
            client = redis.Redis.from_url(
                redis_url,
                socket_connect_timeout=_SOCKET_CONNECT_TIMEOUT,
                socket_timeout=_SOCKET_TIMEOUT,
                health_check_interval=_HEALTH_CHECK_INTERVAL,
                retry=Retry(NoBackoff(), _RETRIES),
            )
            pool = client.connection_pool
            # Build (without connecting) one connection now, so that a misspelt query
            # parameter fails here with a clear message rather than on the first request.
            pool.connection_class(**pool.connection_kwargs)
        except (ValueError, TypeError) as exc:
            # The messages name the offending parameter, never its value.
            raise ConfigError(f"store: bad Redis URL {shown!r}: {exc}") from None
        if pool.connection_kwargs.get("decode_responses"):
            client.close()
            raise ConfigError(f"store: {shown!r}: decode_responses is not supported")
        return cls(client, url=url, prefix=prefix)

    # -- helpers ---------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + key

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn redis-py exceptions raised in the block into sitewarden's own."""
        try:
            yield
        except redis.RedisError as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: redis.RedisError, action: str) -> StoreError:
        """Return sitewarden's exception for the redis-py exception *exc*."""
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            # redis-py's messages name host and port and the failure, never the password.
            return StoreUnavailableError(
                f"store: Redis at {self.url} is unavailable ({action}): {exc}. "
                "Check that the server is running and reachable, then retry."
            )
        return StoreError(f"store: Redis at {self.url} failed ({action}): {exc}")

    @staticmethod
    def _reset(pipe: Pipeline) -> None:
        """Unwatch and return *pipe*'s connection to the pool, without ever raising.

        Called in ``finally`` blocks, where an error here must not replace the real one
        (such as an exception from the caller's update function).
        """
        try:
            pipe.reset()
        except redis.RedisError:
            # UNWATCH failed in a way reset() does not handle itself (a timeout): drop the
            # connection — which also ends the WATCH on the server — and release it.
            conn: Any = pipe.connection  # redis-py leaves Connection methods untyped
            if conn is not None:
                conn.disconnect()
            pipe.watching = False
            pipe.reset()

    # -- key-value -------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """Return the value under *key* (``GET``), or ``None``."""
        with self._errors(f"get {key!r}"):
            return cast("bytes | None", self._client.get(self._key(key)))

    def get_many(self, keys: Sequence[str]) -> builtins.list[bytes | None]:
        """Return the values of *keys* in order, in one ``MGET``."""
        if not keys:
            return []
        with self._errors(f"get_many ({len(keys)} keys)"):
            return cast("list[bytes | None]", self._client.mget([self._key(k) for k in keys]))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store *value* under *key* (``SET … PX``), replacing whatever was there."""
        px = None if ttl is None else _ttl_ms(ttl)
        with self._errors(f"set {key!r}"):
            if px == 0:
                # Stored and expired at once: what remains is that the old value is gone.
                self._client.delete(self._key(key))
            else:
                self._client.set(self._key(key), bytes(value), px=px)

    def add(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store *value* only if *key* is absent (``SET … NX PX``); return whether stored."""
        px = None if ttl is None else _ttl_ms(ttl)
        with self._errors(f"add {key!r}"):
            if px == 0:
                # It would be stored only if absent, and expire at once: nothing to write.
                return not self._client.exists(self._key(key))
            return bool(self._client.set(self._key(key), bytes(value), px=px, nx=True))

    def delete(self, key: str) -> bool:
        """Remove *key* whatever it holds (``DEL``); return whether it existed."""
        with self._errors(f"delete {key!r}"):
            return bool(self._client.delete(self._key(key)))

    def update(self, key: str, fn: Updater, ttl: float | None = None) -> bytes | None:
        """Atomically replace the value under *key* by ``fn(current)``.

        Optimistic: ``WATCH`` the key, read it, call *fn*, then write in ``MULTI``/``EXEC``;
        if another client changed the key meanwhile, EXEC fails and we start over, so *fn*
        may run several times. *fn*'s exceptions propagate unchanged.
        """
        name = self._key(key)
        action = f"update {key!r}"
        pipe = self._client.pipeline()
        try:
            for _ in range(_MAX_UPDATE_ATTEMPTS):
                with self._errors(action):
                    cast(Any, pipe).watch(name)  # untyped in redis-py
                    # After WATCH the pipeline runs commands immediately.
                    current = cast("bytes | None", pipe.get(name))
                # Outside _errors: whatever fn raises must reach the caller untouched.
                new = fn(current)
                if new is None:
                    return current
                new = bytes(new)
                with self._errors(action):
                    pipe.multi()
                    px = None if ttl is None else _ttl_ms(ttl)
                    if px == 0:
                        pipe.delete(name)  # already expired: nothing is kept
                    else:
                        pipe.set(name, new, px=px)
                    try:
                        pipe.execute()
                    except redis.WatchError:
                        # Someone else wrote the key (or the connection dropped while
                        # watching): read again. A dead server shows on the next WATCH.
                        continue
                return new
        finally:
            self._reset(pipe)
        raise StoreError(
            f"store: Redis at {self.url}: gave up updating {key!r} after "
            f"{_MAX_UPDATE_ATTEMPTS} conflicting writes; try again"
        )

    def keys(self, prefix: str) -> list[str]:
        """Return the live keys starting with *prefix*, sorted (``SCAN … MATCH``)."""
        pattern = _escape_glob(self._key(prefix)) + "*"
        strip = len(self.prefix)
        with self._errors(f"keys {prefix!r}"):
            # SCAN may return a key more than once; the set removes duplicates. Keys are
            # written as UTF-8; "replace" keeps a foreign undecodable key from crashing.
            found = {
                cast("bytes", raw).decode("utf-8", "replace")[strip:]
                for raw in self._client.scan_iter(match=pattern, count=_SCAN_COUNT)
            }
        return sorted(found)

    # -- counters --------------------------------------------------------------------

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add *amount* to the counter *key*; *ttl* is set only when it is created."""
        px = "" if ttl is None else str(_ttl_ms(ttl))
        with self._errors(f"incr {key!r}"):
            return int(cast(Any, self._incr_script(keys=[self._key(key)], args=[int(amount), px])))

    # -- rate limiting ---------------------------------------------------------------

    def throttle(
        self, key: str, limit: int, period: float, cost: int = 1, peek: Sequence[str] = ()
    ) -> Throttle:
        """Decide one request by GCRA in one Lua script: one round trip, atomic.

        The script is the one registered with ``register_script`` and runs with
        ``EVALSHA``; after ``NOSCRIPT`` (a restarted or failed-over server has an empty
        script cache) it is loaded again and rerun, as redis-py's ``Script`` does. The
        clock is the server's (``TIME``), so all machines agree. The peeked keys are read
        in the same script.
        """
        check_throttle_args(limit, period, cost)
        interval = round(period * 1_000_000 / limit)  # us between two requests, steady rate
        prefix = self.prefix
        names = [prefix + key]
        names.extend([prefix + k for k in peek])
        argv = b"%d %d %d" % (interval, interval * limit, cost)
        script = self._throttle_script
        try:
            try:
                raw = self._evalsha(script.sha, names, argv)
            except NoScriptError:
                script.sha = self._client.script_load(script.script)
                raw = self._evalsha(script.sha, names, argv)
        except redis.RedisError as exc:
            raise self._translate(exc, f"throttle {key!r}") from exc
        allowed, remaining, retry_us, reset_us, peeked = _parse_throttle_reply(raw)
        return new_throttle(allowed, limit, remaining, retry_us / 1e6, reset_us / 1e6, peeked)

    def _evalsha(self, sha: str, keys: list[str], argv: bytes) -> bytes:
        """Run ``EVALSHA sha len(keys) *keys argv`` on a pooled connection; return the reply.

        Every rate-limited request makes this call, so it packs the command itself and
        talks to a pooled connection directly: redis-py's ``execute_command`` cost about
        20 us more than this on the reference machine for a command of this size (it packs
        and encodes each argument, and runs its hooks), which made the decision cost about 2x
        a PING instead of about 1.1x. What it does not
        skip: the pool (connect, health check, fork safety) and a retry after a connection
        error. A timeout while reading is not retried: the script may have run, and
        counting a request twice is the wrong way to be unsure.
        """
        chunks = [
            b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n" % (4 + len(keys), len(sha), sha.encode())
        ]
        count = b"%d" % len(keys)
        chunks.append(b"$%d\r\n%s\r\n" % (len(count), count))
        for name in keys:
            # surrogatepass: a key is never a reason to fail (redis-py's encoder is strict).
            raw_name = name.encode("utf-8", "surrogatepass")
            chunks.append(b"$%d\r\n%s\r\n" % (len(raw_name), raw_name))
        chunks.append(b"$%d\r\n%s\r\n" % (len(argv), argv))
        packed = [b"".join(chunks)]
        pool: Any = self._client.connection_pool  # redis-py leaves these methods untyped
        for attempt in range(_RETRIES + 1):
            conn = pool.get_connection(*self._conn_args)
            try:
                try:
                    conn.send_packed_command(packed)
                except redis.ConnectionError:
                    if attempt < _RETRIES:
                        continue  # a pooled connection that died since its last use
                    raise
                try:
                    return cast(bytes, conn.read_response())
                except redis.ConnectionError:
                    # The server closed the connection instead of answering (it restarted
                    # since this connection's last use): one more try on a fresh one.
                    if attempt < _RETRIES:
                        continue
                    raise
                except redis.ResponseError:
                    raise  # a complete error reply: the connection is fine
                except BaseException:
                    conn.disconnect()  # mid-reply: never hand this connection out again
                    raise
            finally:
                pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- sets ------------------------------------------------------------------------

    def set_add(self, key: str, *members: bytes) -> int:
        """Add *members* to the set *key* (``SADD``); return how many were new."""
        if not members:
            return 0  # SADD needs at least one member
        with self._errors(f"set_add {key!r}"):
            return int(cast(Any, self._client.sadd(self._key(key), *map(bytes, members))))

    def set_remove(self, key: str, *members: bytes) -> int:
        """Remove *members* from the set *key* (``SREM``); return how many were there."""
        if not members:
            return 0  # SREM needs at least one member
        with self._errors(f"set_remove {key!r}"):
            return int(cast(Any, self._client.srem(self._key(key), *map(bytes, members))))

    def set_members(self, key: str) -> builtins.set[bytes]:
        """Return the members of the set *key* (``SMEMBERS``)."""
        with self._errors(f"set_members {key!r}"):
            members = cast("Iterable[bytes]", self._client.smembers(self._key(key)))
            return {bytes(m) for m in members}

    # -- lifecycle -------------------------------------------------------------------

    def ping(self) -> None:
        """Raise :class:`~sitewarden.errors.StoreUnavailableError` unless Redis answers."""
        with self._errors("ping"):
            self._client.ping()

    def close(self) -> None:
        """Disconnect every pooled connection."""
        with self._errors("close"):
            self._client.close()
