"""WSGI middleware: any WSGI application (Flask, Django WSGI, Pyramid, Plone's WSGI, …).

The application sees ``environ["sitewarden"]`` (the :class:`~sitewarden.warden.Exchange`)
and ``environ["sitewarden.user"]``. When sitewarden must read the body (a CSRF form field),
it reads at most ``MAX_BODY`` bytes and hands the application an identical stream.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sitewarden.warden import MAX_BODY, Exchange, Warden
from sitewarden.web.request import Reply, RequestView

__all__ = ["SitewardenWSGI", "view_from_environ"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_REASONS = {
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    308: "Permanent Redirect",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def view_from_environ(environ: Environ) -> RequestView:
    """Translate a WSGI environ into a :class:`RequestView`."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    if "CONTENT_LENGTH" in environ:
        headers["content-length"] = environ["CONTENT_LENGTH"]
    host = headers.get("host") or environ.get("SERVER_NAME", "")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # PEP 3333 delivers the path as latin-1 decoded bytes: recover the real UTF-8 text.
    with contextlib.suppress(UnicodeError):
        path = path.encode("latin-1").decode("utf-8")
    port = environ.get("SERVER_PORT")
    return RequestView(
        method=environ.get("REQUEST_METHOD", "GET"),
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=host,
        path=path or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        client=environ.get("REMOTE_ADDR"),
        server_port=int(port) if port and str(port).isdigit() else None,
    )


class SitewardenWSGI:
    """The WSGI middleware; build it with ``warden.wsgi(app)``."""

    def __init__(self, app: WSGIApp, warden: Warden, *, defer_csrf: bool = False) -> None:
        """Wrap *app* with *warden*'s protections.

        With *defer_csrf* the CSRF check is left to a framework adapter that runs
        :meth:`~sitewarden.warden.Exchange.check_csrf` once it knows the view.
        """
        self.app = app
        self.warden = warden
        self.defer_csrf = defer_csrf

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Handle one WSGI request."""
        view = view_from_environ(environ)
        ex = self.warden.begin(
            view,
            csrf_exempt=bool(environ.get("sitewarden.csrf_exempt")),
            defer_csrf=self.defer_csrf,
        )
        if ex.reply is None and ex.body_handler is not None:
            body = _read_body(environ, MAX_BODY)
            if body is None:
                ex.reply = Reply(
                    413, [("content-type", "text/plain; charset=utf-8")], b"Payload Too Large\n"
                )
            else:
                ex.reply = ex.body_handler(body)
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
        if ex.reply is not None:
            return _send_reply(start_response, ex.reply, ex)
        environ["sitewarden"] = ex
        environ["sitewarden.user"] = ex.user

        def wrapped_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, ex.response_headers(headers), exc_info)

        return self.app(environ, wrapped_start)


def _read_body(environ: Environ, limit: int) -> bytes | None:
    """Read the request body (at most *limit* bytes); ``None`` if it is larger."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > limit or length < 0:
        return None
    if length:
        return stream.read(length)  # type: ignore[no-any-return]
    data = stream.read(limit + 1)  # chunked uploads: read until EOF, bounded
    return None if len(data) > limit else data


def _send_reply(start_response: StartResponse, reply: Reply, ex: Exchange) -> Iterator[bytes]:
    headers = ex.response_headers(reply.headers)
    headers.append(("content-length", str(len(reply.body))))
    start_response(f"{reply.status} {_REASONS.get(reply.status, 'Error')}", headers)
    yield reply.body
