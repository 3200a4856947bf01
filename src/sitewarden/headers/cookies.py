"""Cookie hardening: the flags an application forgot, added to its ``Set-Cookie`` headers.

What each flag stops:

* ``Secure`` — the cookie is never sent over plain HTTP, where anyone on the path reads
  it. Added on HTTPS responses only: a browser drops a Secure cookie set over plain HTTP
  (except on localhost), which would break a site not yet on HTTPS. It is added whatever
  the scheme when the cookie says ``SameSite=None`` (browsers reject that without
  Secure) or has a ``__Secure-``/``__Host-`` name (browsers reject those too).
* ``HttpOnly`` — scripts cannot read the cookie, so an XSS cannot steal it. Cookies that
  scripts must read are listed in ``harden_cookies_except``.
* ``SameSite`` — the browser does not send the cookie with cross-site requests (CSRF,
  cross-site leaks). Only added when the cookie has no SameSite attribute.

Nothing the application wrote is removed or changed (an explicit ``SameSite=None`` stays),
attributes are recognised case-insensitively and never duplicated, deletions (``Max-Age=0``,
past ``Expires``) are hardened like any cookie (a browser only replaces a cookie with one
of the same flags' scope), and a value that is not a cookie is returned as it is.
"""

from __future__ import annotations

__all__ = ["harden_set_cookie"]

_SECURE_PREFIXES = ("__secure-", "__host-")


def harden_set_cookie(
    value: str, *, https: bool, samesite: str, exempt: frozenset[str] = frozenset()
) -> str:
    """Return the ``Set-Cookie`` *value* with ``Secure``, ``HttpOnly`` and ``SameSite`` added.

    ``Secure`` is added when *https* is true, or when the cookie needs it anyway
    (``SameSite=None``, ``__Secure-``/``__Host-`` names); ``HttpOnly`` unless the cookie's
    name is in *exempt*; ``SameSite=<samesite>`` when the cookie has no SameSite
    attribute. A quoted cookie value may contain ``;``. A value whose first pair has no
    ``=`` is returned unchanged; this function never raises.
    """
    end = value.find(";")
    if end < 0:
        end = len(value)
    eq = value.find("=", 0, end)
    if eq < 0:
        return value
    # A quoted value ("x;y") ends at its closing quote, not at the first ';'.
    quote = eq + 1
    while value[quote : quote + 1] in (" ", "\t"):
        quote += 1
    if value[quote : quote + 1] == '"':
        close = value.find('"', quote + 1)
        if close >= 0:
            end = value.find(";", close)
            if end < 0:
                end = len(value)

    secure = httponly = False
    site: str | None = None
    if end < len(value):
        for attr in value[end + 1 :].split(";"):
            key, _, val = attr.partition("=")
            key = key.strip().lower()
            if key == "secure":
                secure = True
            elif key == "httponly":
                httponly = True
            elif key == "samesite":
                site = val.strip().lower()

    name = value[:eq].strip()
    add = []
    if not secure and (
        https
        or (site if site is not None else samesite.lower()) == "none"
        or name.lower().startswith(_SECURE_PREFIXES)
    ):
        add.append("Secure")
    if not httponly and name not in exempt:
        add.append("HttpOnly")
    if site is None:
        add.append("SameSite=" + samesite)
    if not add:
        return value
    return value.rstrip(" \t;") + "; " + "; ".join(add)
