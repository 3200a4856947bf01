"""The request as plain data, and the response the core can answer with.

Adapters translate a framework's request into a :class:`RequestView` (no framework types
inside), the guards decide on it, and a refusal is a :class:`Reply` the adapter sends as
it is. This is what keeps every security decision testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Reply", "RequestView", "parse_cookie_header"]


@dataclass(slots=True)
class RequestView:
    """One HTTP request as the server received it (before any proxy header is believed).

    ``headers`` maps lower-case names to values; repeated headers are joined with ``", "``
    (``cookie`` with ``"; "``). ``client`` is the socket peer address, never a forwarded one.
    """

    method: str
    scheme: str
    host: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    client: str | None = None
    server_port: int | None = None
    _cookies: dict[str, str] | None = None

    @property
    def cookies(self) -> dict[str, str]:
        """The request's cookies (parsed once; malformed pairs are skipped, never raised)."""
        if self._cookies is None:
            self._cookies = parse_cookie_header(self.headers.get("cookie", ""))
        return self._cookies


@dataclass(slots=True)
class Reply:
    """A complete response produced by sitewarden itself (a refusal, a redirect, a 204)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def parse_cookie_header(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently: the first value of each name wins.

    Written by hand because :class:`http.cookies.SimpleCookie` drops every cookie after
    the first malformed one, which would let an attacker who can set one junk cookie
    (a sibling subdomain) hide the session cookie.
    """
    cookies: dict[str, str] = {}
    if not header:
        return cookies
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies
