"""The automatic CSRF check: one decision per unsafe request, before the app runs.

**The threat.** A page on another site makes the victim's browser send a state-changing
request (a form POST, a ``fetch`` with ``credentials: "include"``) to this site. The
browser attaches the victim's cookies, so without a check the request acts with the
victim's rights. The check must tell a request the site's own pages started from one any
other page started, using only what a browser will not let that other page forge.

**The decision**, in this order (the first rule that applies decides):

1. *Not applicable.* Safe methods (``GET``, ``HEAD``, ``OPTIONS``, ``TRACE``: they must
   not change state), mode ``off``, a path matching ``csrf_exempt_paths`` and a request the
   caller exempted (a view decorated as exempt) pass unchecked.
2. *Fetch Metadata.* Browsers since 2023 send ``Sec-Fetch-Site``, which pages cannot set.
   ``same-origin`` and ``none`` (the user typed the address or used a bookmark) pass.
   ``cross-site`` is refused, and so is ``same-site``: a sibling subdomain is another
   origin — often another application, sometimes user content — not this site. Both pass
   when the ``Origin`` is one of ``csrf_trusted_origins``. Any other value is treated as
   ``cross-site``.
3. *Origin.* Without Fetch Metadata (older browsers), the ``Origin`` header must equal the
   site's own origin (``scheme://host[:port]`` as resolved through trusted proxies) or a
   trusted origin. ``Origin: null`` (sandboxed frames, ``data:`` documents, some privacy
   redirects) is refused: it can be produced from any site.
4. *Referer.* Without ``Origin`` either, the origin part of ``Referer`` is compared the
   same way. On an HTTPS site a Referer from plain HTTP is refused: a network attacker
   can inject a page into any HTTP site (the reason Django's strict Referer check exists).
5. *Authenticator.* Without all three (non-browser clients, browsers behind a proxy or
   policy that strips them), the request must carry a valid authenticator
   (:mod:`sitewarden.csrf`) bound to the signed-in user: in the ``X-CSRF-Token`` header
   (``csrf_header``), or in the ``_authenticator`` field (``csrf_field``) of an
   ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body. An anonymous
   token never passes for a signed-in user, nor one user's token for another.

Rules 2 to 4 rely on headers that scripts on other sites cannot set (forbidden request
headers); a client that can forge them is not a browser and carries no victim's cookies.

Reading the body is the adapter's job: when only a form field could decide, :meth:`decide`
returns a :class:`Decision` with ``needs_body=True`` (and ``allowed=False``, so an adapter
that ignores the flag fails closed); the adapter reads at most :data:`MAX_BODY_BYTES`,
calls :meth:`CsrfGuard.decide_with_body`, and replays the body to the app.

In ``log-only`` mode every refusal becomes ``allowed=True`` with its ``reason`` kept, so
the engine can log what enforcement would refuse before turning it on.
"""

from __future__ import annotations

import fnmatch
import html
import json
import re
import urllib.parse
from dataclasses import dataclass

from sitewarden.csrf import check_token
from sitewarden.keyring import KeyManager
from sitewarden.policy import Policy
from sitewarden.web.request import Reply, RequestView

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_MULTIPART_PARTS",
    "PASS",
    "REASON_BAD_FETCH_SITE",
    "REASON_BAD_ORIGIN",
    "REASON_BAD_REFERER",
    "REASON_BAD_TOKEN",
    "REASON_CROSS_SITE",
    "REASON_INSECURE_REFERER",
    "REASON_MALFORMED_REFERER",
    "REASON_NO_TOKEN",
    "REASON_NULL_ORIGIN",
    "REASON_SAME_SITE",
    "SAFE_METHODS",
    "CsrfGuard",
    "Decision",
]

# -- refusal reasons: one per way a request is refused ---------------------------------

#: ``Sec-Fetch-Site: cross-site``: another site's page started the request.
REASON_CROSS_SITE = "cross-site request (Sec-Fetch-Site: cross-site)"
#: ``Sec-Fetch-Site: same-site``: a sibling subdomain started it. Subdomains are other
#: origins, often other applications or user content, and cookies leak between them.
REASON_SAME_SITE = "request from another subdomain of the site (Sec-Fetch-Site: same-site)"
#: A ``Sec-Fetch-Site`` value no browser sends; treated as cross-site.
REASON_BAD_FETCH_SITE = "unrecognised Sec-Fetch-Site value (treated as cross-site)"
#: The ``Origin`` header names neither this site nor a trusted origin.
REASON_BAD_ORIGIN = "Origin does not match the site"
#: ``Origin: null``: an opaque origin (sandboxed frame, ``data:`` page, privacy redirect)
#: that any site can produce.
REASON_NULL_ORIGIN = "Origin is null (opaque origin: sandboxed frame or data: page)"
#: The ``Referer`` (used when ``Origin`` is missing) names another origin.
REASON_BAD_REFERER = "Referer does not match the site"
#: The ``Referer`` cannot be read as a URL with a host.
REASON_MALFORMED_REFERER = "Referer is malformed"
#: An HTTPS site got a ``Referer`` from plain HTTP, which a network attacker can forge.
REASON_INSECURE_REFERER = "Referer is insecure (http) while the site is https"
#: No Fetch Metadata, no ``Origin``, no ``Referer``, and no authenticator either.
REASON_NO_TOKEN = "no CSRF authenticator (Origin, Referer and Sec-Fetch-Site all missing)"  # noqa: S105
#: An authenticator was sent but is forged, expired, or issued to another user.
REASON_BAD_TOKEN = "CSRF authenticator is invalid, expired or issued to another user"  # noqa: S105

#: Methods that must not change state, so are never checked (RFC 9110 §9.2.1). Methods
#: are case-sensitive: ``get`` is not ``GET`` and is checked.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: The most body :meth:`CsrfGuard.decide_with_body` looks at; adapters read (at most) this
#: much, and a field beyond it is not seen. Put ``_authenticator`` first in forms.
MAX_BODY_BYTES = 1024 * 1024
#: The most parts of a multipart body that are looked at.
MAX_MULTIPART_PARTS = 1_000
_MAX_PART_HEADERS = 8 * 1024  # bytes of headers of one part
_MAX_FIELD_VALUE = 1024  # a token is 64 characters; anything much longer is not one
_MAX_HEADER_CHARS = 4096  # longer Origin/Referer/Accept values are not parsed

_FORM_URLENCODED = "application/x-www-form-urlencoded"
_FORM_MULTIPART = "multipart/form-data"

_HOSTNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")
_BOUNDARY = re.compile(r"""^[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]$""")
_DISPOSITION_NAME = re.compile(rb""";\s*name\s*=\s*(?:"([^"]*)"|([^;\s]*))""", re.IGNORECASE)
_DISPOSITION_FILENAME = re.compile(rb""";\s*filename\*?\s*=""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of the CSRF check for one request.

    ``allowed``: let the request through. ``reason``: why it was (or, in ``log-only``
    mode, would have been) refused — one of the ``REASON_…`` constants — else ``None``.
    ``needs_body``: only a form field can decide; read the body and call
    :meth:`CsrfGuard.decide_with_body` (``allowed`` is ``False`` meanwhile).
    """

    allowed: bool
    reason: str | None
    needs_body: bool = False


#: The decision that lets a request through with nothing to report (always this object).
PASS = Decision(True, None, False)
_PASS = PASS
_NEEDS_BODY = Decision(False, REASON_NO_TOKEN, True)


def _origin_key(origin: str) -> str:
    """Normalise an origin for comparison: lower-case, default port dropped."""
    origin = origin.lower()
    if origin.startswith("https://"):
        if origin.endswith(":443"):
            return origin[:-4]
    elif origin.startswith("http://") and origin.endswith(":80"):
        return origin[:-3]
    return origin


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


class CsrfGuard:
    """Decides whether an unsafe request may reach the app (see the module docstring).

    Build one per :class:`~sitewarden.policy.Policy`; everything the per-request path
    needs (trusted-origin sets, exempt-path pattern, header names) is prepared here.
    """

    #: Request headers the decision depends on. The engine adds them to ``Vary`` on
    #: responses to unsafe methods, so no cache reuses a response across them. Responses
    #: to GET never depend on them (safe methods are not checked), so they get no ``Vary``.
    vary_headers: tuple[str, ...] = ("Sec-Fetch-Site", "Origin")

    def __init__(self, policy: Policy, keys: KeyManager) -> None:
        """Prepare the checks of *policy*; tokens are verified against *keys*."""
        self.policy = policy
        self.keys = keys
        self.mode = policy.csrf
        self._log_only = policy.csrf == "log-only"
        self._header = policy.csrf_header.lower()
        self._field = policy.csrf_field
        # The field's name as a browser's urlencoded serialiser writes it, for a cheap
        # "is it there at all" test before anything is parsed.
        encoded = urllib.parse.quote(policy.csrf_field, safe="*-._").encode("ascii")
        self._field_urlencoded = encoded + b"="
        self._field_bytes = policy.csrf_field.encode("ascii")
        exact: set[str] = set()
        wildcards: list[tuple[str, str, str]] = []  # (scheme://, .domain, :port or "")
        for origin in policy.csrf_trusted_origins:
            key = _origin_key(origin)
            scheme, _, rest = key.partition("://")
            if rest.startswith("*."):
                host, colon, port = rest[1:].partition(":")
                wildcards.append((scheme + "://", host, colon + port))
            else:
                exact.add(key)
        self._trusted = frozenset(exact)
        self._trusted_wildcards = tuple(wildcards)
        patterns = [fnmatch.translate(p) for p in policy.csrf_exempt_paths]
        self._exempt = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    # -- the decision --------------------------------------------------------------------

    def decide(
        self, view: RequestView, site_origin: str, userid: str | None, *, exempt: bool = False
    ) -> Decision:
        """Decide on *view*: rules 1 to 5 of the module docstring, in order.

        *site_origin* is the site's own origin, ``scheme://host[:port]``, as resolved
        through trusted proxies. *userid* is the signed-in user (``None``: anonymous), to
        whom an authenticator must be bound. *exempt* is the caller's per-request
        exemption (a view marked exempt). Never raises on any header value; errors of
        the key store propagate, for the engine's ``on_store_failure`` handling.
        """
        if (
            view.method in SAFE_METHODS
            or self.mode == "off"
            or exempt
            or (self._exempt is not None and self._path_exempt(view))
        ):
            return _PASS
        decision = self._decide(view, site_origin, userid)
        if self._log_only and not decision.allowed and not decision.needs_body:
            return Decision(True, decision.reason, False)
        return decision

    def decide_with_body(self, view: RequestView, userid: str | None, body: bytes) -> Decision:
        """Finish a decision that returned ``needs_body``: find and check the form field.

        *body* is the request body, or its first :data:`MAX_BODY_BYTES` (more is not
        looked at). ``application/x-www-form-urlencoded`` and ``multipart/form-data``
        bodies are searched for the ``_authenticator`` field; a multipart body is not
        parsed in full — only part headers are read until the field's part is found.
        Malformed, truncated or binary bodies are refused, never raised on.
        """
        if self.mode == "off":
            return _PASS
        content_type = view.headers.get("content-type", "")
        media = _media_type(content_type)
        body = bytes(body[:MAX_BODY_BYTES])
        token: str | None = None
        if media == _FORM_URLENCODED:
            token = self._urlencoded_field(body)
        elif media == _FORM_MULTIPART:
            token = self._multipart_field(content_type, body)
        if token is None:
            decision = Decision(False, REASON_NO_TOKEN, False)
        elif check_token(self.keys, token, userid):
            return _PASS
        else:
            decision = Decision(False, REASON_BAD_TOKEN, False)
        if self._log_only:
            return Decision(True, decision.reason, False)
        return decision

    def _path_exempt(self, view: RequestView) -> bool:
        if self._exempt is None or self._exempt.match(view.path) is None:
            return False
        # "/api/../admin" matches "/api/*" but may be routed to /admin: no exemption
        # for paths with dot segments, decoded or not.
        path = view.path
        if "%2e" in path.lower():
            return False
        return not any(seg in (".", "..") for seg in path.split("/"))

    def _decide(self, view: RequestView, site_origin: str, userid: str | None) -> Decision:
        headers = view.headers
        fetch_site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if fetch_site is not None:
            fetch_site = fetch_site.strip().lower()
            if fetch_site in ("same-origin", "none"):
                return _PASS
            if origin is not None and self._is_trusted(_origin_key(origin.strip())):
                return _PASS
            if fetch_site == "cross-site":
                return Decision(False, REASON_CROSS_SITE)
            if fetch_site == "same-site":
                return Decision(False, REASON_SAME_SITE)
            return Decision(False, REASON_BAD_FETCH_SITE)
        if origin is not None:
            site = _origin_key(site_origin)
            key = _origin_key(origin.strip())
            if key == site or self._is_trusted(key):
                return _PASS
            if key == "null":
                return Decision(False, REASON_NULL_ORIGIN)
            return Decision(False, REASON_BAD_ORIGIN)
        referer = headers.get("referer")
        if referer is not None:
            return self._check_referer(referer, _origin_key(site_origin))
        token = headers.get(self._header)
        if token is not None:
            if check_token(self.keys, token.strip(), userid):
                return _PASS
            return Decision(False, REASON_BAD_TOKEN)
        media = _media_type(headers.get("content-type", ""))
        if media in (_FORM_URLENCODED, _FORM_MULTIPART):
            return _NEEDS_BODY
        return Decision(False, REASON_NO_TOKEN)

    def _check_referer(self, referer: str, site: str) -> Decision:
        referer = referer.strip()
        if len(referer) > _MAX_HEADER_CHARS:
            return Decision(False, REASON_MALFORMED_REFERER)
        scheme, sep, rest = referer.partition("://")
        scheme = scheme.lower()
        # The authority ends at the first "/", "?", "#" — or "\", which browsers treat
        # as "/" in special URLs.
        end = len(rest)
        for delimiter in "/?#\\":
            index = rest.find(delimiter)
            if index != -1 and index < end:
                end = index
        netloc = rest[:end]
        if not sep or not netloc or not _SCHEME.match(scheme) or "@" in netloc:
            return Decision(False, REASON_MALFORMED_REFERER)
        if scheme == "http" and site.startswith("https://"):
            return Decision(False, REASON_INSECURE_REFERER)
        key = _origin_key(f"{scheme}://{netloc}")
        if key == site or self._is_trusted(key):
            return _PASS
        return Decision(False, REASON_BAD_REFERER)

    def websocket_origin_allowed(self, view: RequestView, site_origin: str) -> bool:
        """Return whether a WebSocket handshake may proceed (cross-site WebSocket hijacking).

        A handshake is a GET, so the unsafe-method rules never see it, yet the browser
        attaches the victim's cookies to it from any page. Browsers always send ``Origin``
        on a handshake: it must be the site's own or a trusted one. A client without
        ``Origin`` is not a browser and carries no ambient cookies, so it may proceed.
        """
        origin = view.headers.get("origin")
        if origin is None:
            return True
        key = _origin_key(origin.strip())
        return key == _origin_key(site_origin) or self._is_trusted(key)

    def _is_trusted(self, key: str) -> bool:
        """Whether the normalised origin *key* is one of the trusted origins."""
        if key in self._trusted:
            return True
        for prefix, domain, port in self._trusted_wildcards:
            if not key.startswith(prefix):
                continue
            hostport = key[len(prefix) :]
            if port:
                if not hostport.endswith(port):
                    continue
                host = hostport[: -len(port)]
            else:
                host = hostport
            # "*.example.org" matches subdomains only, never the apex or a lookalike
            # such as "evil-example.org"; the host must be a plain DNS name.
            if (
                len(host) > len(domain)
                and host.endswith(domain)
                and len(host) <= 253
                and _HOSTNAME.match(host) is not None
            ):
                return True
        return False

    # -- bodies --------------------------------------------------------------------------

    def _urlencoded_field(self, body: bytes) -> str | None:
        # Only the field's own "name=value" segment is decoded: the rest of the form,
        # however large, costs one substring search.
        marker = self._field_urlencoded
        pos = body.find(marker)
        while pos != -1:
            if pos == 0 or body[pos - 1] == 0x26:  # at the start of a field ("&")
                end = body.find(b"&", pos)
                segment = body[pos:] if end == -1 else body[pos:end]
                if len(segment) > len(marker) + 3 * _MAX_FIELD_VALUE:
                    return None  # far too long to be a token
                try:
                    pairs = urllib.parse.parse_qsl(
                        segment.decode("latin-1"),  # never fails; a token is ASCII
                        keep_blank_values=True,
                        max_num_fields=1,
                        encoding="utf-8",
                        errors="replace",
                    )
                except ValueError:
                    return None
                return pairs[0][1] if pairs and pairs[0][0] == self._field else None
            pos = body.find(marker, pos + 1)
        return None

    def _multipart_field(self, content_type: str, body: bytes) -> str | None:
        boundary = _multipart_boundary(content_type)
        if boundary is None or self._field_bytes not in body:
            return None
        dash = b"--" + boundary
        delimiter = b"\r\n" + dash
        if body.startswith(dash):
            pos = len(dash)
        else:
            found = body.find(delimiter)  # skip a preamble
            if found == -1:
                return None
            pos = found + len(delimiter)
        for _ in range(MAX_MULTIPART_PARTS):
            if body.startswith(b"--", pos):
                return None  # the closing delimiter
            # Transport padding, then CRLF, then the part's headers up to a blank line.
            line_end = body.find(b"\r\n", pos, pos + 256)
            if line_end == -1 or body[pos:line_end].strip(b" \t"):
                return None
            headers_start = line_end + 2
            if body.startswith(b"\r\n", headers_start):  # a part without headers
                headers_end = headers_start
                value_start = headers_start + 2
            else:
                end = headers_start + _MAX_PART_HEADERS
                headers_end = body.find(b"\r\n\r\n", headers_start, end)
                if headers_end == -1:
                    return None
                value_start = headers_end + 4
            if self._is_field_part(body[headers_start:headers_end]):
                value_end = body.find(delimiter, value_start, value_start + _MAX_FIELD_VALUE)
                if value_end == -1:
                    return None  # truncated, or far too long to be a token
                try:
                    return body[value_start:value_end].decode("ascii")
                except UnicodeDecodeError:
                    return None
            next_part = body.find(delimiter, value_start)
            if next_part == -1:
                return None
            pos = next_part + len(delimiter)
        return None

    def _is_field_part(self, headers: bytes) -> bool:
        """Whether the part headers *headers* name the authenticator field (not a file)."""
        for line in headers.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or name.strip().lower() != b"content-disposition":
                continue
            value = value.strip()
            if not value.lower().startswith(b"form-data") or _DISPOSITION_FILENAME.search(value):
                return False
            match = _DISPOSITION_NAME.search(value)
            if match is None:
                return False
            found = match.group(1) if match.group(1) is not None else match.group(2)
            return found == self._field_bytes
        return False

    # -- the refusal ---------------------------------------------------------------------

    def refusal(self, reason: str, accept: str) -> Reply:
        """Return the 403 page for a refusal with *reason*.

        JSON ``{"error": "csrf", "reason": …}`` when the ``Accept`` header *accept*
        prefers ``application/json``, else a small HTML page: escaped text, no script and
        no style, so it renders under ``default-src 'none'``. Never cached.
        """
        if _prefers_json(accept):
            body = json.dumps({"error": "csrf", "reason": reason}).encode("utf-8")
            content_type = "application/json; charset=utf-8"
        else:
            page = _HTML_PAGE.format(reason=html.escape(reason, quote=True))
            body = page.encode("utf-8", "replace")
            content_type = "text/html; charset=utf-8"
        return Reply(
            status=403,
            headers=[("content-type", content_type), ("cache-control", "no-store")],
            body=body,
        )


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<title>403 Forbidden: request refused</title>
</head>
<body>
<h1>Request refused</h1>
<p>This request was refused to protect you against cross-site request forgery.</p>
<p>Reason: {reason}</p>
<p>If you submitted a form on this site, go back, reload the page and try again.</p>
</body>
</html>
"""


def _multipart_boundary(content_type: str) -> bytes | None:
    """Return the ``boundary`` parameter of a multipart Content-Type, if it is valid."""
    if len(content_type) > _MAX_HEADER_CHARS:
        return None
    for param in content_type.split(";")[1:]:
        name, eq, value = param.partition("=")
        if eq and name.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if _BOUNDARY.match(value) is None:
                return None
            return value.encode("ascii")
    return None


def _prefers_json(accept: str) -> bool:
    """Whether *accept* ranks ``application/json`` above ``text/html``.

    Each type takes the q-value of its most specific matching range; a tie goes to the
    more specific match (``application/json, */*`` is JSON), then to HTML.
    """
    if not accept or len(accept) > _MAX_HEADER_CHARS:
        return False
    json_rank = (0.0, -1)
    html_rank = (0.0, -1)
    json_spec = html_spec = -1
    for item in accept.split(",")[:64]:
        media, *params = item.split(";")
        media = media.strip().lower()
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also rejects nan
                    q = 0.0
        json_s = {"application/json": 2, "application/*": 1, "*/*": 0}.get(media, -1)
        html_s = {"text/html": 2, "text/*": 1, "*/*": 0}.get(media, -1)
        if json_s > json_spec:
            json_spec, json_rank = json_s, (q, json_s)
        if html_s > html_spec:
            html_spec, html_rank = html_s, (q, html_s)
    return json_rank[0] > 0.0 and json_rank > html_rank
