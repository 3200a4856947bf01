"""The ``sitewarden reports`` and ``sitewarden sri`` commands (wired in by :mod:`sitewarden.cli`).

``sitewarden reports [--store URL] [--json] [--limit N]`` lists the stored CSP violation
reports, newest first. ``sitewarden sri FILE… [--algorithm sha256|sha384|sha512]`` prints
``<integrity>  <file>`` lines. Expected failures end with one line on standard error: exit
status 1 for a runtime failure (store unavailable or damaged, file unreadable), 2 for a bad
setting.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.cli_common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    add_store_option,
    error,
    positive,
    returns_failure_status,
    store_url,
    with_store,
)
from sitewarden.reports import list_reports
from sitewarden.sri import ALGORITHMS, integrity_for_file

__all__ = ["add_reports_parser", "add_sri_parser", "run_reports", "run_sri"]


def add_reports_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``reports`` command to *subparsers*."""
    text = "list the CSP violation reports received, newest first"
    parser = subparsers.add_parser("reports", help=text, description=text)
    add_store_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--limit", type=positive, default=50, help="show at most N reports (default: 50)"
    )


def add_sri_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sri`` command to *subparsers*."""
    text = "print the Subresource Integrity value of files"
    parser = subparsers.add_parser("sri", help=text, description=text)
    parser.add_argument("files", nargs="+", metavar="FILE", help="the files to hash")
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        default="sha384",
        help="digest algorithm (default: sha384)",
    )


@returns_failure_status
def run_reports(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden reports``; return the exit status."""
    url = store_url(args)
    limit = getattr(args, "limit", 50)
    reports, shown_url = with_store(url, lambda store: (list_reports(store, limit), store.url))
    if getattr(args, "json", False):
        console.print_json(json.dumps({"store": shown_url, "reports": reports}))
        return 0
    if not reports:
        console.print(Text(f"No CSP reports in {shown_url}."))
        return 0
    table = Table(title=Text(f"CSP reports — {shown_url}"), title_justify="left")
    for column in ("received (UTC)", "client", "directive", "blocked", "document", "source"):
        table.add_column(column, overflow="fold")
    for report in reports:
        table.add_row(*(Text(cell) for cell in _row(report)))
    console.print(table)
    return 0


def _row(report: dict[str, Any]) -> list[str]:
    when = report.get("received")
    stamp = (
        datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(when, int | float) and 0 <= when < 2**33
        else "?"
    )
    directive = str(report.get("effective_directive") or report.get("violated_directive") or "")
    if report.get("disposition") == "report":
        directive += " (report-only)"
    source = str(report.get("source_file") or "")
    if source and isinstance(report.get("line"), int):
        source += f":{report['line']}"
    return [
        stamp,
        str(report.get("client") or "—"),
        directive,
        str(report.get("blocked_uri") or ""),
        str(report.get("document_uri") or ""),
        source,
    ]


def run_sri(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden sri``; return the exit status (1 if any file could not be read)."""
    algorithm = getattr(args, "algorithm", "sha384")
    status = 0
    for name in args.files:
        try:
            value = integrity_for_file(name, algorithm)
        except FileNotFoundError:
            error(f"{name}: no such file")
            status = EXIT_FAILURE
        except IsADirectoryError:
            error(f"{name}: is a directory")
            status = EXIT_FAILURE
        except OSError as exc:
            error(f"{name}: cannot read ({exc.strerror or exc})")
            status = EXIT_FAILURE
        except ValueError as exc:  # an algorithm argparse did not check (a direct caller)
            error(str(exc))
            return EXIT_USAGE
        else:
            console.print(Text(f"{value}  {name}"), soft_wrap=True, highlight=False, markup=False)
    return status
