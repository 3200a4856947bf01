"""Django: ``sitewarden.web.django.SitewardenMiddleware`` (sync and async).

Settings::

    INSTALLED_APPS = [..., "sitewarden.contrib.django"]      # for {% load sitewarden %}
    MIDDLEWARE = [
        "sitewarden.web.django.SitewardenMiddleware",         # first: outermost
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        ...
    ]
    SITEWARDEN = {
        "preset": "balanced",
        "store": "sqlite:///var/sitewarden/state.db",
        "allowed_hosts": ["example.org"],
        # "config": "sitewarden.toml",  and any other policy setting
    }

It is used **instead of** three Django middleware:

* ``django.middleware.csrf.CsrfViewMiddleware`` — sitewarden's CSRF check (Fetch-Metadata,
  Origin, Referer, then the ``_authenticator`` token) runs in ``process_view``; Django's
  ``@csrf_exempt`` and ``@warden.csrf_exempt`` (or :func:`csrf_exempt` from this module)
  are both honoured. Templates use ``{% csrf_input %}`` instead of ``{% csrf_token %}``.
* ``django.middleware.security.SecurityMiddleware`` — HSTS, the HTTPS redirect,
  ``X-Content-Type-Options``, ``Referrer-Policy``, ``Cross-Origin-Opener-Policy`` come from
  the policy (the ``SECURE_*`` settings are not read).
* ``django.middleware.clickjacking.XFrameOptionsMiddleware`` — ``X-Frame-Options`` and CSP
  ``frame-ancestors`` come from the policy.

It also validates the Host before Django does, handles sessions (``request.sitewarden``
is the :class:`~sitewarden.warden.Exchange`: ``request.sitewarden.login("alice")``;
``request.sitewarden_user`` is the signed-in user id), removes fingerprint headers and
hardens every cookie.

**Cookies.** Django keeps cookies in ``response.cookies``, not in the headers. The
middleware passes them through the engine as ``Set-Cookie`` headers with the rest, then
puts the hardened values back into ``response.cookies`` as morsels that write the exact
hardened header (their attributes are filled in too, for code that inspects them).

**Limits.** The ``Server`` header of ``runserver``, gunicorn or uWSGI is added by the
server, after Django: configure the server, or wrap the WSGI/ASGI application with
``warden.wsgi(...)``/``warden.asgi(...)`` instead of using this middleware. Views marked
``csrf_exempt`` by a library are exempt here too (Django REST framework marks every
``APIView`` and enforces CSRF itself for session authentication through Django's own
middleware class — keep DRF on token authentication, or list its paths explicitly).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Container
from http.cookies import CookieError, Morsel, SimpleCookie
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from sitewarden.warden import MAX_BODY, Exchange, Warden
from sitewarden.web.asgi import view_from_scope
from sitewarden.web.request import Reply, RequestView
from sitewarden.web.wsgi import view_from_environ

__all__ = ["SitewardenMiddleware", "csrf_exempt", "get_warden"]

_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_MARK = "sitewarden_csrf_exempt"
_TOO_LARGE = Reply(413, [("content-type", "text/plain; charset=utf-8")], b"Payload Too Large\n")
_CACHE_LIMIT = 8

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.Lock()
#: id(settings.SITEWARDEN) → (that dict, its Warden); the dict is kept so its id stays unique.
_wardens: dict[int, tuple[object, Warden]] = {}


def get_warden() -> Warden:
    """Return the process's :class:`~sitewarden.warden.Warden` for ``settings.SITEWARDEN``.

    Built on first use and cached by the settings dict's identity (``override_settings`` in
    tests gets its own). Raise ``ImproperlyConfigured`` when the setting is missing.
    """
    from django.conf import settings  # type: ignore[import-untyped]
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

    conf = getattr(settings, "SITEWARDEN", None)
    key = id(conf)
    cached = _wardens.get(key)
    if cached is not None and cached[0] is conf:
        return cached[1]
    if not isinstance(conf, dict):
        raise ImproperlyConfigured(
            "sitewarden: set SITEWARDEN = {'allowed_hosts': [...], 'store': ...} in settings"
        )
    with _lock:
        cached = _wardens.get(key)
        if cached is not None and cached[0] is conf:
            return cached[1]
        options = dict(conf)
        preset = options.pop("preset", "balanced")
        warden = Warden(preset, **options)
        if len(_wardens) >= _CACHE_LIMIT:
            _wardens.clear()
        _wardens[key] = (conf, warden)
        return warden


def csrf_exempt(view: _F) -> _F:
    """Mark a Django view exempt from sitewarden's CSRF check (no Warden needed).

    The same mark as ``@warden.csrf_exempt``; Django's own ``@csrf_exempt`` works too.
    """
    setattr(view, _MARK, True)
    return view


def view_from_request(request: Any) -> RequestView:
    """Return the :class:`RequestView` of a Django request (ASGI scope or WSGI environ)."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        if isinstance(scope.get("query_string"), str):
            # The ASGI spec says bytes; Django's AsyncClient sends str (ASGIRequest takes both).
            scope = {**scope, "query_string": scope["query_string"].encode("latin-1")}
        return view_from_scope(scope)
    return view_from_environ(request.META)


class SitewardenMiddleware:
    """sitewarden for Django; list it first in ``MIDDLEWARE`` (see the module docs)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        """Wrap *get_response* (the rest of the middleware chain and the view)."""
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Handle one request (returns a coroutine when the chain is async)."""
        if self.is_async:
            return self.__acall__(request)
        ex, early = self._begin(request)
        response = early if early is not None else self.get_response(request)
        _finish(ex, response)
        return response

    async def __acall__(self, request: Any) -> Any:
        """Handle one request on the asynchronous path."""
        ex, early = self._begin(request)
        response = early if early is not None else await self.get_response(request)
        _finish(ex, response)
        return response

    def _begin(self, request: Any) -> tuple[Exchange, Any]:
        ex = get_warden().begin(view_from_request(request), defer_csrf=True)
        if ex.reply is None and ex.body_handler is not None:  # the CSP report receiver
            ex.reply = _read_and_handle(request, ex)
        if ex.reply is not None:
            return ex, _to_response(ex.reply)
        request.sitewarden = ex
        request.sitewarden_user = ex.user
        return ex, None

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        """Run the deferred CSRF check once the view (and its exemption) is known."""
        ex: Exchange | None = getattr(request, "sitewarden", None)
        if ex is None or request.method in _SAFE_METHODS:
            return None
        exempt = bool(getattr(view_func, "csrf_exempt", False) or getattr(view_func, _MARK, False))
        reply = ex.check_csrf(exempt=exempt)
        if reply is None and ex.body_handler is not None:
            reply = _read_and_handle(request, ex)
        return None if reply is None else _to_response(reply)


def _read_and_handle(request: Any, ex: Exchange) -> Reply | None:
    """Give the request body to the exchange's body handler (at most ``MAX_BODY`` bytes)."""
    assert ex.body_handler is not None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _TOO_LARGE
    if length > MAX_BODY:
        return _TOO_LARGE
    body: bytes = request.body  # cached by Django: request.POST and FILES still work
    if len(body) > MAX_BODY:
        return _TOO_LARGE
    return ex.body_handler(body)


def _to_response(reply: Reply) -> Any:
    """Return a Django ``HttpResponse`` carrying sitewarden's *reply* exactly."""
    from django.http import HttpResponse  # type: ignore[import-untyped]

    response = HttpResponse(reply.body, status=reply.status)
    for name in list(response.headers):
        del response.headers[name]
    for name, value in reply.headers:
        response.headers[name] = value
    return response


def _finish(ex: Exchange, response: Any) -> None:
    """Rewrite *response*'s headers and cookies through the exchange."""
    pairs: list[tuple[str, str]] = list(response.items())
    pairs.extend(("Set-Cookie", morsel.OutputString()) for morsel in response.cookies.values())
    headers: dict[str, tuple[str, list[str]]] = {}
    cookies: list[str] = []
    for name, value in ex.response_headers(pairs):
        lower = name.lower()
        if lower == "set-cookie":
            cookies.append(value)
        elif lower in headers:
            headers[lower][1].append(value)
        else:
            headers[lower] = (name, [value])
    for name in list(response.headers):
        if name.lower() not in headers:
            del response.headers[name]
    for name, values in headers.values():
        value = ", ".join(values)
        if response.headers.get(name) != value:
            response.headers[name] = value
    response.cookies = _cookie_jar(cookies)


class HardenedMorsel(Morsel[str]):
    """A cookie that writes one exact ``Set-Cookie`` value (the engine's hardened one).

    Django's handlers write cookies with ``morsel.output(header="")``; this morsel returns
    the hardened header as the engine produced it, attributes unknown to
    :class:`http.cookies.Morsel` (``Partitioned``, ``Priority``) included. ``key``,
    ``value`` and the known attributes are filled in for code (and test clients) that
    read them.
    """

    def __init__(self, header: str) -> None:
        """Parse *header* (a ``Set-Cookie`` value) into the morsel."""
        super().__init__()
        self._header = header
        first, _, rest = header.partition(";")
        name, _, value = first.partition("=")
        name, value = name.strip(), value.strip()
        try:
            self.set(name, value, value)
        except CookieError:  # a name http.cookies finds illegal: keep it as it is
            self._key, self._value, self._coded_value = name, value, value
        for attr in rest.split(";"):
            key, eq, val = attr.partition("=")
            key = key.strip().lower()
            if key in ("secure", "httponly", "partitioned") and not eq:
                self._put(key, True)
            elif eq and key in ("path", "domain", "max-age", "expires", "samesite", "comment"):
                self._put(key, val.strip())

    def _put(self, key: str, value: str | bool) -> None:
        # An attribute this Python's Morsel does not know: the header still carries it.
        with contextlib.suppress(CookieError):
            self[key] = value

    def OutputString(self, attrs: Container[str] | None = None) -> str:
        """Return the hardened ``Set-Cookie`` value, exactly."""
        header: str | None = getattr(self, "_header", None)
        return header if header is not None else super().OutputString(attrs)


def _cookie_jar(headers: list[str]) -> SimpleCookie:
    """Return a ``SimpleCookie`` of one :class:`HardenedMorsel` per ``Set-Cookie`` value."""
    jar = SimpleCookie()
    for header in headers:
        morsel = HardenedMorsel(header)
        key = morsel.key
        n = 1
        while key in jar:  # the same name twice (another path or domain): keep both
            n += 1
            key = f"{morsel.key}#{n}"
        dict.__setitem__(jar, key, morsel)
    return jar
