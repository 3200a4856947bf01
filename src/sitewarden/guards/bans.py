"""Bans for clients that keep breaking the rate limits, and static block/allow lists.

**Threat.** A rate limit slows an attacker down; it does not stop one who simply keeps
going at the allowed pace, or who ignores every ``429`` and floods. Fail2Ban's answer is
to read the logs and ban an address that keeps failing. :class:`BanList` does the same
inside the application, through the shared store, so every worker and machine sees a ban
at once and no log-parsing daemon is needed.

**Bans.** The engine calls :meth:`BanList.breach` for every request the rate limiter
refuses. After ``ban_after`` breaches within ``ban_window`` seconds (a fixed window from
the first breach) the client is banned for ``ban_duration * 2**(level - 1)`` seconds,
capped at ``ban_max_duration``; *level* counts this client's bans, and is remembered for
``ban_max_duration`` seconds after the last one, so a persistent offender is banned for
10 minutes, then 20, 40, … up to a week (the defaults). A client that waits for
``Retry-After`` after a refusal is never banned; one that ignores it is, quickly.

A ban is one store value, ``ban:<client>``, a small JSON record that expires with the
ban. The engine reads it in the same store round trip as the rate-limit decision
(``peek=[ban_key(client)]``) and answers :meth:`BanList.refusal` (403 with
``Retry-After``) while it lasts. Clients are the rate limiter's client keys: IPv4
addresses, IPv6 ``/64`` networks (``rate_limit_ipv6_prefix``).

**Static lists.** ``block_networks`` are always refused (403); ``allow_networks`` are
never rate-limited or banned (monitoring, the office, a partner's servers). When an address
is in both, the most specific network wins (the longest prefix, as in a routing table):
``block 10.0.0.0/8`` with ``allow 10.1.2.0/24`` lets ``10.1.2.3`` through, and
``allow 10.0.0.0/8`` with ``block 10.66.0.0/16`` refuses ``10.66.0.1``. The same network
in both lists is blocked (fail closed). The lists are compiled at start-up into one
dictionary per prefix length, so a lookup costs one dictionary probe per distinct length,
and nothing at all when both lists are empty.

Times in ban records are wall-clock seconds (``time.time()``), shared by every process.
"""

from __future__ import annotations

import builtins
import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sitewarden import events
from sitewarden.guards.clientip import parse_ip
from sitewarden.guards.ratelimit import ClientKeys
from sitewarden.policy import Policy
from sitewarden.store import Store
from sitewarden.web.request import Reply

__all__ = [
    "BAN_PREFIX",
    "HITS_PREFIX",
    "LEVEL_PREFIX",
    "REASON_BANNED",
    "REASON_BLOCKED",
    "Ban",
    "BanList",
    "BanRecord",
    "Verdict",
]

#: Store keys of ban records start with this (``ban:<client>``).
BAN_PREFIX = "ban:"
#: Breach counters and ban levels (``banhits:<client>``, ``banlevel:<client>``).
HITS_PREFIX = "banhits:"
LEVEL_PREFIX = "banlevel:"
#: Refusal reasons.
REASON_BANNED = "client banned after repeated rate-limit breaches"
REASON_BLOCKED = "client address in block_networks"

#: What :meth:`BanList.static_verdict` answers.
Verdict = Literal["block", "allow"]

_CACHE_SIZE = 4096
_MALFORMED_SEEN = 256
# 2**60 times any ban_duration is far beyond any ban_max_duration: stop doubling there.
_MAX_LEVEL_EXPONENT = 60


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A stored ban: the client key, when it ends (Unix time), its level and why."""

    client: str
    until: float
    level: int
    reason: str


@dataclass(frozen=True, slots=True)
class Ban:
    """A ban just made by :meth:`BanList.breach`: the record plus its length in seconds."""

    client: str
    until: float
    level: int
    duration: int
    reason: str


class _Networks:
    """Longest-prefix match of addresses against the block and allow lists."""

    __slots__ = ("_v4", "_v6")

    def __init__(self, block: tuple[str, ...], allow: tuple[str, ...]) -> None:
        tables: dict[tuple[int, int], dict[int, Verdict]] = {}
        # Allow first, then block: the same network in both ends up blocked.
        lists: tuple[tuple[Verdict, tuple[str, ...]], ...] = (("allow", allow), ("block", block))
        for verdict, networks in lists:
            for text in networks:
                net = ipaddress.ip_network(text, strict=False)
                if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped:
                    # ::ffff:a.b.c.d/n names IPv4 addresses, which parse_ip unmaps.
                    net = ipaddress.ip_network(
                        f"{net.network_address.ipv4_mapped}/{max(0, net.prefixlen - 96)}",
                        strict=False,
                    )
                bits = net.max_prefixlen
                table = tables.setdefault((bits, net.prefixlen), {})
                table[int(net.network_address) >> (bits - net.prefixlen)] = verdict
        # Per address family: (shift, table), longest prefix first.
        self._v4 = tuple(
            (32 - plen, table)
            for (bits, plen), table in sorted(tables.items(), key=lambda kv: -kv[0][1])
            if bits == 32
        )
        self._v6 = tuple(
            (128 - plen, table)
            for (bits, plen), table in sorted(tables.items(), key=lambda kv: -kv[0][1])
            if bits == 128
        )

    def verdict(self, address: str) -> Verdict | None:
        ip = parse_ip(address)
        if ip is None:
            return None
        number = int(ip)
        for shift, table in self._v4 if ip.version == 4 else self._v6:
            found = table.get(number >> shift)
            if found is not None:
                return found
        return None


class BanList:
    """The bans of one site, and its static block/allow lists (see the module docstring).

    *clock* returns wall-clock seconds (injectable for tests).
    """

    def __init__(
        self, policy: Policy, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Compile the networks of *policy* and keep *store* for the bans."""
        self.policy = policy
        self.store = store
        self._clock = clock
        self.client_key = ClientKeys(policy.rate_limit_ipv6_prefix)
        self._networks = (
            _Networks(policy.block_networks, policy.allow_networks)
            if policy.block_networks or policy.allow_networks
            else None
        )
        self._verdicts: dict[str, Verdict | None] = {}
        self._parsed: dict[bytes, BanRecord | None] = {}
        self._malformed_seen: set[bytes] = set()

    # -- static lists ----------------------------------------------------------------

    def static_verdict(self, address: str | None) -> Verdict | None:
        """Return ``"block"``, ``"allow"`` or ``None`` for *address* (cached, bounded)."""
        networks = self._networks
        if networks is None or address is None:
            return None
        verdicts = self._verdicts
        if address in verdicts:
            return verdicts[address]
        verdict = networks.verdict(address)
        if len(verdicts) >= _CACHE_SIZE:
            verdicts.clear()
        verdicts[address] = verdict
        return verdict

    # -- reading bans ----------------------------------------------------------------

    @staticmethod
    def ban_key(client_key: str) -> str:
        """Return the store key of *client_key*'s ban record (for ``peek``)."""
        return BAN_PREFIX + client_key

    def remaining(self, raw: bytes | None, now: float | None = None) -> float | None:
        """Return the seconds left of the ban record *raw*, or ``None`` if not banned.

        A malformed record counts as no ban (a damaged value must not lock everyone out
        or crash the request) and is reported once by a ``ban.malformed`` event.
        """
        if raw is None:
            return None
        record = self._record(raw)
        if record is None:
            return None
        left = record.until - (self._clock() if now is None else now)
        return left if left > 0 else None

    def _record(self, raw: bytes) -> BanRecord | None:
        """Parse *raw* (cached: a banned client's every request carries the same bytes)."""
        parsed = self._parsed
        if raw in parsed:
            return parsed[raw]
        record = _parse_record(raw)
        if record is None and raw not in self._malformed_seen:
            if len(self._malformed_seen) < _MALFORMED_SEEN:
                self._malformed_seen.add(raw)
            events.emit(
                "ban.malformed",
                logging.ERROR,
                reason="a ban record in the store is not readable; it is ignored",
            )
        if len(parsed) >= _CACHE_SIZE:
            parsed.clear()
        parsed[raw] = record
        return record

    def check(self, address: str | None) -> float | None:
        """Return the seconds left of *address*'s ban, or ``None`` (one store read).

        Addresses in ``allow_networks`` are never banned.
        """
        if self.static_verdict(address) == "allow":
            return None
        return self.remaining(self.store.get(self.ban_key(self.client_key(address))))

    def list(self) -> builtins.list[BanRecord]:
        """Return the bans in force, the soonest to end first."""
        keys = self.store.keys(BAN_PREFIX)
        now = self._clock()
        records = []
        for raw in self.store.get_many(keys):
            record = None if raw is None else self._record(raw)
            if record is not None and record.until > now:
                records.append(record)
        return sorted(records, key=lambda r: (r.until, r.client))

    # -- making and lifting bans -----------------------------------------------------

    def breach(self, client_key: str, reason: str | None = None) -> Ban | None:
        """Count one rate-limit breach by *client_key*; ban it when there are too many.

        Returns the :class:`Ban` when this breach started one, else ``None``. Atomic
        across processes: the breach counter is one ``incr``, and only the breach that
        brings it to a multiple of ``ban_after`` bans, so concurrent workers ban once.
        """
        policy = self.policy
        count = self.store.incr(HITS_PREFIX + client_key, ttl=policy.ban_window)
        if count % policy.ban_after:
            return None
        stored = self.store.update(
            LEVEL_PREFIX + client_key, _next_level, ttl=policy.ban_max_duration
        )
        level = _level_of(stored)
        exponent = min(max(0, level - 1), _MAX_LEVEL_EXPONENT)
        duration = min(policy.ban_duration * 2**exponent, policy.ban_max_duration)
        until = self._clock() + duration
        breaches = (
            "1 rate-limit breach"
            if policy.ban_after == 1
            else (f"{policy.ban_after} rate-limit breaches")
        )
        why = reason or f"{breaches} within {policy.ban_window} s"
        record = {"v": 1, "client": client_key, "until": until, "level": level}
        record["reason"] = why
        self.store.set(
            self.ban_key(client_key),
            json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(),
            ttl=duration,
        )
        # A fresh count after the ban: the next ban needs ban_after new breaches.
        self.store.delete(HITS_PREFIX + client_key)
        events.emit(
            "ban.added",
            logging.WARNING,
            client=client_key,
            reason=f"{why}; banned for {duration} s (level {level})",
            until=round(until, 3),
            ban_level=level,
        )
        return Ban(client_key, until, level, duration, why)

    def unban(self, client_or_address: str) -> bool:
        """Lift the ban of a client key or an address; return whether one was in force.

        An address is turned into its client key (an IPv6 address into its network).
        If no ban is found under that key, any banned IPv6 network containing the
        address is lifted (bans made with another ``rate_limit_ipv6_prefix``). The
        client's breach count and ban level are forgotten too.
        """
        text = client_or_address.strip()
        keys = [self._key_of(text)]
        ip = parse_ip(text)
        found = self.store.get(self.ban_key(keys[0])) is not None
        if not found and isinstance(ip, ipaddress.IPv6Address):
            for record in self.list():
                try:
                    net = ipaddress.ip_network(record.client, strict=False)
                except ValueError:
                    continue
                if ip in net:
                    keys.append(record.client)
        removed = False
        for key in keys:
            if self.store.delete(self.ban_key(key)):
                removed = True
                events.emit(
                    "ban.removed", logging.WARNING, client=key, reason="ban lifted by unban"
                )
            self.store.delete(HITS_PREFIX + key)
            self.store.delete(LEVEL_PREFIX + key)
        return removed

    def _key_of(self, text: str) -> str:
        """Return the client key for an address, a network or a client key."""
        if parse_ip(text) is not None:
            return self.client_key(text)
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return text  # a client key such as "unknown"

    # -- responses -------------------------------------------------------------------

    @staticmethod
    def refusal(seconds_left: float | None) -> Reply:
        """Return the 403 reply for a banned client (*seconds_left*) or a blocked one (None)."""
        headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("cache-control", "no-store"),
        ]
        if seconds_left is None:
            return Reply(403, headers, b"Forbidden: this address is blocked.\n")
        headers.append(("retry-after", str(max(1, math.ceil(seconds_left)))))
        return Reply(
            403, headers, b"Forbidden: too many requests over the limit; try again later.\n"
        )


def _parse_record(raw: bytes) -> BanRecord | None:
    """Return the record stored as *raw*, or ``None`` if it is not one."""
    try:
        doc: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    client, until, level = doc.get("client"), doc.get("until"), doc.get("level")
    reason = doc.get("reason", "")
    if (
        not isinstance(client, str)
        or isinstance(until, bool)
        or not isinstance(until, int | float)
        or not math.isfinite(until)
        or isinstance(level, bool)
        or not isinstance(level, int)
        or not isinstance(reason, str)
    ):
        return None
    return BanRecord(client, float(until), level, reason)


def _level_of(raw: bytes | None) -> int:
    """Return the ban level stored as *raw* (0 if absent or unreadable)."""
    try:
        return max(0, int(raw or b"0"))
    except ValueError:
        return 0


def _next_level(current: bytes | None) -> bytes:
    """Count one more ban in the level record (the function given to ``update``)."""
    return b"%d" % (_level_of(current) + 1)
