"""The ``sitewarden scan`` command: grade live sites as the Mozilla HTTP Observatory does.

``sitewarden scan [URL…] [--from FILE] [--format text|json] [--fail-under GRADE] [--ca FILE]
[--http-port N] [--https-port N] [--timeout S] [--concurrency N] [--hsts-preload FILE]
[--update-hsts-preload [--hsts-preload-url URL]] [--observatory-version 1.6.3|1.4.8]``
fetches each site (:mod:`sitewarden.audit.scan`) and grades it with the port of the
Observatory's grader (:mod:`sitewarden.audit.observatory`), as production's release 1.6.3
grades unless ``--observatory-version 1.4.8`` asks for the npm package's; see ``docs/scan.md``.

Exit status: 0 when every site was graded at or above ``--fail-under`` (default: no
threshold), 1 when a site could not be scanned or graded below it, 2 for bad usage.
JSON: one object per site, ``{"url", "grade", "score", "tests", "observatory",
"algorithm_version", "findings"}`` or ``{"url", "error"}``; a list when several URLs are
given. Text: one site's tests and findings, or, for several sites, a progress bar on stderr
and a summary table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from sitewarden.audit.observatory import DEFAULT_VERSION, GRADE_CHART, OBSERVATORY_VERSIONS
from sitewarden.audit.preload import (
    CHROMIUM_URL,
    PreloadError,
    default_preload,
    download_preload,
    load_preload,
)
from sitewarden.audit.scan import ScanOptions, run_sync, scan_sites
from sitewarden.cli_common import EXIT_FAILURE, EXIT_USAGE, positive

__all__ = ["GRADES", "add_scan_parser", "grade_rank", "read_url_file", "run_scan"]

#: Grades from worst to best.
GRADES: tuple[str, ...] = ("F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+")
assert set(GRADES) == set(GRADE_CHART.values())


def grade_rank(grade: str) -> int:
    """Return the position of *grade* from worst (0) to best."""
    return GRADES.index(grade)


def _port(text: str) -> int:
    value = positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port (1-65535), got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds ≤ 300, got {value}")
    return value


def add_scan_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``scan`` command to *subparsers*."""
    text = "grade live sites like the Mozilla HTTP Observatory"
    parser = subparsers.add_parser("scan", help=text, description=text)
    parser.add_argument("urls", nargs="*", metavar="URL", help="site URL (or bare host name)")
    parser.add_argument(
        "--from",
        dest="from_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="also scan the URLs of FILE (one per line, '#' starts a comment; '-' is stdin)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output")
    parser.add_argument(
        "--fail-under",
        choices=GRADES,
        default=None,
        metavar="GRADE",
        help="exit 1 when a site grades below GRADE (A+, A, A-, B+ … F)",
    )
    parser.add_argument("--ca", type=Path, default=None, metavar="FILE", help="extra CA (PEM)")
    parser.add_argument("--http-port", type=_port, default=None, help="port of the http:// side")
    parser.add_argument("--https-port", type=_port, default=None, help="port of the https:// side")
    parser.add_argument(
        "--timeout", type=_seconds, default=10.0, help="seconds per request (default 10)"
    )
    parser.add_argument(
        "--concurrency", type=positive, default=4, help="sites scanned at once (default 4)"
    )
    parser.add_argument(
        "--hsts-preload",
        type=Path,
        default=None,
        metavar="FILE",
        help="HSTS preload list: Chromium's transport_security_state_static.json "
        "or the Observatory's hsts-preload.json (default: the downloaded list, "
        "else the bundled snapshot)",
    )
    parser.add_argument(
        "--update-hsts-preload",
        action="store_true",
        help="download Chromium's HSTS preload list to the user cache first "
        "(what the Observatory does when installed)",
    )
    parser.add_argument(
        "--hsts-preload-url",
        default=CHROMIUM_URL,
        metavar="URL",
        help="where --update-hsts-preload downloads from (default: Chromium's source)",
    )
    parser.add_argument(
        "--observatory-version",
        choices=OBSERVATORY_VERSIONS,
        default=DEFAULT_VERSION,
        help=f"grade as this Observatory release (default {DEFAULT_VERSION}, what the "
        "production Observatory runs; 1.4.8 is the @mdn/mdn-http-observatory npm package, "
        "the release you can run yourself to compare)",
    )


def read_url_file(text: str) -> list[str]:
    """Return the URLs of a ``--from`` file: one per line, blank lines and comments skipped."""
    urls = []
    for line in text.splitlines():
        url = line.split(" #", 1)[0].strip()
        if url and not url.startswith("#"):
            urls.append(url)
    return urls


def run_scan(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden scan``; return the exit status."""
    urls = list(getattr(args, "urls", []))
    source: Path | None = getattr(args, "from_file", None)
    if source is not None:
        try:
            text = sys.stdin.read() if str(source) == "-" else source.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"sitewarden: error: cannot read {source}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        urls += read_url_file(text)
    if getattr(args, "update_hsts_preload", False):
        url = getattr(args, "hsts_preload_url", CHROMIUM_URL)
        try:
            fresh = download_preload(url, timeout=getattr(args, "timeout", 10.0) * 6)
        except PreloadError as exc:
            print(f"sitewarden: error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"HSTS preload list: {len(fresh.entries)} hosts, {fresh.source}", file=sys.stderr)
        if not urls:
            return 0
    if not urls:
        print("sitewarden: error: no URL to scan (give URLs or --from FILE)", file=sys.stderr)
        return EXIT_USAGE
    preload_file: Path | None = getattr(args, "hsts_preload", None)
    try:
        preload = load_preload(preload_file) if preload_file else default_preload()
    except PreloadError as exc:
        print(f"sitewarden: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text_mode = getattr(args, "format", "text") != "json"
    version: str = getattr(args, "observatory_version", DEFAULT_VERSION)
    ca: Path | None = getattr(args, "ca", None)
    if ca is not None and not ca.is_file():
        results: list[dict[str, Any]] = [
            {"url": url, "error": f"the CA file {ca} does not exist"} for url in urls
        ]
    else:
        opts = ScanOptions(
            ca=ca,
            http_port=getattr(args, "http_port", None),
            https_port=getattr(args, "https_port", None),
            timeout=getattr(args, "timeout", 10.0),
            hsts_preload=preload,
            observatory_version=version,
        )
        concurrency = getattr(args, "concurrency", 4)
        if text_mode and len(urls) > 1:
            results = _scan_with_progress(urls, opts, concurrency)
        else:
            results = run_sync(scan_sites(urls, opts, concurrency))
    if not text_mode:
        console.print_json(json.dumps(results[0] if len(results) == 1 else results))
    elif len(results) == 1:
        _print_text(console, results[0])
    else:
        _print_summary(console, results)
    if text_mode:
        console.print(Text(f"graded as HTTP Observatory {version}", style="dim"))
        console.print(Text(f"HSTS preload list: {preload.source}", style="dim"))
    threshold = getattr(args, "fail_under", None)
    failed = any(
        "error" in r or (threshold and grade_rank(r["grade"]) < grade_rank(threshold))
        for r in results
    )
    return EXIT_FAILURE if failed else 0


def _scan_with_progress(
    urls: list[str], opts: ScanOptions, concurrency: int
) -> list[dict[str, Any]]:
    progress = Progress(
        TextColumn("scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("scan", total=len(urls), errors=0)
    errors = 0

    def done(result: dict[str, Any]) -> None:
        nonlocal errors
        errors += "error" in result
        progress.update(task, advance=1, errors=errors)

    with progress:
        return run_sync(scan_sites(urls, opts, concurrency, on_done=done))


def _print_summary(console: Console, results: list[dict[str, Any]]) -> None:
    graded = [r for r in results if "error" not in r]
    title = f"{len(results)} sites: {len(graded)} graded, {len(results) - len(graded)} errors"
    table = Table(title=Text(title), title_justify="left")
    for column in ("url", "grade", "score", "findings", "error"):
        table.add_column(column, overflow="fold")
    for r in results:
        if "error" in r:
            table.add_row(Text(r["url"]), "", "", "", Text(r["error"], style="red"))
        else:
            extra = sum(1 for f in r["findings"] if f.get("kind") == "extra")
            count = f"{len(r['findings']) - extra} + {extra} extra"
            table.add_row(Text(r["url"]), Text(r["grade"]), str(r["score"]), Text(count), "")
    console.print(table)


def _print_text(console: Console, result: dict[str, Any]) -> None:
    if "error" in result:
        console.print(Text(f"{result['url']}: error: {result['error']}", style="red"))
        return
    title = f"{result['url']}: {result['grade']} ({result['score']})"
    table = Table(title=Text(title), title_justify="left")
    for column in ("test", "result", "score", "pass"):
        table.add_column(column, overflow="fold")
    for name, test in result["tests"].items():
        table.add_row(
            Text(name),
            Text(str(test["result"])),
            Text(f"{test['score_modifier']:+d}"),
            Text("yes" if test["pass"] else "no", style="green" if test["pass"] else "red"),
        )
    console.print(table)
    extras = [f for f in result["findings"] if f.get("kind") == "extra"]
    if extras:
        table = Table(title=Text("beyond the Observatory (not scored)"), title_justify="left")
        for column in ("severity", "finding", "fix", "setting"):
            table.add_column(column, overflow="fold")
        for f in extras:
            table.add_row(
                Text(f["severity"]),
                Text(f"{f['result']}: {f['detail']}"),
                Text(f["fix"]),
                Text(f["setting"] or "-"),
            )
        console.print(table)
