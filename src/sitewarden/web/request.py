"""The request as plain data, and the response the core can answer with.

Adapters translate a framework's request into a :class:`RequestView` (no framework types
inside), the guards decide on it, and a refusal is a :class:`Reply` the adapter sends as
it is. This is what keeps every security decision testable without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Reply", "RequestView"]


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


@dataclass(slots=True)
class Reply:
    """A complete response produced by sitewarden itself (a refusal, a redirect, a 204)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
