r"""Rate limits per route and per client: GCRA decisions in the store, IETF RateLimit headers.

**Threat.** Without a limit, one client can try thousands of passwords a minute against
``/login`` (brute force, credential stuffing), walk an API to copy its data (scraping), or
hit an expensive page until the site falls over. A limit per client and per route makes
each of these slow, and a client that keeps going after being refused is banned
(:mod:`sitewarden.guards.bans`).

**Rules.** ``policy.rate_limits`` maps routes to rates::

    [rate_limits]
    "POST /login" = "5/minute"
    "/api/*" = "100/minute"
    "GET|POST /search" = "30/minute"

A route is a path, exact (``/login``) or a prefix ending in ``*`` (``/api/*`` matches
``/api`` and every path that starts with ``/api/``), optionally preceded by methods. Rates are
:func:`sitewarden.policy.parse_rate`'s: ``5/minute``, ``100 per hour``, ``10/30s``. The
rules are compiled once into a dictionary of exact paths and a list of prefixes, longest
first, so :meth:`RateLimiter.rule_for` answers the common "no rule" case with one
dictionary lookup and a few string checks. Precedence: the most specific path wins (an
exact path beats any prefix, a longer prefix beats a shorter one); for one path, a rule
naming the request's method beats a rule for every method. ``HEAD`` uses a ``GET`` rule
when it has none of its own (servers answer HEAD as GET: it must not be a way around).

**Evasion.** Paths are matched case-insensitively, percent-decoded, with ``\`` read as
``/``, ``;parameters`` cut from each segment, repeated slashes collapsed and a trailing
slash dropped: ``/LOGIN``, ``/login/``, ``//login`` and ``/%6cogin`` all count against the
``/login`` rule, since some server or framework in front of the application may route
them there. Matching more than the application would is the safe error.

**Clients.** A client is its IP address; an IPv6 client is its ``/64`` network
(``rate_limit_ipv6_prefix``), because one subscriber usually owns a whole /64 and could
otherwise take a fresh address for every request. Addresses come from
:class:`~sitewarden.guards.clientip.ProxyResolver`, so ``X-Forwarded-For`` is believed only
from trusted proxies. Unknown clients share the key ``unknown``.

**Algorithm.** :meth:`sitewarden.store.Store.throttle` (GCRA): a rule of 5/minute allows 5
requests at once and one more every 12 seconds, with no window edge where 10 pass in a
second. A refused request consumes nothing, so a client that waits for ``Retry-After``
always gets in.

**Headers.** :meth:`RateLimiter.headers` writes the fields of the IETF draft
*RateLimit header fields for HTTP* (draft-ietf-httpapi-ratelimit-headers-11, May 2026)::

    RateLimit-Policy: "POST /login";q=5;w=60
    RateLimit: "POST /login";r=3;t=36

``q`` is the quota, ``w`` the window in seconds, ``r`` the requests still available now
and ``t`` the seconds until the full quota is available again (a client that spreads its
``r`` requests over ``t`` seconds is never refused). A refusal adds ``Retry-After``:
whole seconds, rounded up, after which one request will be allowed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from sitewarden import events
from sitewarden.errors import ConfigError
from sitewarden.guards.clientip import parse_ip
from sitewarden.policy import Policy, parse_rate
from sitewarden.store import Store, Throttle
from sitewarden.store.base import check_throttle_args
from sitewarden.web.request import Reply

__all__ = [
    "KEY_PREFIX",
    "REASON_RATE_LIMITED",
    "UNKNOWN_CLIENT",
    "ClientKeys",
    "RateLimiter",
    "RateRule",
    "canonical_path",
]

#: Refusal reason (the event's ``reason`` names the rule after it).
REASON_RATE_LIMITED = "rate limit exceeded"
#: The store keys of rate-limit states start with this.
KEY_PREFIX = "rate:"
#: The client key of requests whose address is unknown (or not an IP address).
UNKNOWN_CLIENT = "unknown"

# Application keys longer than this are hashed, so an attacker-chosen key (a 10 kB login
# name) cannot make store keys of any size.
_MAX_KEY = 128
_CACHE_SIZE = 4096
_QUIET_SIZE = 10_000
_DECODE_ROUNDS = 3
# Characters kept as they are in a policy name (an RFC 8941 String may hold printable
# ASCII; '"' and '\' would need escaping, so they are percent-encoded like the rest).
_NAME_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\%')


@dataclass(frozen=True, slots=True)
class RateRule:
    """One compiled rate limit: *limit* requests per *period* seconds.

    ``id`` names the rule: the route as configured (``"POST /login"``, ``"/api/*"``) or,
    for application-level limits, the canonical rate (``"10/3600s"``). It appears in the
    store keys (``rate:<id>:<client>``), the headers and the events. ``methods`` is
    ``None`` for every method. ``key_prefix``, ``name`` and ``policy_field`` are derived
    from the others when the rule is made (leave them out).
    """

    id: str
    limit: int
    period: float
    methods: frozenset[str] | None = None
    key_prefix: str = ""
    name: str = ""
    policy_field: str = ""

    def __post_init__(self) -> None:
        """Check the rate and compute the store-key prefix and the header values."""
        if type(self.limit) is not int or self.limit < 1 or not self.period > 0:
            raise ConfigError(f"rate limit {self.id!r}: {self.limit}/{self.period} is not a rate")
        try:  # what the stores refuse must stop start-up, not fail every request later
            check_throttle_args(self.limit, self.period, 1)
        except ValueError as exc:
            raise ConfigError(f"rate limit {self.id!r}: {exc}") from None
        # ':' and '%' are encoded in the key part so that no two (rule, key) pairs can
        # make the same store key ("rate:/a:b" + "c" versus "rate:/a" + "b:c").
        key_id = self.id.replace("%", "%25").replace(":", "%3A")
        name = '"' + quote(self.id, safe=_NAME_SAFE) + '"'
        window = max(1, _ceil(self.period))
        object.__setattr__(self, "key_prefix", f"{KEY_PREFIX}{key_id}:")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "policy_field", f"{name};q={self.limit};w={window}")

    @classmethod
    def build(
        cls, rule_id: str, limit: int, period: float, methods: frozenset[str] | None = None
    ) -> RateRule:
        """Return the rule *rule_id* of *limit* per *period* seconds (for *methods*)."""
        return cls(rule_id, limit, period, methods)


def _ceil(seconds: float) -> int:
    """Whole seconds, rounded up, ignoring float noise below a microsecond."""
    whole = int(seconds)
    return whole if seconds - whole < 1e-6 else whole + 1


def canonical_path(path: str) -> str:
    r"""Return *path* the way rules are matched: decoded, ``/``-normalised, lower-case.

    Percent-decoding is repeated (at most three rounds) because a path that a proxy
    decodes once more must not slip past; ``\`` becomes ``/``; ``;params`` are cut from
    each segment; empty segments and a trailing slash go.
    """
    for _ in range(_DECODE_ROUNDS):
        if "%" not in path:
            break
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    path = path.replace("\\", "/")
    segments = [s.split(";", 1)[0] for s in path.split("/")]
    return "/" + "/".join(s for s in segments if s).lower()


def _is_canonical(path: str) -> bool:
    """Cheap test that :func:`canonical_path` would leave *path* unchanged (~0.1 us)."""
    return not (
        path[:1] != "/"
        or path.lower() != path
        or "%" in path
        or ";" in path
        or "\\" in path
        or "//" in path
        or (path[-1] == "/" and len(path) > 1)
    )


class _Slot:
    """The rules of one path pattern: per method, and for every method."""

    __slots__ = ("any", "by_method")

    def __init__(self) -> None:
        self.any: RateRule | None = None
        self.by_method: dict[str, RateRule] = {}

    def add(self, rule: RateRule, route: str, seen: dict[str, str]) -> None:
        """Add *rule*; two rules that would both apply to one request are a config error."""
        labels = ["*"] if rule.methods is None else sorted(rule.methods)
        for label in labels:
            if label in seen:
                raise ConfigError(
                    f"rate_limits: {route!r} and {seen[label]!r} both apply to the same "
                    "requests; keep one"
                )
            seen[label] = route
        if rule.methods is None:
            self.any = rule
        else:
            for method in rule.methods:
                self.by_method[method] = rule

    def pick(self, method: str) -> RateRule | None:
        """Return the rule for *method*: its own, GET's for HEAD, else the any-method one."""
        by_method = self.by_method
        if by_method:
            rule = by_method.get(method)
            if rule is None and method == "HEAD":
                rule = by_method.get("GET")
            if rule is not None:
                return rule
        return self.any


class ClientKeys:
    """Turn client addresses into rate-limit keys (IPv6 by network), with a bounded cache."""

    __slots__ = ("_cache", "_ipv6_prefix")

    def __init__(self, ipv6_prefix: int = 64) -> None:
        """Reduce IPv6 addresses to their */ipv6_prefix* network (1 to 128)."""
        if type(ipv6_prefix) is not int or not 1 <= ipv6_prefix <= 128:
            raise ConfigError("rate_limit_ipv6_prefix: expected a prefix length from 1 to 128")
        self._ipv6_prefix = ipv6_prefix
        self._cache: dict[str, str] = {}

    def __call__(self, address: str | None) -> str:
        """Return the key of *address*: IPv4 as is, IPv6 as its network, else ``unknown``."""
        if address is None:
            return UNKNOWN_CLIENT
        key = self._cache.get(address)
        if key is None:
            key = self._compute(address)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()  # crude, but bounded and cheap: misses just recompute
            self._cache[address] = key
        return key

    def _compute(self, address: str) -> str:
        ip = parse_ip(address)  # IPv4-mapped IPv6 comes back as IPv4
        if ip is None:
            return UNKNOWN_CLIENT
        if isinstance(ip, ipaddress.IPv4Address) or self._ipv6_prefix == 128:
            return str(ip)
        network = ipaddress.IPv6Network((int(ip), self._ipv6_prefix), strict=False)
        return str(network)


class RateLimiter:
    """The rate limits of one site: rule lookup, client keys, decisions, headers, events.

    Per request the engine calls :meth:`rule_for`; when a rule applies, :meth:`client_key`
    and :meth:`hit` (one store round trip, which can peek at the client's ban record as
    well); on refusal it answers :meth:`refusal`, otherwise it may add :meth:`headers`.
    Store errors propagate: the engine applies ``on_store_failure``.

    *clock* (monotonic seconds) only paces the ``ratelimit.refused`` events.
    """

    def __init__(
        self, policy: Policy, store: Store, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Compile ``policy.rate_limits`` and keep *store* for the decisions."""
        self.policy = policy
        self.store = store
        self._clock = clock
        self._send_headers = bool(policy.rate_limit_headers)
        self.client_key = ClientKeys(policy.rate_limit_ipv6_prefix)
        self._exact: dict[str, _Slot] = {}
        prefixes: dict[str, _Slot] = {}
        seen: dict[str, dict[str, str]] = {}
        rules: list[RateRule] = []
        for route, rate in policy.rate_limits.items():
            methods, pattern = _parse_route(route)
            parsed = parse_rate(rate) if isinstance(rate, str) else None
            if parsed is None:
                raise ConfigError(f"rate_limits: {route}: {rate!r} is not a rate such as 5/minute")
            rule = RateRule.build(route.strip(), parsed[0], parsed[1], methods)
            if pattern.endswith("*"):
                table, key = prefixes, pattern[:-1]
            else:
                table, key = self._exact, pattern
            slot = table.setdefault(key, _Slot())
            slot.add(rule, route, seen.setdefault(("*" if table is prefixes else "=") + key, {}))
            rules.append(rule)
        self.rules: tuple[RateRule, ...] = tuple(rules)
        ordered = sorted(prefixes.items(), key=lambda item: len(item[0]), reverse=True)
        self._prefixes: tuple[tuple[str, _Slot], ...] = tuple(ordered)
        self._prefix_keys: tuple[str, ...] = tuple(p for p, _ in ordered)
        self._any_rules = bool(rules)
        self._adhoc: dict[str, RateRule] = {}
        self._quiet: dict[tuple[str, str], float] = {}
        self._quiet_lock = threading.Lock()  # only taken on refusals

    # -- rule lookup -----------------------------------------------------------------

    def rule_for(self, method: str, path: str) -> RateRule | None:
        """Return the rule for a request, or ``None`` (see the module docstring)."""
        if not self._any_rules:
            return None
        slot = self._exact.get(path)
        if slot is None and not _is_canonical(path):
            path = canonical_path(path)
            slot = self._exact.get(path)
        if slot is not None:
            rule = slot.pick(method)
            if rule is not None:
                return rule
        if self._prefix_keys:
            # "/api/*" also covers "/api" itself (the canonical form of "/api/").
            path += "/"
            if not path.startswith(self._prefix_keys):
                return None
            for prefix, prefix_slot in self._prefixes:
                if path.startswith(prefix):
                    rule = prefix_slot.pick(method)
                    if rule is not None:
                        return rule
        return None

    def rule(self, rate: str) -> RateRule:
        """Return the application-level rule for *rate* (``"10/hour"``), cached.

        Raises :class:`~sitewarden.errors.ConfigError` if *rate* is not a rate.
        """
        rule = self._adhoc.get(rate)
        if rule is None:
            parsed = parse_rate(rate) if isinstance(rate, str) else None
            if parsed is None:
                raise ConfigError(f"rate limit: {rate!r} is not a rate such as 10/hour")
            count, period = parsed
            rule = RateRule.build(f"{count}/{period:g}s", count, period)
            if len(self._adhoc) < _CACHE_SIZE:
                self._adhoc[rate] = rule
        return rule

    # -- decisions -------------------------------------------------------------------

    def hit(
        self,
        key: str,
        rate: str | RateRule,
        cost: int = 1,
        peek: Sequence[str] = (),
        *,
        path: str | None = None,
    ) -> Throttle:
        """Count one request of *cost* against *rate* for *key*; return the decision.

        *key* is a client key (:meth:`client_key`) or any application key
        (``"login:" + name``); *rate* a :class:`RateRule` or a rate such as ``"10/hour"``.
        *peek* keys are read in the same store round trip (``result.peeked``). A refusal
        emits ``ratelimit.refused`` at most once per key and rule per window in this
        process (*path* goes into the event). Raises
        :class:`~sitewarden.errors.StoreError` when the store fails.
        """
        rule = rate if type(rate) is RateRule else self.rule(rate)  # type: ignore[arg-type]
        if len(key) > _MAX_KEY:
            key = "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        result = self.store.throttle(rule.key_prefix + key, rule.limit, rule.period, cost, peek)
        if not result.allowed:
            self._report(rule, key, path)
        return result

    def _report(self, rule: RateRule, key: str, path: str | None) -> None:
        """Emit ``ratelimit.refused`` unless this key and rule were reported this window."""
        now = self._clock()
        quiet = self._quiet
        mark = (rule.id, key)
        with self._quiet_lock:  # the sweep iterates: no other thread may change the dict
            until = quiet.get(mark)
            if until is not None and now < until:
                return
            if len(quiet) >= _QUIET_SIZE:
                for stale in [m for m, t in quiet.items() if t <= now]:
                    del quiet[stale]
                if len(quiet) >= _QUIET_SIZE:
                    quiet.clear()  # a flood of distinct keys: log more rather than grow
            quiet[mark] = now + rule.period
        events.emit(
            "ratelimit.refused",
            logging.WARNING,
            client=key,
            path=path,
            reason=f"{REASON_RATE_LIMITED}: {rule.id} ({rule.limit} per {rule.period:g} s)",
        )

    # -- responses -------------------------------------------------------------------

    def headers(self, rule: RateRule, result: Throttle) -> list[tuple[str, str]]:
        """Return the RateLimit-Policy and RateLimit fields, plus Retry-After if refused.

        The RateLimit fields are left out when ``policy.rate_limit_headers`` is false;
        ``Retry-After`` is always given with a refusal.
        """
        fields: list[tuple[str, str]] = []
        if self._send_headers:
            fields.append(("ratelimit-policy", rule.policy_field))
            fields.append(
                ("ratelimit", f"{rule.name};r={result.remaining};t={_ceil(result.reset_after)}")
            )
        if not result.allowed:
            fields.append(("retry-after", str(max(1, _ceil(result.retry_after)))))
        return fields

    def refusal(self, rule: RateRule, result: Throttle) -> Reply:
        """Return the 429 reply for a refused request (plain text, not cached)."""
        return Reply(
            429,
            [
                ("content-type", "text/plain; charset=utf-8"),
                ("cache-control", "no-store"),
                *self.headers(rule, result),
            ],
            b"Too Many Requests\n",
        )


def _parse_route(route: object) -> tuple[frozenset[str] | None, str]:
    """Split ``"GET|POST /path"`` into (methods or ``None``, canonical path pattern)."""
    if not isinstance(route, str):
        raise ConfigError(f"rate_limits: {route!r} is not a route such as 'POST /login'")
    text = route.strip()
    methods: frozenset[str] | None = None
    if " " in text:
        head, _, text = text.partition(" ")
        names = head.split("|")
        if not all(n.isascii() and n.isalpha() and n.isupper() for n in names):
            raise ConfigError(f"rate_limits: {route!r}: methods are upper case, as 'GET|POST'")
        methods = frozenset(names)
        text = text.strip()
    if not text.startswith("/"):
        raise ConfigError(f"rate_limits: {route!r}: the path must start with '/'")
    star = text.endswith("*")
    body = text[:-1] if star else text
    if "*" in body:
        raise ConfigError(f"rate_limits: {route!r}: '*' may only end a prefix, as in /api/*")
    if star:
        # Keep the prefix literal except for case and slashes: "/api/*" must keep its
        # final "/" so that it does not match "/apiary".
        trailing = body.endswith("/")
        pattern = canonical_path(body)
        if trailing and pattern != "/":
            pattern += "/"
        return methods, pattern + "*"
    return methods, canonical_path(body)
