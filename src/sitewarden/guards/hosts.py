"""The Host allowlist.

**Threat.** The ``Host`` header is chosen by the client. A site that answers any Host
builds password-reset links, redirects and cached pages from an attacker's name
(``Host: evil.example`` → a reset mail pointing at evil.example; a poisoned cache entry),
and lets DNS rebinding reach it under a foreign name. Tricks such as
``example.org@evil.example``, ``example.org:80@evil`` or ``example.org.evil.example``
target code that checks with ``startswith`` or a careless split.

**Rule.** :class:`HostGuard` normalises the Host (port stripped, ``[::1]:8000`` → ``::1``,
lower-cased, one trailing dot removed), refuses anything malformed, and accepts only a
listed name, a subdomain of a ``*.example.org`` entry, or anything when the list holds
``*``. A wildcard matches subdomains only — ``*.example.org`` does not match
``example.org`` itself; list both when both serve the site (Starlette's rule; Django's
``.example.org`` matches both, which is easy to miss). Ports in the list are ignored, as
in Django: the guard is about names.

Malformed means: empty, over 253 characters, non-ASCII (IDNs arrive as ``xn--`` names),
anything but letters, digits, ``-`` and ``.`` in a name (so no ``/``, ``@``, spaces or
``_``), an empty label (``a..b``, ``.a``), a port that is not 1 to 5 digits up to 65535, or a
bracketed address that is not IPv6.
"""

from __future__ import annotations

import ipaddress

from sitewarden.errors import ConfigError

__all__ = ["REASON_BAD_HOST", "HostGuard", "normalise_host"]

#: Refusal reason (status 400) for a Host that is malformed or not allowed.
REASON_BAD_HOST = "Host header is not one of allowed_hosts"

_MAX_NAME = 253
_MAX_FIELD = 2 + 45 + 6  # "[" IPv6 "]" ":65535"; a longer name fails the 253 check anyway
_SEEN_SIZE = 256


def normalise_host(host: str) -> str | None:
    """Return the name part of a Host value, normalised, or ``None`` if it is malformed.

    ``Example.ORG:8080`` → ``example.org``; ``example.org.`` → ``example.org``;
    ``[::1]:8000`` → ``::1``; ``example.org@evil`` → ``None``. Never raises.
    """
    if not host or not host.isascii():
        return None
    if host[0] == "[":
        end = host.find("]")
        if end < 0:
            return None
        rest = host[end + 1 :]
        if rest and (rest[0] != ":" or not _port_ok(rest[1:])):
            return None
        return _ipv6(host[1:end])
    colons = host.count(":")
    if colons == 1:
        name, _, port = host.partition(":")
        if not _port_ok(port):
            return None
    elif colons == 0:
        name = host
    else:
        return _ipv6(host)  # a bare IPv6 address: no port can be told apart
    if name[-1:] == ".":
        name = name[:-1]
    if (
        not name
        or len(name) > _MAX_NAME
        or name[0] == "."
        or ".." in name
        or not name.replace(".", "").replace("-", "").isalnum()
    ):
        return None
    return name.lower()


def _port_ok(port: str) -> bool:
    return 0 < len(port) <= 5 and port.isdigit() and int(port) <= 65535


def _ipv6(text: str) -> str | None:
    if not text or len(text) > 45 or "%" in text:
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


class HostGuard:
    """Accept only the Host names of ``allowed_hosts``.

    Exact names are checked with a frozenset, wildcards with one ``str.endswith`` over
    precomputed suffixes; Host values already accepted are remembered (a bounded set), so
    the usual request costs one set lookup.
    """

    __slots__ = ("_any", "_exact", "_suffixes", "seen")

    def __init__(self, allowed_hosts: tuple[str, ...]) -> None:
        """Normalise the allowed names once; raise :class:`ConfigError` for a bad entry."""
        exact: set[str] = set()
        suffixes: list[str] = []
        self._any = False
        for entry in allowed_hosts:
            if entry == "*":
                self._any = True
                continue
            wildcard = entry.startswith("*.")
            name = normalise_host(entry[2:] if wildcard else entry)
            if name is None:
                raise ConfigError(f"allowed_hosts: {entry!r} is not a host name or '*.domain'")
            if wildcard:
                suffixes.append("." + name)
            else:
                exact.add(name)
        self._exact = frozenset(exact)
        self._suffixes = tuple(suffixes)
        #: Host values already allowed, as received (a bounded memo). A hot path may test
        #: ``host in guard.seen`` before calling :meth:`allows`: a member is allowed.
        self.seen: set[str] = set()

    def allows(self, host: str) -> bool:
        """Return whether the Host value *host* names this site (``False`` if malformed)."""
        if host in self.seen:
            return True
        name = normalise_host(host)
        if name is None:
            return False
        if not (
            self._any or name in self._exact or (self._suffixes and name.endswith(self._suffixes))
        ):
            return False
        if len(self.seen) >= _SEEN_SIZE:
            self.seen.clear()
        self.seen.add(host)
        return True
