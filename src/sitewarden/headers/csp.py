"""Content-Security-Policy: serialisation, per-response nonces, report directives.

A CSP tells the browser where scripts, styles, images, frames… may come from, so that
markup injected into a page (stored or reflected XSS) cannot load or run code. The policy
is a :data:`~sitewarden.policy.CSP` mapping (directive → sources), validated with the
rest of the :class:`~sitewarden.policy.Policy` at start-up.

**Nonces.** A nonce lets one page's own inline ``<script nonce=…>``/``<style nonce=…>``
run without ``'unsafe-inline'``. It is 128 random bits, new for every response that uses
one, and spliced into ``script-src`` and ``style-src`` (and into ``script-src-elem`` /
``style-src-elem`` when the policy has them, since those govern elements). A nonce never
changes what else a policy allows:

* a missing ``script-src``/``style-src`` is created from ``default-src``'s sources (the
  list the browser would have used), plus the nonce; when there is no ``default-src``
  either, everything is allowed already and nothing is added;
* ``'none'`` is replaced by the nonce (``'none' 'nonce-x'`` is not a valid list);
* a list that allows inline code (``'unsafe-inline'``) is left alone: browsers ignore
  ``'unsafe-inline'`` next to a nonce, so adding one would silently break the page's
  inline styles and scripts. The exception is a list with ``'strict-dynamic'``, which is
  a nonce-based design (``'unsafe-inline'`` is only its fallback for old browsers).

**Reports.** ``report-uri`` and ``report-to`` are appended when configured, unless the
policy already has that directive (the policy written by the site wins; a repeated
report directive would cost the Observatory's CSP bonus).

:class:`CSPHeader` renders everything at construction. Per response it either returns
the precomputed header list (no nonce) or joins the precomputed pieces around the nonce.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence

from sitewarden.policy import CSP

__all__ = [
    "CSP_HEADER",
    "CSP_REPORT_ONLY_HEADER",
    "CSPHeader",
    "new_nonce",
    "render_csp",
]

#: The enforced policy's header name (lower case, as the engine compares names).
CSP_HEADER = "content-security-policy"
#: The report-only policy's header name.
CSP_REPORT_ONLY_HEADER = "content-security-policy-report-only"

#: Directives that take the nonce; the first two are created from ``default-src`` when
#: missing, the ``-elem`` ones only get it when the policy has them.
_NONCE_CREATED = ("script-src", "style-src")
_NONCE_DIRECTIVES = frozenset((*_NONCE_CREATED, "script-src-elem", "style-src-elem"))

# CSP's base64-value (base64 or base64url, optional padding): what may follow 'nonce-.
_NONCE_VALUE = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


class _Slot:
    """Marks where the nonce goes in a rendered policy."""


_SLOT = _Slot()


def new_nonce() -> str:
    """Return a fresh nonce: 128 bits from :mod:`secrets`, base64url without padding.

    The result has 22 characters from letters, digits, ``-`` and ``_``.
    """
    return secrets.token_urlsafe(16)


def _accepts_nonce(sources: Sequence[str]) -> bool:
    """Return whether a nonce can be added to *sources* without changing what they allow."""
    lowered = {s.lower() for s in sources}
    return "'unsafe-inline'" not in lowered or "'strict-dynamic'" in lowered


def _segments(
    csp: Mapping[str, Sequence[str]],
    *,
    with_nonce: bool,
    report_uri: str | None,
    report_to: str | None,
) -> tuple[str, ...]:
    """Render *csp* as the text pieces between which the nonce goes.

    Without a nonce slot the result has one piece: the whole header value.
    """
    directives: list[tuple[str, Sequence[str], bool]] = []
    for name, sources in csp.items():
        if with_nonce and name in _NONCE_DIRECTIVES and _accepts_nonce(sources):
            directives.append((name, sources, True))
        else:
            directives.append((name, sources, False))
        if with_nonce and name == "default-src" and _accepts_nonce(sources):
            directives.extend((d, sources, True) for d in _NONCE_CREATED if d not in csp)
    if report_uri is not None and "report-uri" not in csp:
        directives.append(("report-uri", (report_uri,), False))
    if report_to is not None and "report-to" not in csp:
        directives.append(("report-to", (report_to,), False))

    pieces: list[str | _Slot] = []
    for index, (name, sources, nonce) in enumerate(directives):
        if index:
            pieces.append("; ")
        if nonce:
            kept = [s for s in sources if s.lower() != "'none'"]
            pieces.append(" ".join((name, *kept, "'nonce-")))
            pieces.append(_SLOT)
            pieces.append("'")
        else:
            pieces.append(" ".join((name, *sources)))

    segments: list[str] = []
    current: list[str] = []
    for piece in pieces:
        if isinstance(piece, _Slot):
            segments.append("".join(current))
            current = []
        else:
            current.append(piece)
    segments.append("".join(current))
    return tuple(segments)


def render_csp(
    csp: CSP,
    *,
    nonce: str | None = None,
    report_uri: str | None = None,
    report_to: str | None = None,
) -> str:
    """Serialise *csp* as a header value: ``"name src src; name2 …"`` in the given order.

    With *nonce*, ``'nonce-<nonce>'`` is added to ``script-src`` and ``style-src`` as the
    module documentation describes. ``report-uri <report_uri>`` and ``report-to
    <report_to>`` are appended when given and the policy has no such directive yet.
    Directives without sources render as the bare name (``upgrade-insecure-requests``).

    Raise :class:`ValueError` when *nonce* is not a base64 value.
    """
    if nonce is not None and not _NONCE_VALUE.match(nonce):
        raise ValueError(f"a CSP nonce must be a base64 value, got {nonce!r}")
    segments = _segments(
        csp, with_nonce=nonce is not None, report_uri=report_uri, report_to=report_to
    )
    return segments[0] if nonce is None else nonce.join(segments)


class CSPHeader:
    """The ``Content-Security-Policy`` (and ``…-Report-Only``) headers of every response.

    Everything is rendered at construction; :meth:`headers` does no formatting. Attributes:

    * ``enforced`` / ``report_only`` — the header values without a nonce (``None`` when
      that policy is not configured);
    * ``uses_nonce`` — whether a nonce given to :meth:`headers` ends up in a header (the
      engine need not create nonces otherwise);
    * ``names`` — the header names :meth:`headers` may return.
    """

    __slots__ = ("_static", "_templates", "enforced", "names", "report_only", "uses_nonce")

    def __init__(
        self,
        csp: CSP | None,
        report_only: CSP | None,
        *,
        nonce_enabled: bool,
        report_uri: str | None,
        report_to: str | None,
    ) -> None:
        """Render *csp* and *report_only* once, with nonce slots when *nonce_enabled*."""
        static: list[tuple[str, str]] = []
        templates: list[tuple[str, tuple[str, ...]]] = []
        values: dict[str, str] = {}
        for name, policy in ((CSP_HEADER, csp), (CSP_REPORT_ONLY_HEADER, report_only)):
            if policy is None:
                continue
            plain = _segments(policy, with_nonce=False, report_uri=report_uri, report_to=report_to)
            values[name] = plain[0]
            static.append((name, plain[0]))
            if nonce_enabled:
                parts = _segments(
                    policy, with_nonce=True, report_uri=report_uri, report_to=report_to
                )
                templates.append((name, parts if len(parts) > 1 else plain))
            else:
                templates.append((name, plain))
        self._static = static
        self._templates = tuple(templates)
        self.enforced: str | None = values.get(CSP_HEADER)
        self.report_only: str | None = values.get(CSP_REPORT_ONLY_HEADER)
        self.uses_nonce: bool = any(len(parts) > 1 for _, parts in templates)
        self.names: frozenset[str] = frozenset(values)

    def headers(self, nonce: str | None) -> list[tuple[str, str]]:
        """Return the CSP header pairs (lower-case names) for one response.

        With ``nonce=None`` (or when no directive takes a nonce) this is the precomputed
        list itself — callers must not mutate it. With a nonce (from :func:`new_nonce`;
        it is not re-checked here) each value is the precomputed pieces joined around it.
        """
        if nonce is None or not self.uses_nonce:
            return self._static
        out = []
        for name, parts in self._templates:  # a plain loop: no comprehension frame
            out.append((name, nonce.join(parts)))
        return out

    def __repr__(self) -> str:
        """Show the rendered values."""
        return f"CSPHeader(enforced={self.enforced!r}, report_only={self.report_only!r})"
