"""The retriever of ``sitewarden scan``: fetch a live site as the HTTP Observatory does.

:func:`retrieve` sends what the Observatory's retriever (``src/retriever/*.js`` of
``mdn/mdn-http-observatory``, the same in releases 1.4.8 and 1.6.3) sends — a GET of
``http://HOST[:PORT]/PATH`` and of ``https://HOST[:PORT]/PATH``, each following up to
:data:`MAX_REDIRECTS` redirects by hand so that every hop is recorded, then an ``OPTIONS``
CORS probe of the graded chain's final URL — and returns a
:class:`~sitewarden.audit.observatory.Retrieved` for the sans-I/O grader, which
:func:`scan_site` runs as the release ``ScanOptions.observatory_version`` says (default
1.6.3, what production runs).

:func:`probe` then runs sitewarden's extra probes (:mod:`sitewarden.audit.findings`), among
them one TLS handshake that offers only TLS 1.0 and 1.1 (:func:`probe_legacy_tls`).

Like the Observatory, a certificate that does not verify is not an error: the HTTPS side is
fetched again without verification and marked unverified (which costs 40 points). Every
other failure of one site — nothing answering, a body over the size cap, a malformed
response, a status the Observatory refuses — is reported by :func:`scan_site` as that
site's ``error``, never as an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from cryptography import x509

from sitewarden.audit.findings import (
    EVIL_ORIGIN,
    LEGACY_TLS_VERSIONS,
    MANAGE_PATHS,
    LegacyTls,
    Probes,
    TlsInfo,
    extra_findings,
)
from sitewarden.audit.observatory import (
    CORS_ORIGIN,
    DEFAULT_VERSION,
    Fetch,
    Response,
    Retrieved,
    grade,
    is_ip_literal,
)
from sitewarden.audit.preload import HstsPreload, PreloadError, default_preload

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "ScanError",
    "ScanOptions",
    "Scanner",
    "legacy_tls_context",
    "probe",
    "probe_legacy_tls",
    "retrieve",
    "run_sync",
    "scan_site",
    "scan_sites",
]

#: Redirects followed per chain (the Observatory's MAX_REDIRECTS).
MAX_REDIRECTS = 10
#: Bytes read of one response body at most; a larger body is an error.
MAX_BODY = 5 * 1024 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "User-Agent": "sitewarden-scan (+https://github.com/mdn/mdn-http-observatory compatible)",
}


_HTTPCORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)


class ScanError(Exception):
    """One site could not be scanned (the message says why)."""


@dataclass(frozen=True)
class ScanOptions:
    """How to reach the sites."""

    ca: Path | None = None
    http_port: int | None = None
    https_port: int | None = None
    timeout: float = 10.0
    max_body: int = MAX_BODY
    #: The HSTS preload list (None: :func:`~sitewarden.audit.preload.default_preload`).
    hsts_preload: HstsPreload | None = None
    #: The Observatory release to grade as (one of
    #: :data:`~sitewarden.audit.observatory.OBSERVATORY_VERSIONS`).
    observatory_version: str = DEFAULT_VERSION


class _CertificateError(Exception):
    pass


def _is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _tls_info(reply: httpx.Response) -> TlsInfo | None:
    stream = reply.extensions.get("network_stream")
    sslobj = stream.get_extra_info("ssl_object") if stream is not None else None
    if not isinstance(sslobj, ssl.SSLObject | ssl.SSLSocket):
        return None
    not_after = None
    der = sslobj.getpeercert(binary_form=True)
    if der:
        with contextlib.suppress(ValueError):
            not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    return TlsInfo(sslobj.version(), not_after)


async def _get(
    client: httpx.AsyncClient, url: str, max_body: int, tls: list[TlsInfo] | None = None
) -> Response:
    try:
        async with client.stream("GET", url) as reply:
            if tls is not None and not tls and url.startswith("https:"):
                info = _tls_info(reply)
                if info is not None:
                    tls.append(info)
            body = bytearray()
            async for chunk in reply.aiter_raw():
                body += chunk
                if len(body) > max_body:
                    raise ScanError(f"{url}: response larger than {max_body} bytes")
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reply.headers.raw]
            return Response(url, reply.status_code, headers, _decode(reply, bytes(body)))
    except ScanError:
        raise
    except httpx.ConnectError as exc:
        if _is_cert_error(exc):
            raise _CertificateError(str(exc)) from exc
        raise


def _decode(reply: httpx.Response, raw: bytes) -> str:
    encoding = (reply.headers.get("content-encoding") or "").strip().lower()
    if encoding in ("gzip", "deflate", "br", "zstd"):
        decoded = httpx.Response(200, headers={"content-encoding": encoding}, content=raw)
        try:
            raw = decoded.read()
        except httpx.DecodingError as exc:
            raise ScanError(f"{reply.url}: undecodable {encoding} body") from exc
    return raw.decode("utf-8", "replace")


class _Shared(httpx.AsyncBaseTransport):
    """A pooled transport that outlives the clients using it (their close is a no-op)."""

    def __init__(self, inner: httpx.AsyncHTTPTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


def legacy_tls_context() -> tuple[ssl.SSLContext | None, str | None]:
    """Return ``(context, None)`` for the legacy-TLS probe, or ``(None, why not)``.

    The context offers TLS 1.0 and 1.1 only (what this OpenSSL has of them), at security
    level 0 (OpenSSL 3 offers neither version above it), and verifies nothing: the probe
    only asks whether the server still accepts the handshake.
    """
    if not (ssl.HAS_TLSv1 or ssl.HAS_TLSv1_1):
        return None, f"{ssl.OPENSSL_VERSION} was built without TLS 1.0 and 1.1"
    try:
        with warnings.catch_warnings():
            # Python deprecates TLSVersion.TLSv1/TLSv1_1: offering them is the point here.
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.minimum_version = (
                ssl.TLSVersion.TLSv1 if ssl.HAS_TLSv1 else ssl.TLSVersion.TLSv1_1
            )
            context.maximum_version = (
                ssl.TLSVersion.TLSv1_1 if ssl.HAS_TLSv1_1 else ssl.TLSVersion.TLSv1
            )
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError) as exc:
        return None, f"{ssl.OPENSSL_VERSION} cannot offer TLS 1.0/1.1 ({exc})"
    # TLS 1.0/1.1 need a suite that is not TLS 1.2/1.3-only; without one the handshake
    # could never succeed, and every server would look as if it refused.
    if all(c["protocol"] in ("TLSv1.2", "TLSv1.3") for c in context.get_ciphers()):
        return None, f"{ssl.OPENSSL_VERSION} has no cipher suite for TLS 1.0/1.1"
    return context, None


@dataclass(frozen=True)
class _Contexts:
    """The SSL contexts one scan makes once and every site shares."""

    verified: ssl.SSLContext
    unverified: ssl.SSLContext
    legacy: ssl.SSLContext | None  # offers TLS 1.0/1.1 only (None: see legacy_skipped)
    legacy_skipped: str | None


class Scanner:
    """SSL contexts shared by the sites of one scan, and one site's connection pools.

    Creating an SSL context costs more than a local request: a scan of many sites creates
    the three (verifying, not verifying, and the legacy-TLS probe's) once; :meth:`for_site`
    gives each site small pools of its own on them (one pool for every site would be
    searched connection by connection on each request). Each chain still gets a client
    (and a cookie jar) of its own, as the Observatory's retriever does.
    """

    def __init__(self, opts: ScanOptions | None = None, _contexts: _Contexts | None = None) -> None:
        opts = opts or ScanOptions()
        if opts.hsts_preload is None:
            try:  # read once per scan; each site's scanner gets it in its options
                opts = replace(opts, hsts_preload=default_preload())
            except PreloadError as exc:
                raise ScanError(str(exc)) from None
        self.opts = opts
        self.preload: HstsPreload = opts.hsts_preload or HstsPreload()
        if _contexts is None:
            try:
                verified = _verify(self.opts)
            except (OSError, ssl.SSLError) as exc:
                raise ScanError(f"cannot load the CA file {self.opts.ca}: {exc}") from exc
            unverified = ssl.create_default_context()
            unverified.check_hostname = False
            unverified.verify_mode = ssl.CERT_NONE
            _contexts = _Contexts(verified, unverified, *legacy_tls_context())
        self._contexts = _contexts
        self.context = _contexts.verified
        self.unverified_context = _contexts.unverified
        #: The legacy-TLS probe's context (``None``: :attr:`legacy_skipped` says why).
        self.legacy_context = _contexts.legacy
        self.legacy_skipped = _contexts.legacy_skipped
        self._pools: dict[bool, httpx.AsyncHTTPTransport] = {}
        # A client on a transport of its own ignores HTTP(S)_PROXY: with a proxy in the
        # environment, each client keeps httpx's own (proxy-aware) pools.
        self._env_proxy = any(
            os.environ.get(name) for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                              "http_proxy", "https_proxy", "all_proxy")
        )  # fmt: skip

    def for_site(self) -> Scanner:
        """Return a scanner with pools of its own on the same SSL contexts."""
        return Scanner(self.opts, self._contexts)

    def client(self, verified: bool, **kw: Any) -> httpx.AsyncClient:
        """Return a client (its own cookie jar) on the verified or the unverified pool."""
        context = self.context if verified else self.unverified_context
        if self._env_proxy:
            return httpx.AsyncClient(
                verify=context, timeout=self.opts.timeout, headers=_HEADERS, **kw
            )
        if verified not in self._pools:
            self._pools[verified] = httpx.AsyncHTTPTransport(verify=context)
        return httpx.AsyncClient(
            transport=_Shared(self._pools[verified]),
            timeout=self.opts.timeout,
            headers=_HEADERS,
            **kw,
        )

    def pool(self, verified: bool) -> httpcore.AsyncConnectionPool | None:
        """Return the connection pool :meth:`client` uses (None if each has its own)."""
        transport = None if self._env_proxy else self._pools.get(verified)
        pool = getattr(transport, "_pool", None)  # httpx's AsyncHTTPTransport keeps it there
        return pool if isinstance(pool, httpcore.AsyncConnectionPool) else None

    async def aclose(self) -> None:
        """Close the pools."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


async def _chain(
    url: str, verified: bool, scanner: Scanner, tls: list[TlsInfo] | None = None
) -> Fetch:
    """GET *url*, following redirects by hand; every response is kept."""
    opts = scanner.opts
    async with scanner.client(verified, follow_redirects=False) as client:
        chain: list[Response] = []
        current = url
        while True:
            response = await _get(client, current, opts.max_body, tls)
            chain.append(response)
            location = dict((k.lower(), v) for k, v in response.headers).get("location")
            if (
                len(chain) > MAX_REDIRECTS
                or response.status not in _REDIRECT_STATUSES
                or location is None
            ):
                break
            current = urljoin(current, location)
            if urlsplit(current).scheme not in ("http", "https"):
                break
        return Fetch(url, chain, verified=verified)


async def _fetch(
    url: str, verified: bool, scanner: Scanner, tls: list[TlsInfo] | None = None
) -> Fetch | None:
    """Fetch a chain, unverified after a certificate error; None when unreachable."""
    try:
        return await _chain(url, verified, scanner, tls)
    except _CertificateError:
        try:
            return await _chain(url, False, scanner, tls)
        except (httpx.HTTPError, _CertificateError):
            return None
    except httpx.HTTPError:
        return None


async def _cors(url: str, verified: bool, scanner: Scanner) -> Response | None:
    headers = {**_HEADERS, "Access-Control-Request-Method": "GET", "Origin": CORS_ORIGIN}
    try:
        async with scanner.client(
            verified, follow_redirects=True, max_redirects=MAX_REDIRECTS
        ) as client:
            reply = await client.options(url, headers=headers)
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reply.headers.raw]
            return Response(str(reply.url), reply.status_code, raw, "")
    except httpx.HTTPError:
        return None


def _verify(opts: ScanOptions) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if opts.ca is not None:
        context.load_verify_locations(cafile=str(opts.ca))
    return context


def _target(url: str, opts: ScanOptions) -> tuple[str, str, str]:
    """``(hostname, http URL, https URL)`` for *url* (a bare host is accepted)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScanError(f"{url}: not an http(s) URL")
    try:
        port = parts.port
    except ValueError as exc:
        raise ScanError(f"{url}: bad port") from exc
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    http_port = opts.http_port or (port if parts.scheme == "http" else None)
    https_port = opts.https_port or (port if parts.scheme == "https" else None)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    http = f"http://{netloc}{f':{http_port}' if http_port else ''}{path}"
    https = f"https://{netloc}{f':{https_port}' if https_port else ''}{path}"
    return host, http, https


async def retrieve(
    url: str,
    opts: ScanOptions | None = None,
    *,
    scanner: Scanner | None = None,
    tls: list[TlsInfo] | None = None,
) -> Retrieved:
    """Fetch *url*'s site as the Observatory's retriever does; raise :class:`ScanError`.

    *scanner* shares connection pools between sites (one is made, and closed, otherwise);
    the HTTPS side's protocol and certificate are appended to *tls* when given.
    """
    if scanner is None:
        own = Scanner(opts)
        try:
            return await retrieve(url, scanner=own, tls=tls)
        finally:
            await own.aclose()
    opts = scanner.opts
    host, http_url, https_url = _target(url, opts)
    http, https = await asyncio.gather(
        _fetch(http_url, True, scanner), _fetch(https_url, True, scanner, tls)
    )
    site = Retrieved(hostname=host, http=http, https=https, preload=scanner.preload)
    auto = site.auto
    if auto is None:
        return site
    cors_url = auto.final.url
    if not auto.verified:
        # The package's unverified fallback client records cookies and "redirects": its
        # robots.txt request adds cookies to the jar and becomes the CORS probe's URL.
        robots_url = urljoin(auto.url, "/robots.txt")
        robots = await _fetch(robots_url, False, scanner)
        if robots is not None:
            site.extra_cookie_responses = robots.chain
            if 200 <= robots.final.status < 300:  # axios rejects other statuses
                cors_url = robots_url
    site.cors = await _cors(cors_url, auto.verified, scanner)
    return site


async def _probe(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    pool: httpcore.AsyncConnectionPool | None = None,
) -> Response | None:
    try:
        if pool is None:
            async with client.stream("GET", url, headers=headers) as reply:
                return await _probe_reply(url, reply)
        # What the client would send (its headers, its cookie jar, its timeouts), sent on
        # the site's pool without httpx's per-request layers (auth, redirects, hooks, the
        # request and response conversions): a seventh of a local site's CPU time.
        request = client.build_request("GET", url, headers=headers)
        target = request.url
        answer = await pool.handle_async_request(
            httpcore.Request(
                b"GET",
                httpcore.URL(
                    scheme=target.raw_scheme,
                    host=target.raw_host,
                    port=target.port,
                    target=target.raw_path,
                ),
                headers=request.headers.raw,
                extensions=request.extensions,
            )
        )
        try:
            if any(k.lower() == b"set-cookie" for k, _ in answer.headers):
                client.cookies.extract_cookies(
                    httpx.Response(answer.status, headers=answer.headers, request=request)
                )
            body = bytearray()
            async for chunk in answer.aiter_stream():
                body += chunk
                if len(body) > 65536:
                    break
        finally:
            await answer.aclose()
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers]
        return Response(url, answer.status, raw, bytes(body).decode("utf-8", "replace"))
    except _HTTPCORE_ERRORS:  # what httpx maps to its own errors
        return None
    except httpx.HTTPError:
        return None


async def _probe_reply(url: str, reply: httpx.Response) -> Response:
    body = bytearray()
    async for chunk in reply.aiter_raw():
        body += chunk
        if len(body) > 65536:
            break
    raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reply.headers.raw]
    return Response(url, reply.status_code, raw, bytes(body).decode("utf-8", "replace"))


async def _connect(host: str, port: int) -> socket.socket:
    """Return a non-blocking socket connected to *host*:*port* (each address in turn)."""
    loop = asyncio.get_running_loop()
    if is_ip_literal(host):  # no resolver thread for an address (every local site is one)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    else:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{host}: no address")
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:  # cancelled (the timeout): no socket left open
            sock.close()
            raise
        return sock
    raise error


async def probe_legacy_tls(url: str, scanner: Scanner) -> LegacyTls:
    """Offer *url*'s ``host:port`` a TLS handshake limited to TLS 1.0/1.1; report the answer.

    A completed handshake is ``LegacyTls(accepted=version)``; an alert, a reset, EOF or
    the scan's timeout is a refusal (``accepted=None``), never an error of the site. When
    no such handshake can be offered from here, ``skipped`` says why.
    """
    context = scanner.legacy_context
    if context is None:
        return LegacyTls(skipped=scanner.legacy_skipped or "no TLS 1.0/1.1 context")
    if scanner._env_proxy:
        # The probe connects directly: through a proxy it might reach nothing, and a
        # refusal it never got must not read as "legacy TLS refused".
        return LegacyTls(skipped="a proxy is configured and the probe does not use it")
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme != "https" or not host:
        return LegacyTls(skipped=f"{url} is not an https:// URL")
    try:
        port = parts.port or 443
    except ValueError:
        return LegacyTls(skipped=f"{url}: bad port")
    # The handshake is driven by hand (memory BIOs, the loop's socket calls) rather than
    # by asyncio.open_connection: half the CPU time (0.13 ms instead of 0.27 ms a site in
    # bench/bench_scan.py, whose server refuses at once), which 200 sites/s cannot spare.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = context.wrap_bio(
        incoming,
        outgoing,
        server_hostname=None if is_ip_literal(host) else host,  # SNI: names only
    )
    try:
        sslobj.do_handshake()  # writes the ClientHello (nothing received yet: cannot finish)
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError as exc:  # before any byte was sent: this machine cannot offer it
        return LegacyTls(skipped=f"{ssl.OPENSSL_VERSION} could not offer TLS 1.0/1.1 ({exc})")
    loop = asyncio.get_running_loop()
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(scanner.opts.timeout):  # connect and handshake
            sock = await _connect(host, port)
            while True:
                await loop.sock_sendall(sock, outgoing.read())
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    return LegacyTls()  # EOF: refused
                incoming.write(chunk)
                try:
                    sslobj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    continue
            version = sslobj.version()
            with contextlib.suppress(ssl.SSLError):
                sslobj.unwrap()  # queue a close_notify: a polite goodbye, sent best effort
            with contextlib.suppress(OSError):
                sock.send(outgoing.read())
    except (OSError, EOFError):  # an alert (ssl.SSLError), a reset, no route, the timeout
        return LegacyTls()
    finally:
        if sock is not None:
            sock.close()  # right away: the handshake was the whole question
    return LegacyTls(accepted=version if version in LEGACY_TLS_VERSIONS else None)


async def _in_turn(urls: list[str], verified: bool, scanner: Scanner) -> list[Response | None]:
    # One after the other, on the graded chain's kept-alive connection: five requests at
    # once would cost four more TLS handshakes (the bulk of a local site's scan).
    replies = []
    async with scanner.client(verified, follow_redirects=False) as client:
        pool = scanner.pool(verified)
        for i, url in enumerate(urls):
            headers = {"Origin": EVIL_ORIGIN} if i == 1 else None
            replies.append(await _probe(client, url, headers, pool))
    return replies


async def probe(site: Retrieved, scanner: Scanner) -> Probes:
    """Run the extra probes against the graded chain's final URL (its origin).

    The legacy-TLS handshake (:func:`probe_legacy_tls`, when that URL is ``https://``) runs
    alongside the five requests, so it adds no latency.
    """
    auto = site.auto
    assert auto is not None
    final = auto.final.url
    urls = [urljoin(final, "/.well-known/security.txt"), final]
    urls += [urljoin(final, path) for path in MANAGE_PATHS]
    legacy = None
    if urlsplit(final).scheme == "https":
        legacy = asyncio.ensure_future(probe_legacy_tls(final, scanner))
    try:
        replies = await _in_turn(urls, auto.verified, scanner)
    except BaseException:
        if legacy is not None:
            legacy.cancel()
        raise
    return Probes(
        manage={p: r.status if r else None for p, r in zip(MANAGE_PATHS, replies[2:], strict=True)},
        security_txt=replies[0],
        cors=replies[1],
        tls_legacy=await legacy if legacy is not None else None,
    )


async def scan_site(
    url: str, opts: ScanOptions | None = None, *, scanner: Scanner | None = None
) -> dict[str, Any]:
    """Scan one site: ``{"url", "grade", "score", "tests", "findings"}`` or ``{"url", "error"}``.

    ``findings`` lists the Observatory tests that did not pass, then the extra findings
    (``"kind": "extra"``, :mod:`sitewarden.audit.findings`), which never change the score.
    """
    try:
        own = scanner.for_site() if scanner is not None else Scanner(opts)
    except ScanError as exc:
        return {"url": url, "error": str(exc)}
    try:
        return await _scan_site(url, own)
    finally:
        await own.aclose()


async def _scan_site(url: str, scanner: Scanner) -> dict[str, Any]:
    tls: list[TlsInfo] = []
    try:
        site = await retrieve(url, scanner=scanner, tls=tls)
        if site.auto is None:
            raise ScanError("The site seems to be down.")
        result = grade(site, scanner.opts.observatory_version)
        probes = await probe(site, scanner)
    except (ScanError, ValueError) as exc:
        return {"url": url, "error": str(exc)}
    except (httpx.HTTPError, OSError) as exc:  # anything the transport still raises
        return {"url": url, "error": f"{type(exc).__name__}: {exc}"}
    findings = [
        {"test": name, "result": test["result"], "score_modifier": test["score_modifier"]}
        for name, test in result["tests"].items()
        if not test["pass"]
    ]
    auto = site.auto
    if auto is not None and auto.final.status in _REDIRECT_STATUSES:
        findings.append(
            {"test": "redirection", "result": "redirect-limit-reached", "score_modifier": 0}
        )
    if auto is not None and site.https is auto and tls:
        probes.tls = tls[0]
    findings += extra_findings(auto.chain, probes) if auto is not None else []
    return {"url": url, **result, "findings": findings}


async def scan_sites(
    urls: list[str],
    opts: ScanOptions | None = None,
    concurrency: int = 4,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Scan *urls*, at most *concurrency* at a time; results in the order given.

    The SSL contexts are made once (each site has small pools of its own); *on_done* is
    called with each result as it comes. A site that fails is an ``{"url", "error"}``
    result, never an exception.
    """
    opts = opts or ScanOptions()
    try:
        scanner = Scanner(opts)
    except ScanError as exc:
        return [{"url": url, "error": str(exc)} for url in urls]
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(url: str) -> dict[str, Any]:
        async with limit:
            try:
                result = await scan_site(url, scanner=scanner)
            except Exception as exc:  # one broken site never stops the batch
                result = {"url": url, "error": f"{type(exc).__name__}: {exc}"}
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(u) for u in urls)))


_T = TypeVar("_T")


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run *coro* to completion, in a thread of its own if this one already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="sitewarden-scan")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: _T = box["value"]
    return value
