"""Pure ASGI middleware: any ASGI application (Starlette, FastAPI, Django ASGI, …).

Thin by design (Starlette's own middleware is the model): it builds a
:class:`~sitewarden.web.request.RequestView` from the scope, lets the
:class:`~sitewarden.warden.Warden` decide, and rewrites the response headers. The
application sees ``scope["sitewarden"]`` (the :class:`~sitewarden.warden.Exchange`),
``scope["sitewarden.user"]``, and can read the CSP nonce and CSRF token from the exchange.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from sitewarden.guards.csrf_guard import SAFE_METHODS
from sitewarden.warden import MAX_BODY, Exchange, Warden
from sitewarden.web.request import Reply, RequestView

__all__ = ["SitewardenASGI", "view_from_scope"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: WebSocket schemes as the origin a browser compares them with.
_HTTP_SCHEME = {"ws": "http", "wss": "https"}

_TOO_LARGE = Reply(413, [("content-type", "text/plain; charset=utf-8")], b"Payload Too Large\n")


def view_from_scope(
    scope: Scope, wanted: frozenset[bytes] | Mapping[bytes, str] | None = None
) -> RequestView:
    """Translate an ASGI HTTP scope into a :class:`RequestView`.

    With *wanted* (lower-case names, best as a map to their text form, which spares
    decoding each name), only those headers are decoded: the guards read a dozen names,
    browsers send more, and the application keeps the scope as it was. ASGI requires
    lower-case header names, so they are compared as they come.
    """
    try:  # the keys the ASGI spec requires, read by subscript (cheaper than .get)
        method, path, query, raw = (
            scope["method"],
            scope["path"],
            scope["query_string"],
            scope["headers"] or (),
        )
    except KeyError:  # a lenient test client: the same defaults as ever
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        query = scope.get("query_string", b"")
        raw = scope.get("headers") or ()
    if type(wanted) is dict:
        names: Mapping[bytes, str] = wanted
    elif wanted is None:
        names = {n: n.decode("latin-1") for n, _ in raw}
    elif isinstance(wanted, frozenset):
        names = {n: n.decode("latin-1") for n in wanted}
    else:
        names = wanted
    get = names.get
    headers: dict[str, str] = {}
    kept = 0
    for raw_name, raw_value in raw:
        name = get(raw_name)
        if name is not None:
            kept += 1
            headers[name] = raw_value.decode("latin-1")
    if kept != len(headers):  # a repeated header (HTTP/2 splits Cookie): join them
        headers = {}
        for raw_name, raw_value in raw:
            name = get(raw_name)
            if name is None:
                continue
            value = raw_value.decode("latin-1")
            if name in headers:
                headers[name] += ("; " if name == "cookie" else ", ") + value
            else:
                headers[name] = value
    server = scope.get("server")
    client = scope.get("client")
    host = headers.get("host")
    if host is None and server:
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    scheme: str = scope.get("scheme") or "http"
    return RequestView(  # positional: a third of the keyword call's cost
        method,
        _HTTP_SCHEME.get(scheme, scheme),
        host or "",
        path,
        # the spec says bytes; some test clients pass str
        (query.decode("latin-1") if query else "") if isinstance(query, bytes) else str(query),
        headers,
        client[0] if client else None,
        server[1] if server else None,
        raw,  # the rest, decoded only if a refusal reads it (view.header)
    )


class SitewardenASGI:
    """The ASGI middleware; build it with ``warden.asgi(app)``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], warden: Warden):
        """Wrap *app* with *warden*'s protections."""
        self.app = app
        self.warden = warden
        # The request headers the guards read, each with its text form (decoded once).
        self._wanted = {name: name.decode("latin-1") for name in warden.request_headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        kind = scope["type"]
        if kind != "http":
            if kind != "websocket":
                await self.app(scope, receive, send)  # lifespan and others pass through
                return
            view = view_from_scope(scope, self._wanted)
            # Host validation and the Origin check (cross-site hijacking) apply here too.
            ex = self.warden.begin_websocket(view)
            if ex.reply is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(_with_exchange(scope, ex), receive, send)
            return
        view = view_from_scope(scope, self._wanted)
        if view.method in SAFE_METHODS:
            ex = self.warden.begin(view)  # never CSRF-checked: no exemption to look up
        else:
            exempt = bool(scope.get("sitewarden.csrf_exempt")) or (
                "endpoint" in scope and getattr(scope["endpoint"], "sitewarden_csrf_exempt", False)
            )
            ex = self.warden.begin(view, csrf_exempt=exempt)
        if ex.reply is not None:
            await _send_reply(send, ex.reply, ex)
        elif ex.body_handler is not None:
            await self._with_body(scope, receive, send, ex)
        else:
            # Added in place, as Starlette's own middleware does (a copy per request costs).
            scope["sitewarden"] = ex
            scope["sitewarden.user"] = ex.user
            ex._asgi_send = send
            await self.app(scope, receive, ex.asgi_send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send, ex: Exchange) -> None:
        """Read the body sitewarden must see first (CSRF field, CSP report), then go on."""
        assert ex.body_handler is not None
        body, complete = await _read_body(receive, MAX_BODY)
        if not complete:
            ex.reply = _TOO_LARGE
        else:
            ex.reply = ex.body_handler(body)
            receive = _replay(body, receive)
        if ex.reply is not None:
            await _send_reply(send, ex.reply, ex)
            return
        ex._asgi_send = send
        await self.app(_with_exchange(scope, ex), receive, ex.asgi_send)


def _with_exchange(scope: Scope, ex: Exchange) -> Scope:
    # Added in place, as Starlette's own middleware does (a copy per request costs).
    scope["sitewarden"] = ex
    scope["sitewarden.user"] = ex.user
    return scope


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """Read the whole request body, up to *limit* bytes; report whether it was complete."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable that yields *body* once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_reply(send: Send, reply: Reply, ex: Exchange) -> None:
    headers = ex.response_headers_bytes(
        (n.encode("latin-1"), v.encode("latin-1")) for n, v in reply.headers
    )
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
