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
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sitewarden.errors import ConfigError, SitewardenError
from sitewarden.reports import list_reports
from sitewarden.sri import ALGORITHMS, integrity_for_file
from sitewarden.store import default_store_url, open_store

__all__ = ["add_reports_parser", "add_sri_parser", "run_reports", "run_sri"]

_EXIT_FAILURE = 1
_EXIT_USAGE = 2


def add_reports_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``reports`` command to *subparsers*."""
    text = "list the CSP violation reports received, newest first"
    parser = subparsers.add_parser("reports", help=text, description=text)
    parser.add_argument(
        "--store",
        default=None,
        help="store URL (default: $SITEWARDEN_STORE or sqlite:///.sitewarden/state.db)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--limit", type=_positive, default=50, help="show at most N reports (default: 50)"
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


def _error(message: str) -> None:
    print(f"sitewarden: error: {message}", file=sys.stderr)


def run_reports(args: argparse.Namespace, console: Console) -> int:
    """Run ``sitewarden reports``; return the exit status."""
    url = getattr(args, "store", None) or default_store_url()
    limit = getattr(args, "limit", 50)
    try:
        store = open_store(url, create=False)  # inspecting never creates a store
        try:
            reports = list_reports(store, limit)
            shown_url = store.url
        finally:
            store.close()
    except ConfigError as exc:
        _error(str(exc))
        return _EXIT_USAGE
    except SitewardenError as exc:
        _error(str(exc))
        return _EXIT_FAILURE
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
            _error(f"{name}: no such file")
            status = _EXIT_FAILURE
        except IsADirectoryError:
            _error(f"{name}: is a directory")
            status = _EXIT_FAILURE
        except OSError as exc:
            _error(f"{name}: cannot read ({exc.strerror or exc})")
            status = _EXIT_FAILURE
        except ValueError as exc:  # an algorithm argparse did not check (a direct caller)
            _error(str(exc))
            return _EXIT_USAGE
        else:
            console.print(Text(f"{value}  {name}"), soft_wrap=True, highlight=False, markup=False)
    return status
