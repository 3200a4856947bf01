"""The request guards: small, pure checks that run on every request, in this order.

* :mod:`~sitewarden.guards.clientip` — :class:`ProxyResolver`: the real client address,
  scheme and host (:class:`Origin`), believing forwarded headers only from trusted proxies;
* :mod:`~sitewarden.guards.hosts` — :class:`HostGuard`: the Host allowlist (400);
* :mod:`~sitewarden.guards.https` — :func:`https_redirect`: plain HTTP to HTTPS (301/308);
* :mod:`~sitewarden.guards.paths` — :class:`ManagementGuard`: management paths (Plone's
  ZMI) only on the management host, from the management network (403);
* :mod:`~sitewarden.guards.cors` — :class:`CorsGuard`: CORS preflights (204/403) and
  response headers;
* :mod:`~sitewarden.guards.csrf_guard` — the automatic CSRF check of unsafe requests
  (imported from its module).

Each guard works on a :class:`~sitewarden.web.request.RequestView`, precomputes
everything it can when constructed, and names each refusal with a ``REASON_…`` constant.
The threats and settings are described in ``docs/guards.md``.
"""

from __future__ import annotations

from sitewarden.guards.clientip import Origin, ProxyResolver, forwarded_headers_present
from sitewarden.guards.cors import CorsGuard
from sitewarden.guards.hosts import HostGuard, normalise_host
from sitewarden.guards.https import https_redirect
from sitewarden.guards.paths import ManagementGuard

__all__ = [
    "CorsGuard",
    "HostGuard",
    "ManagementGuard",
    "Origin",
    "ProxyResolver",
    "forwarded_headers_present",
    "https_redirect",
    "normalise_host",
]
