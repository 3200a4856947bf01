"""Security headers, one small module per concern (helmet's shape), rendered once.

* :mod:`sitewarden.headers.csp` — Content-Security-Policy: rendering, per-response nonces,
  report directives (:class:`CSPHeader`, :func:`render_csp`, :func:`new_nonce`);
* :mod:`sitewarden.headers.headerset` — every other header of the policy, precomputed as
  ``(name, value)`` pairs (:class:`SecurityHeaders`);
* :mod:`sitewarden.headers.cookies` — ``Secure``/``HttpOnly``/``SameSite`` added to the
  application's cookies (:func:`harden_set_cookie`).

``docs/headers.md`` explains each header; ``docs/presets.md`` lists the presets' exact
header lines.
"""

from __future__ import annotations

from sitewarden.headers.cookies import harden_set_cookie
from sitewarden.headers.csp import CSPHeader, new_nonce, render_csp
from sitewarden.headers.headerset import (
    SecurityHeaders,
    hsts_value,
    permissions_policy_value,
)

__all__ = [
    "CSPHeader",
    "SecurityHeaders",
    "harden_set_cookie",
    "hsts_value",
    "new_nonce",
    "permissions_policy_value",
    "render_csp",
]
