"""Flask: the ``Sitewarden`` extension.

::

    app = Flask(__name__)
    sw = Sitewarden(app, store="sqlite:///.sitewarden/state.db", allowed_hosts=["example.org"])

    @app.post("/hooks/payment")
    @sw.warden.csrf_exempt
    def payment_hook(): ...

What it does, all of it by driving the engine (:class:`~sitewarden.warden.Warden`):

* wraps ``app.wsgi_app`` with the WSGI middleware in *deferred-CSRF* mode: hosts, HTTPS,
  management paths, CORS preflights and sessions are handled before Flask sees the request,
  and every response gets the security headers, hardened cookies and the session cookie;
* checks CSRF in a ``before_request`` hook, once Flask has routed the request, so that a
  view (or a blueprint) marked with ``@warden.csrf_exempt`` is exempt; the refusal is
  returned as a Flask response;
* adds the template globals ``csp_nonce()``, ``csrf_token(extra="")``,
  ``csrf_input(extra="")`` and ``sri(path)``.

Views reach the request's :class:`~sitewarden.warden.Exchange` with :func:`exchange`
(``exchange().login("alice")``, ``exchange().user``).

It replaces Flask-Talisman (headers, HTTPS redirect, cookie flags) and Flask-WTF's
``CSRFProtect``. Headers a WSGI *server* adds itself (Werkzeug's development server's
``Server``, gunicorn's ``Server``) are outside the application and cannot be removed here.
"""

from __future__ import annotations

import importlib
from typing import Any

from markupsafe import Markup

from sitewarden.warden import MAX_BODY, Exchange, Warden
from sitewarden.web.request import Reply
from sitewarden.web.wsgi import (
    SitewardenWSGI,
)

__all__ = ["Sitewarden", "exchange"]

_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_MARK = "sitewarden_csrf_exempt"
_TOO_LARGE = Reply(413, [("content-type", "text/plain; charset=utf-8")], b"Payload Too Large\n")


def exchange() -> Exchange:
    """Return the current Flask request's :class:`~sitewarden.warden.Exchange`.

    Raise :class:`RuntimeError` outside a request or when the extension is not installed.
    """
    from flask import request

    ex = request.environ.get("sitewarden")
    if ex is None:
        raise RuntimeError("no sitewarden exchange on this request: call Sitewarden(app)")
    return ex  # type: ignore[no-any-return]


class Sitewarden:
    """The Flask extension: ``Sitewarden(app, **settings)`` or ``init_app`` later.

    *warden* is an existing :class:`~sitewarden.warden.Warden`; otherwise one is built from
    keyword *settings* (``preset``, ``store``, ``config`` and any policy setting) or, if
    none are given, from the app's ``SITEWARDEN`` config dict at :meth:`init_app`.
    """

    def __init__(self, app: Any = None, *, warden: Warden | None = None, **settings: Any):
        """Create the extension; with *app*, install it at once."""
        if warden is not None and settings:
            raise TypeError("give either warden= or policy settings, not both")
        if warden is None and settings:
            warden = Warden(**settings)
        self._warden = warden
        if app is not None:
            self.init_app(app)

    @property
    def warden(self) -> Warden:
        """The :class:`~sitewarden.warden.Warden` (its ``csrf_exempt`` marks views)."""
        if self._warden is None:
            raise RuntimeError("Sitewarden has no warden yet: call init_app(app) first")
        return self._warden

    def init_app(self, app: Any) -> None:
        """Install on *app*: WSGI middleware, ``before_request`` CSRF check, template globals."""
        if self._warden is None:
            self._warden = Warden(**dict(app.config.get("SITEWARDEN", {})))
        warden = self._warden
        app.wsgi_app = SitewardenWSGI(app.wsgi_app, warden, defer_csrf=True)
        # First of the app's before_request functions: nothing runs before the CSRF check.
        app.before_request_funcs.setdefault(None, []).insert(0, _check_csrf)
        app.extensions["sitewarden"] = self
        field = warden.csrf.field

        def csp_nonce() -> str:
            return exchange().csp_nonce

        def csrf_token(extra: str = "") -> str:
            return exchange().csrf_token(extra)

        def csrf_input(extra: str = "") -> Markup:
            token = exchange().csrf_token(extra)
            return Markup('<input type="hidden" name="{}" value="{}">').format(field, token)

        app.jinja_env.globals.update(
            csp_nonce=csp_nonce, csrf_token=csrf_token, csrf_input=csrf_input, sri=_sri
        )


def _sri(path: str) -> Markup:
    """``integrity``/``crossorigin`` attributes from :mod:`sitewarden.sri`."""
    try:
        module = importlib.import_module("sitewarden.sri")
    except ImportError as exc:
        raise RuntimeError("sri() needs sitewarden.sri, which is not available") from exc
    return Markup(module.sri_attributes(path))  # noqa: S704 - sri_attributes escapes


def _check_csrf() -> Any:
    """``before_request``: run the deferred CSRF check for the routed view."""
    from flask import current_app, request

    if request.method in _SAFE_METHODS:
        return None
    ex = exchange()
    reply = ex.check_csrf(exempt=_exempt(current_app, request))
    if reply is None and ex.body_handler is not None:
        length = request.content_length
        body = None if length is not None and length > MAX_BODY else request.get_data(cache=True)
        reply = _TOO_LARGE if body is None or len(body) > MAX_BODY else ex.body_handler(body)
    if reply is None:
        return None
    return current_app.response_class(reply.body, status=reply.status, headers=reply.headers)


def _exempt(app: Any, request: Any) -> bool:
    """Whether the routed view, or one of its blueprints, is marked exempt."""
    endpoint = request.endpoint
    if endpoint is None:
        return False
    if getattr(app.view_functions.get(endpoint), _MARK, False):
        return True
    return any(getattr(app.blueprints.get(name), _MARK, False) for name in request.blueprints)
