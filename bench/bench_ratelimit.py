"""Rate-limit benchmark: sitewarden's GCRA decisions against the ``limits`` library and PING.

Everything runs in ONE process; the cases of a group run interleaved (harness.py), so
machine load hits every case alike, and the figure kept is the best per-call time.

Group 1, in memory (1000 client addresses taken in turn, as many clients would send them;
every rate is high enough that every call is allowed, which is checked on every call):

  sitewarden   the full decision: ``RateLimiter.rule_for("POST", "/login")`` +
               ``client_key(address)`` + ``hit(key, rule)`` on a ``memory://`` store
               (rule "POST /login" = "120000/minute", one of seven rules)
  limits       ``FixedWindowRateLimiter(MemoryStorage()).hit(RateLimitItemPerMinute(120000),
               address)`` (gated: sitewarden ÷ limits ≤ 1.0)
  limits       ``MovingWindowRateLimiter`` with ``RateLimitItemPerSecond(2000)`` (for
               information; a per-minute moving window would keep every hit of the last
               minute in a list)
  sitewarden   ``MemoryStore.throttle`` alone, and ``rule_for`` of a path with no rule

Group 2, a real ``redis-server`` started on 127.0.0.1 (a free port, no persistence) and
stopped by its pid at the end; skipped when there is no ``redis-server`` binary:

  sitewarden   ``store.throttle(key, …, peek=[ban_key, ring_key])``: the one round trip a
               rate-limited request costs (gated: ≤ 1.3 x PING)
  redis-py     a bare ``PING`` on the same connection pool (the floor of any round trip)
  sitewarden   ``store.get(ban_key)`` and ``store.get_many([ban_key, ring_key])`` (info)

Run::

    uv run --group bench python bench/bench_ratelimit.py            # full (~20 s)
    uv run --group bench python bench/bench_ratelimit.py --quick    # smoke run (~3 s)
    uv run --group bench python bench/bench_ratelimit.py --json     # machine-readable
"""

from __future__ import annotations

import gc
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from harness import (
    Case,
    evaluate_ratio_targets,
    json_document,
    machine_info,
    parse_options,
    run_interleaved,
)

ADDRESSES = [f"203.0.{i >> 8}.{i & 255}" for i in range(1000)]
RULES = {
    "POST /login": "120000/minute",
    "/login": "600/minute",
    "/api/*": "6000/minute",
    "/api/admin/*": "600/minute",
    "GET|POST /search": "1200/minute",
    "/static/*": "60000/minute",
    "/.well-known/*": "600/minute",
}

#: (name, sitewarden case, peer case, maximum ratio, gating)
TARGETS = [
    ("decision in memory vs limits fixed window", "mem.sitewarden", "mem.limits_fixed", 1.0, True),
    ("  vs limits moving window", "mem.sitewarden", "mem.limits_moving", 1.0, False),
    ("throttle+peek vs PING (Redis)", "redis.throttle", "redis.ping", 1.3, True),
    ("engine guards, signed in, vs PING (Redis)", "redis.warden", "redis.ping", 1.3, True),
]


@dataclass
class Group:
    key: str
    title: str
    baseline: str
    cases: list[Case]


class SanityError(Exception):
    pass


# -- group 1: in memory --------------------------------------------------------------


def memory_group() -> Group:
    from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from sitewarden.guards.ratelimit import RateLimiter
    from sitewarden.policy import load_policy
    from sitewarden.store import open_store

    store = open_store("memory://")
    limiter = RateLimiter(load_policy(rate_limits=RULES), store)
    rule = limiter.rule_for("POST", "/login")
    assert rule is not None
    ns: dict[str, Any] = {
        "rl": limiter,
        "store": store,
        "fixed": FixedWindowRateLimiter(MemoryStorage()),
        "moving": MovingWindowRateLimiter(MemoryStorage()),
        "per_minute": RateLimitItemPerMinute(120_000),
        "per_second": RateLimitItemPerSecond(2000),
        # one iterator per case, so every case walks the addresses alike
        "a_sw": itertools.cycle(ADDRESSES),
        "a_fixed": itertools.cycle(ADDRESSES),
        "a_moving": itertools.cycle(ADDRESSES),
        "a_throttle": itertools.cycle([f"rate:x:{a}" for a in ADDRESSES]),
    }
    cases = [
        Case(
            "mem.sitewarden",
            "sitewarden rule_for + client_key + hit",
            "assert rl.hit(rl.client_key(next(a_sw)), rl.rule_for('POST', '/login')).allowed",
            ns,
        ),
        Case(
            "mem.limits_fixed",
            "limits FixedWindowRateLimiter.hit (per minute)",
            "assert fixed.hit(per_minute, next(a_fixed))",
            ns,
        ),
        Case(
            "mem.limits_moving",
            "limits MovingWindowRateLimiter.hit (per second)",
            "assert moving.hit(per_second, next(a_moving))",
            ns,
        ),
        Case(
            "mem.throttle",
            "sitewarden MemoryStore.throttle alone",
            "assert store.throttle(next(a_throttle), 120000, 60.0).allowed",
            ns,
        ),
        Case(
            "mem.no_rule",
            "sitewarden rule_for, a path with no rule",
            "rl.rule_for('GET', '/some/page.html')",
            ns,
        ),
    ]
    for case in cases:  # every case takes the success path
        exec(case.stmt, dict(ns))
    if limiter.rule_for("GET", "/some/page.html") is not None:
        raise SanityError("a path with no rule found one")
    return Group(
        "mem", "Rate-limit decision in memory (1000 clients in turn)", "mem.limits_fixed", cases
    )


# -- group 2: Redis ------------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server on a free 127.0.0.1 port, stopped by its pid."""

    def __init__(self, binary: str) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.workdir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.workdir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def wait(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                if self.proc.poll() is not None:
                    raise SanityError("redis-server exited at start")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise SanityError("redis-server did not answer PING within 10 s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.workdir.cleanup()


def redis_group(server: RedisServer) -> tuple[Group, Any]:
    from sitewarden.store import open_store

    store = open_store(server.url + "?prefix=bench:")
    store.set("ban:203.0.113.9", b'{"v":1}', ttl=3600)  # a banned neighbour, not this client
    ns: dict[str, Any] = {
        "store": store,
        "client": store._client,  # type: ignore[attr-defined]  # the same connection pool
        "peek": ["ban:192.0.2.1", "keyring:user:bob"],
    }
    # The engine's whole guard pass for a signed-in request on a rate-limited route, with
    # the revocation check due on every request (Redis default): ban check + rate limit +
    # the user's ring in one round trip, plus the session check itself.
    from sitewarden.keyring import KeyManager
    from sitewarden.warden import Warden
    from sitewarden.web.request import RequestView

    warden = Warden(
        keys=KeyManager.open(store),
        allowed_hosts=["example.org"],
        rate_limits={"/limited": "1000000/minute"},
        events_keep=0,
    )
    cookie = f"{warden.sessions.cookie_name}={warden.sessions.issue('bob')}"
    ns["warden"] = warden
    ns["view"] = RequestView(
        method="GET",
        scheme="https",
        host="example.org",
        path="/limited",
        headers={"host": "example.org", "cookie": cookie},
        client="192.0.2.1",
    )
    cases = [
        Case(
            "redis.warden",
            "sitewarden engine: begin(), signed in, limited route",
            "assert warden.begin(view).user == 'bob'",
            ns,
        ),
        Case(
            "redis.throttle",
            "sitewarden throttle + peek 2 keys (EVALSHA)",
            "assert store.throttle('rate:POST /login:192.0.2.1', 1000000, 60.0, 1, peek).allowed",
            ns,
        ),
        Case("redis.ping", "redis-py PING, same pool", "client.ping()", ns),
        Case("redis.get", "sitewarden get(ban key) (GET)", "store.get('ban:192.0.2.1')", ns),
        Case("redis.get_many", "sitewarden get_many(2 keys) (MGET)", "store.get_many(peek)", ns),
    ]
    for case in cases:
        exec(case.stmt, dict(ns))
    result = store.throttle("rate:check", 5, 60.0, peek=["ban:203.0.113.9", "nothing"])
    if result.peeked != (b'{"v":1}', None):
        raise SanityError(f"throttle peeked {result.peeked!r}")
    return Group("redis", "Redis round trips (127.0.0.1)", "redis.ping", cases), store


# -- reporting -----------------------------------------------------------------------


def evaluate_targets(groups: list[Group]) -> list[dict[str, Any]]:
    return evaluate_ratio_targets([c for g in groups for c in g.cases], TARGETS)


def print_report(
    info: dict[str, Any],
    groups: list[Group],
    targets: list[dict[str, Any]],
    args: Any,
    notes: list[str],
) -> None:
    print(
        f"sitewarden rate-limit benchmark — {info['date']}\n"
        f"Python {info['python']} ({info['implementation']}), {info['cpu']}, "
        f"nproc={info['nproc']}, limits {info['versions'].get('limits')}, "
        f"redis-py {info['versions'].get('redis')}\n"
        f"mode={'quick' if args.quick else 'full'}: best of {args.repeats} interleaved "
        f"repeats, ~{args.target_time:g} s per repeat per case"
    )
    for group in groups:
        base = next(c for c in group.cases if c.key == group.baseline)
        print(f"\n{group.title}")
        print(f"  {'case':<50} {'µs/op':>8} {'median':>8} {'÷ base':>7} {'loops':>9}")
        for case in group.cases:
            ratio = case.best_us / base.best_us
            print(
                f"  {case.label:<50} {case.best_us:8.3f} {case.median_us:8.3f} "
                f"{ratio:7.2f} {case.number:9d}"
            )
    for note in notes:
        print(f"\n{note}")
    print("\nTargets (sitewarden ÷ peer, best of each):")
    for t in targets:
        verdict = ("PASS" if t["passed"] else "FAIL") if t["gating"] else "info"
        print(
            f"  {verdict}  {t['name']:<42} {t['sitewarden_us']:8.3f} / {t['peer_us']:8.3f} µs"
            f" = {t['ratio']:.3f}  (target ≤ {t['limit']})"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_options(__doc__.split("\n\n")[0], argv)
    notes: list[str] = []
    try:
        groups = [memory_group()]
    except ImportError as exc:
        print(
            f"missing benchmark dependency ({exc}); run with "
            "`uv run --group bench python bench/bench_ratelimit.py`",
            file=sys.stderr,
        )
        return 2
    except (SanityError, AssertionError) as exc:
        print(f"sanity check failed: {exc!r}", file=sys.stderr)
        return 1

    server: RedisServer | None = None
    redis_store: Any = None
    binary = shutil.which("redis-server")
    if binary is None:
        notes.append("redis-server not found: the Redis group was skipped (not gated).")
    else:
        server = RedisServer(binary)
    try:
        if server is not None:
            server.wait()
            group, redis_store = redis_group(server)
            groups.append(group)
        info = machine_info(("sitewarden", "limits", "redis"))
        started = time.perf_counter()
        for group in groups:
            gc.collect()
            run_interleaved(group.cases, args.repeats, args.target_time)
        elapsed = time.perf_counter() - started
    except (SanityError, AssertionError) as exc:
        print(f"sanity check failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        if redis_store is not None:
            redis_store.close()
        if server is not None:
            server.stop()

    targets = evaluate_targets(groups)
    passed = all(t["passed"] for t in targets if t["gating"])
    if args.json:
        doc = json_document(
            info, args, elapsed, groups, notes=notes, targets=targets, passed=passed
        )
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print_report(info, groups, targets, args, notes)
        print(f"\n({elapsed:.1f} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
