"""The retriever of ``sitewarden scan``: fetch a live site as the HTTP Observatory does.

:func:`retrieve` sends what the Observatory's retriever (``src/retriever/*.js`` of
``@mdn/mdn-http-observatory`` 1.4.8) sends — a GET of ``http://HOST[:PORT]/PATH`` and of
``https://HOST[:PORT]/PATH``, each following up to :data:`MAX_REDIRECTS` redirects by hand so
that every hop is recorded, then an ``OPTIONS`` CORS probe of the graded chain's final URL —
and returns a :class:`~sitewarden.audit.observatory.Retrieved` for the sans-I/O grader.

Like the Observatory, a certificate that does not verify is not an error: the HTTPS side is
fetched again without verification and marked unverified (which costs 40 points). Every
other failure of one site — nothing answering, a body over the size cap, a malformed
response, a status the Observatory refuses — is reported by :func:`scan_site` as that
site's ``error``, never as an exception.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from sitewarden.audit.observatory import CORS_ORIGIN, Fetch, Response, Retrieved, grade

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "ScanError",
    "ScanOptions",
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


class _CertificateError(Exception):
    pass


def _is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


async def _get(client: httpx.AsyncClient, url: str, max_body: int) -> Response:
    try:
        async with client.stream("GET", url) as reply:
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


async def _chain(url: str, verify: ssl.SSLContext | bool, opts: ScanOptions) -> Fetch:
    """GET *url*, following redirects by hand; every response is kept."""
    async with httpx.AsyncClient(
        verify=verify, timeout=opts.timeout, headers=_HEADERS, follow_redirects=False
    ) as client:
        chain: list[Response] = []
        current = url
        while True:
            response = await _get(client, current, opts.max_body)
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
        return Fetch(url, chain, verified=verify is not False)


async def _fetch(url: str, verify: ssl.SSLContext | bool, opts: ScanOptions) -> Fetch | None:
    """Fetch a chain, unverified after a certificate error; None when unreachable."""
    try:
        return await _chain(url, verify, opts)
    except _CertificateError:
        try:
            return await _chain(url, False, opts)
        except (httpx.HTTPError, _CertificateError):
            return None
    except httpx.HTTPError:
        return None


async def _cors(url: str, verify: ssl.SSLContext | bool, opts: ScanOptions) -> Response | None:
    headers = {**_HEADERS, "Access-Control-Request-Method": "GET", "Origin": CORS_ORIGIN}
    try:
        async with httpx.AsyncClient(
            verify=verify, timeout=opts.timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS
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


async def retrieve(url: str, opts: ScanOptions | None = None) -> Retrieved:
    """Fetch *url*'s site as the Observatory's retriever does; raise :class:`ScanError`."""
    opts = opts or ScanOptions()
    host, http_url, https_url = _target(url, opts)
    try:
        verify = _verify(opts)
    except (OSError, ssl.SSLError) as exc:
        raise ScanError(f"cannot load the CA file {opts.ca}: {exc}") from exc
    http, https = await asyncio.gather(
        _fetch(http_url, verify, opts), _fetch(https_url, verify, opts)
    )
    site = Retrieved(hostname=host, http=http, https=https)
    auto = site.auto
    if auto is None:
        return site
    cors_url = auto.final.url
    if not auto.verified:
        # The package's unverified fallback client records cookies and "redirects": its
        # robots.txt request adds cookies to the jar and becomes the CORS probe's URL.
        robots_url = urljoin(auto.url, "/robots.txt")
        robots = await _fetch(robots_url, False, opts)
        if robots is not None:
            site.extra_cookie_responses = robots.chain
            if 200 <= robots.final.status < 300:  # axios rejects other statuses
                cors_url = robots_url
    site.cors = await _cors(cors_url, verify if auto.verified else False, opts)
    return site


async def scan_site(url: str, opts: ScanOptions | None = None) -> dict[str, Any]:
    """Scan one site: ``{"url", "grade", "score", "tests", "findings"}`` or ``{"url", "error"}``."""
    try:
        site = await retrieve(url, opts)
        if site.auto is None:
            raise ScanError("The site seems to be down.")
        result = grade(site)
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
    return {"url": url, **result, "findings": findings}


async def scan_sites(
    urls: list[str], opts: ScanOptions | None = None, concurrency: int = 4
) -> list[dict[str, Any]]:
    """Scan *urls*, at most *concurrency* at a time; results in the order given."""
    limit = asyncio.Semaphore(max(1, concurrency))

    async def one(url: str) -> dict[str, Any]:
        async with limit:
            return await scan_site(url, opts)

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
