"""The security headers of every response, rendered once from the policy.

Like helmet, each header is one small concern with its own setting; unlike a middleware
that formats headers per request, :class:`SecurityHeaders` turns the whole
:class:`~sitewarden.policy.Policy` into ready ``(name, value)`` pairs when the site
starts, so a response costs a tuple extension (and a string join when a CSP nonce is
used). Header names are lower case, as HTTP/2 sends them and as the engine compares them.

The pairs come in three groups, because they are sent under different conditions:

* :attr:`SecurityHeaders.always` — every response: ``X-Content-Type-Options``,
  ``X-Frame-Options``, ``Referrer-Policy``, ``Permissions-Policy``, the three
  ``Cross-Origin-*`` policies, ``X-Permitted-Cross-Domain-Policies`` and
  ``Reporting-Endpoints``; each only when its setting is on;
* :attr:`SecurityHeaders.https_only` — ``Strict-Transport-Security``, which browsers
  ignore on plain HTTP (and which would pin a host that has no HTTPS yet);
* :attr:`SecurityHeaders.csp` — the :class:`~sitewarden.headers.csp.CSPHeader`, which
  splices in the response's nonce.

What each header stops and its value per preset is in ``docs/headers.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sitewarden.errors import ConfigError
from sitewarden.headers.csp import CSPHeader
from sitewarden.policy import Policy

__all__ = [
    "CSP_REPORT_GROUP",
    "SecurityHeaders",
    "hsts_value",
    "permissions_policy_value",
]

#: The Reporting API endpoint name the CSP's ``report-to`` refers to.
CSP_REPORT_GROUP = "csp-endpoint"

# sf-string members that are not origins: keywords of the Permissions-Policy allowlist.
_PP_TOKENS = {"self": "self", "'self'": "self", "*": "*"}
_PP_NONE = ("none", "'none'")


def _sf_string(value: str, setting: str) -> str:
    """Quote *value* as an RFC 8941 sf-string; refuse what no header may carry."""
    if not value or any(not " " <= c <= "~" for c in value):
        raise ConfigError(f"{setting}: {value!r} is not an origin in printable ASCII")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def permissions_policy_value(features: Mapping[str, Sequence[str]]) -> str:
    """Serialise *features* as a ``Permissions-Policy`` structured-field dictionary.

    ``{"camera": []}`` → ``camera=()`` (off everywhere); ``{"fullscreen": ["self",
    "https://a.example"]}`` → ``fullscreen=(self "https://a.example")``. ``self`` (quoted
    or not) and ``*`` are tokens, any other member an origin string; ``'none'``
    is the empty list. Raise :class:`ConfigError` for a member no header may carry.
    """
    items = []
    for feature, allow in features.items():
        members = []
        for member in allow:
            token = _PP_TOKENS.get(member.lower())
            if token is not None:
                members.append(token)
            elif member.lower() not in _PP_NONE:
                members.append(_sf_string(member, f"permissions_policy: {feature}"))
        items.append(f"{feature}=({' '.join(members)})")
    return ", ".join(items)


def hsts_value(max_age: int, *, include_subdomains: bool, preload: bool) -> str:
    """Return the ``Strict-Transport-Security`` value (``max-age=0`` un-pins a host)."""
    value = f"max-age={max_age}"
    if include_subdomains:
        value += "; includeSubDomains"
    if preload:
        value += "; preload"
    return value


def _report_path(path: str) -> str:
    """Check that *path* can stand in a CSP directive and a quoted header string."""
    if any(not "!" <= c <= "~" or c in '";,\\' for c in path):
        raise ConfigError(
            f"csp_report_path: {path!r} must be printable ASCII without spaces, "
            "quotes, backslashes, ';' or ','"
        )
    return path


class SecurityHeaders:
    """Every security header the policy asks for, as precomputed ``(name, value)`` pairs.

    Attributes (all computed once):

    * ``always`` — pairs for every response;
    * ``https_only`` — pairs for HTTPS responses only (HSTS);
    * ``csp`` — the :class:`~sitewarden.headers.csp.CSPHeader`;
    * ``remove`` — lower-case names of headers to strip from the application's response
      (``policy.remove_headers``: server fingerprints);
    * ``names`` — every header name this object may add. A header the application set
      itself wins; a security header is never sent twice.

    Raise :class:`ConfigError` when a setting holds text no header may carry.
    """

    __slots__ = ("always", "csp", "https_only", "names", "remove")

    def __init__(self, policy: Policy) -> None:
        """Render the headers of *policy*."""
        p = policy
        report_path = None if p.csp_report_path is None else _report_path(p.csp_report_path)
        always: list[tuple[str, str]] = []
        if p.x_content_type_options:
            always.append(("x-content-type-options", "nosniff"))
        if p.frame_options is not None:
            always.append(("x-frame-options", p.frame_options))
        if p.referrer_policy is not None:
            always.append(("referrer-policy", p.referrer_policy))
        if p.permissions_policy:
            always.append(("permissions-policy", permissions_policy_value(p.permissions_policy)))
        if p.cross_origin_opener_policy is not None:
            always.append(("cross-origin-opener-policy", p.cross_origin_opener_policy))
        if p.cross_origin_resource_policy is not None:
            always.append(("cross-origin-resource-policy", p.cross_origin_resource_policy))
        if p.cross_origin_embedder_policy is not None:
            always.append(("cross-origin-embedder-policy", p.cross_origin_embedder_policy))
        if p.x_permitted_cross_domain_policies is not None:
            xpcdp = p.x_permitted_cross_domain_policies
            always.append(("x-permitted-cross-domain-policies", xpcdp))
        if report_path is not None:
            always.append(("reporting-endpoints", f'{CSP_REPORT_GROUP}="{report_path}"'))
        self.always: tuple[tuple[str, str], ...] = tuple(always)
        self.https_only: tuple[tuple[str, str], ...] = (
            (
                "strict-transport-security",
                hsts_value(
                    p.hsts_max_age,
                    include_subdomains=p.hsts_include_subdomains,
                    preload=p.hsts_preload,
                ),
            ),
        )
        self.csp = CSPHeader(
            p.csp,
            p.csp_report_only,
            nonce_enabled=p.csp_nonce,
            report_uri=report_path,
            report_to=None if report_path is None else CSP_REPORT_GROUP,
        )
        self.remove: frozenset[str] = frozenset(name.lower() for name in p.remove_headers)
        self.names: frozenset[str] = (
            frozenset(name for name, _ in (*self.always, *self.https_only)) | self.csp.names
        )

    def __repr__(self) -> str:
        """List the header names."""
        return f"SecurityHeaders({sorted(self.names)})"
