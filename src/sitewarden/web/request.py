"""The request as plain data, and the response the core can answer with.

Adapters translate a framework's request into a :class:`RequestView` (no framework types
inside), the guards decide on it, and a refusal is a :class:`Reply` the adapter sends as
it is. This is what keeps every security decision testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Reply", "RequestView"]


@dataclass(slots=True)
class RequestView:
    """One HTTP request as the server received it (before any proxy header is believed).

    ``headers`` maps lower-case names to values; repeated headers are joined with ``", "``
    (``cookie`` with ``"; "``). ``client`` is the socket peer address, never a forwarded one.
    An adapter may decode up front only the headers the guards read on every request and
    keep the rest in ``raw_headers`` (ASGI's byte pairs): :meth:`header` finds either.
    """

    method: str
    scheme: str
    host: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    client: str | None = None
    server_port: int | None = None
    raw_headers: Sequence[tuple[bytes, bytes]] = ()

    def header(self, name: str) -> str | None:
        """Return header *name* (lower-case), decoded up front or not; ``None`` if absent."""
        value = self.headers.get(name)
        if value is None and self.raw_headers:
            key = name.encode("latin-1")
            parts = [v.decode("latin-1") for n, v in self.raw_headers if n == key]
            if parts:
                value = ", ".join(parts)
        return value


@dataclass(slots=True)
class Reply:
    """A complete response produced by sitewarden itself (a refusal, a redirect, a 204)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
