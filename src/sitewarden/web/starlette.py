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
:class:`~starlette.routing.Host` and FastAPI's included routers) once, and keeps the routes
that lead to endpoints marked with ``@warden.csrf_exempt``. If there are none (the common
case), nothing more is done. Otherwise an *unsafe* request (POST, PUT, PATCH, DELETE, …)
is matched against those few routes (about a microsecond each); only when one matches is
the request resolved the way the router does it — the first route matching both path and
method wins, mounts are descended with the child scope — and the CSRF check is skipped
when that winning route's endpoint is marked (an earlier, unmarked route with the same path
keeps its check). Safe methods are never looked at.

Limits of this approach (apart from the path-rewriting case, none of them can exempt a
request that is not routed to an exempt endpoint; at worst an exempt endpoint is checked):

* the scan is redone when the number of top-level routes changes; routes added later to a
  router *inside* a mount are not seen: add routes before serving;
* a mounted application that is not a Starlette router (a raw ASGI or WSGI app) is one
  endpoint: mark the mounted app itself (``warden.csrf_exempt(subapp)``) to exempt it all;
* an ASGI middleware *inside* the application that rewrites the path before routing is not
  seen: the path is matched as it arrives, so a rewrite *to* another route could carry an
  exemption there — do not combine path-rewriting middleware with exempt endpoints;
* a request the router would redirect (``/hook/`` → ``/hook``) is not exempt;
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

    Recent FastAPI keeps an included router as one lazy entry; its public
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


class _ExemptRoutes:
    """The exempt endpoints of one application's route tree, found once.

    ``candidates`` are the chains of routes (mounts, then the leaf) that lead to a marked
    endpoint. A request is exempt only if one candidate chain matches it *and* the full,
    ordered resolution — the router's own "first full match wins", mounts descended with
    the child scope — ends at a marked endpoint (an earlier route may shadow it).
    """

    def __init__(self, routes: list[Any]) -> None:
        self.routes = routes
        self.size = len(routes)
        self._flat: dict[int, tuple[list[Any], list[Any]]] = {}
        self.candidates: list[tuple[Any, ...]] = []
        self._collect(routes, (), 0)

    def flat(self, routes: list[Any]) -> list[Any]:
        hit = self._flat.get(id(routes))
        if hit is not None and hit[0] is routes:
            return hit[1]
        flat = _flatten(routes)
        self._flat[id(routes)] = (routes, flat)
        return flat

    def _collect(self, routes: list[Any], chain: tuple[Any, ...], depth: int) -> None:
        if depth > _MAX_DEPTH:
            return
        for route in self.flat(routes):
            sub = _children(route)
            if sub is not None:
                self._collect(sub, (*chain, route), depth + 1)
            elif _is_marked(getattr(route, "endpoint", None)) or _is_marked(
                getattr(route, "app", None)
            ):
                self.candidates.append((*chain, route))

    def exempt_endpoint(self, scope: Scope) -> Any:
        """Return the endpoint *scope* is routed to if it is marked exempt, else ``None``."""
        if not self.candidates:
            return None
        probe = dict(scope)
        probe.pop("fastapi", None)  # FastAPI keeps per-request routing state there
        if not any(_chain_matches(chain, probe) for chain in self.candidates):
            return None
        endpoint = self._resolve(self.routes, probe, 0)
        return endpoint if _is_marked(endpoint) else None

    def _resolve(self, routes: list[Any], scope: Scope, depth: int) -> Any:
        from starlette.routing import Match

        if depth > _MAX_DEPTH:
            return None
        for route in self.flat(routes):
            match, child = route.matches(scope)
            if match is not Match.FULL:
                continue
            sub = _children(route)
            if sub is not None:
                return self._resolve(sub, {**scope, **child}, depth + 1)
            return child.get("endpoint", getattr(route, "endpoint", None))
        return None


def _chain_matches(chain: tuple[Any, ...], scope: Scope) -> bool:
    from starlette.routing import Match

    for route in chain:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            return False
        scope = {**scope, **child}
    return True


class SitewardenMiddleware(SitewardenASGI):
    """sitewarden for Starlette and FastAPI: ``app.add_middleware(SitewardenMiddleware, warden=w)``.

    Add it last (it is then the outermost of the user middleware) so that its headers and
    cookie hardening apply to every response the other middleware produce. It honours
    ``@warden.csrf_exempt`` on endpoints (see the module documentation for how).
    """

    def __init__(self, app: Any, warden: Warden) -> None:
        """Wrap *app* (the rest of the middleware stack) with *warden*'s protections."""
        super().__init__(app, warden)
        self._app: object = None
        self._exempt: _ExemptRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; find the endpoint's exemption for unsafe requests."""
        if scope["type"] == "http" and scope.get("method", "GET") not in _SAFE_METHODS:
            endpoint = self._exempt_endpoint(scope)
            if endpoint is not None:
                scope = {**scope, "endpoint": endpoint}  # what the generic adapter reads
        await super().__call__(scope, receive, send)

    def _exempt_endpoint(self, scope: Scope) -> Any:
        """Return the routed endpoint when it is marked exempt, else ``None``."""
        app = scope.get("app")
        routes = getattr(app, "routes", None)
        if not isinstance(routes, list):
            return None
        exempt = self._exempt
        if exempt is None or app is not self._app or exempt.size != len(routes):
            exempt = self._exempt = _ExemptRoutes(routes)
            self._app = app
        try:
            return exempt.exempt_endpoint(scope)
        except Exception:  # a route that cannot match this scope: no exemption
            return None


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
