"""Run the demo's servers: HTTPS (or plain HTTP) and the HTTP→HTTPS redirector, in one loop.

Both are :class:`uvicorn.Server` instances in the same asyncio event loop, serving the
same sitewarden-wrapped application; on the plain-HTTP listener sitewarden answers every
request with the redirect, so the application never sees it. The sockets are bound
before anything starts (:func:`bind`), so a port in use is reported at once, and ``--port
0`` works (the real port is known before the policy is built).

uvicorn is told to add no ``Server`` header and to ignore ``X-Forwarded-*`` headers:
sitewarden decides which proxies to believe. One Ctrl-C (or SIGTERM) stops both servers
gracefully; a second one stops them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from sitewarden.demo.tls import TlsFiles

__all__ = ["Listener", "bind", "run", "serve"]

#: TLS 1.2 cipher suites offered (TLS 1.3 suites are all strong and always on).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(slots=True)
class Listener:
    """One bound socket and what to serve on it (*tls*: HTTPS with these files)."""

    sock: socket.socket
    tls: TlsFiles | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful after binding port 0)."""
        return int(self.sock.getsockname()[1])


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket on *host*:*port*; raise :class:`OSError` on failure."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve` (two share a loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(app: Any, listener: Listener, log_level: str) -> uvicorn.Config:
    host, port = listener.sock.getsockname()[:2]
    tls = listener.tls
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=None if tls is None else str(tls.cert),
        ssl_keyfile=None if tls is None else str(tls.key),
        ssl_ciphers=TLS12_CIPHERS,
        server_header=False,
        date_header=True,
        proxy_headers=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
        log_level=log_level,
    )
    config.load()  # loads the certificate now: a bad file fails before anything serves
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    return config


async def serve(app: Any, listeners: Sequence[Listener], *, log_level: str = "info") -> None:
    """Serve *app* on every listener until a signal (or one server's end) stops them all."""
    servers = [(_Server(_config(app, item, log_level)), item.sock) for item in listeners]
    loop = asyncio.get_running_loop()

    def stop(*_: object) -> None:
        for server, _sock in servers:
            if server.should_exit:
                server.force_exit = True  # a second Ctrl-C: do not wait for connections
            server.should_exit = True

    def end_all() -> None:
        for server, _sock in servers:
            server.should_exit = True

    installed: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            with contextlib.suppress(ValueError):
                previous[sig] = signal.signal(sig, stop)
    try:
        tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        end_all()  # one ended (or failed): end the others too
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # re-raise a failure
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(app: Any, listeners: Sequence[Listener], *, log_level: str = "info") -> None:
    """Run :func:`serve` in a new event loop; return when the servers have stopped."""
    try:
        asyncio.run(serve(app, listeners, log_level=log_level))
    finally:
        for item in listeners:
            item.sock.close()
