"""Starlette and FastAPI: the ASGI middleware, the exemption decorator and Jinja2 helpers.

::

    warden = Warden(store="sqlite:///.sitewarden/state.db", allowed_hosts=["example.org"])
    app = FastAPI()                      # or Starlette()
    app.add_middleware(SitewardenMiddleware, warden=warden)
    templates = Jinja2Templates(directory="templates")
    install_jinja(templates, warden)

    @app.post("/hooks/payment")
    @warden.csrf_exempt
    async def payment_hook(request: Request) -> dict[str, str]: ...

The middleware is :class:`~sitewarden.web.asgi.SitewardenASGI` — every decision is the
engine's; this module only finds out which endpoint a request is routed to, so that
``@warden.csrf_exempt`` works although the middleware runs *before* Starlette's router.

**How exemption is found.** At the first request the middleware walks the application's
routes (``scope["app"].routes``, through :class:`~starlette.routing.Mount`,
:class:`~starlette.routing.Host` and FastAPI's included routers) once, looking for endpoints
marked with ``@warden.csrf_exempt``. If there are none (the common case), nothing more is
ever done. If there are, each *unsafe* request (POST, PUT, PATCH, DELETE, …) is matched
against the routes the way the router does — the first route that matches both the path and
the method wins, mounts are descended with the child scope — and the CSRF check is skipped
only when that winning route's endpoint is marked. Safe methods are never resolved.

Limits of this approach (none of them can exempt a request that is not routed to an exempt
endpoint; at worst an exempt endpoint is checked after all):

* routes added after the first request are not scanned: add them before serving;
* a mounted application that is not a Starlette router (a raw ASGI or WSGI app) is one
  endpoint: mark the mounted app itself (``warden.csrf_exempt(subapp)``) to exempt it all;
* an ASGI middleware *inside* the application that rewrites the path before routing is not
  seen (the middleware matches the path as it arrives);
* FastAPI's low-priority frontend routes are not considered (they serve pages, not forms).

For paths that are not routed by Starlette at all, use the policy's ``csrf_exempt_paths``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from markupsafe import Markup

from sitewarden.warden import Exchange, Warden
from sitewarden.web.asgi import Receive, Scope, Send, SitewardenASGI

__all__ = ["SitewardenMiddleware", "exchange", "install_jinja"]

_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS", "TRACE"))
_MARK = "sitewarden_csrf_exempt"
#: Deepest nesting of mounts the route walk descends (a guard against cycles).
_MAX_DEPTH = 16


def _is_marked(obj: object) -> bool:
    return obj is not None and bool(getattr(obj, _MARK, False))


def _flatten(routes: Iterable[Any]) -> list[Any]:
    """Return *routes* with FastAPI's included routers expanded into their routes.

    FastAPI ≥ 0.13x keeps an included router as one lazy entry; its public
    ``iter_route_contexts`` yields the effective (prefixed) routes in routing order.
    Older FastAPI versions and Starlette already list every route.
    """
    routes = list(routes)
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return routes
    try:
        return list(iter_route_contexts(routes))
    except Exception:  # an unexpected route type: fall back to the plain list
        return routes


def _children(route: Any) -> list[Any] | None:
    """Return the sub-routes of a Mount or Host (``None``: a leaf route or a raw app)."""
    sub = getattr(route, "routes", None)
    if isinstance(sub, list) and sub:
        return sub
    return None


def _any_marked(routes: Iterable[Any], depth: int = 0) -> bool:
    """Whether any endpoint reachable through *routes* carries the exemption mark."""
    if depth > _MAX_DEPTH:
        return False
    for route in _flatten(routes):
        if _is_marked(getattr(route, "endpoint", None)) or _is_marked(getattr(route, "app", None)):
            return True
        sub = _children(route)
        if sub is not None and _any_marked(sub, depth + 1):
            return True
    return False


def _resolve(routes: Iterable[Any], scope: Scope, depth: int = 0) -> Any:
    """Return the endpoint the router would call for *scope*, or ``None``."""
    if depth > _MAX_DEPTH:
        return None
    from starlette.routing import Match

    for route in _flatten(routes):
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        sub = _children(route)
        if sub is not None:
            return _resolve(sub, {**scope, **child}, depth + 1)
        return child.get("endpoint", getattr(route, "endpoint", None))
    return None


class SitewardenMiddleware(SitewardenASGI):
    """sitewarden for Starlette and FastAPI: ``app.add_middleware(SitewardenMiddleware, warden=w)``.

    Add it last (it is then the outermost of the user middleware) so that its headers and
    cookie hardening apply to every response the other middleware produce. It honours
    ``@warden.csrf_exempt`` on endpoints (see the module documentation for how).
    """

    def __init__(self, app: Any, warden: Warden) -> None:
        """Wrap *app* (the rest of the middleware stack) with *warden*'s protections."""
        super().__init__(app, warden)
        self._scanned_app: object = None
        self._has_exempt = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; find the endpoint's exemption for unsafe requests."""
        if (
            scope["type"] == "http"
            and scope.get("method", "GET") not in _SAFE_METHODS
            and "endpoint" not in scope
        ):
            endpoint = self._exempt_endpoint(scope)
            if endpoint is not None:
                scope = {**scope, "endpoint": endpoint}
        await super().__call__(scope, receive, send)

    def _exempt_endpoint(self, scope: Scope) -> Any:
        """Return the routed endpoint when it is marked exempt, else ``None``."""
        app = scope.get("app")
        routes = getattr(app, "routes", None)
        if routes is None:
            return None
        if app is not self._scanned_app:
            self._has_exempt = _any_marked(routes)
            self._scanned_app = app
        if not self._has_exempt:
            return None
        probe = dict(scope)
        probe.pop("fastapi", None)  # FastAPI keeps per-request routing state there
        try:
            endpoint = _resolve(routes, probe)
        except Exception:  # a route that cannot match this scope: no exemption
            return None
        return endpoint if _is_marked(endpoint) else None


def exchange(request: Any) -> Exchange:
    """Return the :class:`~sitewarden.warden.Exchange` of a Starlette/FastAPI *request*.

    Raise :class:`RuntimeError` when the middleware is not installed, rather than letting
    a view run without the protections it expects.
    """
    ex = request.scope.get("sitewarden")
    if ex is None:
        raise RuntimeError(
            "no sitewarden exchange on this request: add "
            "app.add_middleware(SitewardenMiddleware, warden=warden)"
        )
    return ex  # type: ignore[no-any-return]


def _sri_attributes(path: str) -> Markup:
    """``integrity``/``crossorigin`` attributes from :mod:`sitewarden.sri`, when present."""
    try:
        module = importlib.import_module("sitewarden.sri")
    except ImportError as exc:
        raise RuntimeError("sri() needs sitewarden.sri, which is not available") from exc
    return Markup(module.sri_attributes(path))  # noqa: S704 - the module returns safe markup


def install_jinja(templates: Any, warden: Warden) -> None:
    """Add ``csp_nonce()``, ``csrf_token()``, ``csrf_input()`` and ``sri()`` to templates.

    *templates* is a :class:`starlette.templating.Jinja2Templates` (or a
    :class:`jinja2.Environment`). The functions read the current request's exchange from
    the template context's ``request`` (``TemplateResponse`` puts it there)::

        <script nonce="{{ csp_nonce() }}">…</script>
        <form method="post">{{ csrf_input() }} …</form>
        <script src="/static/app.js" {{ sri("/static/app.js") }}></script>
    """
    from jinja2 import pass_context
    from jinja2.runtime import Context

    env = getattr(templates, "env", templates)
    field = warden.csrf.field

    def _ex(context: Context) -> Exchange:
        request = context.get("request")
        if request is None:
            raise RuntimeError("sitewarden template helpers need 'request' in the context")
        return exchange(request)

    @pass_context
    def csp_nonce(context: Context) -> str:
        return _ex(context).csp_nonce

    @pass_context
    def csrf_token(context: Context, extra: str = "") -> str:
        return _ex(context).csrf_token(extra)

    @pass_context
    def csrf_input(context: Context, extra: str = "") -> Markup:
        token = _ex(context).csrf_token(extra)
        return Markup('<input type="hidden" name="{}" value="{}">').format(field, token)

    env.globals.update(
        csp_nonce=csp_nonce, csrf_token=csrf_token, csrf_input=csrf_input, sri=_sri_attributes
    )
