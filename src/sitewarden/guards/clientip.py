"""The real client address, scheme and host behind trusted reverse proxies.

**Threat.** ``X-Forwarded-For``, ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and RFC 7239
``Forwarded`` are ordinary request headers: anyone can send them. Believing them from
anyone lets a client pick the address that rate limits, bans, lockouts and the
management-network check see (``X-Forwarded-For: 127.0.0.1``), claim HTTPS to dodge the
redirect, or swap the host the site builds links from (cache poisoning). Even behind a real
proxy, the *leftmost* ``X-Forwarded-For`` entry is whatever the client sent: proxies append
what they saw, they do not clean what they were given.

**Rule.** :class:`ProxyResolver` believes forwarded headers only when the socket peer is
inside ``trusted_proxies``. It then walks ``X-Forwarded-For`` from the right, skipping
addresses that are themselves trusted proxies, and takes the first untrusted one: the
address the outermost trusted proxy saw. The scheme and host are taken from the same hop.
With no trusted proxies, or an untrusted peer, the request's own client, scheme and host
are returned unchanged (only an IPv4-mapped IPv6 peer such as ``::ffff:192.0.2.1`` is
normalised to ``192.0.2.1``).

Fail-closed details:

* an entry that is not an IP address (``unknown``, an obfuscated ``_node``, garbage) stops
  the walk: what lies left of it came from a hop nobody vouches for, so the client is
  unknown (``None``), which the management-network check refuses;
* at most :data:`MAX_HOPS` entries are examined, so a huge header costs nothing more;
* when a request carries both ``X-Forwarded-For`` and ``Forwarded`` and they name different
  clients, one of them was written by the client (the proxy only writes one kind): the
  client is unknown; differing hosts give an empty host (refused by the host guard) and
  differing schemes give ``http`` (the request is redirected, never wrongly trusted).

The proxy must *set* the headers sitewarden reads (``X-Forwarded-For`` appended,
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` overwritten): a header the proxy passes
through untouched is still the client's. ``docs/guards.md`` has nginx, Apache and Caddy
examples.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from sitewarden.web.request import RequestView

__all__ = [
    "FORWARDED_HEADERS",
    "MAX_HOPS",
    "Origin",
    "ProxyResolver",
    "forwarded_headers_present",
    "normalise_ip",
    "parse_ip",
]

#: The request headers that carry proxy information (lower-case).
FORWARDED_HEADERS: tuple[str, ...] = (
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
)
_FORWARDED_SET = frozenset(FORWARDED_HEADERS)
#: How many forwarded hops are examined at most, from the right.
MAX_HOPS = 32

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAPPED = ("::ffff:", "::FFFF:")
_SCHEMES = frozenset(("http", "https"))
_MAX_ENTRY = 80  # the longest bracketed IPv6 address with a zone and a port is shorter
_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request really comes from, as far as trusted proxies vouch for it.

    ``client`` is the client's IP address (normalised) or ``None`` when unknown; ``scheme``
    is ``http`` or ``https`` as the client used it; ``host`` is the Host the client asked
    for, not yet validated (the host guard does that).
    """

    client: str | None
    scheme: str
    host: str


# Building a frozen dataclass through its __init__ costs three object.__setattr__ calls
# (0.45 us); setting the slots through their descriptors costs half. Only for the hot path.
_new = object.__new__
_set_client = cast("Callable[[Origin, str | None], None]", vars(Origin)["client"].__set__)
_set_scheme = cast("Callable[[Origin, str], None]", vars(Origin)["scheme"].__set__)
_set_host = cast("Callable[[Origin, str], None]", vars(Origin)["host"].__set__)


def _origin(client: str | None, scheme: str, host: str) -> Origin:
    origin = _new(Origin)
    _set_client(origin, client)
    _set_scheme(origin, scheme)
    _set_host(origin, host)
    return origin


def forwarded_headers_present(view: RequestView) -> bool:
    """Return whether *view* carries any proxy header (``X-Forwarded-*`` or ``Forwarded``).

    Used to warn, once, that such headers arrive while no proxy is trusted: the site is
    probably behind a proxy that ``trusted_proxies`` does not name.
    """
    return not _FORWARDED_SET.isdisjoint(view.headers)  # one C-level pass


def normalise_ip(text: str) -> str | None:
    """Return *text* as a normalised IP address string, or ``None`` if it is not one.

    Accepts what proxies write: ``192.0.2.1``, ``192.0.2.1:443``, ``2001:db8::1``,
    ``[2001:db8::1]:443``, RFC 7239 quoted values, and IPv4-mapped IPv6 addresses
    (``::ffff:192.0.2.1`` becomes ``192.0.2.1``). Never raises.
    """
    addr = parse_ip(text)
    return None if addr is None else str(addr)


def parse_ip(text: str) -> _Address | None:
    """Return *text* as an IP address object, or ``None``; see :func:`normalise_ip`."""
    text = text.strip()
    if not text or len(text) > _MAX_ENTRY:
        return None
    if text[0] == '"':
        if len(text) < 2 or text[-1] != '"':
            return None
        text = text[1:-1]
        if not text:
            return None
    if text[0] == "[":
        end = text.find("]")
        if end < 0 or not _port_ok(text[end + 1 :], bracketed=True):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, _, port = text.partition(":")
        if not _port_ok(port, bracketed=False):
            return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _port_ok(port: str, bracketed: bool) -> bool:
    if bracketed:
        if not port:
            return True
        if port[0] != ":":
            return False
        port = port[1:]
    # digits, or an RFC 7239 obfuscated port ("_abc")
    return (port.isascii() and port.isdigit() and len(port) <= 5) or port[:1] == "_"


def _unmap(client: str) -> str:
    addr = parse_ip(client)
    return client if addr is None else str(addr)


def _nth_from_right(value: str, hop: int) -> str:
    """Return the *hop*-th non-empty comma-separated item from the right (clamped left)."""
    if "," not in value:
        return value.strip()  # one proxy that overwrites: the usual case
    parts = [p for p in (s.strip() for s in value.rsplit(",", hop + 2)) if p]
    if not parts:
        return ""
    return parts[max(len(parts) - 1 - hop, 0)]


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """Parse RFC 7239 ``Forwarded`` elements, rightmost first, at most MAX_HOPS + 1."""
    elements: list[dict[str, str]] = []
    for element in reversed(value.rsplit(",", MAX_HOPS)):
        pairs: dict[str, str] = {}
        for pair in element.split(";"):
            name, sep, val = pair.partition("=")
            if not sep:
                continue
            name = name.strip().lower()
            if name in ("for", "proto", "host") and name not in pairs:
                val = val.strip()
                if len(val) >= 2 and val[0] == val[-1] == '"':
                    val = val[1:-1]
                pairs[name] = val
        if pairs or element.strip():
            elements.append(pairs)
    return elements


class ProxyResolver:
    """Find the real client, scheme and host, believing only trusted proxies.

    *trusted_proxies* are IP networks in CIDR notation (``10.0.0.5/32``,
    ``192.168.0.0/24``, ``::1/128``), already validated by the policy. List the proxies
    themselves, not whole networks with other machines in them: every address inside is
    believed when it reports who its client was.
    """

    __slots__ = ("_cache", "_nets4", "_nets6", "_trusting")

    def __init__(self, trusted_proxies: tuple[str, ...]) -> None:
        """Parse the trusted networks once."""
        nets = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]
        self._nets4 = tuple(n for n in nets if isinstance(n, ipaddress.IPv4Network))
        self._nets6 = tuple(n for n in nets if isinstance(n, ipaddress.IPv6Network))
        self._trusting = bool(nets)
        # raw entry text → (normalised address, trusted) or None when not an address
        self._cache: dict[str, tuple[str, bool] | None] = {}

    def is_trusted(self, address: str | None) -> bool:
        """Return whether *address* (an IP address string) is one of the trusted proxies."""
        if address is None or not self._trusting:
            return False
        found = self._lookup(address)
        return found is not None and found[1]

    def _lookup(self, text: str) -> tuple[str, bool] | None:
        if len(text) > _MAX_ENTRY:
            return None  # never an address, and never kept: the cache holds short keys only
        cache = self._cache
        try:
            return cache[text]
        except KeyError:
            pass
        addr = parse_ip(text)
        result: tuple[str, bool] | None = None
        if addr is not None:
            nets: tuple[_Network, ...] = (
                self._nets4 if isinstance(addr, ipaddress.IPv4Address) else self._nets6
            )
            result = (str(addr), any(addr in net for net in nets))
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[text] = result
        return result

    def resolve(self, view: RequestView) -> Origin:
        """Return the request's :class:`Origin`: forwarded values only from trusted peers."""
        client = view.client
        if client is not None and client.startswith(_MAPPED):
            client = _unmap(client)
        if not self._trusting or client is None:
            return _origin(client, view.scheme, view.host)
        peer = self._lookup(client)
        if peer is None or not peer[1]:
            return _origin(client, view.scheme, view.host)
        return self._forwarded(view.headers, peer[0], view.scheme, view.host)

    def _walk(self, entries: list[str]) -> tuple[str | None, int]:
        """Walk address *entries* (rightmost first); return (client, hop index)."""
        hop = -1
        last_trusted: str | None = None
        for raw in entries:
            if not raw or raw.isspace():
                continue
            hop += 1
            found = self._lookup(raw.strip())
            if found is None:
                return None, hop  # a hop nobody vouches for: the client is unknown
            if not found[1]:
                return found[0], hop
            last_trusted = found[0]
        return last_trusted, max(hop, 0)

    def _forwarded(self, headers: Mapping[str, str], peer: str, scheme: str, host: str) -> Origin:
        xff = headers.get("x-forwarded-for")
        fwd = headers.get("forwarded")
        xproto = headers.get("x-forwarded-proto")
        xhost = headers.get("x-forwarded-host")
        if xff is None and fwd is None and xproto is None and xhost is None:
            return Origin(peer, scheme, host)

        clients: list[str | None] = []
        schemes: list[str] = []
        hosts: list[str] = []

        x_hop = 0
        if xff is not None:
            entries = xff.rsplit(",", MAX_HOPS)
            entries.reverse()
            found, x_hop = self._walk(entries)
            clients.append(peer if found is None and not _has_entry(xff) else found)
        if xproto is not None:
            schemes.append(_nth_from_right(xproto, x_hop).lower())
        if xhost is not None:
            hosts.append(_nth_from_right(xhost, x_hop))

        if fwd is not None:
            elements = _forwarded_elements(fwd)
            if elements:
                chosen = elements[0]
                if any("for" in e for e in elements):
                    found, f_hop = self._walk([e.get("for", "") or "?" for e in elements])
                    clients.append(found)
                    chosen = elements[min(f_hop, len(elements) - 1)]
                if "proto" in chosen:
                    schemes.append(chosen["proto"].lower())
                if "host" in chosen:
                    hosts.append(chosen["host"])

        if not clients:
            client: str | None = peer
        elif len(clients) == 1 or clients[0] == clients[1]:
            client = clients[0]
        else:
            client = None  # the two header kinds disagree: one was written by the client

        valid = [s for s in schemes if s in _SCHEMES]
        if valid:
            scheme = "http" if "http" in valid else "https"

        hosts = [h for h in hosts if h]
        if hosts:
            host = hosts[0]
            if len(hosts) == 2 and hosts[0].lower() != hosts[1].lower():
                host = ""  # disagreeing hosts: refused by the host guard
        return Origin(client, scheme, host)


def _has_entry(value: str) -> bool:
    return bool(value.replace(",", "").strip())
