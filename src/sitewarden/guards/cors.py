"""Cross-Origin Resource Sharing: which other sites' scripts may read this site's answers.

**Threat.** The same-origin policy stops a script on ``evil.example`` from reading this
site's responses; CORS headers lift it. The classic mistakes turn that into a hole: echoing
*any* ``Origin`` back with ``Access-Control-Allow-Credentials: true`` lets every site on the
web read signed-in users' data; allowing ``Origin: null`` does the same for sandboxed
iframes and ``data:`` documents, which any attacker can create; a missing ``Vary: Origin``
lets a cache hand one origin's answer to another; a permissive preflight lets cross-site
scripts send methods and headers that plain forms cannot (the basis of CSRF defences
that rely on them).

**Rule.** :class:`CorsGuard` follows ``cors_origins`` exactly:

* an origin is allowed when it is listed (``https://app.example.org``), matches a listed
  ``https://*.example.org`` (subdomains only, same scheme and port), or the list holds
  ``*`` and credentials are off (the policy refuses ``*`` with credentials);
* ``null`` is never allowed unless listed literally, and never with credentials;
* the allowed origin is echoed exactly when credentials are on or origins are a list;
  ``*`` is sent only for a ``*`` policy without credentials — an arbitrary origin is
  never echoed;
* a preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is
  answered 204 only if the origin, the method and every requested header are allowed;
  otherwise 403 *without* any CORS header, so the browser blocks the real request;
* ``Vary: Origin`` is on every answer of a CORS path.

The CORS-safelisted request headers (``accept``, ``accept-language``,
``content-language``, ``content-type``) are always allowed in preflights, as in Starlette:
browsers preflight ``content-type: application/json``, and the origin has been vetted.
CORS applies to paths matching ``cors_paths`` (fnmatch, whole path). With ``cors_origins``
empty the guard is inert and costs one attribute check.
"""

from __future__ import annotations

import fnmatch
import re

from sitewarden.errors import ConfigError
from sitewarden.policy import Policy
from sitewarden.web.request import Reply, RequestView

__all__ = [
    "REASON_CORS_HEADERS",
    "REASON_CORS_METHOD",
    "REASON_CORS_ORIGIN",
    "SAFELISTED_HEADERS",
    "CorsGuard",
]

#: Refusal reasons (status 403) for a preflight.
REASON_CORS_ORIGIN = "CORS preflight from an origin not in cors_origins"
REASON_CORS_METHOD = "CORS preflight for a method not in cors_allow_methods"
REASON_CORS_HEADERS = "CORS preflight for a header not in cors_allow_headers"

#: Request headers every preflight may name (the CORS-safelisted request headers).
SAFELISTED_HEADERS: tuple[str, ...] = (
    "accept",
    "accept-language",
    "content-language",
    "content-type",
)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_MAX_REQUEST_HEADERS = 4096  # characters of Access-Control-Request-Headers looked at
_TEXT = ("content-type", "text/plain; charset=utf-8")


class _PathMatcher:
    """fnmatch patterns over whole paths: set, ``startswith`` and one regex, precomputed."""

    __slots__ = ("_all", "_exact", "_prefixes", "_regex")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        regexes: list[str] = []
        self._all = False
        for pattern in patterns:
            body = pattern[:-1] if pattern.endswith("*") else None
            if pattern in ("*", "/*"):
                self._all = True
            elif not any(c in pattern for c in "*?["):
                exact.add(pattern)
            elif body is not None and not any(c in body for c in "*?["):
                prefixes.append(body)  # fnmatch's "*" also crosses "/"
            else:
                regexes.append(fnmatch.translate(pattern))
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._regex = re.compile("|".join(f"(?:{r})" for r in regexes)) if regexes else None

    def __call__(self, path: str) -> bool:
        return (
            self._all
            or path in self._exact
            or (bool(self._prefixes) and path.startswith(self._prefixes))
            or (self._regex is not None and self._regex.match(path) is not None)
        )


def _tokens(policy: Policy, name: str) -> tuple[str, ...]:
    values: tuple[str, ...] = getattr(policy, name)
    for value in values:
        if not _TOKEN.fullmatch(value):
            raise ConfigError(f"{name}: {value!r} is not a valid method/header name")
    if "*" in values and policy.cors_allow_credentials:
        raise ConfigError(f"{name}: '*' is not a wildcard when cors_allow_credentials is on")
    return values


def _is_label_run(text: str) -> bool:
    """Whether *text* is one or more DNS labels (``a``, ``a.b-c``): no other characters."""
    return (
        bool(text)
        and text.isascii()
        and text[0] != "."
        and text[-1] != "."
        and ".." not in text
        and text.replace(".", "").replace("-", "").isalnum()
    )


class CorsGuard:
    """Answer CORS preflights and add CORS headers, per ``cors_*`` settings of the policy."""

    __slots__ = (
        "_actual",
        "_any_header",
        "_any_method",
        "_any_origin",
        "_exact",
        "_headers",
        "_inert",
        "_methods",
        "_paths",
        "_preflight",
        "_wildcards",
    )

    def __init__(self, policy: Policy) -> None:
        """Precompute the origin sets, path matcher and every constant header value."""
        credentials = policy.cors_allow_credentials
        self._inert = not policy.cors_origins
        self._any_origin = "*" in policy.cors_origins and not credentials
        exact: set[str] = set()
        wildcards: list[tuple[str, str]] = []
        for origin in policy.cors_origins:
            if origin == "*":
                continue
            if origin == "null":
                if credentials:
                    raise ConfigError("cors_origins: 'null' is never allowed with credentials")
                exact.add("null")
                continue
            scheme, sep, rest = origin.lower().partition("://")
            if not sep or scheme not in _DEFAULT_PORTS:
                raise ConfigError(f"cors_origins: {origin!r} is not an origin")
            if rest.endswith(_DEFAULT_PORTS[scheme]):
                rest = rest[: -len(_DEFAULT_PORTS[scheme])]  # browsers omit default ports
            if rest.startswith("*."):
                wildcards.append((scheme + "://", rest[1:]))
            else:
                exact.add(f"{scheme}://{rest}")
        self._exact = frozenset(exact)
        self._wildcards = tuple(wildcards)
        self._paths = _PathMatcher(policy.cors_paths)

        methods = _tokens(policy, "cors_allow_methods")
        allow_headers = tuple(h.lower() for h in _tokens(policy, "cors_allow_headers"))
        expose = _tokens(policy, "cors_expose_headers")
        self._any_method = "*" in methods
        self._methods = frozenset(methods)
        self._any_header = "*" in allow_headers
        self._headers = frozenset(allow_headers) | frozenset(SAFELISTED_HEADERS)

        named_headers = [h for h in allow_headers if h != "*"]
        named_headers += [h for h in SAFELISTED_HEADERS if h not in named_headers]
        preflight = [
            ("access-control-allow-methods", "*" if self._any_method else ", ".join(methods)),
            (
                "access-control-allow-headers",
                "*" if self._any_header else ", ".join(named_headers),
            ),
            ("access-control-max-age", str(policy.cors_max_age)),
        ]
        actual: list[tuple[str, str]] = []
        if credentials:
            preflight.append(("access-control-allow-credentials", "true"))
            actual.append(("access-control-allow-credentials", "true"))
        if expose:
            actual.append(("access-control-expose-headers", ", ".join(expose)))
        preflight.append(("vary", "Origin"))
        actual.append(("vary", "Origin"))
        self._preflight = tuple(preflight)
        self._actual = tuple(actual)

    def _allow_origin(self, origin: str) -> str | None:
        """Return the ``access-control-allow-origin`` value for *origin*, or ``None``."""
        if origin in self._exact:
            return origin
        if origin == "null":
            return None  # only a literal "null" entry allows it, found above
        if self._any_origin:
            return "*"
        for prefix, suffix in self._wildcards:
            if (
                origin.startswith(prefix)
                and origin.endswith(suffix)
                and _is_label_run(origin[len(prefix) : len(origin) - len(suffix)])
            ):
                return origin
        return None

    def preflight(self, view: RequestView) -> Reply | None:
        """Answer a CORS preflight on a CORS path: 204 if allowed, 403 if not.

        Returns ``None`` for anything that is not a preflight on a CORS path (the
        application answers it).
        """
        if self._inert or view.method != "OPTIONS":
            return None
        headers = view.headers
        origin = headers.get("origin")
        method = headers.get("access-control-request-method")
        if origin is None or method is None or not self._paths(view.path):
            return None
        allow = self._allow_origin(origin)
        if allow is None:
            return _refuse(REASON_CORS_ORIGIN)
        if not (self._any_method or method.strip() in self._methods):
            return _refuse(REASON_CORS_METHOD)
        requested = headers.get("access-control-request-headers", "")
        if requested:
            if len(requested) > _MAX_REQUEST_HEADERS:
                return _refuse(REASON_CORS_HEADERS)
            allowed = self._headers
            for name in requested.lower().split(","):
                name = name.strip()
                if not name or name in allowed:
                    continue
                if not (self._any_header and _TOKEN.fullmatch(name)):
                    return _refuse(REASON_CORS_HEADERS)
        return Reply(204, [("access-control-allow-origin", allow), *self._preflight])

    def response_headers(self, view: RequestView) -> list[tuple[str, str]]:
        """Return the CORS headers to add to the response of an actual request.

        ``Vary: Origin`` on every answer of a CORS path; the allow-origin (with
        credentials and expose-headers) only for an allowed origin. The adapter must merge
        ``Vary`` with the application's own, not replace it.
        """
        if self._inert or not self._paths(view.path):
            return []
        origin = view.headers.get("origin")
        allow = None if origin is None else self._allow_origin(origin)
        if allow is None:
            return [("vary", "Origin")]
        return [("access-control-allow-origin", allow), *self._actual]


def _refuse(reason: str) -> Reply:
    return Reply(403, [_TEXT], reason.encode())
