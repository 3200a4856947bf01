"""``sitewarden scan`` throughput: local sites scanned per second, many at once.

A server process (a raw asyncio HTTPS server, started on 127.0.0.1 and stopped by its pid)
listens on ``--sites`` ports, each one a distinct "site" with its own TLS connections: the
page carries the headers of a well-configured site, ``/manage*`` and ``security.txt``
answer 404. The ``http://`` side is a port where nothing listens (refused at once).
``scan_sites`` then scans every site with ``--concurrency`` at a time, the Observatory's
requests (GET, CORS ``OPTIONS``) plus the extra probes (five requests, and a handshake
offering only TLS 1.0/1.1, which this server refuses with an alert as a modern site does:
Python's server context asks for TLS 1.2+); the figure is sites per second,
best of ``--repeats`` rounds. Target: at least 200 sites/s (1000 sites, concurrency 50).

    uv run --group bench python bench/bench_scan.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import machine_info

TARGET = 200.0  # sites per second
PAGE = (
    b"content-type: text/html\r\n"
    b"content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n"
    b"strict-transport-security: max-age=63072000\r\n"
    b"x-content-type-options: nosniff\r\n"
    b"referrer-policy: no-referrer\r\n"
    b"cross-origin-resource-policy: same-origin\r\n"
    b"cross-origin-opener-policy: same-origin\r\n"
    b"permissions-policy: camera=()\r\n"
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1]
            if target == b"/":
                body, status, headers = b"<p>site</p>", b"200 OK", PAGE
            else:
                body, status, headers = b"", b"404 Not Found", b""
            writer.write(
                b"HTTP/1.1 " + status + b"\r\n" + headers
                + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, IndexError):
        pass
    finally:
        writer.close()


async def _serve(first: int, count: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    for port in range(first, first + count):
        await asyncio.start_server(_handle, "127.0.0.1", port, ssl=context, backlog=256)
    print("ready", flush=True)
    await asyncio.Event().wait()


def _free_block(count: int) -> int:
    """A first port such that *count* ports from it are free (best effort)."""
    for first in range(20000, 60000 - count, count):
        try:
            socks = []
            for port in range(first, first + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                socks.append(s)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return first
    raise RuntimeError("no block of free ports")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _round(urls: list[str], opts: Any, concurrency: int) -> tuple[float, int]:
    from sitewarden.audit.scan import scan_sites

    start, cpu = time.perf_counter(), time.process_time()
    results = await scan_sites(urls, opts, concurrency)
    elapsed = time.perf_counter() - start
    print(f"round: {elapsed:.3f} s, scanner CPU {time.process_time() - cpu:.3f} s", file=sys.stderr)
    return elapsed, sum(1 for r in results if "error" in r)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="sitewarden scan: sites per second")
    parser.add_argument("--quick", action="store_true", help="200 sites, 2 rounds")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--sites", type=int, default=None, help="sites (default 1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="sites at once")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        first, count, cert, key = args.serve
        asyncio.run(_serve(int(first), int(count), cert, key))
        return 0
    sites = args.sites or (200 if args.quick else 1000)
    repeats = args.repeats or (2 if args.quick else 3)
    try:
        from sitewarden.audit.scan import ScanOptions
        from sitewarden.demo.tls import ensure_tls
    except ImportError as exc:
        print(f"missing dependency: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        files = ensure_tls(Path(tmp))
        first = _free_block(sites)
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(first), str(sites),
             str(files.cert), str(files.key)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                print("the site server did not start", file=sys.stderr)
                return 2
            opts = ScanOptions(ca=files.ca_cert, http_port=_closed_port(), timeout=10)
            urls = [f"https://127.0.0.1:{first + i}/" for i in range(sites)]
            rounds = [asyncio.run(_round(urls, opts, args.concurrency)) for _ in range(repeats)]
        finally:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(10)
    best = min(elapsed for elapsed, _ in rounds)
    errors = max(e for _, e in rounds)
    rate = sites / best
    report = {
        "machine": machine_info(("httpx", "httpcore")),
        "sites": sites,
        "concurrency": args.concurrency,
        "rounds_s": [round(e, 3) for e, _ in rounds],
        "errors": errors,
        "sites_per_s": round(rate, 1),
        "target": TARGET,
        "ratio": round(rate / TARGET, 2),
        "passed": rate >= TARGET and errors == 0,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{sites} sites, concurrency {args.concurrency}, rounds: {report['rounds_s']} s")
        print(f"best: {rate:.1f} sites/s, errors: {errors}")
        verdict = "PASS" if report["passed"] else "FAIL"
        print(f"{verdict} scan throughput: {rate:.1f} sites/s ÷ {TARGET:.0f} = {rate / TARGET:.2f}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
