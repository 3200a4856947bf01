r"""Management paths (Plone's ZMI) only on the management host, from the management network.

**Threat.** Zope's management interface (``manage``, ``manage_main``,
``manage_workspace``, … on any object) is the keys to the site: a stolen or guessed
manager password, a CSRF against a signed-in manager, or an unpatched ZMI bug is a full
compromise. The public has no reason to reach it. Blocking it by URL is only as good as
the matching: attackers try ``/%6danage``, ``/Manage``, ``/manage;x=1``, ``//manage``,
``/./manage``, ``/x/../manage``, ``/manage/`` and ``\manage`` — forms that a naive
``path.startswith("/manage")`` misses but a front server or Zope may still resolve.

**Rule.** :meth:`ManagementGuard.is_management` is true when *any* path segment matches a
pattern (fnmatch-style, ``manage`` and ``manage_*`` by default), so
``/site/folder/manage_main`` and ``/manage_workspace`` match while ``/managed-care`` and
``/management`` do not. Before matching, the path is percent-decoded again (up to three
times: the server already decoded it once), backslashes become slashes, ``;params`` are cut
from each segment, surrounding whitespace and dots are dropped, and case is ignored (Zope is
case-sensitive, an Apache or IIS in front may not be). Dot segments are *not* resolved:
``/manage/../x`` still counts as management, because what normalises the path later is not
this code's to guess — over-blocking an odd URL is the safe error.

:meth:`ManagementGuard.allowed` lets a management path through only when the Host (port
stripped, lower-case) is one of ``manage_hosts`` **and** the client address (as resolved
through trusted proxies) is inside one of ``manage_networks``. With ``manage_hosts`` empty
management paths are blocked everywhere: configure a dedicated host name
(``manage.example.org``, reachable only from the office or a VPN) to use the ZMI.

Most paths never contain the patterns' literal text (``manage``): a substring check on the
lower-cased path answers them before any parsing.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from urllib.parse import unquote

from sitewarden.errors import ConfigError
from sitewarden.guards.clientip import parse_ip
from sitewarden.guards.hosts import normalise_host

__all__ = ["REASON_MANAGEMENT", "ManagementGuard"]

#: Refusal reason for a management path outside the management host/network.
REASON_MANAGEMENT = "management path requested outside manage_hosts / manage_networks"

_GLOB_SPLIT = re.compile(r"\[[^\]]*\]|[*?\[]")
_STRIP = " \t\r\n\x00."
_DECODE_ROUNDS = 3
_ORDINARY_SIZE = 4096
_ORDINARY_MAX_LEN = 256


class ManagementGuard:
    """Recognise management paths and allow them only on the management host and network.

    *patterns* are fnmatch patterns for one path segment (``manage``, ``manage_*``);
    *hosts* the management host names; *networks* CIDR networks of management clients.
    """

    __slots__ = ("_chunks", "_exact", "_glob", "_hosts", "_nets", "ordinary")

    def __init__(
        self, patterns: tuple[str, ...], hosts: tuple[str, ...], networks: tuple[str, ...]
    ) -> None:
        """Compile the patterns and parse the hosts and networks once."""
        exact: set[str] = set()
        globs: list[str] = []
        chunks: set[str] = set()
        always_parse = False
        for pattern in patterns:
            low = pattern.lower()
            if not low or "/" in low:
                raise ConfigError(f"manage_paths: {pattern!r} must be one path segment pattern")
            if any(c in low for c in "*?["):
                globs.append(fnmatch.translate(low))
            else:
                exact.add(low)
            literal = max(_GLOB_SPLIT.split(low), key=len)
            if literal:
                chunks.add(literal)
            else:
                always_parse = True  # a pattern such as "*" has no text to look for
        self._exact = frozenset(exact)
        self._glob = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None
        # keep only the shortest distinct chunks: "manage" already covers "manage_"
        minimal = tuple(c for c in chunks if not any(o != c and o in c for o in chunks))
        self._chunks: tuple[str, ...] | None = None if always_parse else minimal
        names: set[str] = set()
        for host in hosts:
            name = normalise_host(host)
            if name is None:
                raise ConfigError(f"manage_hosts: {host!r} is not a host name")
            names.add(name)
        self._hosts = frozenset(names)
        self._nets = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        #: Paths already found not to be management paths (the answer depends on the
        #: path alone); a site serves the same paths over and over. Bounded: at most 4096
        #: paths of at most 256 characters. A hot path may test ``path in
        #: guard.ordinary`` first: a member is allowed on any host.
        self.ordinary: set[str] = set()

    def is_management(self, path: str) -> bool:
        """Return whether any segment of *path* (decoded) matches a management pattern."""
        if path in self.ordinary:
            return False
        if self._matches(path):
            return True
        if len(path) <= _ORDINARY_MAX_LEN:  # long paths are not kept: bounded memory
            if len(self.ordinary) >= _ORDINARY_SIZE:
                self.ordinary.clear()
            self.ordinary.add(path)
        return False

    def _matches(self, path: str) -> bool:
        lowered = path.lower()
        chunks = self._chunks
        if chunks is not None and "%" not in lowered:
            for chunk in chunks:
                if chunk in lowered:
                    break
            else:
                return False
        for _ in range(_DECODE_ROUNDS):
            if "%" not in lowered:
                break
            decoded = unquote(lowered, errors="replace").lower()
            if decoded == lowered:
                break
            lowered = decoded
        exact = self._exact
        glob = self._glob
        for segment in lowered.replace("\\", "/").split("/"):
            name = segment.split(";", 1)[0].strip(_STRIP)
            if name and (name in exact or (glob is not None and glob.match(name))):
                return True
        return False

    def allowed(self, path: str, host: str, client: str | None) -> bool:
        """Return whether the request may proceed: always for ordinary paths.

        A management path needs *host* in ``manage_hosts`` and *client* inside
        ``manage_networks``; an unknown client (``None``) is refused.
        """
        if path in self.ordinary or not self.is_management(path):
            return True
        if not self._hosts or normalise_host(host) not in self._hosts:
            return False
        return self.in_networks(client)

    def in_networks(self, client: str | None) -> bool:
        """Return whether *client* is inside ``manage_networks`` (unknown: no)."""
        if client is None:
            return False
        ip = parse_ip(client)
        return ip is not None and any(ip in net for net in self._nets)
