r"""The redirect from plain HTTP to HTTPS.

**Threat.** A page served over plain HTTP can be read and rewritten by anyone on the path
(public Wi-Fi, a hostile ISP): session cookies, form tokens and passwords travel in clear,
and injected script owns the page. HSTS protects only after a first HTTPS visit, so the
first plain request must be sent to HTTPS before anything else happens.

**Rule.** :func:`https_redirect` answers a plain-HTTP request — as resolved through the
trusted proxies, so ``X-Forwarded-Proto: https`` from anyone else does not stop it — with
a redirect to the same URL on HTTPS: **301** for GET and HEAD (cacheable by design, as
Django and Rails do), **308** for every other method, which keeps the method and body
(a 301/302 turns a POST into a GET and loses the form).

The ``Location`` is built only from parts that cannot point elsewhere:

* the host is the *validated* Host (the engine runs the host guard first; this function
  refuses a malformed one with 400 rather than echo it), its port replaced by
  ``https_port`` (omitted when ``None`` or 443);
* the path is re-encoded from its decoded form (``%``, spaces, ``\``, CR and LF become
  escapes) and its leading slashes are collapsed to one, so ``//evil.example/x`` can never
  become a protocol-relative URL, whatever rewrites the Location later;
* the query is kept, with anything outside URL characters (CR, LF, spaces, quotes,
  non-ASCII) escaped, and existing ``%xx`` escapes left alone.
"""

from __future__ import annotations

from urllib.parse import quote

from sitewarden.guards.clientip import Origin
from sitewarden.guards.hosts import REASON_BAD_HOST, normalise_host
from sitewarden.web.request import Reply, RequestView

__all__ = ["REASON_PLAIN_HTTP", "https_redirect"]

#: Why a request was redirected (status 301 or 308).
REASON_PLAIN_HTTP = "plain HTTP request redirected to HTTPS"

_SECURE = frozenset(("https", "wss"))
_KEEP_METHOD = frozenset(("GET", "HEAD"))
# RFC 3986 pchar minus "%" (the path is decoded: a "%" in it is a literal percent sign).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# The query arrives still encoded: keep its escapes and its delimiters.
_QUERY_SAFE = "/?:@!$&'()*+,;=-._~%"
_TEXT = [("content-type", "text/plain; charset=utf-8")]


def https_redirect(
    view: RequestView, origin: Origin | RequestView, https_port: int | None
) -> Reply | None:
    """Return the redirect to HTTPS for a plain-HTTP request, or ``None`` for HTTPS.

    *origin* is the request as resolved by :class:`~sitewarden.guards.clientip.ProxyResolver`
    (its scheme and host are the ones to use). A malformed host gets a 400 instead of a
    redirect, since no safe Location can be built from it.
    """
    if origin.scheme in _SECURE:
        return None
    name = normalise_host(origin.host)
    if name is None:
        return Reply(400, list(_TEXT), REASON_BAD_HOST.encode())
    if ":" in name:
        name = f"[{name}]"
    if https_port is not None and https_port != 443:
        name = f"{name}:{https_port}"
    path = view.path
    path = "/" + path.lstrip("/\\") if path.startswith(("/", "\\")) else "/"
    location = "https://" + name + quote(path, safe=_PATH_SAFE, errors="replace")
    if view.query:
        location += "?" + quote(view.query, safe=_QUERY_SAFE, errors="replace")
    status = 301 if view.method in _KEEP_METHOD else 308
    body = f"Moved to {location}\n".encode("ascii")
    return Reply(status, [("location", location), *_TEXT], body)
